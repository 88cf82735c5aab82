//! The Publisher API (`/api/am/publisher/v4`): APIs, OpenAPI import, lifecycle, revisions and
//! deployments, documents, and an API's subscriptions.

pub mod apis;
pub mod documents;
pub mod lifecycle;
pub mod openapi_import;
pub mod revisions;
pub mod scopes;
pub mod subscriptions;

use utoipa::OpenApi;

use crate::openapi::Routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "apim-rs Publisher API", version = "v4"),
    paths(
        apis::list,
        apis::create,
        apis::get,
        apis::update,
        apis::delete,
        apis::get_swagger,
        apis::put_swagger,
        apis::import,
        lifecycle::change,
        lifecycle::state,
        lifecycle::history,
        revisions::list,
        revisions::create,
        revisions::get,
        revisions::delete,
        revisions::restore,
        revisions::deploy,
        revisions::undeploy,
        revisions::deployments,
        documents::list,
        documents::create,
        documents::get,
        documents::delete,
        subscriptions::list,
        subscriptions::block,
        subscriptions::unblock,
        subscriptions::approve,
        scopes::list,
        scopes::create,
        scopes::get,
        scopes::exists,
        scopes::update,
        scopes::delete,
        scopes::usage,
    )
)]
struct PublisherDoc;

/// The Publisher routes (relative to its base path).
pub fn routes() -> Routes {
    Routes::new(PublisherDoc::openapi())
        .get("/apis", apis::list)
        .post("/apis", apis::create)
        .post("/apis/import-openapi", apis::import)
        .post("/apis/change-lifecycle", lifecycle::change)
        .get("/apis/{apiId}", apis::get)
        .put("/apis/{apiId}", apis::update)
        .delete("/apis/{apiId}", apis::delete)
        .get("/apis/{apiId}/swagger", apis::get_swagger)
        .put("/apis/{apiId}/swagger", apis::put_swagger)
        .get("/apis/{apiId}/lifecycle-state", lifecycle::state)
        .get("/apis/{apiId}/lifecycle-history", lifecycle::history)
        .get("/apis/{apiId}/revisions", revisions::list)
        .post("/apis/{apiId}/revisions", revisions::create)
        .get("/apis/{apiId}/revisions/{revisionId}", revisions::get)
        .delete("/apis/{apiId}/revisions/{revisionId}", revisions::delete)
        .post("/apis/{apiId}/restore-revision", revisions::restore)
        .post("/apis/{apiId}/deploy-revision", revisions::deploy)
        .post("/apis/{apiId}/undeploy-revision", revisions::undeploy)
        .get("/apis/{apiId}/deployments", revisions::deployments)
        .get("/apis/{apiId}/documents", documents::list)
        .post("/apis/{apiId}/documents", documents::create)
        .get("/apis/{apiId}/documents/{documentId}", documents::get)
        .delete("/apis/{apiId}/documents/{documentId}", documents::delete)
        .get("/subscriptions", subscriptions::list)
        .post("/subscriptions/block-subscription", subscriptions::block)
        .post(
            "/subscriptions/unblock-subscription",
            subscriptions::unblock,
        )
        .post(
            "/subscriptions/approve-subscription",
            subscriptions::approve,
        )
        .get("/scopes", scopes::list)
        .post("/scopes", scopes::create)
        .get("/scopes/{scopeId}", scopes::get)
        .head("/scopes/{scopeId}", scopes::exists)
        .put("/scopes/{scopeId}", scopes::update)
        .delete("/scopes/{scopeId}", scopes::delete)
        .get("/scopes/{scopeId}/usage", scopes::usage)
}
