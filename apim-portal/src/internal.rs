//! The internal data API (`/internal/data/v1`, DESIGN §6): a gateway's consistent snapshot with
//! the sequence it reflects, and the events after a sequence. Every call needs
//! `Authorization: Bearer <internal token>`, compared in constant time; with no token
//! configured every call is refused.

use apim_core::artifacts::GatewayData;
use apim_core::event::{Event, Seq};
use apim_core::ApimError;
use axum::extract::{FromRequestParts, State};
use http::request::Parts;
use serde::Deserialize;
use utoipa::OpenApi;

use crate::extract::{Json, Query};
use crate::openapi::Routes;
use crate::paging::num;
use crate::Portal;

/// Proof that the caller presented the internal token.
#[derive(Debug, Clone, Copy)]
pub struct InternalCaller;

impl FromRequestParts<Portal> for InternalCaller {
    type Rejection = ApimError;

    async fn from_request_parts(parts: &mut Parts, p: &Portal) -> Result<Self, Self::Rejection> {
        apim_core::auth::check_internal_token(&parts.headers, p.internal_token())?;
        Ok(InternalCaller)
    }
}

/// `?environments=a,b`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotQuery {
    /// Comma-separated gateway environment labels; all when absent.
    #[serde(default)]
    environments: Option<String>,
}

/// Everything a gateway of the given environments needs, with the last sequence it reflects.
#[utoipa::path(get, path = "/snapshot", tag = "Internal", params(SnapshotQuery),
    responses((status = 200, description = "GatewayData"), (status = 401, description = "Missing or wrong internal token")))]
pub(crate) async fn snapshot(
    State(p): State<Portal>,
    _: InternalCaller,
    Query(q): Query<SnapshotQuery>,
) -> Result<Json<GatewayData>, ApimError> {
    let mut data = p.store().gateway_data().await?;
    if let Some(envs) = q.environments.as_deref() {
        let wanted: Vec<&str> = envs
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if wanted.len() > 100 || wanted.iter().any(|w| w.len() > 100) {
            return Err(ApimError::validation(
                "environments",
                "at most 100 names of up to 100 characters",
            ));
        }
        data.deployments.retain_mut(|d| {
            d.gateway_labels.retain(|l| wanted.contains(&l.as_str()));
            !d.gateway_labels.is_empty()
        });
    }
    Ok(Json(data))
}

/// `?after=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Return events with a greater sequence number.
    #[serde(default, deserialize_with = "num")]
    after: Option<i64>,
    /// At most this many (1-10000, default 1000).
    #[serde(default, deserialize_with = "num")]
    limit: Option<i64>,
}

/// Events after a sequence number, in order (for catching up after a snapshot).
#[utoipa::path(get, path = "/events", tag = "Internal", params(EventsQuery),
    responses((status = 200, description = "Events")))]
pub(crate) async fn events(
    State(p): State<Portal>,
    _: InternalCaller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApimError> {
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApimError::validation("after", "must not be negative"));
    }
    Ok(Json(
        p.store()
            .events_after(Seq(after as u64), q.limit.unwrap_or(1000))
            .await?,
    ))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "apim-rs internal data API", version = "v1"),
    paths(snapshot, events)
)]
struct InternalDoc;

/// The internal routes (relative to the base path).
pub fn routes() -> Routes {
    Routes::new(InternalDoc::openapi())
        .get("/snapshot", snapshot)
        .get("/events", events)
}

/// The internal token of a deployment: `internal.token` from the config, or one generated on the
/// first start and kept in `<data_dir>/internal.token` (readable by the owner only), so the
/// profiles of an all-in-one share it.
pub fn internal_token_for(cfg: &apim_core::config::Config) -> Result<String, ApimError> {
    cfg.internal_token()
}
