//! The one OAuth error type of the Key Manager's endpoints (RFC 6749 §5.2, RFC 7009, RFC 7591)
//! and its one HTTP mapping.

use apim_core::ApimError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// The `error` code of an OAuth error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// 400: malformed or missing parameter (413 when the body is over the limit).
    InvalidRequest,
    /// 401 with `WWW-Authenticate`: client authentication failed.
    InvalidClient,
    /// 400: bad or expired code, refresh token or user credentials.
    InvalidGrant,
    /// 400: the client may not use this grant type.
    UnauthorizedClient,
    /// 400: unknown grant type.
    UnsupportedGrantType,
    /// 400: a requested scope is not allowed.
    InvalidScope,
    /// 401 (RFC 6750): missing or bad bearer credential (registration endpoint).
    InvalidToken,
    /// 400 (RFC 7591): bad client metadata.
    InvalidClientMetadata,
    /// 400 (RFC 7591): bad redirect URI.
    InvalidRedirectUri,
    /// 400 (RFC 6749 §4.1.2.1): the user denied the request.
    AccessDenied,
    /// 500: the server failed; the detail goes to the log only.
    ServerError,
}

impl OAuthErrorKind {
    /// The wire name, e.g. `invalid_client`.
    pub fn as_str(self) -> &'static str {
        use OAuthErrorKind::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            InvalidScope => "invalid_scope",
            InvalidToken => "invalid_token",
            InvalidClientMetadata => "invalid_client_metadata",
            InvalidRedirectUri => "invalid_redirect_uri",
            AccessDenied => "access_denied",
            ServerError => "server_error",
        }
    }
}

/// An OAuth error: kind, a description safe to show the client, and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", kind.as_str())]
pub struct OAuthError {
    /// The `error` code.
    pub kind: OAuthErrorKind,
    /// The `error_description` (never a secret, hash or internal detail).
    pub description: String,
    status: StatusCode,
    /// `Retry-After` seconds (lock-out after failed password checks, busy hashing pool).
    retry_after: Option<u64>,
}

impl OAuthError {
    /// An error of `kind` with its default status.
    pub fn new(kind: OAuthErrorKind, description: impl Into<String>) -> Self {
        use OAuthErrorKind::*;
        let status = match kind {
            InvalidClient | InvalidToken => StatusCode::UNAUTHORIZED,
            ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        OAuthError {
            kind,
            description: description.into(),
            status,
            retry_after: None,
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidRequest, d)
    }
    /// `invalid_client`.
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidClient, d)
    }
    /// `invalid_grant`.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidGrant, d)
    }
    /// `invalid_scope`.
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidScope, d)
    }
    /// `invalid_request` with 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        OAuthError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::invalid_request(format!("request body exceeds {limit} bytes"))
        }
    }

    /// `invalid_request` with 415: the body is not of the media type the endpoint takes.
    pub fn unsupported_media_type(expected: &str) -> Self {
        OAuthError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ..Self::invalid_request(format!("Content-Type must be {expected}"))
        }
    }

    /// HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body `{"error", "error_description"}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.kind.as_str(), "error_description": self.description })
    }
}

impl From<ApimError> for OAuthError {
    fn from(e: ApimError) -> Self {
        if let ApimError::TooManyAttempts { retry_after } | ApimError::Overloaded { retry_after } =
            &e
        {
            // 429 / 503 with Retry-After, as the management APIs answer
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            return OAuthError {
                status: e.status(),
                retry_after: Some(secs.max(1)),
                ..OAuthError::new(OAuthErrorKind::InvalidRequest, e.to_string())
            };
        }
        match e.status() {
            s if s.is_server_error() => {
                tracing::warn!(error = %e, "key manager request failed");
                OAuthError::new(
                    OAuthErrorKind::ServerError,
                    "the server could not complete the request; see the server log",
                )
            }
            StatusCode::PAYLOAD_TOO_LARGE => OAuthError::too_large(crate::form::MAX_FORM_BYTES),
            _ => OAuthError::invalid_request(e.to_string()),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        match self.kind {
            OAuthErrorKind::InvalidClient => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"apim-keymanager\""),
                );
            }
            OAuthErrorKind::InvalidToken => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Basic realm=\"apim-keymanager\", Bearer error=\"invalid_token\"",
                    ),
                );
            }
            _ => {}
        }
        res
    }
}
