//! [`IntrospectionValidator`]: opaque access tokens, checked by the Key Manager — in-process
//! ([`KeyManager`] is a [`TokenIntrospector`]) or over RFC 7662 ([`HttpIntrospector`]).

use std::sync::Arc;

use apim_core::artifacts::{ArtifactStore, RouteMatch};
use apim_core::auth::{AuthContext, CredentialKind, KeyValidator, RequestMeta};
use apim_core::crypto::sha256_hex;
use apim_core::model::KeyType;
use apim_core::time::now_secs;
use apim_core::ApimError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use super::jwt::{new_cache, Cached, TokenCache};
use super::{bearer, token_hash};
use crate::http_client::RemoteEndpoint;
use crate::jwt::ApplicationClaim;
use crate::KeyManager;

/// Answers RFC 7662 introspection for a token.
#[async_trait::async_trait]
pub trait TokenIntrospector: Send + Sync + 'static {
    /// The introspection response (`{"active": false}` for unknown tokens).
    async fn introspect(&self, token: &str) -> Result<Value, ApimError>;
}

#[async_trait::async_trait]
impl TokenIntrospector for KeyManager {
    async fn introspect(&self, token: &str) -> Result<Value, ApimError> {
        KeyManager::introspect(self, token).await
    }
}

/// Introspection over HTTP at a remote Key Manager, authenticating as a client or with the
/// deployment's internal token.
#[derive(Debug)]
pub struct HttpIntrospector {
    endpoint: RemoteEndpoint,
}

impl HttpIntrospector {
    /// Introspects at `url` (e.g. `https://km:9443/oauth2/introspect`) as `client_id`.
    pub fn new(url: &str, client_id: &str, client_secret: &str) -> Result<Self, ApimError> {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let authorization = http::HeaderValue::try_from(format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", enc(client_id), enc(client_secret)))
        ))
        .map_err(|_| ApimError::config("key_manager.client_id", "not a header value"))?;
        Ok(HttpIntrospector {
            endpoint: RemoteEndpoint::new(url, authorization)?,
        })
    }

    /// Introspects at `url` as a gateway of the deployment, with its internal token (no OAuth
    /// client of its own needed; see [`crate::internal`]).
    pub fn with_internal_token(url: &str, internal_token: &str) -> Result<Self, ApimError> {
        Ok(HttpIntrospector {
            endpoint: RemoteEndpoint::internal(url, internal_token)?,
        })
    }
}

#[async_trait::async_trait]
impl TokenIntrospector for HttpIntrospector {
    async fn introspect(&self, token: &str) -> Result<Value, ApimError> {
        let fail = |e: String| ApimError::BackendUnavailable(format!("introspection: {e}"));
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        let (status, bytes) = self
            .endpoint
            .post("application/x-www-form-urlencoded", body.into_bytes())
            .await
            .map_err(fail)?;
        if !status.is_success() {
            return Err(fail(format!("status {status}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))
    }
}

/// Validates opaque bearer tokens by introspection; caches active ones by hash until their
/// expiry, and rejects revoked ones (revoked id = SHA-256 hex of the token) even when cached.
pub struct IntrospectionValidator {
    source: Arc<dyn TokenIntrospector>,
    artifacts: Arc<dyn ArtifactStore>,
    cache: TokenCache,
}

impl std::fmt::Debug for IntrospectionValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionValidator")
            .finish_non_exhaustive()
    }
}

impl IntrospectionValidator {
    /// A validator asking `source`.
    pub fn new(source: Arc<dyn TokenIntrospector>, artifacts: Arc<dyn ArtifactStore>) -> Self {
        IntrospectionValidator {
            source,
            artifacts,
            cache: new_cache(100_000),
        }
    }

    /// Validates an opaque token.
    pub async fn validate_token(
        &self,
        token: &str,
        route: Option<&RouteMatch>,
    ) -> Result<Arc<AuthContext>, ApimError> {
        let snap = self.artifacts.snapshot();
        let key = token_hash(token);
        let now = now_secs();
        if let Some(hit) = self.cache.get(&key) {
            if hit.exp > now && !snap.is_revoked(&hit.jti) {
                return hit.memo.authorize(&hit.ctx, route, &snap);
            }
            self.cache.invalidate(&key);
            return Err(ApimError::InvalidCredentials(
                "token expired or revoked".into(),
            ));
        }
        let jti = sha256_hex(token.as_bytes());
        if snap.is_revoked(&jti) {
            return Err(ApimError::InvalidCredentials("token revoked".into()));
        }
        let r = self.source.introspect(token).await?;
        if r["active"] != Value::Bool(true) || r["token_type"] != "Bearer" {
            return Err(ApimError::InvalidCredentials("inactive token".into()));
        }
        let exp = r["exp"].as_i64().unwrap_or(0);
        if exp <= now {
            return Err(ApimError::InvalidCredentials("token expired".into()));
        }
        let app: Option<ApplicationClaim> = serde_json::from_value(r["application"].clone()).ok();
        let client_id = r["client_id"].as_str().unwrap_or_default().to_owned();
        let mapping = snap.key_mapping(&client_id);
        let app_id = app
            .as_ref()
            .map(|a| a.uuid.clone())
            .or_else(|| mapping.map(|m| m.application_id.clone()))
            .unwrap_or_default();
        let ctx = Arc::new(AuthContext {
            credential: CredentialKind::Opaque,
            application_name: app.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
            application_owner: app.as_ref().map(|a| a.owner.clone()).unwrap_or_default(),
            application_tier: app
                .as_ref()
                .map(|a| a.tier.clone())
                .unwrap_or_else(|| "Unlimited".into()),
            application_id: app_id,
            end_user: r["username"].as_str().unwrap_or_default().to_owned(),
            key_type: r["keytype"]
                .as_str()
                .and_then(|k| KeyType::parse(k).ok())
                .unwrap_or_default(),
            scopes: r["scope"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            consumer_key: client_id,
            token_id: Some(jti.clone()),
            expires_at: Some(exp),
            subscription_tier: None,
            claims: None,
        });
        let entry = Arc::new(Cached {
            ctx,
            exp,
            jti,
            memo: Default::default(),
        });
        self.cache.insert(key, entry.clone());
        entry.memo.authorize(&entry.ctx, route, &snap)
    }
}

#[async_trait::async_trait]
impl KeyValidator for IntrospectionValidator {
    async fn validate(&self, req: &RequestMeta<'_>) -> Result<Arc<AuthContext>, ApimError> {
        let token = bearer(req.headers)
            .ok_or_else(|| ApimError::MissingCredentials("no bearer token".into()))?;
        self.validate_token(token, req.route).await
    }
}
