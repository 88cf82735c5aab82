//! Run with: `cargo run --example embed_tower`, then
//! `curl -H 'apikey: let-me-in' localhost:3000/hello`
//!
//! Puts apim-rs API security and throttling in front of an existing axum Router: the two core
//! layers wrap any tower service. Here a static key check and a tiny per-process quota stand in
//! for the Key Manager's `CredentialValidator` and the throttle engine's `LocalThrottle`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apim_core::auth::{AuthContext, AuthLayer, KeyValidator, RequestMeta};
use apim_core::throttle::{Decision, ThrottleContext, ThrottleDecider, ThrottleLayer};
use apim_core::{ApimError, ThrottleLevel};
use axum::routing::get;
use tower::ServiceBuilder;

struct StaticKey;

#[async_trait::async_trait]
impl KeyValidator for StaticKey {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        match req.headers.get("apikey") {
            Some(k) if k == "let-me-in" => {
                Ok(Arc::new(AuthContext::for_application("demo", "alice")))
            }
            Some(_) => Err(ApimError::InvalidCredentials("unknown API key".into())),
            None => Err(ApimError::MissingCredentials(
                "send an apikey header".into(),
            )),
        }
    }
}

/// At most 5 requests in total, then 429 900803 with `Retry-After`.
struct FiveCalls(AtomicU64);

#[async_trait::async_trait]
impl ThrottleDecider for FiveCalls {
    async fn decide(&self, _ctx: &ThrottleContext<'_>) -> Decision {
        if self.0.fetch_add(1, Ordering::Relaxed) < 5 {
            Decision::Allow
        } else {
            Decision::Deny {
                level: ThrottleLevel::Application,
                retry_after: Duration::from_secs(60),
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = axum::Router::new()
        .route(
            "/hello",
            get(|| async { "hello from an existing service\n" }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(AuthLayer::new(Arc::new(StaticKey)))
                .layer(ThrottleLayer::new(Arc::new(FiveCalls(AtomicU64::new(0))))),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
