//! Artifact sync (DESIGN §6): start from the control plane's snapshot, then follow the Traffic
//! Manager's event stream from the snapshot's sequence, so nothing is missed or applied twice.
//!
//! - Snapshot: `GET {control_plane}/internal/data/v1/snapshot?environments=<labels>` →
//!   [`GatewayData`] → [`ArtifactStore::load`]; the gateway is ready after the first one.
//! - Stream: `GET {tm}/internal/events/v1/stream?after=<seq>`, NDJSON: one
//!   [`apim_core::event::Event`] per line, or a heartbeat `{"type":"HEARTBEAT","seq":N}`.
//!   The events of each received chunk are applied with one [`ArtifactStore::apply_batch`].
//! - Both requests carry `Authorization: Bearer <internal token>`.
//! - On a broken stream, silence longer than [`STREAM_IDLE`], or an error, the next Traffic
//!   Manager URL is tried after a back-off (250 ms doubling to 10 s), resuming after the last
//!   applied sequence. A `409` (position no longer retained) triggers a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::{ArtifactStore, GatewayData};
use apim_core::config::Config;
use apim_core::event::Event;
use apim_core::ApimError;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::health::Readiness;

/// A stream silent (no event, no heartbeat) for this long is considered dead.
pub const STREAM_IDLE: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Largest accepted NDJSON line (a deployment event carries a whole API definition).
const MAX_LINE: usize = 8 << 20;

type SyncClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why following the stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The stream no longer has events after our position: take a new snapshot.
    #[error("the event stream no longer retains events after seq {0}")]
    PositionGone(u64),
    /// Transport, status or format problem; retry.
    #[error("{0}")]
    Failed(String),
}

#[derive(serde::Deserialize)]
struct Heartbeat {
    #[serde(rename = "type")]
    kind: String,
}

/// Keeps an [`ArtifactStore`] in sync with the control plane and the Traffic Manager.
pub struct Syncer {
    client: SyncClient,
    control_plane: String,
    traffic_managers: Vec<String>,
    environments: String,
    bearer: HeaderValue,
    artifacts: Arc<dyn ArtifactStore>,
    ready: Arc<Readiness>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("control_plane", &self.control_plane)
            .field("traffic_managers", &self.traffic_managers)
            .finish_non_exhaustive()
    }
}

fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Syncer {
    /// A syncer for `config.gateway` (URLs, environments) with the internal token from
    /// `config.internal.token`, else `<data_dir>/internal.token` (as the control plane writes it).
    pub fn from_config(
        config: &Config,
        artifacts: Arc<dyn ArtifactStore>,
        ready: Arc<Readiness>,
    ) -> Result<Self, ApimError> {
        let token = match &config.internal.token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(config.data_dir.join("internal.token"))
                .map(|t| t.trim().to_owned())
                .map_err(|_| {
                    ApimError::config(
                        "internal.token",
                        "set it (APIM_INTERNAL_TOKEN) to the control plane's internal token",
                    )
                })?,
        };
        Self::new(
            &config.gateway.control_plane_url,
            config.gateway.traffic_manager_urls.clone(),
            &config.gateway.environments,
            &token,
            artifacts,
            ready,
        )
    }

    /// A syncer from explicit URLs, environments and internal token.
    pub fn new(
        control_plane: &str,
        traffic_managers: Vec<String>,
        environments: &[String],
        token: &str,
        artifacts: Arc<dyn ArtifactStore>,
        ready: Arc<Readiness>,
    ) -> Result<Self, ApimError> {
        let bearer = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| ApimError::config("internal.token", "must be a visible ASCII string"))?;
        if traffic_managers.is_empty() {
            return Err(ApimError::config(
                "gateway.traffic_manager_urls",
                "must name at least one Traffic Manager",
            ));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        // the deployment's private CA too (`internal.ca_file`)
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*apim_core::tls::internal_client_config()).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Syncer {
            client: Client::builder(TokioExecutor::new()).build(https),
            control_plane: control_plane.trim_end_matches('/').to_owned(),
            traffic_managers: traffic_managers
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            environments: encode_query(&environments.join(",")),
            bearer,
            artifacts,
            ready,
        })
    }

    async fn get(&self, url: &str) -> Result<http::Response<hyper::body::Incoming>, SyncError> {
        let req = Request::get(url)
            .header(header::AUTHORIZATION, self.bearer.clone())
            .header(header::ACCEPT, "application/json, application/x-ndjson")
            .body(Empty::new())
            .map_err(|e| SyncError::Failed(format!("bad URL {url}: {e}")))?;
        self.client
            .request(req)
            .await
            .map_err(|e| SyncError::Failed(format!("GET {url}: {e}")))
    }

    /// Fetches and loads the snapshot; marks the gateway ready.
    pub async fn snapshot(&self) -> Result<(), SyncError> {
        let url = format!(
            "{}/internal/data/v1/snapshot?environments={}",
            self.control_plane, self.environments
        );
        let res = tokio::time::timeout(Duration::from_secs(30), async {
            let res = self.get(&url).await?;
            let status = res.status();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| SyncError::Failed(format!("snapshot body: {e}")))?
                .to_bytes();
            Ok::<_, SyncError>((status, body))
        })
        .await
        .map_err(|_| SyncError::Failed("snapshot timed out".into()))??;
        let (status, body) = res;
        if !status.is_success() {
            return Err(SyncError::Failed(format!(
                "snapshot: control plane answered {status}"
            )));
        }
        let data: GatewayData = serde_json::from_slice(&body)
            .map_err(|e| SyncError::Failed(format!("snapshot is not valid GatewayData: {e}")))?;
        let seq = data.seq;
        self.artifacts.load(data);
        self.ready.set(true);
        tracing::info!(%seq, apis = self.artifacts.snapshot().api_count(), "artifacts loaded from snapshot");
        Ok(())
    }

    /// Follows one Traffic Manager's stream from the current sequence until it ends or fails.
    pub async fn follow(&self, tm: &str) -> Result<(), SyncError> {
        let after = self.artifacts.seq().0;
        let url = format!("{tm}/internal/events/v1/stream?after={after}");
        let res = self.get(&url).await?;
        match res.status() {
            StatusCode::OK => {}
            StatusCode::CONFLICT => return Err(SyncError::PositionGone(after)),
            s => return Err(SyncError::Failed(format!("event stream {tm}: status {s}"))),
        }
        tracing::info!(%tm, after, "following the event stream");
        let mut body = res.into_body();
        let mut buf = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(STREAM_IDLE, body.frame()).await {
                Err(_) => return Err(SyncError::Failed(format!("event stream {tm} went silent"))),
                Ok(None) => return Err(SyncError::Failed(format!("event stream {tm} ended"))),
                Ok(Some(Err(e))) => {
                    return Err(SyncError::Failed(format!("event stream {tm}: {e}")))
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            let mut events = Vec::new();
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(nl + 1);
                parse_line(&line[..nl], &mut events);
            }
            if buf.len() > MAX_LINE {
                return Err(SyncError::Failed(format!(
                    "event stream {tm}: line over {MAX_LINE} bytes"
                )));
            }
            if !events.is_empty() {
                self.artifacts.apply_batch(&events);
                tracing::debug!(count = events.len(), seq = %self.artifacts.seq(), "events applied");
            }
        }
    }

    /// Runs forever: snapshot (retried until it succeeds), then the stream, failing over
    /// between Traffic Managers and re-snapshotting when the stream position is gone.
    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.snapshot().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "snapshot failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        backoff = BACKOFF_MIN;
        let mut i = 0;
        loop {
            let tm = &self.traffic_managers[i % self.traffic_managers.len()];
            let before = self.artifacts.seq();
            match self.follow(tm).await {
                Ok(()) => {}
                Err(SyncError::PositionGone(seq)) => {
                    tracing::warn!(seq, "event position gone: re-fetching the snapshot");
                    if let Err(e) = self.snapshot().await {
                        tracing::warn!(error = %e, "snapshot failed");
                    } else {
                        backoff = BACKOFF_MIN;
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "event stream interrupted")
                }
            }
            if self.artifacts.seq() > before {
                backoff = BACKOFF_MIN;
            }
            i += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

fn parse_line(line: &[u8], events: &mut Vec<Event>) {
    let line = line.trim_ascii();
    if line.is_empty() {
        return;
    }
    match serde_json::from_slice::<Event>(line) {
        Ok(e) => events.push(e),
        Err(e) => match serde_json::from_slice::<Heartbeat>(line) {
            Ok(h) if h.kind == "HEARTBEAT" => {}
            _ => tracing::warn!(error = %e, "skipping an event this gateway cannot read"),
        },
    }
}

#[cfg(test)]
mod tests;
