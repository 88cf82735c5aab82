//! The Developer Portal API (`/api/am/devportal/v3`): discovery, self-signup, applications,
//! keys, API keys, subscriptions, ratings and comments.

pub mod apis;
pub mod applications;
pub mod feedback;
pub mod keys;
pub mod signup;
pub mod subscriptions;

use utoipa::OpenApi;

use crate::openapi::Routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "apim-rs Developer Portal API", version = "v3"),
    paths(
        apis::list,
        apis::get,
        apis::swagger,
        apis::documents,
        signup::signup,
        applications::list,
        applications::create,
        applications::get,
        applications::update,
        applications::delete,
        keys::generate_keys,
        keys::list_keys,
        keys::get_key,
        keys::clean_up,
        keys::regenerate_secret,
        keys::generate_token,
        keys::generate_api_key,
        keys::revoke_api_key,
        subscriptions::list,
        subscriptions::create,
        subscriptions::get,
        subscriptions::delete,
        feedback::ratings,
        feedback::rate,
        feedback::comments,
        feedback::add_comment,
        feedback::delete_comment,
    )
)]
struct DevportalDoc;

/// The Developer Portal routes (relative to its base path).
pub fn routes() -> Routes {
    Routes::new(DevportalDoc::openapi())
        .get("/apis", apis::list)
        .get("/apis/{apiId}", apis::get)
        .get("/apis/{apiId}/swagger", apis::swagger)
        .get("/apis/{apiId}/documents", apis::documents)
        .get("/apis/{apiId}/ratings", feedback::ratings)
        .put("/apis/{apiId}/user-rating", feedback::rate)
        .get("/apis/{apiId}/comments", feedback::comments)
        .post("/apis/{apiId}/comments", feedback::add_comment)
        .delete(
            "/apis/{apiId}/comments/{commentId}",
            feedback::delete_comment,
        )
        .post("/self-signup", signup::signup)
        .get("/applications", applications::list)
        .post("/applications", applications::create)
        .get("/applications/{applicationId}", applications::get)
        .put("/applications/{applicationId}", applications::update)
        .delete("/applications/{applicationId}", applications::delete)
        .post(
            "/applications/{applicationId}/generate-keys",
            keys::generate_keys,
        )
        .get("/applications/{applicationId}/oauth-keys", keys::list_keys)
        .get(
            "/applications/{applicationId}/oauth-keys/{keyMappingId}",
            keys::get_key,
        )
        .post(
            "/applications/{applicationId}/oauth-keys/{keyMappingId}/clean-up",
            keys::clean_up,
        )
        .post(
            "/applications/{applicationId}/oauth-keys/{keyMappingId}/regenerate-secret",
            keys::regenerate_secret,
        )
        .post(
            "/applications/{applicationId}/oauth-keys/{keyMappingId}/generate-token",
            keys::generate_token,
        )
        .post(
            "/applications/{applicationId}/api-keys/{keyType}/generate",
            keys::generate_api_key,
        )
        .post(
            "/applications/{applicationId}/api-keys/{keyType}/revoke",
            keys::revoke_api_key,
        )
        .get("/subscriptions", subscriptions::list)
        .post("/subscriptions", subscriptions::create)
        .get("/subscriptions/{subscriptionId}", subscriptions::get)
        .delete("/subscriptions/{subscriptionId}", subscriptions::delete)
}
