//! The HTTP client the Key Manager's remote parts share (remote JWKS, introspection, user
//! checks): hyper-util's pooled client over http or https (rustls, the webpki roots and the
//! deployment's private CA, `internal.ca_file`: `apim_core::tls`), HTTP/1.1;
//! and [`RemoteEndpoint`], one Key Manager endpoint called with fixed credentials.

use std::time::Duration;

use apim_core::ApimError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

/// The client type.
pub(crate) type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A new client.
pub(crate) fn https_client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*apim_core::tls::internal_client_config()).clone())
        .https_or_http()
        .enable_http1()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}

/// Longest wait for a Key Manager's answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_ANSWER: usize = 64 << 10;

/// A Key Manager endpoint called with fixed credentials (`Authorization`, kept out of logs).
pub(crate) struct RemoteEndpoint {
    url: http::Uri,
    authorization: http::HeaderValue,
    client: HttpClient,
}

impl std::fmt::Debug for RemoteEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteEndpoint {
    /// `url` with `authorization`; a bad URL names `key_manager.url`.
    pub(crate) fn new(url: &str, mut authorization: http::HeaderValue) -> Result<Self, ApimError> {
        let url = url
            .parse()
            .map_err(|e| ApimError::config("key_manager.url", format!("bad URL: {e}")))?;
        authorization.set_sensitive(true);
        Ok(RemoteEndpoint {
            url,
            authorization,
            client: https_client(),
        })
    }

    /// `Authorization: Bearer <internal token>`.
    pub(crate) fn internal(url: &str, internal_token: &str) -> Result<Self, ApimError> {
        let authorization = http::HeaderValue::try_from(format!("Bearer {internal_token}"))
            .map_err(|_| ApimError::config("internal.token", "not a header value"))?;
        Self::new(url, authorization)
    }

    /// POSTs `body` as `content_type`; the status and up to 64 KiB of the answer, or why
    /// there is none (unreachable, timed out, unreadable).
    pub(crate) async fn post(
        &self,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, Bytes), String> {
        let (status, _, bytes) = self.post_full(content_type, body).await?;
        Ok((status, bytes))
    }

    /// [`RemoteEndpoint::post`] with the answer's headers.
    pub(crate) async fn post_full(
        &self,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), String> {
        let req = http::Request::post(self.url.clone())
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::from(body))
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = res.status();
        let (parts, body) = res.into_parts();
        let bytes = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, parts.headers, bytes))
    }
}
