//! Client authentication (RFC 6749 §2.3.1): HTTP Basic or `client_id` + `client_secret` form
//! parameters — one method per request.

use apim_core::store::OAuthClient;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderMap;

use crate::error::OAuthError;
use crate::form::OAuthForm;
use crate::KeyManager;

/// Decodes `Authorization: Basic` into `(user, password)`. `Ok(None)` when absent; an error when
/// present but malformed. The parts are form-urlencoded for clients (RFC 6749 §2.3.1).
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
    urldecode: bool,
) -> Result<Option<(String, String)>, OAuthError> {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let v = v.to_str().map_err(|_| bad())?;
    let Some((scheme, rest)) = v.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let raw = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (u, p) = raw.split_once(':').ok_or_else(bad)?;
    if urldecode {
        let dec = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(Some((dec(u), dec(p))))
    } else {
        Ok(Some((u.to_owned(), p.to_owned())))
    }
}

impl KeyManager {
    /// Authenticates the calling client from the headers or the form.
    pub(crate) async fn authenticate_client(
        &self,
        headers: &HeaderMap,
        form: &OAuthForm,
    ) -> Result<OAuthClient, OAuthError> {
        let basic = basic_credentials(headers, true)?;
        let (id, secret) = match (basic, form.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not both",
                ))
            }
            (Some(b), None) => {
                if form.get("client_id").is_some_and(|id| id != b.0) {
                    return Err(OAuthError::invalid_request(
                        "client_id does not match the authenticated client",
                    ));
                }
                b
            }
            (None, Some(secret)) => (form.require("client_id")?.to_owned(), secret.to_owned()),
            (None, None) => {
                return Err(OAuthError::invalid_client("client authentication required"))
            }
        };
        self.inner
            .store
            .authenticate_client(&id, &secret)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))
    }
}
