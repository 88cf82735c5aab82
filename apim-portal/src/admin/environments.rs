//! Gateway environments.

use apim_core::model::{scopes, Environment};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use crate::auth::Caller;
use crate::extract::{Json, Path};
use crate::paging::List;
use crate::publisher::apis::created;
use crate::{Portal, ADMIN_BASE};

/// All environments (readable by publishers too, who deploy to them).
#[utoipa::path(get, path = "/environments", tag = "Environments",
    responses((status = 200, description = "Environments: {count, list}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
) -> Result<Json<List<Environment>>, ApimError> {
    if !caller.has_scope(scopes::ADMIN) {
        caller.require_publisher_portal()?;
    }
    Ok(Json(List::all(p.store().list_environments().await?)))
}

/// Add an environment (unique name).
#[utoipa::path(post, path = "/environments", tag = "Environments",
    request_body(content = Object, description = "{name, displayName, description, vhosts}"),
    responses((status = 201, description = "Created"), (status = 409, description = "Duplicate name")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Json(env): Json<Environment>,
) -> Result<Response, ApimError> {
    caller.require(scopes::ADMIN)?;
    let env = p.store().create_environment(env).await?;
    Ok(created(
        format!("{ADMIN_BASE}/environments/{}", env.id),
        env,
    ))
}

/// Delete an environment nothing is deployed to.
#[utoipa::path(delete, path = "/environments/{environmentId}", params(("environmentId" = String, Path, description = "environmentId")), tag = "Environments",
    responses((status = 200, description = "Deleted"), (status = 409, description = "APIs are deployed there")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::ADMIN)?;
    p.store().delete_environment(&id).await?;
    Ok(StatusCode::OK)
}
