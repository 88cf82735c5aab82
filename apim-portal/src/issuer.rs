//! Hooks into the Key Manager: the Developer Portal asks it for tokens and API keys. apim-portal
//! never depends on apim-keymanager; the all-in-one wiring implements these traits over it.

use apim_core::model::{Application, KeyType};
use apim_core::ApimError;
use async_trait::async_trait;
use serde::Serialize;

/// An access token issued for an application's consumer key.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    /// The token (JWT or opaque).
    pub access_token: String,
    /// Granted scopes.
    pub token_scopes: Vec<String>,
    /// Lifetime in seconds.
    pub validity_time: u64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"<redacted>")
            .field("token_scopes", &self.token_scopes)
            .field("validity_time", &self.validity_time)
            .finish()
    }
}

/// Issues client-credentials access tokens (generate-token in the Developer Portal). The portal
/// has already checked the consumer secret and that the caller owns the application.
#[async_trait]
pub trait TokenIssuer: Send + Sync + 'static {
    /// A client-credentials token for `consumer_key` with `scopes`, valid for `validity_secs`
    /// (the Key Manager's default when `None`).
    async fn client_credentials_token(
        &self,
        consumer_key: &str,
        scopes: &[String],
        validity_secs: Option<u64>,
    ) -> Result<IssuedToken, ApimError>;
}

/// What an API key is for.
#[derive(Debug, Clone)]
pub struct ApiKeyRequest {
    /// The application.
    pub application: Application,
    /// PRODUCTION or SANDBOX.
    pub key_type: KeyType,
    /// The subscribed APIs as `(name, context, version)`.
    pub subscribed_apis: Vec<(String, String, String)>,
    /// Lifetime in seconds (`None` or 0: no expiry).
    pub validity_secs: Option<u64>,
    /// Comma-separated IPs / CIDRs allowed to use the key.
    pub permitted_ip: Option<String>,
    /// Comma-separated referer patterns allowed to use the key.
    pub permitted_referer: Option<String>,
}

/// A signed API key.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedApiKey {
    /// The key (a signed JWT, header `apikey`).
    pub apikey: String,
    /// Lifetime in seconds (-1: none).
    pub validity_time: i64,
}

impl std::fmt::Debug for IssuedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedApiKey")
            .field("apikey", &"<redacted>")
            .field("validity_time", &self.validity_time)
            .finish()
    }
}

/// Issues and revokes API keys.
#[async_trait]
pub trait ApiKeyIssuer: Send + Sync + 'static {
    /// Issues a key.
    async fn issue_api_key(&self, request: ApiKeyRequest) -> Result<IssuedApiKey, ApimError>;
    /// Revokes `apikey` if, and only if, it is an API key issued to `application_id` for
    /// `key_type`; anything else (another application's key, an access token) is a
    /// [`ApimError::NotFound`] and stays valid.
    async fn revoke_api_key(
        &self,
        application_id: &str,
        key_type: KeyType,
        apikey: &str,
    ) -> Result<(), ApimError>;
}
