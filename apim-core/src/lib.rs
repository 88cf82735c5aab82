//! # apim-core
//!
//! The contracts every apim-rs component shares: the domain model (with WSO2 API-M 4.x JSON
//! field names), the API lifecycle, control-plane events, configuration, the error type with its
//! one HTTP mapping, the sqlx store (SQLite and PostgreSQL, with a transactional outbox), and the
//! four traits with their tower layers:
//!
//! | trait | layer | job |
//! |---|---|---|
//! | [`artifacts::ArtifactStore`] | [`artifacts::RouteLayer`] | what is deployed; routes requests |
//! | [`auth::KeyValidator`] | [`auth::AuthLayer`] | who is calling |
//! | [`throttle::ThrottleDecider`] | [`throttle::ThrottleLayer`] | may they, now |
//! | [`bus::EventBus`] | [`bus::EventLayer`] | control events; per-request records |
//!
//! Put them in front of any tower service:
//!
//! ```
//! use std::sync::Arc;
//! use apim_core::artifacts::{InMemoryArtifacts, RouteLayer};
//! use apim_core::auth::{AuthContext, AuthLayer, KeyValidator, RequestMeta};
//! use apim_core::ApimError;
//! use tower::ServiceBuilder;
//!
//! struct AnyBearer;
//! #[async_trait::async_trait]
//! impl KeyValidator for AnyBearer {
//!     async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
//!         req.headers.get("authorization").map(|_| Arc::new(AuthContext::for_application("app", "u")))
//!             .ok_or_else(|| ApimError::MissingCredentials("no token".into()))
//!     }
//! }
//!
//! let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
//! let svc = ServiceBuilder::new()
//!     .layer(RouteLayer::new(artifacts))
//!     .layer(AuthLayer::new(Arc::new(AnyBearer)))
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
//!     });
//! # let _ = svc;
//! ```

pub mod artifacts;
pub mod auth;
pub mod bus;
pub mod config;
pub mod crypto;
mod error;
pub mod event;
pub mod lifecycle;
pub mod model;
pub mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod throttle;
pub mod time;
pub mod tls;
pub mod uri_template;

use std::future::Future;
use std::pin::Pin;

pub use error::{ApimError, ErrorBody, ThrottleLevel};

/// The boxed response future of the asynchronous layers.
pub type BoxResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<http::Response<B>, E>> + Send>>;
