//! [`ApiKeyValidator`]: self-contained API keys in the `apikey` header (or query parameter).

use std::sync::Arc;

use apim_core::artifacts::{ArtifactStore, RouteMatch};
use apim_core::auth::{AuthContext, CredentialKind, KeyValidator, RequestMeta};
use apim_core::time::now_secs;
use apim_core::ApimError;

use super::jwt::{context_from_claims, new_cache, Cached, TokenCache};
use super::{authorize, token_hash};
use crate::jwks::JwksSource;
use crate::jwt::{check_claims, JwtError, Validation};

/// The header (and query parameter) carrying an API key.
pub const API_KEY_HEADER: &str = "apikey";

/// Validates API keys: signature, expiry, revocation, `permittedIP` against the client address,
/// `permittedReferer` against the `Referer` header, and the subscription to the routed API.
pub struct ApiKeyValidator {
    keys: JwksSource,
    artifacts: Arc<dyn ArtifactStore>,
    validation: Validation,
    cache: TokenCache,
    allow_query: bool,
}

impl std::fmt::Debug for ApiKeyValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyValidator")
            .field("validation", &self.validation)
            .finish_non_exhaustive()
    }
}

// the parsing and matching the issuer validates against (apim_core::auth::key_limits):
// linear-time wildcard matching, entries that do not parse permit nothing
pub(crate) use apim_core::auth::key_limits::{ip_permitted, referer_permitted};

impl ApiKeyValidator {
    /// A validator with 30 s leeway that reads the `apikey` header and query parameter.
    pub fn new(keys: JwksSource, artifacts: Arc<dyn ArtifactStore>) -> Self {
        ApiKeyValidator {
            keys,
            artifacts,
            validation: Validation {
                issuer: None,
                audience: None,
                leeway_secs: 30,
            },
            cache: new_cache(100_000),
            allow_query: true,
        }
    }

    /// Requires `iss`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.validation.issuer = Some(issuer.into());
        self
    }

    /// Whether the `apikey` query parameter is read too (default true, as WSO2).
    pub fn with_query_parameter(mut self, allow: bool) -> Self {
        self.allow_query = allow;
        self
    }

    /// The API key of a request, if any.
    pub fn find<'a>(&self, req: &RequestMeta<'a>) -> Option<&'a str> {
        req.headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                self.allow_query
                    .then(|| req.query_param(API_KEY_HEADER))
                    .flatten()
            })
            .filter(|k| !k.is_empty())
    }

    /// Validates an API key presented by a request.
    pub async fn validate_key(
        &self,
        key: &str,
        req: &RequestMeta<'_>,
    ) -> Result<Arc<AuthContext>, ApimError> {
        let snap = self.artifacts.snapshot();
        let now = now_secs();
        let hash = token_hash(key);
        let cached = self.cache.get(&hash);
        let ctx = match cached {
            Some(hit) => {
                if hit.exp + self.validation.leeway_secs <= now || snap.is_revoked(&hit.jti) {
                    self.cache.invalidate(&hash);
                    return Err(ApimError::InvalidCredentials(
                        "API key expired or revoked".into(),
                    ));
                }
                hit.ctx.clone()
            }
            None => {
                let claims = match self.keys.verifier().verify_signature(key) {
                    Err(JwtError::UnknownKid)
                        if self.keys.refresh(false).await.unwrap_or(false) =>
                    {
                        self.keys.verifier().verify_signature(key)?
                    }
                    other => other?,
                };
                check_claims(&claims, &self.validation, now)?;
                if claims.token_type.as_deref() != Some("apiKey") {
                    return Err(ApimError::InvalidCredentials("not an API key".into()));
                }
                if snap.is_revoked(&claims.jti) {
                    return Err(JwtError::Revoked.into());
                }
                let ctx = Arc::new(context_from_claims(&claims, &snap, CredentialKind::ApiKey)?);
                self.cache.insert(
                    hash,
                    Arc::new(Cached {
                        ctx: ctx.clone(),
                        exp: claims.exp,
                        jti: claims.jti,
                        memo: Default::default(),
                    }),
                );
                ctx
            }
        };
        let claim = |name: &str| {
            ctx.claims
                .as_ref()
                .and_then(|c| c.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        if let Some(ips) = claim("permittedIP") {
            let ok = req.client_ip.is_some_and(|ip| ip_permitted(&ips, ip));
            if !ok {
                return Err(ApimError::ResourceForbidden(
                    "the API key may not be used from this IP address".into(),
                ));
            }
        }
        if let Some(refs) = claim("permittedReferer") {
            let referer = req
                .headers
                .get(http::header::REFERER)
                .and_then(|v| v.to_str().ok());
            if !referer.is_some_and(|r| referer_permitted(&refs, r)) {
                return Err(ApimError::ResourceForbidden(
                    "the API key may not be used from this referer".into(),
                ));
            }
        }
        if let Some(route) = req.route {
            subscribed_in_key(&ctx, route)?;
        }
        authorize(ctx, req.route, &snap)
    }
}

/// The routed API must be among the key's `subscribedAPIs` (when the claim is present).
fn subscribed_in_key(ctx: &AuthContext, route: &RouteMatch) -> Result<(), ApimError> {
    let Some(apis) = ctx
        .claims
        .as_ref()
        .and_then(|c| c.get("subscribedAPIs"))
        .and_then(|v| v.as_array())
    else {
        return Ok(());
    };
    let api = &route.api.api;
    // by id, or by context + version (keys issued by a portal that names APIs that way)
    let listed = |a: &serde_json::Value| {
        a["id"]
            .as_str()
            .is_some_and(|i| !i.is_empty() && i == api.id)
            || (a["context"].as_str() == Some(api.context.as_str())
                && a["version"].as_str() == Some(api.version.as_str()))
    };
    if apis.iter().any(listed) {
        Ok(())
    } else {
        Err(ApimError::ResourceForbidden(
            "the API key was not issued for this API".into(),
        ))
    }
}

#[async_trait::async_trait]
impl KeyValidator for ApiKeyValidator {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        let key = self
            .find(req)
            .ok_or_else(|| ApimError::MissingCredentials("no apikey header".into()))?;
        self.validate_key(key, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn ip_lists() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_permitted("10.0.0.0/8, 192.168.1.5", ip("10.1.2.3")));
        assert!(ip_permitted("10.0.0.0/8, 192.168.1.5", ip("192.168.1.5")));
        assert!(!ip_permitted("10.0.0.0/8, 192.168.1.5", ip("192.168.1.6")));
        assert!(ip_permitted("::1", ip("::1")));
        assert!(!ip_permitted("garbage, 1.2.3.4/99", ip("9.9.9.9")));
    }

    #[test]
    fn referer_patterns() {
        assert!(referer_permitted(
            "https://*.example.com/*",
            "https://app.example.com/x"
        ));
        assert!(!referer_permitted(
            "https://*.example.com/*",
            "https://evil.com/"
        ));
    }
}
