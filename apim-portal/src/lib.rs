//! # apim-portal
//!
//! The control plane's REST APIs as axum routers over [`apim_core::store::Store`], with WSO2
//! API-M 4.x paths and JSON field names so existing scripts carry over:
//!
//! | router | base path |
//! |---|---|
//! | [`Portal::publisher_router`] | `/api/am/publisher/v4` |
//! | [`Portal::devportal_router`] | `/api/am/devportal/v3` |
//! | [`Portal::admin_router`] | `/api/am/admin/v4` |
//! | [`Portal::internal_router`] | `/internal/data/v1` |
//!
//! Each serves its OpenAPI document at `{base}/openapi.json`. Every error is an
//! [`ApimError`](apim_core::ApimError), mapped to HTTP in its one place in apim-core; bad input
//! is a 400 naming the field ([`extract`]), a JSON body sent as another type a 415, and a
//! state change from a foreign `Origin` a 403 ([`extract::SameOriginGuard`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), apim_core::ApimError> {
//! use apim_core::store::Store;
//! use apim_portal::Portal;
//! let store = Store::connect_url("sqlite://./apim-data/apim.db?mode=rwc", None, 5).await?;
//! store.seed_defaults(Some("admin-password")).await?;
//! let app = Portal::new(store).with_internal_token("s3cret-internal-token").router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9763").await.map_err(|e| apim_core::ApimError::Internal(e.to_string()))?;
//! axum::serve(listener, app).await.map_err(|e| apim_core::ApimError::Internal(e.to_string()))?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod auth;
pub mod devportal;
pub mod extract;
pub mod internal;
pub mod issuer;
pub mod openapi;
pub mod paging;
pub mod publisher;
mod repo;

/// Re-exported so embedders and the examples serve the routers with the same axum.
pub use axum;

use std::sync::Arc;

use apim_core::store::Store;
use axum::Router;

pub use auth::{Authenticator, Caller, Principal, TokenIntrospector};
pub use issuer::{ApiKeyIssuer, ApiKeyRequest, IssuedApiKey, IssuedToken, TokenIssuer};

/// Base path of the Publisher API.
pub const PUBLISHER_BASE: &str = "/api/am/publisher/v4";
/// Base path of the Developer Portal API.
pub const DEVPORTAL_BASE: &str = "/api/am/devportal/v3";
/// Base path of the Admin API.
pub const ADMIN_BASE: &str = "/api/am/admin/v4";
/// Base path of the internal data API.
pub const INTERNAL_BASE: &str = "/internal/data/v1";

/// Shared state of the routers: the store, authentication, and the Key Manager hooks. Cheap to
/// clone.
#[derive(Clone)]
pub struct Portal {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    store: Store,
    auth: Authenticator,
    tokens: Option<Arc<dyn TokenIssuer>>,
    api_keys: Option<Arc<dyn ApiKeyIssuer>>,
    internal_token: Option<String>,
    self_signup: bool,
    origin_guard: extract::SameOriginGuard,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the internal token is a secret: never in Debug output
        f.debug_struct("Portal")
            .field("auth", &self.inner.auth)
            .field("token_issuer", &self.inner.tokens.is_some())
            .field("api_key_issuer", &self.inner.api_keys.is_some())
            .field("internal_token", &self.inner.internal_token.is_some())
            .field("self_signup", &self.inner.self_signup)
            .finish()
    }
}

impl Portal {
    /// Routers over `store`: Basic auth (the store's password check), self-signup on, no Key Manager hooks, no
    /// internal token (the internal API then refuses every call).
    pub fn new(store: Store) -> Self {
        Portal {
            inner: Arc::new(Inner {
                auth: Authenticator::new(store.clone()),
                store,
                tokens: None,
                api_keys: None,
                internal_token: None,
                self_signup: true,
                origin_guard: extract::SameOriginGuard::new(&[]),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Issues tokens for generate-token (the Key Manager).
    pub fn with_token_issuer(self, issuer: Arc<dyn TokenIssuer>) -> Self {
        self.edit(|i| i.tokens = Some(issuer))
    }

    /// Issues and revokes API keys (the Key Manager).
    pub fn with_api_key_issuer(self, issuer: Arc<dyn ApiKeyIssuer>) -> Self {
        self.edit(|i| i.api_keys = Some(issuer))
    }

    /// Accepts Bearer tokens on the management APIs.
    pub fn with_introspector(self, introspector: Arc<dyn TokenIntrospector>) -> Self {
        self.edit(|i| i.auth = i.auth.clone().with_introspector(introspector))
    }

    /// The Bearer credential of `/internal/data/v1`.
    pub fn with_internal_token(self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.edit(|i| i.internal_token = Some(token))
    }

    /// Turns Developer Portal self-signup on or off.
    pub fn with_self_signup(self, enabled: bool) -> Self {
        self.edit(|i| i.self_signup = enabled)
    }

    /// Origins besides the request's own from which browsers may change state
    /// (`server.allowed_origins`; see [`extract::SameOriginGuard`]).
    pub fn with_allowed_origins(self, origins: &[String]) -> Self {
        self.edit(|i| i.origin_guard = extract::SameOriginGuard::new(origins))
    }

    /// The same-origin guard every router of this portal applies.
    pub fn origin_guard(&self) -> &extract::SameOriginGuard {
        &self.inner.origin_guard
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The authenticator.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    pub(crate) fn token_issuer(&self) -> Option<&Arc<dyn TokenIssuer>> {
        self.inner.tokens.as_ref()
    }

    pub(crate) fn api_key_issuer(&self) -> Option<&Arc<dyn ApiKeyIssuer>> {
        self.inner.api_keys.as_ref()
    }

    pub(crate) fn internal_token(&self) -> Option<&str> {
        self.inner.internal_token.as_deref()
    }

    pub(crate) fn self_signup(&self) -> bool {
        self.inner.self_signup
    }

    /// The Publisher API under [`PUBLISHER_BASE`].
    pub fn publisher_router(&self) -> Router {
        openapi::mount(PUBLISHER_BASE, publisher::routes(), self)
    }

    /// The Developer Portal API under [`DEVPORTAL_BASE`].
    pub fn devportal_router(&self) -> Router {
        openapi::mount(DEVPORTAL_BASE, devportal::routes(), self)
    }

    /// The Admin API under [`ADMIN_BASE`].
    pub fn admin_router(&self) -> Router {
        openapi::mount(ADMIN_BASE, admin::routes(), self)
    }

    /// The gateway's snapshot API under [`INTERNAL_BASE`].
    pub fn internal_router(&self) -> Router {
        openapi::mount(INTERNAL_BASE, internal::routes(), self)
    }

    /// All four routers.
    pub fn router(&self) -> Router {
        self.publisher_router()
            .merge(self.devportal_router())
            .merge(self.admin_router())
            .merge(self.internal_router())
    }
}
