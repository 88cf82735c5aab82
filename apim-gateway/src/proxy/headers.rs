//! Header rewriting between client and backend (RFC 9110 §7.6.1 hop-by-hop headers,
//! `X-Forwarded-*`), and what must never reach the backend (`Authorization`, `apikey`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether a field name, as received (any case), is hop-by-hop: the fixed list above, and
/// `Upgrade`. Runs for every field of every backend response, so it looks at the length
/// first: most names are ruled out without comparing a byte.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    let candidates: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"trailer", b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        16 => &[b"proxy-connection"],
        17 => &[b"transfer-encoding"],
        18 => &[b"proxy-authenticate"],
        19 => &[b"proxy-authorization"],
        _ => return false,
    };
    candidates.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// `x-forwarded-for`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `apikey` (the WSO2 API key header; a credential, so not forwarded).
pub static APIKEY: HeaderName = HeaderName::from_static("apikey");

/// Removes hop-by-hop headers, including those the `Connection` header names. With
/// `upgrade`, `Connection: upgrade` and `Upgrade` are kept (WebSocket handshake).
pub fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    // one pass over the (few) names present: which hop-by-hop headers are there? Removing
    // only those, and the names `Connection` lists without allocating them, keeps the usual
    // case (`Connection: keep-alive` from the backend) cheap.
    let mut present = 0u16;
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == k) {
            present |= 1 << i;
        } else if k == header::UPGRADE {
            present |= 1 << HOP_BY_HOP.len();
        }
    }
    if present & 1 != 0 {
        // HOP_BY_HOP[0] is Connection; a cloned value shares the request's bytes
        let mut values = h.get_all(header::CONNECTION).iter();
        let first = values.next().cloned();
        let more: Vec<HeaderValue> = values.cloned().collect(); // no allocation when empty
        for name in first
            .iter()
            .chain(&more)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|list| list.split(',').map(str::trim))
        {
            let skip = name.is_empty()
                || name.eq_ignore_ascii_case("close")
                || name.eq_ignore_ascii_case("keep-alive")
                || name.eq_ignore_ascii_case("upgrade");
            if !skip {
                h.remove(name);
            }
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if present & (1 << HOP_BY_HOP.len()) != 0 {
        h.remove(header::UPGRADE);
    }
}

/// Prepares client request headers for the backend: hop-by-hop and credentials removed,
/// `Host` dropped (the client sets the backend's), `X-Forwarded-For/-Proto/-Host` added.
pub fn to_backend(
    h: &mut HeaderMap,
    client_ip: Option<HeaderValue>,
    proto: &'static str,
    original_host: Option<HeaderValue>,
    upgrade: bool,
) {
    strip_hop_by_hop(h, upgrade);
    h.remove(header::AUTHORIZATION);
    h.remove(&APIKEY);
    h.remove(header::HOST);
    if let Some(ip) = client_ip {
        let v = match h.get(&X_FORWARDED_FOR) {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + ip.len());
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(ip.as_bytes());
                HeaderValue::from_bytes(&v).ok()
            }
            None => Some(ip),
        };
        if let Some(v) = v {
            h.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(host) = original_host {
        h.insert(X_FORWARDED_HOST.clone(), host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_for_backend() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert(&APIKEY, HeaderValue::from_static("k"));
        h.insert(header::HOST, HeaderValue::from_static("gw.example.com"));
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.1.1.1"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        to_backend(
            &mut h,
            Some("127.0.0.1".parse().unwrap()),
            "https",
            Some(HeaderValue::from_static("gw.example.com")),
            false,
        );
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te",
            "upgrade",
            "authorization",
            "apikey",
            "host",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h[&X_FORWARDED_FOR], "10.1.1.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "gw.example.com");
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn hop_by_hop_names_in_any_case_and_nothing_else() {
        for name in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
            let lower = name.as_str();
            assert!(is_hop_by_hop(lower.as_bytes()), "{lower}");
            assert!(is_hop_by_hop(lower.to_uppercase().as_bytes()), "{lower}");
            // one byte more or less, or a neighbouring letter, is another field
            assert!(!is_hop_by_hop(&lower.as_bytes()[1..]), "{lower}");
            assert!(!is_hop_by_hop(format!("{lower}s").as_bytes()), "{lower}");
            let mut other = lower.as_bytes().to_vec();
            other[0] += 1;
            assert!(!is_hop_by_hop(&other), "{lower}");
        }
        for name in [
            "content-length",
            "content-type",
            "date",
            "server",
            "tee",
            "",
            "trailers",
        ] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed() {
        for name in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            h.insert("x-keep", HeaderValue::from_static("yes"));
            strip_hop_by_hop(&mut h, false);
            assert!(!h.contains_key(name), "{name}");
            assert_eq!(h.len(), 1, "{name}");
        }
    }

    #[test]
    fn keeps_upgrade_for_websocket() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }
}
