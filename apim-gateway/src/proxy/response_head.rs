//! The head of a backend's response, parsed for the client: status, version, the fields the
//! client may see (hop-by-hop ones left out, RFC 9110 §7.6.1), how the body is framed, and
//! whether the connection may be reused after it. The header values share the read buffer's
//! bytes; the parser's field array is not zeroed (3 KiB of `memset` per response otherwise).

use std::io;

use bytes::BytesMut;
use http::{header, response, HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::framing::{self, invalid, Framing};

/// Largest response head accepted from a backend.
pub const MAX_HEAD: usize = 64 << 10;
/// Most header fields accepted in a response head.
pub const MAX_HEADERS: usize = 100;

/// Parses a response head at the start of `buf` — the answer to a HEAD request when
/// `head_request`, to an upgrade request when `upgrade` — into its parts, its body's framing
/// and whether the connection may be reused afterwards. The parts are ready for the client:
/// hop-by-hop fields (RFC 9110 §7.6.1, and any `Connection` names) are left out; a `101`
/// keeps `Upgrade` and gets `Connection: upgrade`. On success the head is split off `buf`
/// (the header values share its bytes). `Ok(None)`: incomplete, read more. An invalid head is
/// an [`io::ErrorKind::InvalidData`] error saying what is wrong.
pub fn parse_response_head(
    buf: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
) -> io::Result<Option<(response::Parts, Framing, bool)>> {
    // not zeroed: 3 KiB of memset per response otherwise
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(format!("invalid response from the backend: {e}"))),
    };
    let status = StatusCode::from_u16(res.code.unwrap_or(0))
        .map_err(|_| invalid("invalid status code from the backend"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
        return Err(invalid(
            "101 Switching Protocols without an upgrade request",
        ));
    }
    let version = if res.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let framing = framing::response_framing(
        head_request,
        status.as_u16(),
        res.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            .map(|h| h.value),
        res.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| h.value),
    )?;
    if len > MAX_HEAD {
        return Err(invalid(format!(
            "the backend's response head exceeds {MAX_HEAD} bytes"
        )));
    }
    let mut close = version == Version::HTTP_10;
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    // where each field sits in the head (offsets < MAX_HEAD), so the values can share the
    // head's bytes; hop-by-hop fields (RFC 9110 §7.6.1) are not kept for the client
    let base = buf.as_ptr() as usize;
    let mut spans = [[0u32; 4]; MAX_HEADERS];
    let mut keep = 0u128;
    let mut connection_names = false;
    // `Content-Length` fields, and whether one lists several values
    let (mut lengths, mut length_list) = (0, false);
    let count = res.headers.len();
    for (i, (span, h)) in spans.iter_mut().zip(res.headers.iter()).enumerate() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            length_list |= h.value.contains(&b',');
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in super::headers::list_items(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    if version == Version::HTTP_10 {
                        close = false;
                    }
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"upgrade") {
                    connection_names = true;
                }
            }
        }
        let hop = super::headers::is_hop_by_hop(name)
            && !(switching && name.eq_ignore_ascii_case(b"upgrade"));
        if !hop {
            keep |= 1 << i;
        }
        let at = |p: *const u8| (p as usize - base) as u32;
        let (name, value) = (at(h.name.as_ptr()), at(h.value.as_ptr()));
        *span = [
            name,
            name + h.name.len() as u32,
            value,
            value + h.value.len() as u32,
        ];
    }
    let head = buf.split_to(len).freeze();
    // room for what the flow adds (`x-request-id`, CORS fields) without regrowing
    let mut headers = HeaderMap::with_capacity(count + 3);
    for (i, &[ns, ne, vs, ve]) in spans[..count].iter().enumerate() {
        if keep & (1 << i) == 0 {
            continue;
        }
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name = field_name(&head[ns..ne])
            .map_err(|_| invalid("invalid header name from the backend"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| invalid("invalid header value from the backend"))?;
        headers.append(name, value);
    }
    if connection_names {
        // the fields `Connection` names are hop-by-hop too
        for &[ns, ne, vs, ve] in &spans[..count] {
            if !head[ns as usize..ne as usize].eq_ignore_ascii_case(b"connection") {
                continue;
            }
            for token in super::headers::list_items(&head[vs as usize..ve as usize]) {
                if let Ok(name) = HeaderName::from_bytes(token) {
                    headers.remove(name);
                }
            }
        }
    }
    if switching {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Framing::Length(n) = framing {
        // `Content-Length: 5, 5` or the field twice (equal values, else refused above): the
        // client gets the one valid value (RFC 9110 §8.6)
        if lengths > 1 || length_list {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    let reusable = !close && framing != Framing::UntilClose;
    Ok(Some((parts, framing, reusable)))
}

/// The usual spellings of common response fields, and the constants they name: matched as
/// they come (a length switch and a compare), where `HeaderName::from_bytes` first copies the
/// name into lower case.
static COMMON_FIELDS: [(&[u8], &[u8], HeaderName); 12] = [
    (b"Content-Type", b"content-type", header::CONTENT_TYPE),
    (b"Content-Length", b"content-length", header::CONTENT_LENGTH),
    (b"Date", b"date", header::DATE),
    (b"Server", b"server", header::SERVER),
    (b"Cache-Control", b"cache-control", header::CACHE_CONTROL),
    (b"ETag", b"etag", header::ETAG),
    (b"Last-Modified", b"last-modified", header::LAST_MODIFIED),
    (b"Vary", b"vary", header::VARY),
    (b"Location", b"location", header::LOCATION),
    (b"Set-Cookie", b"set-cookie", header::SET_COOKIE),
    (
        b"Content-Encoding",
        b"content-encoding",
        header::CONTENT_ENCODING,
    ),
    (b"Accept-Ranges", b"accept-ranges", header::ACCEPT_RANGES),
];

/// The field name `name` as received from a backend.
fn field_name(name: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    for (canonical, lower, constant) in &COMMON_FIELDS {
        if name.len() == canonical.len() && (name == *canonical || name == *lower) {
            return Ok(constant.clone());
        }
    }
    HeaderName::from_bytes(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::framing::{Chunked, Decoded};

    #[test]
    fn common_field_names_are_the_parsed_ones() {
        for (canonical, lower, constant) in &COMMON_FIELDS {
            for spelling in [*canonical, *lower] {
                assert_eq!(field_name(spelling).unwrap(), constant);
                assert_eq!(HeaderName::from_bytes(spelling).unwrap(), constant);
            }
        }
        // other spellings and names still parse (or fail) as before
        for name in [
            &b"CONTENT-TYPE"[..],
            b"content-Type",
            b"X-Custom",
            b"Dat",
            b"Dates",
        ] {
            assert_eq!(
                field_name(name).unwrap(),
                HeaderName::from_bytes(name).unwrap()
            );
        }
        assert!(field_name(b"bad name").is_err());
        assert!(field_name(b"").is_err());
    }

    #[test]
    fn response_head_parts_share_the_read_bytes() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-A: 2\r\n\
               Content-Length: 5\r\n\r\nhello"[..],
        );
        let (parts, framing, reusable) = parse_response_head(&mut buf, false, false)
            .unwrap()
            .unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["content-type"], "text/plain");
        let xa: Vec<_> = parts.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(framing, Framing::Length(5));
        assert!(reusable);
        assert_eq!(
            &buf[..],
            b"hello",
            "the head was split off, the body is left"
        );

        for head in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(head);
            let (parts, framing, _) = parse_response_head(&mut buf, false, false)
                .unwrap()
                .unwrap();
            assert_eq!(framing, Framing::Length(5));
            let cl: Vec<_> = parts.headers.get_all("content-length").iter().collect();
            assert_eq!(cl, ["5"], "one valid value for the client");
        }

        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
        assert!(parse_response_head(&mut partial, false, false)
            .unwrap()
            .is_none());

        for (head, reusable) in [
            (
                &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"[..],
                false,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            (
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false), // until close
        ] {
            let mut buf = BytesMut::from(head);
            let got = parse_response_head(&mut buf, false, false)
                .unwrap()
                .unwrap();
            assert_eq!(got.2, reusable, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn hop_by_hop_fields_are_not_kept_for_the_client() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n\
               X-Private: secret\r\nUpgrade: h2c\r\nTrailer: x\r\nProxy-Authenticate: Basic\r\n\
               Transfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n"[..],
        );
        let (parts, framing, reusable) = parse_response_head(&mut buf, false, false)
            .unwrap()
            .unwrap();
        let names: Vec<_> = parts.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        assert_eq!(framing, Framing::Chunked);
        assert!(reusable);

        let mut buf = BytesMut::from(
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Accept: x\r\n\r\n"[..],
        );
        let (parts, _, _) = parse_response_head(&mut buf, false, true).unwrap().unwrap();
        assert_eq!(parts.headers["upgrade"], "websocket");
        assert_eq!(parts.headers["connection"], "upgrade");
        assert_eq!(parts.headers["sec-websocket-accept"], "x");
    }

    /// Mutations of valid answers (bytes flipped, cut, repeated): never a panic; whatever
    /// parses has its head split off and no more body than bytes.
    #[test]
    fn arbitrary_answers_never_panic() {
        let seeds: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut parsed, mut chunked_bodies) = (0, 0);
        for i in 0..20_000 {
            let mut input = seeds[i % seeds.len()].to_vec();
            for _ in 0..(next() % 4) {
                if input.is_empty() {
                    break;
                }
                let at = (next() as usize) % input.len();
                match next() % 4 {
                    0 => input[at] = next() as u8,
                    1 => input.truncate(at),
                    2 => input.insert(at, b"\r\n:;, 0aF"[(next() % 9) as usize]),
                    _ => {
                        let piece = input[at..].to_vec();
                        input.extend_from_slice(&piece);
                    }
                }
            }
            let flags = next();
            let mut buf = BytesMut::from(&input[..]);
            let Ok(Some((_, framing, _))) =
                parse_response_head(&mut buf, flags & 1 != 0, flags & 2 != 0)
            else {
                continue;
            };
            assert!(buf.len() < input.len());
            parsed += 1;
            if framing == Framing::Chunked {
                chunked_bodies += 1;
                let total = buf.len();
                let mut chunked = Chunked::Size;
                let mut out = 0;
                while let Ok(Decoded::Data(d)) = chunked.decode(&mut buf, 7) {
                    out += d.len();
                }
                assert!(out <= total);
            }
        }
        assert!(
            parsed > 5_000 && chunked_bodies > 1_000,
            "{parsed} {chunked_bodies}"
        );
    }
}
