//! What gateways of a distributed deployment ask the Key Manager with the deployment's internal
//! token (`Authorization: Bearer …`, compared in constant time; with none configured, refused):
//!
//! - `POST /internal/keymanager/v1/users/verify` ([`USER_VERIFY_PATH`]): user credentials, for
//!   gateways without a database of their own — Basic auth on APIs, through
//!   [`HttpUserVerifier`](crate::validator::HttpUserVerifier). The answer is the user — name,
//!   roles, e-mail, never a password hash — or 401 for wrong credentials. Verified credentials
//!   are remembered as [`KeyManager::verify_user`] does, so a gateway asking per request costs
//!   one PBKDF2 per password change, not per request.
//! - `POST /oauth2/introspect` (RFC 7662) also takes the internal token instead of client
//!   credentials, so gateways validate opaque tokens without a client of their own
//!   ([`HttpIntrospector::with_internal_token`](crate::validator::HttpIntrospector::with_internal_token)).

use apim_core::model::User;
use apim_core::ApimError;
use axum::extract::{Request, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::KeyManager;

/// The path of the user check.
pub const USER_VERIFY_PATH: &str = "/internal/keymanager/v1/users/verify";

/// Largest request body accepted.
const MAX_BODY: usize = 8 << 10;

/// What a gateway asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// User name.
    pub username: String,
    /// Password as presented to the gateway.
    pub password: String,
    /// The address of the gateway's client, so failures count against it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<std::net::IpAddr>,
}

/// Whether the caller presented the internal token: `Ok`, else why not.
pub(crate) fn internal_caller(km: &KeyManager, headers: &http::HeaderMap) -> Result<(), ApimError> {
    apim_core::auth::check_internal_token(headers, km.settings().internal_token.as_deref())
}

/// The user check.
pub(crate) async fn verify_user(
    State(km): State<KeyManager>,
    req: Request,
) -> Result<Json<User>, ApimError> {
    internal_caller(&km, req.headers())?;
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApimError::PayloadTooLarge(format!("the body exceeds {MAX_BODY} bytes")))?;
    let ask: VerifyRequest = serde_json::from_slice(&body).map_err(|e| {
        ApimError::BadRequest(format!(
            "the body must be {{\"username\": ..., \"password\": ...}}: {e}"
        ))
    })?;
    km.verify_user_from(&ask.username, &ask.password, ask.client_ip)
        .await?
        .map(Json)
        .ok_or_else(|| ApimError::InvalidCredentials("invalid user credentials".into()))
}
