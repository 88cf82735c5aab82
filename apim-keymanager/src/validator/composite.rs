//! [`CredentialValidator`]: one validator for every credential kind, chosen by its shape.

use std::sync::Arc;

use apim_core::auth::{AuthContext, KeyValidator, RequestMeta};
use apim_core::ApimError;

use super::{bearer, ApiKeyValidator, BasicAuthValidator, IntrospectionValidator, JwtValidator};
use crate::jwt::looks_like_jwt;

/// Dispatches: `apikey` → API key; `Bearer` with a JWT → JWT; other `Bearer` → introspection;
/// `Basic` → user credentials. A kind without a configured validator is rejected as invalid.
#[derive(Debug, Default)]
pub struct CredentialValidator {
    jwt: Option<JwtValidator>,
    opaque: Option<IntrospectionValidator>,
    api_key: Option<ApiKeyValidator>,
    basic: Option<BasicAuthValidator>,
}

impl CredentialValidator {
    /// Accepts nothing until validators are added.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds JWT access tokens.
    pub fn with_jwt(mut self, v: JwtValidator) -> Self {
        self.jwt = Some(v);
        self
    }
    /// Adds opaque access tokens.
    pub fn with_opaque(mut self, v: IntrospectionValidator) -> Self {
        self.opaque = Some(v);
        self
    }
    /// Adds API keys.
    pub fn with_api_key(mut self, v: ApiKeyValidator) -> Self {
        self.api_key = Some(v);
        self
    }
    /// Adds Basic user credentials.
    pub fn with_basic(mut self, v: BasicAuthValidator) -> Self {
        self.basic = Some(v);
        self
    }
}

fn unsupported(kind: &str) -> ApimError {
    ApimError::InvalidCredentials(format!("{kind} credentials are not accepted here"))
}

/// The API does not list the scheme of the presented credential in its `securityScheme`.
fn not_enabled(kind: &str, scheme: &str) -> ApimError {
    ApimError::InvalidCredentials(format!(
        "{kind} credentials are not accepted by this API (its securityScheme has no {scheme})"
    ))
}

/// The validator that answers a request, with the credential it gets.
enum Choice<'v, 'r> {
    ApiKey(&'v ApiKeyValidator, &'r str),
    Jwt(&'v JwtValidator, &'r str),
    Opaque(&'v IntrospectionValidator, &'r str),
    Basic(&'v BasicAuthValidator),
    Refused(ApimError),
}

impl CredentialValidator {
    /// Which validator answers `req`, from its credential and what the routed API accepts
    /// (its `securityScheme`, as in WSO2: `oauth2` for access tokens, `api_key`,
    /// `basic_auth`); without a route (embedded use) every kind. The same choice serves
    /// `validate` and `validate_now`.
    fn choose<'v, 'r>(&'v self, req: &RequestMeta<'r>) -> Choice<'v, 'r> {
        let accepts = |scheme: &str| {
            req.route
                .is_none_or(|r| r.api.api.security_scheme.iter().any(|s| s == scheme))
        };
        if let Some(v) = &self.api_key {
            if let Some(key) = v.find(req) {
                if accepts("api_key") {
                    return Choice::ApiKey(v, key);
                }
                if bearer(req.headers).is_none() && !has_basic(req) {
                    return Choice::Refused(not_enabled("API key", "api_key"));
                }
            }
        }
        if let Some(token) = bearer(req.headers) {
            if !accepts("oauth2") {
                return Choice::Refused(not_enabled("access token", "oauth2"));
            }
            return if looks_like_jwt(token) {
                match &self.jwt {
                    Some(v) => Choice::Jwt(v, token),
                    None => Choice::Refused(unsupported("JWT")),
                }
            } else {
                match &self.opaque {
                    Some(v) => Choice::Opaque(v, token),
                    None => Choice::Refused(unsupported("opaque token")),
                }
            };
        }
        match (&self.basic, has_basic(req)) {
            (_, true) if !accepts("basic_auth") => {
                Choice::Refused(not_enabled("Basic", "basic_auth"))
            }
            (Some(v), true) => Choice::Basic(v),
            (None, true) => Choice::Refused(unsupported("Basic")),
            _ => Choice::Refused(ApimError::MissingCredentials(
                "no access token, API key or credentials in the request".into(),
            )),
        }
    }
}

#[async_trait::async_trait]
impl KeyValidator for CredentialValidator {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        match self.choose(req) {
            Choice::ApiKey(v, key) => v.validate_key(key, req).await,
            Choice::Jwt(v, token) => v.validate_token(token, req.route).await,
            Choice::Opaque(v, token) => v.validate_token(token, req.route).await,
            Choice::Basic(v) => v.validate(req).await,
            Choice::Refused(e) => Err(e),
        }
    }

    fn validate_now(&self, req: &RequestMeta<'_>) -> Option<Result<Arc<AuthContext>, ApimError>> {
        match self.choose(req) {
            Choice::Jwt(v, token) => v.validate_cached(token, req.route),
            Choice::Refused(e) => Some(Err(e)),
            Choice::ApiKey(..) | Choice::Opaque(..) | Choice::Basic(_) => None,
        }
    }
}

/// Whether the request carries `Authorization: Basic …`.
fn has_basic(req: &RequestMeta<'_>) -> bool {
    req.headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("basic ")))
}
