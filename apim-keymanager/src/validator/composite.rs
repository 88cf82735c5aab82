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

#[async_trait::async_trait]
impl KeyValidator for CredentialValidator {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        if let Some(v) = &self.api_key {
            if let Some(key) = v.find(req) {
                return v.validate_key(key, req).await;
            }
        }
        if let Some(token) = bearer(req.headers) {
            return if looks_like_jwt(token) {
                match &self.jwt {
                    Some(v) => v.validate_token(token, req.route).await,
                    None => Err(unsupported("JWT")),
                }
            } else {
                match &self.opaque {
                    Some(v) => v.validate_token(token, req.route).await,
                    None => Err(unsupported("opaque token")),
                }
            };
        }
        let is_basic = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("basic ")));
        match (&self.basic, is_basic) {
            (Some(v), true) => v.validate(req).await,
            (None, true) => Err(unsupported("Basic")),
            _ => Err(ApimError::MissingCredentials(
                "no access token, API key or credentials in the request".into(),
            )),
        }
    }
}
