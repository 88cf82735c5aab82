//! The caller's subscriptions.

use apim_core::model::{scopes, Subscription};
use apim_core::ApimError;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::apis::visible_api;
use super::applications::owned_app;
use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::paging::{num, List, Paging};
use crate::publisher::apis::created;
use crate::{Portal, DEVPORTAL_BASE};

/// `?applicationId=&apiId=&limit=&offset=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// One of the caller's applications.
    #[serde(default)]
    application_id: Option<String>,
    /// An API.
    #[serde(default)]
    api_id: Option<String>,
    /// Page size.
    #[serde(default, deserialize_with = "num")]
    limit: Option<i64>,
    /// Items to skip.
    #[serde(default, deserialize_with = "num")]
    offset: Option<i64>,
}

/// Body of POST /subscriptions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewSubscription {
    application_id: String,
    api_id: String,
    throttling_policy: String,
    #[serde(default)]
    #[allow(dead_code)]
    requested_throttling_policy: Option<String>,
}

/// The caller's subscriptions, by application and/or API.
#[utoipa::path(get, path = "/subscriptions", tag = "Subscriptions", params(ListQuery),
    responses((status = 200, description = "Subscriptions: {count, list, pagination}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<List<Subscription>>, ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    let subs = match &q.application_id {
        Some(app) => {
            owned_app(&p, &caller, app).await?;
            p.store()
                .list_subscriptions(Some(app), q.api_id.as_deref())
                .await?
        }
        None => {
            let (apps, _) = p
                .store()
                .list_user_applications(&caller.user.id, 1000, 0)
                .await?;
            let mut out = Vec::new();
            for a in apps {
                out.extend(
                    p.store()
                        .list_subscriptions(Some(&a.application_id), q.api_id.as_deref())
                        .await?,
                );
            }
            out
        }
    };
    let paging = Paging {
        limit: q.limit,
        offset: q.offset,
        query: None,
    };
    Ok(Json(List::slice(subs, &paging)))
}

/// Subscribe one of the caller's applications to an API at a tier it offers.
#[utoipa::path(post, path = "/subscriptions", tag = "Subscriptions", request_body(content = Object, description = "{applicationId, apiId, throttlingPolicy}"),
    responses((status = 201, description = "Created (UNBLOCKED, or ON_HOLD when approval is required)"), (status = 409, description = "Already subscribed")))]
pub(crate) async fn create(
    State(p): State<Portal>,
    caller: Caller,
    Json(body): Json<NewSubscription>,
) -> Result<Response, ApimError> {
    owned_app(&p, &caller, &body.application_id)
        .await
        .map_err(|e| match e {
            ApimError::NotFound(m) => ApimError::validation("applicationId", m + " not found"),
            other => other,
        })?;
    visible_api(&p, Some(&caller), &body.api_id)
        .await
        .map_err(|e| match e {
            ApimError::NotFound(m) => ApimError::validation("apiId", m + " not found"),
            other => other,
        })?;
    let sub = p
        .store()
        .create_subscription(&body.application_id, &body.api_id, &body.throttling_policy)
        .await?;
    Ok(created(
        format!("{DEVPORTAL_BASE}/subscriptions/{}", sub.subscription_id),
        sub,
    ))
}

async fn owned_sub(p: &Portal, caller: &Caller, id: &str) -> Result<Subscription, ApimError> {
    caller.require(scopes::SUBSCRIBE)?;
    let sub = p.store().get_subscription(id).await?;
    owned_app(p, caller, &sub.application_id)
        .await
        .map_err(|_| ApimError::NotFound(format!("subscription {id}")))?;
    Ok(sub)
}

/// One of the caller's subscriptions.
#[utoipa::path(get, path = "/subscriptions/{subscriptionId}", params(("subscriptionId" = String, Path, description = "subscriptionId")), tag = "Subscriptions",
    responses((status = 200, description = "The subscription"), (status = 404, description = "Unknown or not the caller's")))]
pub(crate) async fn get(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApimError> {
    Ok(Json(owned_sub(&p, &caller, &id).await?))
}

/// Unsubscribe.
#[utoipa::path(delete, path = "/subscriptions/{subscriptionId}", params(("subscriptionId" = String, Path, description = "subscriptionId")), tag = "Subscriptions",
    responses((status = 200, description = "Deleted")))]
pub(crate) async fn delete(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApimError> {
    owned_sub(&p, &caller, &id).await?;
    p.store().delete_subscription(&id).await?;
    Ok(StatusCode::OK)
}
