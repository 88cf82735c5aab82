//! Header rewriting between client and backend (RFC 9110 §7.6.1 hop-by-hop headers,
//! `X-Forwarded-*`), and what must never reach the backend (`Authorization`, `apikey`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::X_JWT_ASSERTION;

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
/// The items of a comma-separated field value (RFC 9110 §5.6.1), trimmed; empty items kept.
pub(crate) fn list_items(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

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

/// Whether a client's field (its name in lower case, as [`HeaderName`] keeps it) claims
/// something only the gateway may say, so that the backend must not see it from a client:
/// what proxies and frameworks read as the client's address, host or original URL
/// (`Forwarded`, `X-Real-IP`, `X-Forwarded-Port` / `-Prefix`, `X-Original-URL`,
/// `X-Rewrite-URL`), the backend JWT (`X-JWT-Assertion`: the gateway's own or none), and the
/// underscore spellings of those and of every other name the gateway sets or removes
/// (`X_Forwarded_For`, `X_JWT_Assertion`, `Content_Length`...), which CGI-style backends
/// read as the same variable. Looks at the length first, as [`is_hop_by_hop`] does; a name
/// without `_` is never compared with the underscore list.
pub(crate) fn gateway_owned(name: &[u8]) -> bool {
    let exact: &[&[u8]] = match name.len() {
        9 => &[b"forwarded", b"x-real-ip"],
        13 => &[b"x-rewrite-url"],
        14 => &[b"x-original-url"],
        15 => &[b"x-jwt-assertion"],
        16 => &[b"x-forwarded-port"],
        18 => &[b"x-forwarded-prefix"],
        _ => &[],
    };
    if exact.contains(&name) {
        return true;
    }
    if !name.contains(&b'_') {
        return false;
    }
    const OWNED: [&[u8]; 16] = [
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-real-ip",
        b"x-jwt-assertion",
        b"x-request-id",
        b"x-original-url",
        b"x-rewrite-url",
        b"content-length",
        b"transfer-encoding",
        b"proxy-authorization",
        b"proxy-connection",
        b"proxy-authenticate",
        b"keep-alive",
    ];
    OWNED.iter().any(|o| {
        o.len() == name.len()
            && o.iter()
                .zip(name)
                .all(|(&o, &c)| o == c || (o == b'-' && c == b'_'))
    })
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
/// `Host` dropped (the client sets the backend's), `X-Forwarded-For/-Proto/-Host` added. The
/// gateway's proxy does the same without touching the map ([`ToBackend`]); this is the form
/// for an embedder holding a `HeaderMap`.
pub fn to_backend(
    h: &mut HeaderMap,
    client_ip: Option<HeaderValue>,
    proto: &'static str,
    original_host: Option<HeaderValue>,
    upgrade: bool,
) {
    let plan = ToBackend::new(h, client_ip, proto, original_host, upgrade, None);
    let kept: Vec<(HeaderName, HeaderValue)> = h
        .iter()
        .filter(|(k, _)| plan.forwards(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    h.clear();
    for (k, v) in kept {
        h.append(k, v);
    }
    for (k, v) in plan.added() {
        h.insert(k.clone(), v.clone());
    }
}

/// What the gateway changes in a client's request head on its way to the backend, decided
/// once per request and applied while the head is written ([`forwards`](Self::forwards) for
/// each client field, then [`added`](Self::added)), so the client's header map is neither
/// searched nor changed: hop-by-hop fields (and those `Connection` names), `Authorization`,
/// `apikey`, `Host` and `Expect` stay behind; `X-Forwarded-For` (the client's list plus its
/// address), `X-Forwarded-Proto`, `X-Forwarded-Host` and a backend JWT replace any the client
/// sent; an upgrade keeps `Upgrade` and sends `Connection: upgrade`.
#[derive(Debug)]
pub struct ToBackend {
    added: [Option<(&'static HeaderName, HeaderValue)>; 5],
    upgrade: bool,
    /// Names the client's `Connection` lists (no allocation when it lists none).
    listed: Vec<HeaderName>,
}

static CONNECTION: HeaderName = header::CONNECTION;

impl ToBackend {
    /// The changes for a request with headers `h` from `client_ip` over `proto`, first sent
    /// to `original_host`; `jwt` is the backend JWT to send, if any.
    pub fn new(
        h: &HeaderMap,
        client_ip: Option<HeaderValue>,
        proto: &'static str,
        original_host: Option<HeaderValue>,
        upgrade: bool,
        jwt: Option<HeaderValue>,
    ) -> Self {
        let mut listed = Vec::new();
        for list in h.get_all(header::CONNECTION).iter() {
            let Ok(list) = list.to_str() else { continue };
            for name in list.split(',').map(str::trim) {
                let skip = name.is_empty()
                    || name.eq_ignore_ascii_case("close")
                    || name.eq_ignore_ascii_case("keep-alive")
                    || name.eq_ignore_ascii_case("upgrade");
                if let (false, Ok(n)) = (skip, HeaderName::from_bytes(name.as_bytes())) {
                    listed.push(n);
                }
            }
        }
        // the client's list goes on, unless `Connection` made it hop-by-hop
        let previous = h
            .get(&X_FORWARDED_FOR)
            .filter(|_| !listed.contains(&X_FORWARDED_FOR));
        let forwarded_for = client_ip.and_then(|ip| match previous {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + ip.len());
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(ip.as_bytes());
                HeaderValue::from_bytes(&v).ok()
            }
            None => Some(ip),
        });
        ToBackend {
            added: [
                upgrade.then(|| (&CONNECTION, HeaderValue::from_static("upgrade"))),
                forwarded_for.map(|v| (&X_FORWARDED_FOR, v)),
                Some((&X_FORWARDED_PROTO, HeaderValue::from_static(proto))),
                original_host.map(|v| (&X_FORWARDED_HOST, v)),
                jwt.map(|v| (&X_JWT_ASSERTION, v)),
            ],
            upgrade,
            listed,
        }
    }

    /// Whether the client's field `name` goes to the backend as it is.
    pub fn forwards(&self, name: &HeaderName) -> bool {
        let dropped = name == header::AUTHORIZATION
            || name == header::HOST
            || name == header::EXPECT
            || name == APIKEY
            || HOP_BY_HOP.contains(name)
            || (name == header::UPGRADE && !self.upgrade)
            || self.added.iter().flatten().any(|(n, _)| *n == name)
            || self.listed.contains(name)
            || gateway_owned(name.as_str().as_bytes());
        !dropped
    }

    /// The fields the gateway sends besides the client's.
    pub fn added(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.added.iter().flatten().map(|(n, v)| (*n, v))
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

    /// The rewrite as it was done before [`ToBackend`]: on the map, then `Host` and `Expect`
    /// left out while writing (what reached the backend).
    fn rewritten_on_the_map(
        mut h: HeaderMap,
        client_ip: Option<HeaderValue>,
        proto: &'static str,
        original_host: Option<HeaderValue>,
        upgrade: bool,
        jwt: Option<HeaderValue>,
    ) -> Vec<(String, Vec<u8>)> {
        strip_hop_by_hop(&mut h, upgrade);
        h.remove(header::AUTHORIZATION);
        h.remove(&APIKEY);
        // issue 18 item 14: what only the gateway may say, whatever the client sent
        for owned in [
            "forwarded",
            "x-real-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-jwt-assertion",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x_forwarded_for",
            "x_jwt_assertion",
            "x-forwarded_host",
        ] {
            h.remove(owned);
        }
        h.remove(header::HOST);
        h.remove(header::EXPECT);
        if let Some(ip) = client_ip {
            let v = match h.get(&X_FORWARDED_FOR) {
                Some(prev) => {
                    let mut v = prev.as_bytes().to_vec();
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
        if let Some(jwt) = jwt {
            h.insert(X_JWT_ASSERTION.clone(), jwt);
        }
        sorted(h.iter())
    }

    fn sorted<'a>(
        fields: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    ) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = fields
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn to_backend_sends_what_the_map_rewrite_sent() {
        let v = HeaderValue::from_static;
        let heads: Vec<Vec<(&str, HeaderValue)>> = vec![
            vec![("host", v("gw")), ("authorization", v("Bearer t"))],
            vec![
                ("connection", v("keep-alive, x-secret, Upgrade")),
                ("x-secret", v("1")),
                ("keep-alive", v("timeout=5")),
                ("te", v("trailers")),
                ("trailer", v("x")),
                ("transfer-encoding", v("chunked")),
                ("proxy-connection", v("x")),
                ("proxy-authorization", v("Basic x")),
                ("upgrade", v("websocket")),
                ("apikey", v("k")),
                ("expect", v("100-continue")),
                ("x-forwarded-for", v("10.1.1.1")),
                ("x-forwarded-proto", v("ftp")),
                ("x-forwarded-host", v("spoofed")),
                ("x-jwt-assertion", v("forged")),
                ("x_jwt_assertion", v("forged")),
                ("x_forwarded_for", v("10.6.6.6")),
                ("x-forwarded_host", v("spoofed")),
                ("forwarded", v("for=10.6.6.6;host=spoofed")),
                ("x-real-ip", v("10.6.6.6")),
                ("x-original-url", v("/admin")),
                ("x-rewrite-url", v("/admin")),
                ("x-forwarded-port", v("1")),
                ("x-forwarded-prefix", v("/evil")),
                ("x_keep", v("kept: no owned name")),
                ("x-keep", v("a")),
                ("x-keep", v("b")),
                ("content-length", v("5")),
            ],
            vec![("connection", v("close")), ("connection", v("x-a, ,x-b"))],
            vec![
                (
                    "connection",
                    v("X-Forwarded-For, x-forwarded-host, content-length"),
                ),
                ("x-forwarded-for", v("10.9.9.9")),
                ("x-forwarded-host", v("spoofed")),
                ("content-length", v("3")),
            ],
            vec![("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap())],
        ];
        for fields in heads {
            let mut h = HeaderMap::new();
            for (k, val) in &fields {
                h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), val.clone());
            }
            for upgrade in [false, true] {
                for ip in [None, Some(v("127.0.0.1"))] {
                    for host in [None, Some(v("gw.example.com"))] {
                        for jwt in [None, Some(v("signed"))] {
                            let plan = ToBackend::new(
                                &h,
                                ip.clone(),
                                "https",
                                host.clone(),
                                upgrade,
                                jwt.clone(),
                            );
                            let sent = sorted(
                                h.iter()
                                    .filter(|(k, _)| plan.forwards(k))
                                    .chain(plan.added()),
                            );
                            let before = rewritten_on_the_map(
                                h.clone(),
                                ip.clone(),
                                "https",
                                host.clone(),
                                upgrade,
                                jwt,
                            );
                            assert_eq!(sent, before, "{fields:?} upgrade={upgrade} ip={ip:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gateway_owned_names_and_their_underscore_spellings() {
        for owned in [
            "forwarded",
            "x-real-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-jwt-assertion",
            "x_jwt_assertion",
            "x_forwarded_for",
            "x-forwarded_for",
            "x_forwarded_host",
            "x_forwarded_proto",
            "x_real_ip",
            "x_request_id",
            "content_length",
            "transfer_encoding",
        ] {
            assert!(gateway_owned(owned.as_bytes()), "{owned}");
        }
        for other in [
            "x-forwarded-for", // the gateway appends to the client's list
            "x-request-id",    // propagated when well-formed
            "x-keep",
            "x_keep",
            "content-type",
            "forwarded_",
            "x-real-ips",
            "",
        ] {
            assert!(!gateway_owned(other.as_bytes()), "{other}");
        }
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
