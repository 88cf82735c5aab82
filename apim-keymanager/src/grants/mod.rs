//! The grant types of `/oauth2/token`, one module each.

pub(crate) mod authorization_code;
pub(crate) mod client_credentials;
pub(crate) mod password;
pub(crate) mod refresh_token;

use apim_core::store::OAuthClient;

use crate::error::{OAuthError, OAuthErrorKind};

/// The grant types this server supports.
pub(crate) const SUPPORTED: [&str; 4] = [
    "client_credentials",
    "password",
    "refresh_token",
    "authorization_code",
];

/// `unauthorized_client` unless the client was registered for `grant`.
pub(crate) fn ensure_allowed(client: &OAuthClient, grant: &str) -> Result<(), OAuthError> {
    if client.grant_types.iter().any(|g| g == grant) {
        Ok(())
    } else {
        Err(OAuthError::new(
            OAuthErrorKind::UnauthorizedClient,
            format!("the client is not allowed to use the {grant} grant"),
        ))
    }
}
