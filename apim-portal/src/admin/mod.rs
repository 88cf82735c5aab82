//! The Admin API (`/api/am/admin/v4`): throttling policies, block conditions, gateway
//! environments, users and roles. Everything needs `apim:admin`.

pub mod blocks;
pub mod environments;
pub mod policies;
pub mod users;

use utoipa::OpenApi;

use crate::openapi::Routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "apim-rs Admin API", version = "v4"),
    paths(
        policies::list,
        policies::create,
        policies::get,
        policies::update,
        policies::delete,
        blocks::list,
        blocks::create,
        blocks::get,
        blocks::set_status,
        blocks::delete,
        environments::list,
        environments::create,
        environments::delete,
        users::list,
        users::create,
        users::get,
        users::delete,
        users::set_roles,
        users::set_password,
        users::roles,
        users::create_role,
    )
)]
struct AdminDoc;

/// The Admin routes (relative to its base path).
pub fn routes() -> Routes {
    Routes::new(AdminDoc::openapi())
        .get("/throttling/policies/{policyLevel}", policies::list)
        .post("/throttling/policies/{policyLevel}", policies::create)
        .get(
            "/throttling/policies/{policyLevel}/{policyId}",
            policies::get,
        )
        .put(
            "/throttling/policies/{policyLevel}/{policyId}",
            policies::update,
        )
        .delete(
            "/throttling/policies/{policyLevel}/{policyId}",
            policies::delete,
        )
        .get("/throttling/blacklist", blocks::list)
        .post("/throttling/blacklist", blocks::create)
        .get("/throttling/blacklist/{conditionId}", blocks::get)
        .patch("/throttling/blacklist/{conditionId}", blocks::set_status)
        .delete("/throttling/blacklist/{conditionId}", blocks::delete)
        .get("/environments", environments::list)
        .post("/environments", environments::create)
        .delete("/environments/{environmentId}", environments::delete)
        .get("/users", users::list)
        .post("/users", users::create)
        .get("/users/{username}", users::get)
        .delete("/users/{username}", users::delete)
        .put("/users/{username}/roles", users::set_roles)
        .put("/users/{username}/password", users::set_password)
        .get("/roles", users::roles)
        .post("/roles", users::create_role)
}
