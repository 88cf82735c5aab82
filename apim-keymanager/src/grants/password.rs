//! `grant_type=password` (RFC 6749 §4.3): the user's credentials, checked against the user
//! store (a success is cached briefly); a refresh token goes with the access token.

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
    let username = form.require("username")?;
    let password = form.require("password")?;
    let user = km
        .verify_user(username, password)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("invalid user credentials"))?;
    let scopes = scopes::resolve(km, client, Some(&user), form.get("scope")).await?;
    Ok(Grant {
        username: user.username,
        scopes,
        refresh: true,
        refresh_expires_at: None,
    })
}
