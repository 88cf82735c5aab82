//! Issuing tokens: JWT or opaque access tokens and refresh tokens, and the token response.

use apim_core::crypto::{new_id, random_secret, sha256_hex};
use apim_core::store::{OAuthClient, StoredToken};
use apim_core::time::now_secs;
use apim_core::ApimError;
use serde::{Deserialize, Serialize};

use crate::jwt::{self, ApplicationClaim, Claims};
use crate::KeyManager;

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Refresh token, for grants that get one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What a grant decided: who, which scopes, and whether a refresh token goes with it.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) username: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) refresh: bool,
    /// Absolute end of the grant (a refresh grant: the presented refresh token's expiry): a
    /// rotated refresh token never outlives the first one of its grant.
    pub(crate) refresh_expires_at: Option<i64>,
}

impl KeyManager {
    /// The `application` claim of a client bound to an application.
    async fn application_claim(
        &self,
        client: &OAuthClient,
    ) -> Result<Option<ApplicationClaim>, ApimError> {
        let Some(id) = &client.application_id else {
            return Ok(None);
        };
        match self.inner.store.get_application(id).await {
            Ok(app) => Ok(Some(ApplicationClaim {
                id: app.application_id.clone(),
                uuid: app.application_id,
                name: app.name,
                tier: app.throttling_policy,
                owner: app.owner,
            })),
            Err(ApimError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Signs an access token (JWT) or stores an opaque one, plus a refresh token if asked.
    pub(crate) async fn issue(
        &self,
        client: &OAuthClient,
        grant: Grant,
    ) -> Result<TokenResponse, ApimError> {
        let s = &self.inner.settings;
        let now = now_secs();
        // a lifetime stored before the caps (or written by another component) is cut to them
        let ttl = match client.access_token_lifetime {
            0 => s.access_token_lifetime.as_secs(),
            n => n,
        }
        .min(s.max_access_token_lifetime.as_secs());
        let exp = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
        let scope = grant.scopes.join(" ");
        let application = self.application_claim(client).await?;
        let keytype = client
            .key_type
            .clone()
            .unwrap_or_else(|| "PRODUCTION".into());
        let access_token = if client.token_type.eq_ignore_ascii_case("OAUTH") {
            // opaque: only the hash is stored; its jti is that hash (TOKEN_REVOCATION contract)
            let token = random_secret()?;
            let mut extra = serde_json::Map::new();
            extra.insert("keytype".into(), keytype.into());
            if let Some(app) = &application {
                extra.insert("application".into(), serde_json::to_value(app)?);
            }
            let stored = StoredToken {
                kind: "access".into(),
                client_id: client.client_id.clone(),
                jti: sha256_hex(token.as_bytes()),
                username: grant.username.clone(),
                scopes: grant.scopes.clone(),
                expires_at: exp,
                extra,
            };
            self.inner.store.put_token(&token, &stored).await?;
            token
        } else {
            let mut aud = vec![client.client_id.clone()];
            aud.extend(s.audiences.iter().cloned());
            let claims = Claims {
                iss: s.issuer.clone(),
                sub: grant.username.clone(),
                aud,
                azp: Some(client.client_id.clone()),
                client_id: Some(client.client_id.clone()),
                scope: Some(scope.clone()),
                exp,
                iat: now,
                nbf: Some(now),
                jti: new_id(),
                application,
                keytype: Some(keytype),
                ..Claims::default()
            };
            let token = jwt::encode(self.key_ring().active(), &claims)?;
            // kept by hash with its jti, so the client's tokens can be revoked together (new
            // secret, keys removed)
            let mut extra = serde_json::Map::new();
            extra.insert("format".into(), "JWT".into());
            let stored = StoredToken {
                kind: "access".into(),
                client_id: client.client_id.clone(),
                jti: claims.jti,
                username: grant.username.clone(),
                scopes: Vec::new(),
                expires_at: exp,
                extra,
            };
            self.inner.store.put_token(&token, &stored).await?;
            token
        };
        let refresh_token = if grant.refresh {
            let rttl = match client.refresh_token_lifetime {
                0 => s.refresh_token_lifetime.as_secs(),
                n => n,
            }
            .min(s.max_refresh_token_lifetime.as_secs());
            let token = random_secret()?;
            let stored = StoredToken {
                kind: "refresh".into(),
                client_id: client.client_id.clone(),
                jti: new_id(),
                username: grant.username,
                scopes: grant.scopes,
                expires_at: grant
                    .refresh_expires_at
                    .unwrap_or(i64::MAX)
                    .min(now.saturating_add(i64::try_from(rttl).unwrap_or(i64::MAX / 2))),
                extra: serde_json::Map::new(),
            };
            self.inner.store.put_token(&token, &stored).await?;
            Some(token)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl,
            refresh_token,
            scope,
        })
    }
}
