//! Shared scopes (`/scopes`, WSO2 4.5 `Scopes`): scopes with role bindings that several APIs use.
//! Anyone with Publisher access reads them; adding, changing and deleting them needs the admin
//! scope, since their bindings guard every API that uses them. A scope an API uses cannot be
//! deleted (409 naming the APIs). An API's own scopes are part of the API object (`scopes`).

use apim_core::model::{scopes, Scope};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde::Serialize;

use super::apis::created;
use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::paging::{List, Paging};
use crate::{Portal, PUBLISHER_BASE};

/// List the shared scopes.
#[utoipa::path(get, path = "/scopes", tag = "Scopes", params(Paging),
    responses((status = 200, description = "Shared scopes: {count, list, pagination}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Query(paging): Query<Paging>,
) -> Result<Json<List<Scope>>, ApimError> {
    caller.require_publisher_portal()?;
    let all = p.store().list_shared_scopes().await?;
    Ok(Json(List::slice(all, &paging)))
}

/// Add a shared scope.
#[utoipa::path(post, path = "/scopes", tag = "Scopes",
    request_body(content = Object, description = "{name, displayName, description, bindings}"),
    responses((status = 201, description = "Created"), (status = 400, description = "Invalid field"), (status = 409, description = "The name is taken")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Json(scope): Json<Scope>,
) -> Result<Response, ApimError> {
    caller.require(scopes::ADMIN)?;
    let scope = p.store().create_shared_scope(scope).await?;
    Ok(created(
        format!("{PUBLISHER_BASE}/scopes/{}", scope.id),
        scope,
    ))
}

/// One shared scope.
#[utoipa::path(get, path = "/scopes/{scopeId}", params(("scopeId" = String, Path, description = "scopeId")), tag = "Scopes",
    responses((status = 200, description = "The scope"), (status = 404, description = "Unknown scope")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Scope>, ApimError> {
    caller.require_publisher_portal()?;
    Ok(Json(p.store().get_shared_scope(&id).await?))
}

/// Whether a scope name is taken (shared or by an API); the name is base64url-encoded in the
/// path, as in WSO2.
#[utoipa::path(head, path = "/scopes/{scopeId}", params(("scopeId" = String, Path, description = "the scope name, base64url")), tag = "Scopes",
    responses((status = 200, description = "The name exists"), (status = 404, description = "No such scope")))]
pub(crate) async fn exists(
    State(p): State<Portal>,
    caller: Caller,
    Path(encoded): Path<String>,
) -> Result<StatusCode, ApimError> {
    caller.require_publisher_portal()?;
    let name = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApimError::validation("scopeId", "must be a base64url-encoded name"))?;
    if p.store().scope_name_exists(&name).await? {
        Ok(StatusCode::OK)
    } else {
        Err(ApimError::NotFound(format!("scope {name}")))
    }
}

/// Replace a shared scope's display name, description and role bindings.
#[utoipa::path(put, path = "/scopes/{scopeId}", params(("scopeId" = String, Path, description = "scopeId")), tag = "Scopes",
    request_body(content = Object, description = "{name, displayName, description, bindings}"),
    responses((status = 200, description = "Updated"), (status = 400, description = "Invalid field"), (status = 404, description = "Unknown scope")))]
pub(crate) async fn update(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
    Json(scope): Json<Scope>,
) -> Result<Json<Scope>, ApimError> {
    caller.require(scopes::ADMIN)?;
    Ok(Json(p.store().update_shared_scope(&id, scope).await?))
}

/// Delete a shared scope no API uses.
#[utoipa::path(delete, path = "/scopes/{scopeId}", params(("scopeId" = String, Path, description = "scopeId")), tag = "Scopes",
    responses((status = 200, description = "Deleted"), (status = 404, description = "Unknown scope"), (status = 409, description = "APIs use the scope")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::ADMIN)?;
    p.store().delete_shared_scope(&id).await?;
    Ok(StatusCode::OK)
}

/// WSO2 `SharedScopeUsage`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Usage {
    id: String,
    name: String,
    used_api_list: Vec<UsedApi>,
}

/// WSO2 `SharedScopeUsedAPIInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UsedApi {
    name: String,
    context: String,
    version: String,
    provider: String,
    used_resource_list: Vec<UsedResource>,
}

/// WSO2 `SharedScopeUsedAPIResourceInfo`.
#[derive(Debug, Serialize)]
struct UsedResource {
    target: String,
    verb: String,
}

/// The APIs and resources that use a shared scope.
#[utoipa::path(get, path = "/scopes/{scopeId}/usage", params(("scopeId" = String, Path, description = "scopeId")), tag = "Scopes",
    responses((status = 200, description = "{id, name, usedApiList}"), (status = 404, description = "Unknown scope")))]
pub(crate) async fn usage(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Usage>, ApimError> {
    caller.require_publisher_portal()?;
    let (scope, uses) = p.store().shared_scope_usage(&id).await?;
    Ok(Json(Usage {
        id: scope.id,
        name: scope.name,
        used_api_list: uses
            .into_iter()
            .map(|u| UsedApi {
                name: u.api.name,
                context: u.api.context,
                version: u.api.version,
                provider: u.api.provider,
                used_resource_list: u
                    .resources
                    .into_iter()
                    .map(|(target, verb)| UsedResource { target, verb })
                    .collect(),
            })
            .collect(),
    }))
}
