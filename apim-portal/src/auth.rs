//! Who is calling the management APIs: HTTP Basic (users in the store, PBKDF2) or a Bearer token
//! checked by a [`TokenIntrospector`] (the Key Manager), with scopes derived from roles.
//!
//! Basic credentials go through the store's one password check ([`Store::check_password`]):
//! lock-out after repeated failures (429 with `Retry-After`, no hashing), PBKDF2 in a bounded
//! pool, the same work for unknown users, and successes remembered per credential version — a
//! check in flight while the password changes cannot re-cache the old password.

use std::sync::Arc;

use apim_core::model::{roles, scopes, User};
use apim_core::store::Store;
use apim_core::ApimError;
use async_trait::async_trait;
use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::request::Parts;

use crate::Portal;

/// A caller the Key Manager vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name (the token's `sub`).
    pub username: String,
    /// Scopes the token carries.
    pub scopes: Vec<String>,
    /// When the token was issued, seconds since the epoch (`iat`), if known: a token issued
    /// before the account was created belongs to an earlier account of the same name.
    pub issued_at: Option<i64>,
}

/// Checks a Bearer token presented to the management APIs (implemented over the Key Manager's
/// introspection in the all-in-one wiring).
#[async_trait]
pub trait TokenIntrospector: Send + Sync + 'static {
    /// `Some(principal)` for an active token, `None` for an unknown, expired or revoked one.
    async fn introspect(&self, token: &str) -> Result<Option<Principal>, ApimError>;
}

/// The authenticated caller of a management API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user account.
    pub user: User,
    /// Scopes granted for this call (roles for Basic; the token's, narrowed to roles, for Bearer).
    pub scopes: Vec<String>,
}

impl Caller {
    /// User name.
    pub fn name(&self) -> &str {
        &self.user.username
    }

    /// Whether the caller has the admin role.
    pub fn is_admin(&self) -> bool {
        self.user.roles.iter().any(|r| r == roles::ADMIN)
    }

    /// Whether the call carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// 403 unless the call carries `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApimError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(ApimError::Forbidden(format!(
                "this operation needs the scope {scope}"
            )))
        }
    }

    /// 403 unless the caller owns the resource (`provider`) or is an admin.
    pub fn require_owner(&self, provider: &str) -> Result<(), ApimError> {
        if self.is_admin() || self.name() == provider {
            Ok(())
        } else {
            Err(ApimError::Forbidden(
                "only the API's provider or an admin may change it".into(),
            ))
        }
    }

    /// Whether the caller may use the Publisher (create or publish APIs).
    pub fn require_publisher_portal(&self) -> Result<(), ApimError> {
        if self.has_scope(scopes::API_CREATE) || self.has_scope(scopes::API_PUBLISH) {
            Ok(())
        } else {
            Err(ApimError::Forbidden(
                "the Publisher needs the creator or publisher role".into(),
            ))
        }
    }
}

/// Authenticates requests; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    introspector: Option<Arc<dyn TokenIntrospector>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("introspector", &self.introspector.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Basic checks against `store` ([`Store::check_password`]).
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            introspector: None,
        }
    }

    /// Accepts Bearer tokens through `introspector`.
    pub fn with_introspector(mut self, introspector: Arc<dyn TokenIntrospector>) -> Self {
        self.introspector = Some(introspector);
        self
    }

    /// The caller of a request: `Ok(None)` without an `Authorization` header.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<Caller>, ApimError> {
        let Some(value) = parts.headers.get(http::header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .map_err(|_| ApimError::Unauthenticated("malformed Authorization header".into()))?;
        let (scheme, cred) = value.split_once(' ').unwrap_or((value, ""));
        let cred = cred.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let peer = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            self.basic(cred, peer).await.map(Some)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer(cred).await.map(Some)
        } else {
            Err(ApimError::Unauthenticated(
                "use HTTP Basic or a Bearer token".into(),
            ))
        }
    }

    async fn basic(&self, cred: &str, peer: Option<std::net::IpAddr>) -> Result<Caller, ApimError> {
        let bad = || ApimError::Unauthenticated("invalid user name or password".into());
        let decoded = STANDARD.decode(cred).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
        let user = self
            .store
            .check_password(username, password, peer)
            .await?
            .ok_or_else(bad)?;
        Ok(caller_for(user))
    }

    async fn bearer(&self, token: &str) -> Result<Caller, ApimError> {
        let bad = || ApimError::Unauthenticated("invalid or expired access token".into());
        let introspector = self.introspector.as_ref().ok_or_else(|| {
            ApimError::Unauthenticated("Bearer tokens are not accepted here; use Basic".into())
        })?;
        let principal = introspector.introspect(token).await?.ok_or_else(bad)?;
        let user = self
            .store
            .get_user(&principal.username)
            .await?
            .ok_or_else(bad)?;
        // a token of a deleted account is no credential for a later account of the same name
        // (`iat` has whole seconds, the account's creation milliseconds)
        if principal
            .issued_at
            .is_some_and(|iat| iat.saturating_add(1).saturating_mul(1000) < user.created_time)
        {
            return Err(bad());
        }
        // a token never grants more than the user's roles do
        let granted = user.granted_scopes();
        let scopes = principal
            .scopes
            .into_iter()
            .filter(|s| granted.contains(&s.as_str()))
            .collect();
        Ok(Caller { user, scopes })
    }
}

fn caller_for(user: User) -> Caller {
    let scopes = user
        .granted_scopes()
        .into_iter()
        .map(str::to_owned)
        .collect();
    Caller { user, scopes }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Portal: FromRef<S>,
{
    type Rejection = ApimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let portal = Portal::from_ref(state);
        portal
            .auth()
            .authenticate(parts)
            .await?
            .ok_or_else(|| ApimError::Unauthenticated("credentials are required".into()))
    }
}

impl<S> OptionalFromRequestParts<S> for Caller
where
    S: Send + Sync,
    Portal: FromRef<S>,
{
    type Rejection = ApimError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Portal::from_ref(state).auth().authenticate(parts).await
    }
}
