//! [`HttpUserVerifier`]: user credentials checked by the Key Manager over HTTP, for a gateway
//! without a database of its own (Basic auth on APIs in a distributed deployment). It asks
//! on every call — a changed password or removed user applies to the next request — and the
//! Key Manager remembers verified credentials, so this costs a round trip, not a PBKDF2.

use apim_core::model::User;
use apim_core::ApimError;

use super::UserVerifier;
use crate::http_client::RemoteEndpoint;
use crate::internal::{VerifyRequest, USER_VERIFY_PATH};

/// Asks a Key Manager's [`USER_VERIFY_PATH`] with the deployment's internal token.
#[derive(Debug)]
pub struct HttpUserVerifier {
    endpoint: RemoteEndpoint,
}

impl HttpUserVerifier {
    /// Asks the Key Manager at `base_url` (e.g. `https://km:9443`) with `internal_token`.
    pub fn new(base_url: &str, internal_token: &str) -> Result<Self, ApimError> {
        let url = format!("{}{USER_VERIFY_PATH}", base_url.trim_end_matches('/'));
        Ok(HttpUserVerifier {
            endpoint: RemoteEndpoint::internal(&url, internal_token)?,
        })
    }
}

#[async_trait::async_trait]
impl UserVerifier for HttpUserVerifier {
    async fn verify(&self, username: &str, password: &str) -> Result<Option<User>, ApimError> {
        self.verify_from(username, password, None).await
    }

    async fn verify_from(
        &self,
        username: &str,
        password: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<Option<User>, ApimError> {
        let fail = |e: String| ApimError::BackendUnavailable(format!("user check: {e}"));
        let body = serde_json::to_vec(&VerifyRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            client_ip: from,
        })
        .map_err(|e| fail(e.to_string()))?;
        let (status, headers, bytes) = self
            .endpoint
            .post_full("application/json", body)
            .await
            .map_err(fail)?;
        let retry_after = || {
            let secs = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            std::time::Duration::from_secs(secs.clamp(1, 3600))
        };
        let code = || {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["code"].as_u64())
        };
        match status.as_u16() {
            200 => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| fail(format!("not a user: {e}"))),
            // wrong credentials (900901); a refused internal token is the gateway's fault, not
            // the caller's, and falls through to an error
            401 if code() == Some(900901) => Ok(None),
            // the Key Manager's lock-out or full hashing pool, passed on to the client
            429 => Err(ApimError::TooManyAttempts {
                retry_after: retry_after(),
            }),
            503 if code() == Some(503) => Err(ApimError::Overloaded {
                retry_after: retry_after(),
            }),
            s => Err(fail(format!(
                "status {s}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))),
        }
    }
}
