//! Which scopes a token gets: only those its client may request and its user may have.
//!
//! - A client registered with a scope list may request only those (else `invalid_scope`);
//!   without a list it may request any.
//! - Management scopes (`apim:*`) are granted only when the user's roles grant them; others are
//!   dropped silently (as WSO2 does). API scopes pass through.
//! - Nothing left (or nothing requested) gives the `default` scope.

use apim_core::model::User;
use apim_core::store::OAuthClient;

use crate::error::OAuthError;

/// The scope every token has when nothing else is granted.
pub const DEFAULT_SCOPE: &str = "default";

/// Resolves the granted scopes.
pub(crate) fn resolve(
    client: &OAuthClient,
    user: Option<&User>,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let requested: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if requested.iter().any(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        return Err(OAuthError::invalid_scope("malformed scope"));
    }
    let asked: Vec<&str> = if requested.is_empty() {
        client.scopes.iter().map(String::as_str).collect()
    } else {
        if let Some(s) = requested
            .iter()
            .find(|s| !client.scopes.is_empty() && !client.scopes.iter().any(|c| c == *s))
        {
            return Err(OAuthError::invalid_scope(format!(
                "scope '{s}' is not allowed for this client"
            )));
        }
        requested
    };
    let user_scopes = user.map(|u| u.granted_scopes()).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for s in asked {
        let ok = !s.starts_with("apim:") || user_scopes.contains(&s);
        if ok && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        out.push(DEFAULT_SCOPE.into());
    }
    Ok(out)
}

/// Narrows a previously granted set (refresh): the request may only shrink it.
pub(crate) fn narrow(
    granted: &[String],
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let Some(req) = requested.filter(|r| !r.trim().is_empty()) else {
        return Ok(granted.to_vec());
    };
    let mut out = Vec::new();
    for s in req.split_whitespace() {
        if !granted.iter().any(|g| g == s) {
            return Err(OAuthError::invalid_scope(format!(
                "scope '{s}' was not granted originally"
            )));
        }
        out.push(s.to_owned());
    }
    Ok(out)
}
