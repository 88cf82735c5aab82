//! An API's subscriptions as its publisher sees them, with block / unblock.

use apim_core::model::{scopes, Subscription, SubscriptionStatus};
use apim_core::ApimError;
use axum::extract::State;
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::{Json, Query};
use crate::paging::{num, List, Paging};
use crate::Portal;

/// `?apiId=&limit=&offset=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// The API (all APIs the caller provides when absent; all for an admin).
    #[serde(default)]
    api_id: Option<String>,
    /// Page size.
    #[serde(default, deserialize_with = "num")]
    limit: Option<i64>,
    /// Items to skip.
    #[serde(default, deserialize_with = "num")]
    offset: Option<i64>,
}

/// `?subscriptionId=&blockState=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BlockQuery {
    /// The subscription.
    subscription_id: String,
    /// `BLOCKED` or `PROD_ONLY_BLOCKED`.
    block_state: String,
}

/// `?subscriptionId=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UnblockQuery {
    /// The subscription.
    subscription_id: String,
}

/// Subscriptions of an API (or of every API the caller provides).
#[utoipa::path(get, path = "/subscriptions", tag = "Subscriptions", params(ListQuery),
    responses((status = 200, description = "Subscriptions: {count, list, pagination}")))]
pub(crate) async fn list(
    State(p): State<Portal>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<List<Subscription>>, ApimError> {
    caller.require_publisher_portal()?;
    let subs = match &q.api_id {
        Some(api_id) => {
            let api = p.store().get_api(api_id).await?;
            caller.require_owner(&api.provider).or_else(|e| {
                if caller.has_scope(scopes::API_PUBLISH) {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            p.store().list_subscriptions(None, Some(api_id)).await?
        }
        None => {
            let all = p.store().list_subscriptions(None, None).await?;
            if caller.is_admin() {
                all
            } else {
                let mut mine = Vec::new();
                for s in all {
                    if p.store().get_api(&s.api_id).await?.provider == caller.name() {
                        mine.push(s);
                    }
                }
                mine
            }
        }
    };
    let paging = Paging {
        limit: q.limit,
        offset: q.offset,
        query: None,
    };
    Ok(Json(List::slice(subs, &paging)))
}

async fn set_status(
    p: &Portal,
    caller: &Caller,
    id: &str,
    status: SubscriptionStatus,
) -> Result<Subscription, ApimError> {
    caller.require(scopes::API_PUBLISH)?;
    let sub = p.store().get_subscription(id).await?;
    let api = p.store().get_api(&sub.api_id).await?;
    caller.require_owner(&api.provider).or_else(|e| {
        if caller.user.has_role(apim_core::model::roles::PUBLISHER) {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    p.store().set_subscription_status(id, status).await
}

/// Block a subscription (`BLOCKED` or `PROD_ONLY_BLOCKED`).
#[utoipa::path(post, path = "/subscriptions/block-subscription", tag = "Subscriptions", params(BlockQuery),
    responses((status = 200, description = "Blocked"), (status = 400, description = "Unknown blockState")))]
pub(crate) async fn block(
    State(p): State<Portal>,
    caller: Caller,
    Query(q): Query<BlockQuery>,
) -> Result<Json<Subscription>, ApimError> {
    let status = match q.block_state.as_str() {
        "BLOCKED" => SubscriptionStatus::Blocked,
        "PROD_ONLY_BLOCKED" => SubscriptionStatus::ProdOnlyBlocked,
        other => {
            return Err(ApimError::validation(
                "blockState",
                format!("'{other}' is not BLOCKED or PROD_ONLY_BLOCKED"),
            ))
        }
    };
    Ok(Json(
        set_status(&p, &caller, &q.subscription_id, status).await?,
    ))
}

/// Unblock a subscription.
#[utoipa::path(post, path = "/subscriptions/unblock-subscription", tag = "Subscriptions", params(UnblockQuery),
    responses((status = 200, description = "Unblocked")))]
pub(crate) async fn unblock(
    State(p): State<Portal>,
    caller: Caller,
    Query(q): Query<UnblockQuery>,
) -> Result<Json<Subscription>, ApimError> {
    Ok(Json(
        set_status(
            &p,
            &caller,
            &q.subscription_id,
            SubscriptionStatus::Unblocked,
        )
        .await?,
    ))
}

/// Approve an ON_HOLD subscription (WSO2 does this through its workflow admin).
#[utoipa::path(post, path = "/subscriptions/approve-subscription", tag = "Subscriptions", params(UnblockQuery),
    responses((status = 200, description = "Approved")))]
pub(crate) async fn approve(
    State(p): State<Portal>,
    caller: Caller,
    Query(q): Query<UnblockQuery>,
) -> Result<Json<Subscription>, ApimError> {
    let sub = p.store().get_subscription(&q.subscription_id).await?;
    if sub.status != SubscriptionStatus::OnHold {
        return Err(ApimError::Conflict(
            "the subscription is not ON_HOLD".into(),
        ));
    }
    Ok(Json(
        set_status(
            &p,
            &caller,
            &q.subscription_id,
            SubscriptionStatus::Unblocked,
        )
        .await?,
    ))
}
