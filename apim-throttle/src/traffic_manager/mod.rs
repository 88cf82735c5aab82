//! The Traffic Manager service: an axum [`Router`] with
//!
//! - `POST /internal/throttle/v1/counts` — gateways send batched counts ([`CountReport`]) and
//!   get global totals and throttled keys back ([`CountReply`]);
//! - `GET /internal/events/v1/stream?after=<seq>` — the event hub ([`hub`]);
//! - `GET /internal/health` — liveness, no credential.
//!
//! Internal endpoints require `Authorization: Bearer <internal token>`. Errors are
//! [`ApimError`]s, rendered by its one mapping.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use apim_core::bus::InProcessBus;
//! use apim_throttle::TrafficManager;
//!
//! let tm = TrafficManager::new("a-long-internal-token", Arc::new(InProcessBus::new(4096)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9611").await?;
//! axum::serve(listener, tm.router()).await?;
//! # Ok(()) }
//! ```

mod counters;
pub mod hub;
mod redis_counters;
pub mod wire;

use std::sync::Arc;

use apim_core::bus::EventBus;
use apim_core::ApimError;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;

pub use counters::{CounterStore, MemoryCounters, GRACE_MS};
pub use hub::HubSettings;
pub use redis_counters::RedisCounters;
pub use wire::{CountEntry, CountReply, CountReport, ThrottledKey};

use crate::clock::{Clock, SystemClock};

/// Builder and library entry point of the Traffic Manager.
#[derive(Clone)]
pub struct TrafficManager {
    token: Arc<str>,
    counters: Arc<dyn CounterStore>,
    bus: Arc<dyn EventBus>,
    hub: HubSettings,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TrafficManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficManager")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl TrafficManager {
    /// A Traffic Manager with in-memory counters relaying `bus` (the store's outbox bus in a
    /// deployment, an [`InProcessBus`](apim_core::bus::InProcessBus) in tests).
    pub fn new(internal_token: impl Into<String>, bus: Arc<dyn EventBus>) -> Self {
        TrafficManager {
            token: Arc::from(internal_token.into()),
            counters: Arc::new(MemoryCounters::new()),
            bus,
            hub: HubSettings::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses other counters (e.g. [`RedisCounters`], shared by several Traffic Managers).
    pub fn with_counters(mut self, counters: Arc<dyn CounterStore>) -> Self {
        self.counters = counters;
        self
    }

    /// Connects to Redis and keeps counters there under the default prefix `apim:tm:`.
    pub async fn with_redis(self, url: &str) -> Result<Self, ApimError> {
        let c = RedisCounters::connect(url, "apim:tm:").await?;
        Ok(self.with_counters(Arc::new(c)))
    }

    /// Event hub heartbeat and per-subscriber buffer.
    pub fn with_hub_settings(mut self, hub: HubSettings) -> Self {
        self.hub = hub;
        self
    }

    /// The clock used for counter expiry.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The routes (see the module docs).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/internal/throttle/v1/counts", post(counts))
            .route("/internal/events/v1/stream", get(events))
            .route("/internal/health", get(|| async { "ok" }))
            .with_state(self.clone())
    }
}

fn authorize(headers: &HeaderMap, token: &str) -> Result<(), ApimError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApimError::Unauthenticated("internal credential required".into()))?;
    if apim_core::crypto::ct_eq(presented.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApimError::Unauthenticated(
            "invalid internal credential".into(),
        ))
    }
}

async fn counts(
    State(tm): State<TrafficManager>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CountReply>, ApimError> {
    authorize(&headers, &tm.token)?;
    let report: CountReport = serde_json::from_slice(&body)
        .map_err(|e| ApimError::BadRequest(format!("count report: {e}")))?;
    if report.counts.len() > wire::MAX_BATCH {
        return Err(ApimError::PayloadTooLarge(format!(
            "at most {} counts per report",
            wire::MAX_BATCH
        )));
    }
    if let Some(i) = report
        .counts
        .iter()
        .position(|e| e.window_ms == 0 || e.key.is_empty() || e.key.len() > 2048)
    {
        return Err(ApimError::validation(
            format!("counts[{i}]"),
            "needs a key (≤ 2048 bytes) and a window > 0",
        ));
    }
    let now_ms = tm.clock.now() / 1_000_000;
    Ok(Json(tm.counters.add(&report.counts, now_ms).await?))
}

async fn events(State(tm): State<TrafficManager>, headers: HeaderMap, uri: Uri) -> Response {
    let run = || -> Result<Response, ApimError> {
        authorize(&headers, &tm.token)?;
        let after = hub::after_param(uri.query())?;
        let body = hub::stream(tm.bus.clone(), after, tm.hub);
        Ok((
            [
                (header::CONTENT_TYPE, "application/x-ndjson"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response())
    };
    run().unwrap_or_else(|e| e.into_response())
}
