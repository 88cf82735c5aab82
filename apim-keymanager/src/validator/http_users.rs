//! [`HttpUserVerifier`]: user credentials checked by the Key Manager over HTTP, for a gateway
//! without a database of its own (Basic auth on APIs in a distributed deployment). It asks
//! on every call — a changed password or removed user applies to the next request — and the
//! Key Manager remembers verified credentials, so this costs a round trip, not a PBKDF2.

use std::time::Duration;

use apim_core::model::User;
use apim_core::ApimError;
use http_body_util::{BodyExt, Full, Limited};

use super::UserVerifier;
use crate::http_client::HttpClient;
use crate::internal::{VerifyRequest, USER_VERIFY_PATH};

/// Asks a Key Manager's [`USER_VERIFY_PATH`] with the deployment's internal token.
pub struct HttpUserVerifier {
    url: http::Uri,
    authorization: http::HeaderValue,
    client: HttpClient,
}

impl std::fmt::Debug for HttpUserVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUserVerifier")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpUserVerifier {
    /// Asks the Key Manager at `base_url` (e.g. `https://km:9443`) with `internal_token`.
    pub fn new(base_url: &str, internal_token: &str) -> Result<Self, ApimError> {
        let url = format!("{}{USER_VERIFY_PATH}", base_url.trim_end_matches('/'))
            .parse()
            .map_err(|e| ApimError::config("key_manager.url", format!("bad URL: {e}")))?;
        let mut authorization = http::HeaderValue::try_from(format!("Bearer {internal_token}"))
            .map_err(|_| ApimError::config("internal.token", "not a header value"))?;
        authorization.set_sensitive(true);
        let client = crate::http_client::https_client();
        Ok(HttpUserVerifier {
            url,
            authorization,
            client,
        })
    }
}

#[async_trait::async_trait]
impl UserVerifier for HttpUserVerifier {
    async fn verify(&self, username: &str, password: &str) -> Result<Option<User>, ApimError> {
        let fail = |e: String| ApimError::BackendUnavailable(format!("user check: {e}"));
        let body = serde_json::to_vec(&VerifyRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        })
        .map_err(|e| fail(e.to_string()))?;
        let req = http::Request::post(self.url.clone())
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::from(body))
            .map_err(|e| fail(e.to_string()))?;
        let res = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .map_err(|_| fail("timeout".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let status = res.status();
        let bytes = Limited::new(res.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
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
            s => Err(fail(format!(
                "status {s}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))),
        }
    }
}
