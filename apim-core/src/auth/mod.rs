//! API security: the [`KeyValidator`] trait and its tower layer, [`AuthLayer`].
//!
//! A validator finds the credential in a request (Bearer JWT or opaque token, `apikey` header or
//! query parameter, Basic), checks it and says who is calling ([`AuthContext`]). The layer puts
//! the context into the request's extensions for the layers and service behind it, or answers
//! with the WSO2 error (401 900901 / 900902, 403 900908 / 900910) itself.
//!
//! ```
//! use std::sync::Arc;
//! use apim_core::auth::{AuthContext, AuthLayer, KeyValidator, RequestMeta};
//! use apim_core::ApimError;
//! use tower::ServiceBuilder;
//!
//! struct StaticKey;
//! #[async_trait::async_trait]
//! impl KeyValidator for StaticKey {
//!     async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
//!         match req.headers.get("apikey") {
//!             Some(v) if v == "let-me-in" => Ok(Arc::new(AuthContext::for_application("app-1", "alice"))),
//!             Some(_) => Err(ApimError::InvalidCredentials("unknown API key".into())),
//!             None => Err(ApimError::MissingCredentials("no apikey header".into())),
//!         }
//!     }
//! }
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(Arc::new(StaticKey)))
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
//!     });
//! # let _ = svc;
//! ```

mod internal;
pub mod key_limits;
mod layer;

pub use internal::check_internal_token;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

use crate::artifacts::RouteMatch;
use crate::model::KeyType;
use crate::ApimError;

pub use layer::{authenticate, AuthLayer, AuthService};

/// The peer address of a connection; listeners put it into request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// What a validator may look at: the request head, the client address and the matched route.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta<'a> {
    /// Method.
    pub method: &'a Method,
    /// Request URI (path and query).
    pub uri: &'a Uri,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Client IP, if known.
    pub client_ip: Option<IpAddr>,
    /// The API and resource the request was routed to, if a [`crate::artifacts::RouteLayer`]
    /// ran before.
    pub route: Option<&'a RouteMatch>,
}

impl<'a> RequestMeta<'a> {
    /// Builds the meta view of a request.
    pub fn from_request<B>(req: &'a http::Request<B>) -> Self {
        RequestMeta {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            client_ip: req.extensions().get::<ClientAddr>().map(|c| c.0.ip()),
            route: req.extensions().get::<RouteMatch>(),
        }
    }

    /// Value of query parameter `name` (first occurrence, not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.uri.query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A self-contained JWT access token.
    Jwt,
    /// An opaque token, checked by introspection.
    Opaque,
    /// A self-contained API key.
    ApiKey,
    /// HTTP Basic user credentials.
    Basic,
    /// No credential (the resource needs none).
    Anonymous,
}

/// Who is calling, as established by a [`KeyValidator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    /// How the caller authenticated.
    pub credential: CredentialKind,
    /// Application id (empty for Basic/anonymous).
    pub application_id: String,
    /// Application name.
    pub application_name: String,
    /// Application owner (the subscriber).
    pub application_owner: String,
    /// Application throttling tier.
    pub application_tier: String,
    /// The end user (`sub`), or the owner for client-credentials tokens.
    pub end_user: String,
    /// PRODUCTION or SANDBOX.
    pub key_type: KeyType,
    /// Scopes granted to the token.
    pub scopes: Vec<String>,
    /// OAuth client id.
    pub consumer_key: String,
    /// Token id (`jti`), if any.
    pub token_id: Option<String>,
    /// Expiry, seconds since the Unix epoch, if any.
    pub expires_at: Option<i64>,
    /// Subscription tier in force for the routed API, once authorised.
    pub subscription_tier: Option<String>,
    /// Raw claims of a JWT (for claim-based throttling conditions and the backend JWT).
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl AuthContext {
    /// A context for an application and user, production keys, no scopes.
    pub fn for_application(application_id: &str, user: &str) -> Self {
        AuthContext {
            credential: CredentialKind::Jwt,
            application_id: application_id.to_owned(),
            application_name: application_id.to_owned(),
            application_owner: user.to_owned(),
            application_tier: "Unlimited".into(),
            end_user: user.to_owned(),
            key_type: KeyType::Production,
            scopes: Vec::new(),
            consumer_key: String::new(),
            token_id: None,
            expires_at: None,
            subscription_tier: None,
            claims: None,
        }
    }

    /// The context of an unauthenticated call to an open resource (tier `Unauthenticated`).
    pub fn anonymous() -> Self {
        AuthContext {
            credential: CredentialKind::Anonymous,
            application_tier: "Unlimited".into(),
            end_user: "anonymous".into(),
            subscription_tier: Some("Unauthenticated".into()),
            ..AuthContext::for_application("", "anonymous")
        }
    }
}

/// Finds and checks the credential of a request.
#[async_trait::async_trait]
pub trait KeyValidator: Send + Sync + 'static {
    /// Validates the request's credential and returns who is calling.
    ///
    /// Errors: [`ApimError::MissingCredentials`] (no credential), [`ApimError::InvalidCredentials`]
    /// (bad, expired, revoked, unknown), [`ApimError::ResourceForbidden`] (not subscribed),
    /// [`ApimError::ScopeNotAllowed`].
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError>;

    /// The answer [`validate`](Self::validate) would give, when the validator has it at hand
    /// (a cached verification) and need not wait for anything; `None` sends the caller to
    /// `validate`. [`authenticate`](crate::auth::authenticate) asks this first, so the usual
    /// request (a known credential) costs no boxed future. By default: `None`.
    fn validate_now(&self, _req: &RequestMeta<'_>) -> Option<Result<Arc<AuthContext>, ApimError>> {
        None
    }
}

/// Forwards to the inner validator's future as is (no second boxed future per call; the
/// signature is the one `#[async_trait]` generates for the trait method).
impl<T: KeyValidator + ?Sized> KeyValidator for Arc<T> {
    fn validate<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: &'life1 RequestMeta<'life2>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Arc<AuthContext>, ApimError>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        (**self).validate(req)
    }

    fn validate_now(&self, req: &RequestMeta<'_>) -> Option<Result<Arc<AuthContext>, ApimError>> {
        (**self).validate_now(req)
    }
}
