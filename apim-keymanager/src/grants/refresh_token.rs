//! `grant_type=refresh_token` (RFC 6749 §6) with rotation: the presented refresh token is
//! consumed atomically and a new one is issued, so a used refresh token is invalid afterwards.
//! The new one expires when the presented one would have (the grant's absolute lifetime).

use apim_core::store::OAuthClient;

use crate::error::OAuthError;
use crate::form::OAuthForm;
use crate::issue::Grant;
use crate::{scopes, KeyManager};

pub(crate) async fn grant(
    km: &KeyManager,
    client: &OAuthClient,
    form: &OAuthForm,
) -> Result<Grant, OAuthError> {
    let value = form.require("refresh_token")?;
    // peek first so another client's token is not burnt by a wrong caller
    let stored = km
        .inner
        .store
        .get_token(value, "refresh")
        .await?
        .filter(|t| t.client_id == client.client_id)
        .ok_or_else(|| OAuthError::invalid_grant("invalid, expired or used refresh token"))?;
    let scopes = scopes::narrow(&stored.scopes, form.get("scope"))?;
    // roles may have changed since: a scope the user lost is dropped
    let scopes = scopes::recheck(km, client, &stored.username, scopes).await?;
    km.inner
        .store
        .take_token(value, "refresh")
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("invalid, expired or used refresh token"))?;
    Ok(Grant {
        username: stored.username,
        scopes,
        refresh: true,
        // the new refresh token ends when the presented one would have: rotation never
        // extends a grant past its first refresh token's lifetime
        refresh_expires_at: Some(stored.expires_at),
    })
}
