//! API keys: self-contained JWTs (`token_type: apiKey`) signed with the active key, carrying the
//! application, the subscribed APIs and optional `permittedIP` / `permittedReferer` limits.

use apim_core::auth::key_limits::{
    validate_permitted_ip, validate_permitted_referer, PERMITTED_IP, PERMITTED_REFERER,
};
use apim_core::crypto::new_id;
use apim_core::model::{Application, KeyType};
use apim_core::time::now_secs;
use apim_core::ApimError;

use crate::jwt::{self, ApplicationClaim, Claims, SubscribedApi};
use crate::KeyManager;

/// What an API key is issued for.
#[derive(Debug, Clone)]
pub struct ApiKeyRequest {
    /// The application.
    pub application: Application,
    /// PRODUCTION or SANDBOX.
    pub key_type: KeyType,
    /// Validity in seconds; 0 or negative = effectively no expiry (100 years).
    pub validity_secs: i64,
    /// Comma-separated IPs / CIDR ranges allowed to use the key (none = any).
    pub permitted_ip: Option<String>,
    /// Comma-separated referer patterns, `*` wildcard (none = any).
    pub permitted_referer: Option<String>,
    /// The APIs the application is subscribed to.
    pub subscribed_apis: Vec<SubscribedApi>,
    /// `sub` (the application owner when empty).
    pub subject: Option<String>,
}

impl KeyManager {
    /// Issues an API key (Developer Portal `api-keys/{keyType}/generate`). Revoke it with
    /// [`KeyManager::revoke`] (emits TOKEN_REVOCATION with its `jti`). A `permittedIP` that is
    /// not a list of IP addresses / CIDR ranges, or a `permittedReferer` over the pattern caps
    /// (`apim_core::auth::key_limits`), is refused with a validation error naming the field.
    pub fn issue_api_key(&self, req: ApiKeyRequest) -> Result<String, ApimError> {
        if let Some(ips) = &req.permitted_ip {
            validate_permitted_ip(PERMITTED_IP, ips)?;
        }
        if let Some(refs) = &req.permitted_referer {
            validate_permitted_referer(PERMITTED_REFERER, refs)?;
        }
        let now = now_secs();
        let validity = if req.validity_secs > 0 {
            req.validity_secs
        } else {
            100 * 365 * 86400
        };
        let app = &req.application;
        let claims = Claims {
            iss: self.inner.settings.issuer.clone(),
            sub: req.subject.clone().unwrap_or_else(|| app.owner.clone()),
            aud: vec![app.application_id.clone()],
            exp: now + validity,
            iat: now,
            nbf: Some(now),
            jti: new_id(),
            application: Some(ApplicationClaim {
                id: app.application_id.clone(),
                uuid: app.application_id.clone(),
                name: app.name.clone(),
                tier: app.throttling_policy.clone(),
                owner: app.owner.clone(),
            }),
            keytype: Some(req.key_type.as_str().into()),
            token_type: Some("apiKey".into()),
            permitted_ip: req.permitted_ip.filter(|s| !s.trim().is_empty()),
            permitted_referer: req.permitted_referer.filter(|s| !s.trim().is_empty()),
            subscribed_apis: Some(req.subscribed_apis),
            ..Claims::default()
        };
        jwt::encode(self.key_ring().active(), &claims)
    }
}
