//! WebSocket (HTTP/1.1 upgrade) passthrough: the handshake goes through the whole stack (so it
//! is authenticated and throttled like any request); after the backend answers 101 both
//! upgraded connections are spliced together.

use http::{header, HeaderMap, Method};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::client::BackendConn;

/// Whether the request is a WebSocket handshake (RFC 6455 §4.1): `GET` with
/// `Connection: upgrade`, `Upgrade: websocket` (that protocol only, no other) and a
/// `Sec-WebSocket-Key`. Any other upgrade (`h2c`, ...) is not passed on.
pub(crate) fn is_websocket(method: &Method, h: &HeaderMap) -> bool {
    let mut upgrades = h.get_all(header::UPGRADE).iter();
    let websocket = match (upgrades.next(), upgrades.next()) {
        (Some(v), None) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    };
    websocket
        && method == Method::GET
        && h.contains_key(header::SEC_WEBSOCKET_KEY)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Whether the backend's `101` completes the client's handshake: `Upgrade: websocket` and
/// `Sec-WebSocket-Accept` = base64(SHA-1(key + the RFC 6455 GUID)) of the client's
/// `Sec-WebSocket-Key`.
pub(crate) fn accepts(request: &HeaderMap, response: &HeaderMap) -> bool {
    use base64::Engine as _;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let (Some(key), Some(accept)) = (
        request.get(header::SEC_WEBSOCKET_KEY),
        response.get(header::SEC_WEBSOCKET_ACCEPT),
    ) else {
        return false;
    };
    let protocol_ok = response
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes().trim_ascii());
    ctx.update(GUID);
    let expected = base64::engine::general_purpose::STANDARD.encode(ctx.finish());
    protocol_ok && accept.as_bytes().trim_ascii() == expected.as_bytes()
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn rfc6455_accept_value() {
        let mut req = HeaderMap::new();
        req.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        let mut res = HeaderMap::new();
        res.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        res.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        assert!(accepts(&req, &res));
        res.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        );
        assert!(!accepts(&req, &res));
        res.remove(header::SEC_WEBSOCKET_ACCEPT);
        assert!(!accepts(&req, &res));
    }

    #[test]
    fn only_websocket_handshakes_upgrade() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            m
        };
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-key", "k"),
        ];
        assert!(is_websocket(&Method::GET, &h(&ws)));
        assert!(!is_websocket(&Method::POST, &h(&ws)));
        for bad in [
            &[
                ("connection", "upgrade"),
                ("upgrade", "h2c"),
                ("sec-websocket-key", "k"),
            ][..],
            &[
                ("connection", "upgrade"),
                ("upgrade", "websocket, h2c"),
                ("sec-websocket-key", "k"),
            ],
            &[("connection", "upgrade"), ("upgrade", "websocket")],
            &[("upgrade", "websocket"), ("sec-websocket-key", "k")],
        ] {
            assert!(!is_websocket(&Method::GET, &h(bad)), "{bad:?}");
        }
    }
}
