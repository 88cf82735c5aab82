//! The `application/x-www-form-urlencoded` body of the OAuth endpoints: size-limited, each
//! parameter at most once (RFC 6749 §3.1).

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use http::header;

use crate::error::OAuthError;

/// Largest accepted form body (bytes); larger bodies get 413 `invalid_request`.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Parsed form parameters.
#[derive(Clone, Default)]
pub struct OAuthForm(pub HashMap<String, String>);

impl std::fmt::Debug for OAuthForm {
    // values may be secrets (client_secret, password, tokens): print names only
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl OAuthForm {
    /// Parses a form body. Duplicate parameters are an `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{k}' appears more than once"
                )));
            }
        }
        Ok(OAuthForm(map))
    }

    /// A non-empty parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required parameter, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter '{name}'")))
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_FORM_BYTES) {
            return Err(OAuthError::too_large(MAX_FORM_BYTES));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| OAuthError::too_large(MAX_FORM_BYTES))?;
        if std::str::from_utf8(&body).is_err() {
            return Err(OAuthError::invalid_request("form body is not UTF-8"));
        }
        Self::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_rejected() {
        let e = OAuthForm::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(e.kind.as_str(), "invalid_request");
    }

    #[test]
    fn debug_hides_values() {
        let f = OAuthForm::parse(b"client_secret=s3cr3t").unwrap();
        assert!(!format!("{f:?}").contains("s3cr3t"));
    }
}
