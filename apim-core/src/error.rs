//! [`ApimError`]: the one error type of the core, and its ONE mapping to an HTTP response.
//!
//! Every gateway and control-plane rejection ends up here. The numeric codes are WSO2's
//! (DESIGN §3) so clients written against WSO2 API-M keep working.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// Which throttling level denied a request (DESIGN §3 / §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ThrottleLevel {
    /// Generic / hard limit (900800).
    Generic,
    /// API- or resource-level advanced policy (900802).
    Resource,
    /// Application policy (900803).
    Application,
    /// Subscription policy quota (900804).
    Subscription,
    /// Custom (global key template) policy (900806).
    Custom,
    /// Subscription burst control (900807).
    Burst,
}

impl ThrottleLevel {
    /// WSO2 error code for this level.
    pub const fn code(self) -> u32 {
        match self {
            ThrottleLevel::Generic => 900800,
            ThrottleLevel::Resource => 900802,
            ThrottleLevel::Application => 900803,
            ThrottleLevel::Subscription => 900804,
            ThrottleLevel::Custom => 900806,
            ThrottleLevel::Burst => 900807,
        }
    }

    const fn message(self) -> &'static str {
        match self {
            ThrottleLevel::Generic => "Message throttled out",
            ThrottleLevel::Resource => "Message throttled out: API or resource limit reached",
            ThrottleLevel::Application => "Message throttled out: application limit reached",
            ThrottleLevel::Subscription => "Message throttled out: subscription quota reached",
            ThrottleLevel::Custom => "Message throttled out: custom policy limit reached",
            ThrottleLevel::Burst => "Message throttled out: burst control limit reached",
        }
    }
}

/// Errors of the core and of every component that builds on it.
///
/// `Display` is safe to show a client for 4xx variants; 5xx variants are rendered with a generic
/// body and the detail goes to the log only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApimError {
    /// 401 900901: bad signature, expired, revoked or unknown credential.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),
    /// 401 900902: no credential in the request.
    #[error("missing credentials: {0}")]
    MissingCredentials(String),
    /// 404 900906: no API or resource matches.
    #[error("no matching resource: {0}")]
    NoMatchingResource(String),
    /// 403 900908: application not subscribed or subscription not active.
    #[error("resource forbidden: {0}")]
    ResourceForbidden(String),
    /// 403 900910: the token lacks a scope the resource needs.
    #[error("scope not allowed: {0}")]
    ScopeNotAllowed(String),
    /// 401 900907: API or subscription blocked.
    #[error("blocked: {0}")]
    SubscriptionBlocked(String),
    /// 429: throttled at the given level, retry after the given time.
    #[error("throttled at {level:?} level")]
    Throttled {
        /// The level that denied.
        level: ThrottleLevel,
        /// How long until a retry can succeed.
        retry_after: Duration,
    },
    /// 403 900805: blocked by a block condition.
    #[error("blocked by a block condition: {0}")]
    BlockedByCondition(String),
    /// 503 700700: the API's lifecycle state is BLOCKED.
    #[error("API blocked: {0}")]
    ApiBlocked(String),
    /// 503 101503: the backend refused or dropped the connection.
    #[error("backend connection failed: {0}")]
    BackendUnavailable(String),
    /// 504 101504: the backend did not answer in time.
    #[error("backend timeout: {0}")]
    BackendTimeout(String),
    /// 504 101508: connecting to the backend timed out.
    #[error("backend connect timeout: {0}")]
    BackendConnectTimeout(String),

    /// 400: a field of the input is invalid.
    #[error("invalid value for '{field}': {message}")]
    Validation {
        /// Dotted path of the offending field, e.g. `endpointConfig.production_endpoints.url`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 400: the request as a whole is malformed (not a single field).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401 on the management APIs (no or bad user credentials).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// 403 on the management APIs (authenticated but not allowed).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404 on the management APIs.
    #[error("{0} not found")]
    NotFound(String),
    /// 409: duplicate or state conflict (e.g. an illegal lifecycle transition).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 413: body over the limit.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// 415: the body's `Content-Type` is not the one the endpoint takes (names the expected type).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 408: the client did not send its request (body) in time.
    #[error("request timeout: {0}")]
    ClientTimeout(String),
    /// Invalid configuration; used at start-up, names the field.
    #[error("invalid configuration: {field}: {message}")]
    Config {
        /// The config key, e.g. `gateway.http_port` or `APIM_GATEWAY_HTTP_PORT`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 429 with `Retry-After`: too many failed password checks for the account or the client
    /// address; refused without checking the password.
    #[error("too many failed attempts; retry after {} s", retry_after_secs(*retry_after))]
    TooManyAttempts {
        /// How long the lock-out lasts.
        retry_after: Duration,
    },
    /// 503 with `Retry-After`: the server is at its limit for this kind of work (password
    /// hashing); nothing was queued.
    #[error("the server is busy; retry after {} s", retry_after_secs(*retry_after))]
    Overloaded {
        /// When to try again.
        retry_after: Duration,
    },
    /// 500: storage failure. The detail is logged, never sent.
    #[error("storage error: {0}")]
    Storage(String),
    /// 500: any other internal failure. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response: `{"code", "message", "description"}`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// WSO2 numeric code (or the HTTP status for control-plane errors).
    pub code: u32,
    /// Short, stable message.
    pub message: String,
    /// Human-readable detail; generic for 5xx.
    pub description: String,
}

impl ApimError {
    /// Shorthand for a [`ApimError::Validation`].
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApimError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for a [`ApimError::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApimError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        use ApimError::*;
        match self {
            InvalidCredentials(_) | MissingCredentials(_) | SubscriptionBlocked(_) => {
                StatusCode::UNAUTHORIZED
            }
            Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            NoMatchingResource(_) | NotFound(_) => StatusCode::NOT_FOUND,
            ResourceForbidden(_) | ScopeNotAllowed(_) | BlockedByCondition(_) | Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            Throttled { .. } | TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiBlocked(_) | BackendUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            BackendTimeout(_) | BackendConnectTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Validation { .. } | BadRequest(_) | Config { .. } => StatusCode::BAD_REQUEST,
            Conflict(_) => StatusCode::CONFLICT,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Storage(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// WSO2 error code of this error (the HTTP status for control-plane errors).
    pub fn code(&self) -> u32 {
        use ApimError::*;
        match self {
            InvalidCredentials(_) => 900901,
            MissingCredentials(_) => 900902,
            NoMatchingResource(_) => 900906,
            ResourceForbidden(_) => 900908,
            ScopeNotAllowed(_) => 900910,
            SubscriptionBlocked(_) => 900907,
            Throttled { level, .. } => level.code(),
            BlockedByCondition(_) => 900805,
            ApiBlocked(_) => 700700,
            BackendUnavailable(_) => 101503,
            BackendTimeout(_) => 101504,
            BackendConnectTimeout(_) => 101508,
            other => u32::from(other.status().as_u16()),
        }
    }

    fn message(&self) -> &'static str {
        use ApimError::*;
        match self {
            InvalidCredentials(_) => "Invalid Credentials",
            MissingCredentials(_) => "Missing Credentials",
            NoMatchingResource(_) => "No matching resource found for given API Request",
            ResourceForbidden(_) => "Resource forbidden",
            ScopeNotAllowed(_) => {
                "The access token does not allow you to access the requested resource"
            }
            SubscriptionBlocked(_) => "The requested API is temporarily blocked",
            Throttled { level, .. } => level.message(),
            BlockedByCondition(_) => "Message blocked",
            ApiBlocked(_) => "API blocked",
            BackendUnavailable(_) => "Service unavailable",
            BackendTimeout(_) => "Gateway timeout",
            BackendConnectTimeout(_) => "Gateway timeout",
            Validation { .. } => "Bad Request",
            BadRequest(_) => "Bad Request",
            Config { .. } => "Invalid configuration",
            Unauthenticated(_) => "Unauthenticated",
            Forbidden(_) => "Forbidden",
            NotFound(_) => "Not Found",
            Conflict(_) => "Conflict",
            PayloadTooLarge(_) => "Payload Too Large",
            UnsupportedMediaType(_) => "Unsupported Media Type",
            TooManyAttempts { .. } => "Too Many Requests",
            Overloaded { .. } => "Service Unavailable",
            ClientTimeout(_) => "Request Timeout",
            Storage(_) | Internal(_) => "Internal Server Error",
        }
    }

    /// The error body a client sees. 5xx bodies never carry internal detail.
    pub fn body(&self) -> ErrorBody {
        let status = self.status();
        let description = match self {
            ApimError::Storage(_) | ApimError::Internal(_) => {
                "The server could not complete the request; see the server log".to_owned()
            }
            ApimError::BackendUnavailable(_)
            | ApimError::BackendTimeout(_)
            | ApimError::BackendConnectTimeout(_) => {
                "The backend service could not be reached".to_owned()
            }
            ApimError::Throttled { retry_after, .. } => format!(
                "You have exceeded your quota; retry after {} s",
                retry_after_secs(*retry_after)
            ),
            ApimError::Overloaded { .. } => self.to_string(),
            other if status.is_server_error() => other.message().to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            code: self.code(),
            message: self.message().to_owned(),
            description,
        }
    }

    /// The ONE mapping of an error to an HTTP response: status, JSON body, `Retry-After` for
    /// throttling, `WWW-Authenticate` for 401. Server errors are logged here with their detail.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, code = self.code(), "request failed");
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = Response::new(B::from(Bytes::from(body)));
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            ApimError::Throttled { retry_after, .. }
            | ApimError::TooManyAttempts { retry_after }
            | ApimError::Overloaded { retry_after } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*retry_after)),
                );
            }
            ApimError::InvalidCredentials(_) | ApimError::MissingCredentials(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"apim\""),
                );
            }
            ApimError::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"apim\", Bearer realm=\"apim\""),
                );
            }
            _ => {}
        }
        res
    }
}

/// `Retry-After` in whole seconds, rounded up so a client that waits that long succeeds.
fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 || secs == 0 {
        secs + 1
    } else {
        secs
    }
}

impl axum_core::response::IntoResponse for ApimError {
    fn into_response(self) -> axum_core::response::Response {
        self.to_response()
    }
}

impl From<sqlx::Error> for ApimError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return ApimError::Conflict(
                    "a resource with the same identity already exists".into(),
                );
            }
        }
        ApimError::Storage(e.to_string())
    }
}

impl From<serde_json::Error> for ApimError {
    fn from(e: serde_json::Error) -> Self {
        ApimError::Internal(format!("json: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(e: ApimError) -> (StatusCode, http::HeaderMap, ErrorBody) {
        let res: Response<Bytes> = e.to_response();
        let (p, b) = res.into_parts();
        (p.status, p.headers, serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn code_table_matches_design() {
        let cases: Vec<(ApimError, u16, u32)> = vec![
            (ApimError::InvalidCredentials("x".into()), 401, 900901),
            (ApimError::MissingCredentials("x".into()), 401, 900902),
            (ApimError::NoMatchingResource("x".into()), 404, 900906),
            (ApimError::ResourceForbidden("x".into()), 403, 900908),
            (ApimError::ScopeNotAllowed("x".into()), 403, 900910),
            (ApimError::SubscriptionBlocked("x".into()), 401, 900907),
            (ApimError::BlockedByCondition("x".into()), 403, 900805),
            (ApimError::ApiBlocked("x".into()), 503, 700700),
            (ApimError::BackendUnavailable("x".into()), 503, 101503),
            (ApimError::BackendTimeout("x".into()), 504, 101504),
            (ApimError::BackendConnectTimeout("x".into()), 504, 101508),
        ];
        for (e, status, code) in cases {
            let (s, _, body) = parts(e);
            assert_eq!((s.as_u16(), body.code), (status, code));
        }
        for (level, code) in [
            (ThrottleLevel::Generic, 900800),
            (ThrottleLevel::Resource, 900802),
            (ThrottleLevel::Application, 900803),
            (ThrottleLevel::Subscription, 900804),
            (ThrottleLevel::Custom, 900806),
            (ThrottleLevel::Burst, 900807),
        ] {
            let (s, h, body) = parts(ApimError::Throttled {
                level,
                retry_after: Duration::from_millis(1500),
            });
            assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(body.code, code);
            assert_eq!(h[header::RETRY_AFTER], "2");
        }
    }

    #[test]
    fn server_errors_hide_detail() {
        let (s, _, body) = parts(ApimError::Storage("password=hunter2 in table x".into()));
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.description.contains("hunter2"));
        let (_, _, body) = parts(ApimError::BackendUnavailable(
            "10.0.0.7:8080 refused".into(),
        ));
        assert!(!body.description.contains("10.0.0.7"));
    }

    #[test]
    fn validation_names_the_field() {
        let (s, h, body) = parts(ApimError::validation("context", "must start with '/'"));
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert!(body.description.contains("context"), "{body:?}");
    }
}
