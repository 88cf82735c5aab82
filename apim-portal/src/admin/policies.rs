//! Throttling policies: `/throttling/policies/{subscription|application|advanced|custom}`.

use apim_core::event::{Policy, PolicyKind};
use apim_core::model::{
    scopes, AdvancedPolicy, ApplicationPolicy, CustomPolicy, SubscriptionPolicy,
};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use crate::auth::Caller;
use crate::extract::{parse_json, Json, Path, RawBody};
use crate::paging::List;
use crate::publisher::apis::created;
use crate::{Portal, ADMIN_BASE};

/// The kind named by the `{policyLevel}` path segment; anything else is a 404.
fn kind(level: &str) -> Result<PolicyKind, ApimError> {
    match level {
        "subscription" => Ok(PolicyKind::Subscription),
        "application" => Ok(PolicyKind::Application),
        "advanced" => Ok(PolicyKind::Advanced),
        "custom" => Ok(PolicyKind::Custom),
        other => Err(ApimError::NotFound(format!("policy level {other}"))),
    }
}

fn parse(kind: PolicyKind, body: &[u8]) -> Result<Policy, ApimError> {
    Ok(match kind {
        PolicyKind::Subscription => Policy::Subscription(parse_json::<SubscriptionPolicy>(body)?),
        PolicyKind::Application => Policy::Application(parse_json::<ApplicationPolicy>(body)?),
        PolicyKind::Advanced => Policy::Advanced(parse_json::<AdvancedPolicy>(body)?),
        PolicyKind::Custom => Policy::Custom(parse_json::<CustomPolicy>(body)?),
    })
}

/// The policy body without the kind envelope (WSO2's shape).
fn body(policy: &Policy) -> Result<Value, ApimError> {
    let mut v = serde_json::to_value(policy)?;
    Ok(v.get_mut("policy").map(Value::take).unwrap_or(Value::Null))
}

fn id_of(v: &Value) -> String {
    v.get("policyId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Policies of a level.
#[utoipa::path(get, path = "/throttling/policies/{policyLevel}", params(("policyLevel" = String, Path, description = "policyLevel")), tag = "Throttling Policies",
    responses((status = 200, description = "Policies: {count, list}"), (status = 404, description = "Unknown level")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Path(level): Path<String>,
) -> Result<Json<List<Value>>, ApimError> {
    caller.require(scopes::ADMIN)?;
    let kind = kind(&level)?;
    let list = p
        .store()
        .list_policies(Some(kind))
        .await?
        .iter()
        .map(body)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(List::all(list)))
}

/// Add a policy.
#[utoipa::path(post, path = "/throttling/policies/{policyLevel}", params(("policyLevel" = String, Path, description = "policyLevel")), tag = "Throttling Policies",
    request_body(content = Object, description = "WSO2 policy of the level"),
    responses((status = 201, description = "Created"), (status = 409, description = "Duplicate name")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Path(level): Path<String>,
    RawBody(raw): RawBody,
) -> Result<Response, ApimError> {
    caller.require(scopes::ADMIN)?;
    let kind = kind(&level)?;
    let policy = p.store().create_policy(parse(kind, &raw)?).await?;
    let v = body(&policy)?;
    Ok(created(
        format!("{ADMIN_BASE}/throttling/policies/{level}/{}", id_of(&v)),
        v,
    ))
}

/// One policy.
#[utoipa::path(get, path = "/throttling/policies/{policyLevel}/{policyId}", params(("policyLevel" = String, Path, description = "policyLevel"), ("policyId" = String, Path, description = "policyId")), tag = "Throttling Policies",
    responses((status = 200, description = "The policy")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path((level, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApimError> {
    caller.require(scopes::ADMIN)?;
    Ok(Json(body(
        &p.store().get_policy(kind(&level)?, &id).await?,
    )?))
}

/// Replace a policy (the name is kept).
#[utoipa::path(put, path = "/throttling/policies/{policyLevel}/{policyId}", params(("policyLevel" = String, Path, description = "policyLevel"), ("policyId" = String, Path, description = "policyId")), tag = "Throttling Policies",
    request_body(content = Object, description = "WSO2 policy of the level"),
    responses((status = 200, description = "Updated")))]
pub(crate) async fn update(
    State(p): State<Portal>,
    caller: Caller,
    Path((level, id)): Path<(String, String)>,
    RawBody(raw): RawBody,
) -> Result<Json<Value>, ApimError> {
    caller.require(scopes::ADMIN)?;
    let kind = kind(&level)?;
    let policy = parse(kind, &raw)?;
    Ok(Json(body(
        &p.store().update_policy(kind, &id, policy).await?,
    )?))
}

/// Delete a policy nothing uses.
#[utoipa::path(delete, path = "/throttling/policies/{policyLevel}/{policyId}", params(("policyLevel" = String, Path, description = "policyLevel"), ("policyId" = String, Path, description = "policyId")), tag = "Throttling Policies",
    responses((status = 200, description = "Deleted"), (status = 409, description = "In use")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path((level, id)): Path<(String, String)>,
) -> Result<StatusCode, ApimError> {
    caller.require(scopes::ADMIN)?;
    p.store().delete_policy(kind(&level)?, &id).await?;
    Ok(StatusCode::OK)
}
