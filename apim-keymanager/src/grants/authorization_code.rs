//! `grant_type=authorization_code` (RFC 6749 §4.1) with PKCE (RFC 7636, `S256` only): the code
//! is single-use, bound to the client and the redirect URI, and needs the matching verifier.

use apim_core::store::OAuthClient;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::OAuthError;
use crate::form::OAuthForm;
use crate::issue::Grant;
use crate::KeyManager;

/// `BASE64URL(SHA256(verifier))`.
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub(crate) async fn grant(
    km: &KeyManager,
    client: &OAuthClient,
    form: &OAuthForm,
) -> Result<Grant, OAuthError> {
    let code = form.require("code")?;
    let stored = km
        .inner
        .store
        .take_token(code, "code")
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("invalid, expired or used authorization code"))?;
    if stored.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    let redirect = stored.extra.get("redirect_uri").and_then(|v| v.as_str());
    if redirect.is_some() && redirect != form.get("redirect_uri") {
        return Err(OAuthError::invalid_grant("redirect_uri does not match"));
    }
    if let Some(challenge) = stored.extra.get("code_challenge").and_then(|v| v.as_str()) {
        let verifier = form.require("code_verifier")?;
        if !valid_verifier(verifier) {
            return Err(OAuthError::invalid_request("malformed code_verifier"));
        }
        if !apim_core::crypto::ct_eq(s256(verifier).as_bytes(), challenge.as_bytes()) {
            return Err(OAuthError::invalid_grant("PKCE verification failed"));
        }
    }
    Ok(Grant {
        username: stored.username,
        scopes: stored.scopes,
        refresh: true,
        refresh_expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            super::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
