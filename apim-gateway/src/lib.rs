//! # apim-gateway
//!
//! The data plane of apim-rs: the request flow that secures, throttles and proxies API calls,
//! hyper listeners for it (HTTP/1.1, HTTP/2, TLS, WebSocket), and the artifact sync that keeps
//! it current with the control plane.
//!
//! The flow, in order, after WSO2's handler chain. [`flow::Flow`] runs the steps in one future;
//! the layers named in the last column run the same steps as tower layers, for embedding.
//!
//! | step | does | rejects with | as a layer |
//! |---|---|---|---|
//! | edge ([`flow`]) | `X-Request-ID`, tracing span, request timeout, metrics | 504 101504 | — |
//! | [`hygiene`] | path traversal and `Host` checks | 400 | [`hygiene::HygieneLayer`] |
//! | [`cors`] | CORS preflight per API, response headers | — | [`cors::CorsLayer`] |
//! | route (core) | API, resource, lifecycle | 404 900906, 503 700700 | `RouteLayer` |
//! | analytics (optional) | one record per request | — | `EventLayer` |
//! | auth (core) | credential, subscription, scopes | 401 900901/900902, 403 900908/900910 | `AuthLayer` |
//! | throttle (core) | quotas, block conditions | 429 9008xx, 403 900805 | `ThrottleLayer` |
//! | [`proxy`] | endpoint choice, streaming proxy | 413, 503 101503, 504 101504/101508 | [`proxy::Proxy`] |
//!
//! Every rejection is rendered by `ApimError::to_response` (the one mapping).
//!
//! ```no_run
//! use std::sync::Arc;
//! use apim_core::auth::{AuthContext, KeyValidator, RequestMeta};
//! use apim_core::ApimError;
//! use apim_gateway::Gateway;
//!
//! struct Anyone;
//! #[async_trait::async_trait]
//! impl KeyValidator for Anyone {
//!     async fn validate(&self, _: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
//!         Ok(Arc::new(AuthContext::anonymous()))
//!     }
//! }
//!
//! # async fn run() -> Result<(), ApimError> {
//! let gw = Arc::new(Gateway::builder().validator(Arc::new(Anyone)).build()?);
//! let syncer = gw.syncer()?;
//! tokio::spawn(syncer.run());
//! let (addrs, serve) = gw.bind(None, apim_gateway::listener::shutdown_signal()).await?;
//! println!("gateway on {:?}", addrs.http);
//! serve.await;
//! # Ok(()) }
//! ```

mod alarm;
pub mod body;
pub mod client_address;
pub mod cors;
pub mod endpoints;
mod field_name;
pub mod flow;
mod gateway;
pub mod health;
pub mod http1;
pub mod hygiene;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod request_id;
pub mod router_server;
pub mod sync;
pub mod tls;
mod workers;

pub use body::GatewayBody;
pub use gateway::{Addresses, AllowAll, Gateway, GatewayBuilder, GatewayService};
