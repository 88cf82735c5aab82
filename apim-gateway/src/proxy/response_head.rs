//! The head of a backend's response, parsed for the client: status, the fields the
//! client may see (hop-by-hop ones left out, RFC 9110 §7.6.1), how the body is framed, and
//! whether the connection may be reused after it. The header values share the read buffer's
//! bytes; the parser's field array is not zeroed (3 KiB of `memset` per response otherwise).

use std::io;

use bytes::{Bytes, BytesMut};
use http::{header, response, HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::framing::{self, invalid, Framing};
use crate::field_name::field_name;

/// Largest response head accepted from a backend.
pub const MAX_HEAD: usize = 64 << 10;
/// Most header fields accepted in a response head.
pub const MAX_HEADERS: usize = 100;
/// Heads with up to this many fields keep their field positions on the stack.
const FEW_FIELDS: usize = 24;

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
    Ok(parse_head(buf, head_request, upgrade, false)?.map(|h| (h.parts, h.framing, h.reusable)))
}

/// A backend's response head, parsed for the client.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status and the fields the client may see — except those in `fields` — at the
    /// gateway's own version, HTTP/1.1.
    pub parts: response::Parts,
    /// How the body is framed.
    pub framing: Framing,
    /// Whether the connection may carry another request after the body.
    pub reusable: bool,
    /// The fields the client may see, as they arrived, when they were not parsed into
    /// `parts.headers` (see [`parse_head`]).
    pub fields: Option<Box<BackendFields>>,
}

/// Most runs of consecutive fields a [`BackendFields`] holds (the fields left out for the
/// client cut the head into runs; nginx's answers have one or two).
const MAX_RUNS: usize = 4;

/// The fields of a backend's response head that the client may see, kept as the bytes they
/// arrived in: runs of whole `Name: value\r\n` lines of the head, without the hop-by-hop ones.
/// Written out as they are, they spare parsing every name and value into a `HeaderMap` and
/// encoding it again (the largest single cost of a proxied request before).
#[derive(Debug, Clone)]
pub struct BackendFields {
    head: Bytes,
    runs: [(u32, u32); MAX_RUNS],
    count: u8,
    date: bool,
    length: Option<u64>,
}

impl BackendFields {
    /// Appends the fields, each a `Name: value\r\n` line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for &(start, end) in &self.runs[..usize::from(self.count)] {
            out.extend_from_slice(&self.head[start as usize..end as usize]);
        }
    }

    /// Whether there is a `Date` field.
    pub fn has_date(&self) -> bool {
        self.date
    }

    /// The body's length as the `Content-Length` field gives it; `None` when there is none
    /// (the body is chunked, or ends when the backend closes).
    pub fn content_length(&self) -> Option<u64> {
        self.length
    }

    /// The fields in a header map, in the order they arrived.
    pub fn to_header_map(&self) -> io::Result<HeaderMap> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        let mut map = HeaderMap::new();
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line
                .iter()
                .position(|b| *b == b':')
                .ok_or_else(|| invalid("a field line without a colon"))?;
            let name = HeaderName::from_bytes(&line[..colon])
                .map_err(|_| invalid("invalid header name from the backend"))?;
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
                .map_err(|_| invalid("invalid header value from the backend"))?;
            map.append(name, value);
        }
        Ok(map)
    }
}

/// [`parse_response_head`], with the choice to leave the fields unparsed. With
/// `keep_fields`, a head whose fields the client gets unchanged — a status with a body, not
/// for HEAD, framed by one plain `Content-Length` or by none (chunked or until close), no
/// field that `Connection` names, no `X-Request-ID` (the gateway replaces it), every field
/// line in its usual form `Name: value\r\n`, at most four runs of them — comes back with an empty `parts.headers` and the fields in
/// [`ResponseHead::fields`]. Any other head is parsed as without `keep_fields`. (httparse
/// accepts the same bytes in names and values as `HeaderName` and `HeaderValue` do, so the
/// fields written out as they are are the ones the map would hold.)
pub fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
    keep_fields: bool,
) -> io::Result<Option<ResponseHead>> {
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
    let count = res.headers.len();
    // zeroed for the fields there are (most heads have a few): 1.6 KiB of memset otherwise
    let (mut few, mut many) = ([[0u32; 4]; FEW_FIELDS], Vec::new());
    let spans: &mut [[u32; 4]] = if count <= FEW_FIELDS {
        &mut few[..count]
    } else {
        many.resize(count, [0u32; 4]);
        &mut many
    };
    let mut keep = 0u128;
    let mut connection_names = false;
    // `Content-Length` fields, and whether one lists several values
    let (mut lengths, mut length_list) = (0, false);
    // the kept field lines as runs of the head's bytes, while they can be written as they are
    let bodied = !head_request
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    let mut raw = keep_fields && bodied;
    let mut runs = [(0u32, 0u32); MAX_RUNS];
    let (mut run_count, mut date) = (0usize, false);
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
        if raw && !hop {
            let [ns, ne, vs, ve] = span.map(|o| o as usize);
            // `Name: value\r\n` as it is: what a client is sent
            let usual = vs == ne + 2
                && buf.get(ne..vs) == Some(&b": "[..])
                && buf.get(ve..ve + 2) == Some(&b"\r\n"[..]);
            let (start, end) = (ns as u32, ve as u32 + 2);
            if !usual {
                raw = false;
            } else if run_count > 0 && runs[run_count - 1].1 == start {
                runs[run_count - 1].1 = end;
            } else if run_count < MAX_RUNS {
                runs[run_count] = (start, end);
                run_count += 1;
            } else {
                raw = false;
            }
            date |= h.name.eq_ignore_ascii_case("date");
            // the flow sets its own `X-Request-ID` on every response, replacing the
            // backend's: in a header map only
            raw &= !h.name.eq_ignore_ascii_case("x-request-id");
        }
    }
    let length = match framing {
        Framing::Length(n) => Some(n),
        Framing::Empty => Some(0),
        Framing::Chunked | Framing::UntilClose => None,
    };
    // one plain length field (the client gets it as it is), or none at all
    raw &=
        !connection_names && !switching && !length_list && lengths == usize::from(length.is_some());
    let head = buf.split_to(len).freeze();
    let reusable = !close && framing != Framing::UntilClose;
    // the version stays the gateway's own, HTTP/1.1: an intermediary sends its own version,
    // not the one it received (RFC 9110 §2.5); the backend's only decides about reuse above
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    if raw {
        return Ok(Some(ResponseHead {
            parts,
            framing,
            reusable,
            fields: Some(Box::new(BackendFields {
                head,
                runs,
                count: run_count as u8,
                date,
                length,
            })),
        }));
    }
    // room for what the flow adds (`x-request-id`, CORS fields) without regrowing
    let mut headers = HeaderMap::with_capacity(count + 3);
    for (i, &[ns, ne, vs, ve]) in spans.iter().enumerate() {
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
        for &[ns, ne, vs, ve] in spans.iter() {
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
    parts.headers = headers;
    Ok(Some(ResponseHead {
        parts,
        framing,
        reusable,
        fields: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::framing::{Chunked, Decoded};

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
    /// parses has its head split off and no more body than bytes; parsed with the fields
    /// kept as they arrived, the same answer, and the kept fields are the map's.
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
        let (mut parsed, mut chunked_bodies, mut raw_heads) = (0, 0, 0);
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
            let (head_request, upgrade) = (flags & 1 != 0, flags & 2 != 0);
            // the fields kept as they arrived are the ones the header map gets otherwise
            let mut kept = BytesMut::from(&input[..]);
            let kept = parse_head(&mut kept, head_request, upgrade, true)
                .map(|h| h.map(|h| (h.parts, h.framing, h.reusable, h.fields, kept.len())));
            let mut buf = BytesMut::from(&input[..]);
            let plain = parse_response_head(&mut buf, head_request, upgrade);
            match (&kept, &plain) {
                (Ok(Some((kp, kf, kr, fields, rest))), Ok(Some((p, f, r)))) => {
                    assert_eq!((kp.status, kf, kr, *rest), (p.status, f, r, buf.len()));
                    match fields {
                        Some(fields) => {
                            raw_heads += 1;
                            assert!(kp.headers.is_empty());
                            assert_eq!(fields.to_header_map().unwrap(), p.headers);
                            assert_eq!(
                                fields.content_length(),
                                p.headers.get("content-length").map(|v| v
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap())
                            );
                            assert_eq!(fields.has_date(), p.headers.contains_key("date"));
                        }
                        None => assert_eq!(kp.headers, p.headers),
                    }
                }
                (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
                _ => panic!("{kept:?} / {plain:?}"),
            }
            let Ok(Some((_, framing, _))) = plain else {
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
            parsed > 5_000 && chunked_bodies > 1_000 && raw_heads > 1_000,
            "{parsed} {chunked_bodies} {raw_heads}"
        );
    }
}
