//! Block conditions: `/throttling/blacklist`.

use apim_core::model::{scopes, BlockCondition};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::{Json, Path};
use crate::paging::List;
use crate::publisher::apis::created;
use crate::{Portal, ADMIN_BASE};

/// All block conditions.
#[utoipa::path(get, path = "/throttling/blacklist", tag = "Block Conditions",
    responses((status = 200, description = "Conditions: {count, list}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
) -> Result<Json<List<BlockCondition>>, ApimError> {
    caller.require(scopes::ADMIN)?;
    Ok(Json(List::all(p.store().list_block_conditions().await?)))
}

/// Add a block condition (API, APPLICATION, IP, IPRANGE, USER).
#[utoipa::path(post, path = "/throttling/blacklist", tag = "Block Conditions",
    request_body(content = Object, description = "{conditionType, conditionValue, conditionStatus}"),
    responses((status = 201, description = "Created")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Json(b): Json<BlockCondition>,
) -> Result<Response, ApimError> {
    caller.require(scopes::ADMIN)?;
    let b = p.store().create_block_condition(b).await?;
    Ok(created(
        format!("{ADMIN_BASE}/throttling/blacklist/{}", b.condition_id),
        b,
    ))
}

/// One block condition.
#[utoipa::path(get, path = "/throttling/blacklist/{conditionId}", params(("conditionId" = String, Path, description = "conditionId")), tag = "Block Conditions",
    responses((status = 200, description = "The condition")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BlockCondition>, ApimError> {
    caller.require(scopes::ADMIN)?;
    Ok(Json(p.store().get_block_condition(&id).await?))
}

/// Body of the status change.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StatusBody {
    condition_status: bool,
}

/// Enable or disable a block condition.
#[utoipa::path(patch, path = "/throttling/blacklist/{conditionId}", params(("conditionId" = String, Path, description = "conditionId")), tag = "Block Conditions",
    request_body(content = Object, description = "{conditionStatus}"),
    responses((status = 200, description = "Updated")))]
pub(crate) async fn set_status(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(b): Json<StatusBody>,
) -> Result<Json<BlockCondition>, ApimError> {
    caller.require(scopes::ADMIN)?;
    Ok(Json(
        p.store()
            .set_block_condition_status(&id, b.condition_status)
            .await?,
    ))
}

/// Delete a block condition.
#[utoipa::path(delete, path = "/throttling/blacklist/{conditionId}", params(("conditionId" = String, Path, description = "conditionId")), tag = "Block Conditions",
    responses((status = 200, description = "Deleted")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::ADMIN)?;
    p.store().delete_block_condition(&id).await?;
    Ok(StatusCode::OK)
}
