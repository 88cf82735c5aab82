//! `grant_type=client_credentials` (RFC 6749 §4.4): the token acts for the client's owner (its
//! scopes follow the application owner's roles); no refresh token.

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
    // the client acts for its owner: the same account, still there (not a later sign-up
    // with a deleted owner's name)
    if !km.inner.store.oauth_client_owner_live(client).await? {
        return Err(OAuthError::invalid_client(
            "the client's owner account no longer exists",
        ));
    }
    // the roles that decide the scopes are the application owner's
    let owner = scopes::acting_user(km, client).await?;
    let scopes = scopes::resolve(km, client, owner.as_ref(), form.get("scope")).await?;
    Ok(Grant {
        username: client.owner.clone(),
        scopes,
        refresh: false,
        refresh_expires_at: None,
    })
}
