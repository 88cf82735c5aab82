//! WebSocket (HTTP/1.1 upgrade) passthrough: the handshake goes through the whole stack (so it
//! is authenticated and throttled like any request); after the backend answers 101 both
//! upgraded connections are spliced together.

use http::{header, HeaderMap};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::client::BackendConn;

/// Whether the request asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
pub(crate) fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Once the client's connection is upgraded (after the `101` went out), copies bytes both
/// ways between it and the backend's until either side closes.
pub(crate) fn splice(client: OnUpgrade, backend: BackendConn) {
    tokio::spawn(async move {
        match client.await {
            Ok(c) => {
                if let Err(e) = super::client::splice(TokioIo::new(c), backend).await {
                    tracing::debug!(error = %e, "upgraded connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "client upgrade failed"),
        }
    });
}
