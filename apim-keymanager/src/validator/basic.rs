//! [`BasicAuthValidator`]: `Authorization: Basic` user credentials for APIs secured with Basic
//! auth. It asks its [`UserVerifier`] every time, so a changed password, a removed user or new
//! roles apply to the next request. The store's one password check
//! ([`Store::check_password`]) throttles failures per account and client address, bounds the
//! PBKDF2 work and remembers successes per credential version; [`KeyManager`] and [`Store`]
//! both go through it.

use std::sync::Arc;

use apim_core::artifacts::RouteMatch;
use apim_core::auth::{AuthContext, CredentialKind, KeyValidator, RequestMeta};
use apim_core::model::User;
use apim_core::store::Store;
use apim_core::ApimError;

use crate::client_auth::basic_credentials;
use crate::KeyManager;

/// Checks a user name and password.
#[async_trait::async_trait]
pub trait UserVerifier: Send + Sync + 'static {
    /// The user, if the password is right.
    async fn verify(&self, username: &str, password: &str) -> Result<Option<User>, ApimError>;

    /// [`UserVerifier::verify`] for a client at `from`, for verifiers that count failures per
    /// client address too.
    async fn verify_from(
        &self,
        username: &str,
        password: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<Option<User>, ApimError> {
        let _ = from;
        self.verify(username, password).await
    }
}

#[async_trait::async_trait]
impl UserVerifier for Store {
    async fn verify(&self, username: &str, password: &str) -> Result<Option<User>, ApimError> {
        self.verify_user(username, password).await
    }

    async fn verify_from(
        &self,
        username: &str,
        password: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<Option<User>, ApimError> {
        self.check_password(username, password, from).await
    }
}

#[async_trait::async_trait]
impl UserVerifier for KeyManager {
    async fn verify(&self, username: &str, password: &str) -> Result<Option<User>, ApimError> {
        self.verify_user(username, password).await
    }

    async fn verify_from(
        &self,
        username: &str,
        password: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<Option<User>, ApimError> {
        self.verify_user_from(username, password, from).await
    }
}

/// Validates HTTP Basic user credentials.
pub struct BasicAuthValidator {
    users: Arc<dyn UserVerifier>,
}

impl std::fmt::Debug for BasicAuthValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuthValidator").finish_non_exhaustive()
    }
}

impl BasicAuthValidator {
    /// A validator over `users` (a [`KeyManager`] remembers verified credentials).
    pub fn new(users: Arc<dyn UserVerifier>) -> Self {
        BasicAuthValidator { users }
    }

    fn check_scopes(ctx: &AuthContext, route: Option<&RouteMatch>) -> Result<(), ApimError> {
        let Some(route) = route else { return Ok(()) };
        let need = &route.operation().scopes;
        if need.is_empty() || need.iter().any(|s| ctx.scopes.contains(s)) {
            Ok(())
        } else {
            Err(ApimError::ScopeNotAllowed(format!(
                "the resource needs one of the scopes: {}",
                need.join(", ")
            )))
        }
    }
}

#[async_trait::async_trait]
impl KeyValidator for BasicAuthValidator {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        let (user, pw) = basic_credentials(req.headers, false)
            .map_err(|_| ApimError::InvalidCredentials("malformed Basic credentials".into()))?
            .ok_or_else(|| ApimError::MissingCredentials("no Basic credentials".into()))?;
        let u = self
            .users
            .verify_from(&user, &pw, req.client_ip)
            .await?
            .ok_or_else(|| ApimError::InvalidCredentials("invalid user credentials".into()))?;
        let mut scopes: Vec<String> = u.granted_scopes().into_iter().map(str::to_owned).collect();
        scopes.extend(u.roles.iter().cloned());
        let ctx = Arc::new(AuthContext {
            credential: CredentialKind::Basic,
            scopes,
            ..AuthContext::for_application("", &u.username)
        });
        Self::check_scopes(&ctx, req.route)?;
        Ok(ctx)
    }
}
