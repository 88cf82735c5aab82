//! JSON Web Key Sets (RFC 7517): the published form of the signing keys, and [`JwksSource`],
//! where a validator gets them — given in-process, or fetched over HTTP from a remote Key Manager
//! (refetched when an unknown `kid` shows up, at most every [`JwksSource::MIN_REFRESH`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use apim_core::ApimError;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};

use crate::http_client::HttpClient;
use crate::jwt::JwtVerifier;

/// One public key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    /// `EC`, `RSA` or `OKP`.
    pub kty: String,
    /// `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm the key is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Curve (`P-256`, `Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x / OKP public key (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A key set, `{"keys": [...]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// Where a validator's verification keys come from.
#[derive(Clone)]
pub struct JwksSource {
    current: Arc<RwLock<Arc<JwtVerifier>>>,
    remote: Option<Arc<Remote>>,
}

struct Remote {
    url: http::Uri,
    client: HttpClient,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("remote", &self.remote.as_ref().map(|r| r.url.to_string()))
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// Shortest interval between two fetches of a remote JWKS.
    pub const MIN_REFRESH: Duration = Duration::from_secs(30);
    /// Largest accepted JWKS document.
    const MAX_BYTES: usize = 256 * 1024;

    /// Keys given directly (in-process Key Manager, tests).
    pub fn fixed(keys: &JwkSet) -> JwksSource {
        JwksSource {
            current: Arc::new(RwLock::new(Arc::new(JwtVerifier::from_jwks(keys)))),
            remote: None,
        }
    }

    /// Keys fetched from `url` (e.g. `https://km:9443/oauth2/jwks`). Fetches once now, so a
    /// wrong URL fails at start-up.
    pub async fn remote(url: &str) -> Result<JwksSource, ApimError> {
        let url: http::Uri = url
            .parse()
            .map_err(|e| ApimError::config("key_manager.url", format!("bad JWKS URL: {e}")))?;
        let client = crate::http_client::https_client();
        let src = JwksSource {
            current: Arc::new(RwLock::new(Arc::new(JwtVerifier::default()))),
            remote: Some(Arc::new(Remote {
                url,
                client,
                last_fetch: tokio::sync::Mutex::new(None),
            })),
        };
        src.refresh(true).await?;
        Ok(src)
    }

    /// The verifier in force.
    pub fn verifier(&self) -> Arc<JwtVerifier> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the keys (key rotation in-process).
    pub fn set(&self, keys: &JwkSet) {
        let v = Arc::new(JwtVerifier::from_jwks(keys));
        match self.current.write() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    /// Refetches a remote JWKS (no-op for fixed keys, and within [`Self::MIN_REFRESH`] of the last
    /// fetch unless `force`). Returns whether the keys were replaced.
    pub async fn refresh(&self, force: bool) -> Result<bool, ApimError> {
        let Some(remote) = &self.remote else {
            return Ok(false);
        };
        let mut last = remote.last_fetch.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < Self::MIN_REFRESH) {
            return Ok(false);
        }
        *last = Some(Instant::now());
        let unreachable = |e: String| ApimError::BackendUnavailable(format!("JWKS fetch: {e}"));
        let req = http::Request::get(remote.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| unreachable(e.to_string()))?;
        let res = tokio::time::timeout(Duration::from_secs(10), remote.client.request(req))
            .await
            .map_err(|_| unreachable("timeout".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(unreachable(format!("status {}", res.status())));
        }
        let body = Limited::new(res.into_body(), Self::MAX_BYTES)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| unreachable(format!("not a JWK set: {e}")))?;
        self.set(&set);
        Ok(true)
    }
}
