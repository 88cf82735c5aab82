//! `change-lifecycle` and the lifecycle history.

use apim_core::lifecycle::{LifecycleAction, LifecycleState};
use apim_core::model::scopes;
use apim_core::store::LifecycleHistoryItem;
use apim_core::ApimError;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::paging::List;
use crate::Portal;

/// `?apiId=&action=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ChangeLifecycle {
    /// The API.
    api_id: String,
    /// WSO2 action name: `Publish`, `Deploy as a Prototype`, `Demote to Created`, `Block`,
    /// `Deprecate`, `Re-Publish`, `Retire`.
    action: String,
    /// Ignored (WSO2 checklist items).
    #[serde(default)]
    #[allow(dead_code)]
    lifecycle_checklist: Option<String>,
}

/// A transition offered from a state.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transition {
    event: &'static str,
    target_state: &'static str,
}

/// The state after a change, with the actions now available.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LifecycleStateBody {
    state: &'static str,
    available_transitions: Vec<Transition>,
}

/// WSO2's `WorkflowResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowResponse {
    workflow_status: &'static str,
    lifecycle_state: LifecycleStateBody,
}

fn title(state: LifecycleState) -> &'static str {
    match state {
        LifecycleState::Created => "Created",
        LifecycleState::Prototyped => "Prototyped",
        LifecycleState::Published => "Published",
        LifecycleState::Blocked => "Blocked",
        LifecycleState::Deprecated => "Deprecated",
        LifecycleState::Retired => "Retired",
    }
}

fn state_body(state: LifecycleState) -> LifecycleStateBody {
    LifecycleStateBody {
        state: title(state),
        available_transitions: state
            .allowed_actions()
            .iter()
            .filter_map(|a| {
                state.apply(*a).ok().map(|t| Transition {
                    event: a.as_str(),
                    target_state: title(t),
                })
            })
            .collect(),
    }
}

/// Apply a lifecycle action (needs `apim:api_publish`).
#[utoipa::path(post, path = "/apis/change-lifecycle", tag = "Lifecycle", params(ChangeLifecycle),
    responses((status = 200, description = "New state"), (status = 400, description = "Unknown action"), (status = 409, description = "Transition not allowed")))]
pub(crate) async fn change(
    State(p): State<Portal>,
    caller: Caller,
    Query(q): Query<ChangeLifecycle>,
) -> Result<Json<WorkflowResponse>, ApimError> {
    caller.require(scopes::API_PUBLISH)?;
    let action = LifecycleAction::parse(&q.action)?;
    let api = p
        .store()
        .change_lifecycle(&q.api_id, action, caller.name())
        .await?;
    Ok(Json(WorkflowResponse {
        workflow_status: "APPROVED",
        lifecycle_state: state_body(api.life_cycle_status),
    }))
}

/// The current state with its available transitions.
#[utoipa::path(get, path = "/apis/{apiId}/lifecycle-state", params(("apiId" = String, Path, description = "apiId")), tag = "Lifecycle",
    responses((status = 200, description = "State and transitions")))]
pub(crate) async fn state(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<LifecycleStateBody>, ApimError> {
    caller.require_publisher_portal()?;
    Ok(Json(state_body(
        p.store().get_api(&id).await?.life_cycle_status,
    )))
}

/// The API's lifecycle history, oldest first.
#[utoipa::path(get, path = "/apis/{apiId}/lifecycle-history", params(("apiId" = String, Path, description = "apiId")), tag = "Lifecycle",
    responses((status = 200, description = "History: {count, list}")))]
pub(crate) async fn history(
    State(p): State<Portal>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<List<LifecycleHistoryItem>>, ApimError> {
    caller.require_publisher_portal()?;
    Ok(Json(List::all(p.store().lifecycle_history(&id).await?)))
}
