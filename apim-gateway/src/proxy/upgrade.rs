//! WebSocket (HTTP/1.1 upgrade) passthrough: the handshake goes through the whole stack (so it
//! is authenticated and throttled like any request); after the backend answers 101 both
//! upgraded connections are spliced together.

use http::{header, HeaderMap};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

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

/// Copies bytes both ways between the upgraded client and backend connections until either
/// side closes.
pub(crate) fn splice(client: OnUpgrade, backend: OnUpgrade) {
    tokio::spawn(async move {
        let (c, b) = tokio::join!(client, backend);
        match (c, b) {
            (Ok(c), Ok(b)) => {
                let (mut c, mut b) = (TokioIo::new(c), TokioIo::new(b));
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    tracing::debug!(error = %e, "upgraded connection ended");
                }
            }
            (c, b) => tracing::debug!(client = c.is_ok(), backend = b.is_ok(), "upgrade failed"),
        }
    });
}
