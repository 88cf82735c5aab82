//! Health and metrics endpoints, served on the gateway's **admin listener** (not on the API
//! ports, so probes and `/metrics` are not exposed to API clients and no API context is
//! reserved): `GET /health` (live: 200 while the process serves), `GET /health/ready` (200 once
//! the artifacts are synced from the control plane, 503 before), `GET /metrics` (Prometheus).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use apim_core::artifacts::ArtifactStore;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// Whether the gateway has loaded its artifacts (set by the sync task).
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Not ready.
    pub fn new() -> Self {
        Readiness(AtomicBool::new(false))
    }

    /// Marks ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AdminState {
    ready: Arc<Readiness>,
    metrics: Arc<Metrics>,
    artifacts: Arc<dyn ArtifactStore>,
}

/// The admin router: `/health`, `/health/ready`, `/metrics`.
pub fn admin_router(
    ready: Arc<Readiness>,
    metrics: Arc<Metrics>,
    artifacts: Arc<dyn ArtifactStore>,
) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"status\":\"UP\"}",
                )
            }),
        )
        .route("/health/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(AdminState {
            ready,
            metrics,
            artifacts,
        })
}

async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    let seq = s.artifacts.seq().0;
    let (status, word) = if s.ready.is_ready() {
        (StatusCode::OK, "UP")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "SYNCING")
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"{word}\",\"seq\":{seq}}}"),
    )
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    let snap = s.artifacts.snapshot();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(snap.seq().0, snap.api_count()),
    )
}
