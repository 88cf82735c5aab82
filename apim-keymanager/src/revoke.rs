//! `POST /oauth2/revoke` (RFC 7009): access tokens (JWT or opaque) and refresh tokens. A
//! revocation is recorded with the token's id and expiry and emitted as TOKEN_REVOCATION through
//! the outbox, so gateways drop the token. Unknown or foreign tokens get 200 too (§2.2).

use apim_core::event::TokenRevocation;
use apim_core::model::KeyType;
use apim_core::ApimError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::error::OAuthError;
use crate::form::OAuthForm;
use crate::jwt::looks_like_jwt;
use crate::token_endpoint::no_store;
use crate::KeyManager;

impl KeyManager {
    /// Revokes a token (access JWT, opaque access token or refresh token). With `client_id`,
    /// only a token issued to that client is revoked. Returns whether something was revoked.
    pub async fn revoke(&self, token: &str, client_id: Option<&str>) -> Result<bool, ApimError> {
        let store = &self.inner.store;
        let owned = |c: &str| client_id.is_none_or(|id| id == c);
        let revocation = if looks_like_jwt(token) {
            let Ok(claims) = self.key_ring().verifier().verify_signature(token) else {
                return Ok(false);
            };
            let cid = claims.client_id.clone().unwrap_or_default();
            if !owned(&cid) || claims.jti.is_empty() {
                return Ok(false);
            }
            TokenRevocation {
                jti: claims.jti,
                expiry_time: claims.exp,
                token_type: if claims.token_type.as_deref() == Some("apiKey") {
                    "API_KEY".into()
                } else {
                    "JWT".into()
                },
                consumer_key: Some(cid),
            }
        } else if let Some(t) = store.get_token(token, "refresh").await? {
            if !owned(&t.client_id) {
                return Ok(false);
            }
            TokenRevocation {
                jti: t.jti,
                expiry_time: t.expires_at,
                token_type: "REFRESH".into(),
                consumer_key: Some(t.client_id),
            }
        } else if let Some(t) = store.get_token(token, "access").await? {
            if !owned(&t.client_id) {
                return Ok(false);
            }
            TokenRevocation {
                jti: t.jti,
                expiry_time: t.expires_at,
                token_type: "OPAQUE".into(),
                consumer_key: Some(t.client_id),
            }
        } else {
            return Ok(false);
        };
        store.revoke_token(revocation).await?;
        Ok(true)
    }

    /// Revokes an API key of one application and key type (Developer Portal
    /// `api-keys/{keyType}/revoke`). Only a key this Key Manager signed, of `token_type: apiKey`,
    /// issued to `application_id` for `key_type` is revoked; anything else (another
    /// application's key, an access token, a forged or foreign JWT) is left alone and answers
    /// `false`.
    pub async fn revoke_api_key(
        &self,
        apikey: &str,
        application_id: &str,
        key_type: KeyType,
    ) -> Result<bool, ApimError> {
        if !looks_like_jwt(apikey) {
            return Ok(false);
        }
        let Ok(claims) = self.key_ring().verifier().verify_signature(apikey) else {
            return Ok(false);
        };
        let is_key_of_app = claims.token_type.as_deref() == Some("apiKey")
            && claims
                .application
                .as_ref()
                .is_some_and(|a| a.uuid == application_id)
            && claims.keytype.as_deref() == Some(key_type.as_str())
            && !claims.jti.is_empty();
        if !is_key_of_app {
            return Ok(false);
        }
        self.inner
            .store
            .revoke_token(TokenRevocation {
                jti: claims.jti,
                expiry_time: claims.exp,
                token_type: "API_KEY".into(),
                consumer_key: None,
            })
            .await?;
        Ok(true)
    }
}

pub(crate) async fn revoke(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = km.authenticate_client(&headers, &form).await?;
    let token = form.require("token")?;
    let revoked = km.revoke(token, Some(&client.client_id)).await?;
    tracing::debug!(client_id = %client.client_id, revoked, "revocation request");
    Ok(no_store(StatusCode::OK.into_response()))
}
