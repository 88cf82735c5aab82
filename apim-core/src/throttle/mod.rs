//! Rate limiting: the [`ThrottleDecider`] trait and its tower layer, [`ThrottleLayer`].
//!
//! A decider looks at who calls what ([`ThrottleContext`]) and answers [`Decision::Allow`] or
//! [`Decision::Deny`] with the level that denied and an exact retry time. After the response,
//! the layer calls [`ThrottleDecider::record`] (non-blocking) for post-response accounting such
//! as bandwidth quotas and counts reported to the Traffic Manager.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use apim_core::throttle::{Decision, ThrottleContext, ThrottleDecider, ThrottleLayer};
//! use apim_core::ThrottleLevel;
//! use tower::ServiceBuilder;
//!
//! /// Denies every request that has no `x-vip` header.
//! struct VipOnly;
//! #[async_trait::async_trait]
//! impl ThrottleDecider for VipOnly {
//!     async fn decide(&self, ctx: &ThrottleContext<'_>) -> Decision {
//!         if ctx.headers.contains_key("x-vip") { Decision::Allow } else {
//!             Decision::Deny { level: ThrottleLevel::Custom, retry_after: Duration::from_secs(60) }
//!         }
//!     }
//! }
//!
//! let svc = ServiceBuilder::new()
//!     .layer(ThrottleLayer::new(Arc::new(VipOnly)))
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! # let _ = svc;
//! ```

mod layer;

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, Method, Uri};

use crate::artifacts::RouteMatch;
use crate::auth::AuthContext;
use crate::{ApimError, ThrottleLevel};

pub use layer::{content_length, decide, ThrottleLayer, ThrottleService};

/// What a decider may look at.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleContext<'a> {
    /// Method.
    pub method: &'a Method,
    /// URI.
    pub uri: &'a Uri,
    /// Headers (header conditions).
    pub headers: &'a HeaderMap,
    /// Client IP (IP conditions, IP block conditions).
    pub client_ip: Option<IpAddr>,
    /// The routed API and resource, if known.
    pub route: Option<&'a RouteMatch>,
    /// The caller, if authenticated.
    pub auth: Option<&'a AuthContext>,
    /// Request body size, if known (bandwidth quotas).
    pub request_bytes: u64,
}

/// The answer of a decider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// Refuse with 429 (or 403 for [`ThrottleLevel`]-less blocks, see [`Decision::Blocked`]).
    Deny {
        /// Which level denied.
        level: ThrottleLevel,
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// Refused by a block condition (403 900805).
    Blocked,
}

impl Decision {
    /// The error a refusing decision answers with (`None` for [`Decision::Allow`]).
    pub fn refusal(self) -> Option<ApimError> {
        match self {
            Decision::Allow => None,
            Decision::Deny { level, retry_after } => {
                Some(ApimError::Throttled { level, retry_after })
            }
            Decision::Blocked => Some(ApimError::BlockedByCondition(
                "request matches a block condition".into(),
            )),
        }
    }
}

/// What happened to an admitted request, for post-response accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Response status.
    pub status: u16,
    /// Request body bytes that went through (for a chunked request, more than the
    /// `Content-Length` the decision saw in [`ThrottleContext::request_bytes`]).
    pub request_bytes: u64,
    /// Response body bytes that went through.
    pub response_bytes: u64,
}

/// Decides whether a request may proceed.
#[async_trait::async_trait]
pub trait ThrottleDecider: Send + Sync + 'static {
    /// Admit or deny. Counting an admitted request happens here.
    async fn decide(&self, ctx: &ThrottleContext<'_>) -> Decision;

    /// The decision at once, for a decider that never waits (local counters); `None` sends
    /// the caller to [`decide`](Self::decide). Returning `Some` counts the request exactly
    /// as `decide` would. The gateway asks this first, so a local decision costs no boxed
    /// future. By default: `None`.
    fn decide_now(&self, _ctx: &ThrottleContext<'_>) -> Option<Decision> {
        None
    }

    /// Post-response accounting; must not block (queue, don't wait). The layer passes an
    /// empty header map here: headers are not copied per request just for accounting.
    fn record(&self, _ctx: &ThrottleContext<'_>, _outcome: &Outcome) {}
}

/// Forwards to the inner decider's future as is (no second boxed future per call; the
/// signature is the one `#[async_trait]` generates for the trait method).
impl<T: ThrottleDecider + ?Sized> ThrottleDecider for std::sync::Arc<T> {
    fn decide<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        ctx: &'life1 ThrottleContext<'life2>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Decision> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        (**self).decide(ctx)
    }
    fn decide_now(&self, ctx: &ThrottleContext<'_>) -> Option<Decision> {
        (**self).decide_now(ctx)
    }
    fn record(&self, ctx: &ThrottleContext<'_>, outcome: &Outcome) {
        (**self).record(ctx, outcome)
    }
}
