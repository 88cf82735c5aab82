//! Reading a request head for the native HTTP/1.1 server: which requests it serves itself,
//! and the request the flow sees for those.
//!
//! The native server serves an HTTP/1.1 request in origin form whose head is complete,
//! well-formed and within the size limit, that has no body (no `Content-Length` other than
//! `0`, no `Transfer-Encoding`) and asks for nothing hyper handles specially (`Upgrade`,
//! `Expect`, `CONNECT`). Anything else is [`Parsed::Other`]: the connection goes to hyper
//! with the bytes read so far, so those requests get hyper's answers (400, 431, h2c, bodies,
//! WebSocket upgrades) unchanged.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};

use crate::body::GatewayBody;
use crate::field_name::field_name;
use crate::proxy::headers::list_items;

/// Most header fields of a head the native server serves (hyper allows 100; a head with more
/// than this goes to hyper).
pub const MAX_FIELDS: usize = 64;

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A head the native server serves.
    Native(Head),
    /// Anything else: the connection goes to hyper.
    Other,
}

/// Where a head's fields lie in the bytes it was read from: name start, name end, value
/// start, value end of each (offsets fit in `u16`: longer heads go to hyper). One per
/// connection, filled by [`parse`].
pub type Spans = [[u16; 4]; MAX_FIELDS];

/// A request head the native server serves: its method, and where its target lies in the
/// bytes it was read from (its fields' places are in the [`Spans`] given to [`parse`]).
#[derive(Debug)]
pub struct Head {
    len: usize,
    method: Method,
    target: (u16, u16),
    count: usize,
    /// The client asked to close the connection after this request (`Connection: close`).
    pub close: bool,
}

impl Head {
    /// Whether the request is a `HEAD` (its response has no body).
    pub fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }
}

/// Reads the head at the start of `buf`, noting where its fields lie in `spans`; a head longer
/// than `max_head` bytes (or, while incomplete, `buf` reaching that size) is
/// [`Parsed::Other`].
pub fn parse(buf: &[u8], max_head: usize, spans: &mut Spans) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Parsed::Partial,
        _ => return Parsed::Other,
    };
    if len > max_head || len > usize::from(u16::MAX) || req.version != Some(1) {
        return Parsed::Other;
    }
    let Some(method) = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
    else {
        return Parsed::Other;
    };
    let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
        return Parsed::Other;
    };
    if method == Method::CONNECT {
        return Parsed::Other;
    }
    let base = buf.as_ptr() as usize;
    // within `buf`, and `buf` up to `len` is at most u16::MAX long
    let at = |s: &[u8]| (s.as_ptr() as usize - base) as u16;
    let span = |s: &[u8]| [at(s), at(s) + s.len() as u16];
    let mut head = Head {
        len,
        method,
        target: (at(path.as_bytes()), at(path.as_bytes()) + path.len() as u16),
        count: req.headers.len(),
        close: false,
    };
    for (slot, f) in spans.iter_mut().zip(req.headers.iter()) {
        let name = f.name.as_bytes();
        match Special::of(name) {
            Special::None => {}
            Special::ContentLength if f.value == b"0" && !seen_before(req.headers, f) => {}
            Special::Connection => match connection(f.value) {
                Some(close) => head.close |= close,
                None => return Parsed::Other,
            },
            _ => return Parsed::Other,
        }
        let [ns, ne] = span(name);
        let [vs, ve] = span(f.value);
        *slot = [ns, ne, vs, ve];
    }
    Parsed::Native(head)
}

/// Whether a field with `f`'s name comes before `f` in `fields`.
fn seen_before(fields: &[httparse::Header<'_>], f: &httparse::Header<'_>) -> bool {
    fields
        .iter()
        .take_while(|g| !std::ptr::eq(*g, f))
        .any(|g| g.name.eq_ignore_ascii_case(f.name))
}

/// Header fields the native server looks at.
#[derive(Debug, PartialEq, Eq)]
enum Special {
    None,
    ContentLength,
    Connection,
    /// `Transfer-Encoding`, `Upgrade`, `Expect`: hyper's.
    Hyper,
}

impl Special {
    fn of(name: &[u8]) -> Self {
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match name.len() {
            14 if is("content-length") => Special::ContentLength,
            10 if is("connection") => Special::Connection,
            17 if is("transfer-encoding") => Special::Hyper,
            7 if is("upgrade") => Special::Hyper,
            6 if is("expect") => Special::Hyper,
            _ => Special::None,
        }
    }
}

/// A `Connection` value's tokens: whether they say `close`; `None` when one says `upgrade`.
fn connection(value: &[u8]) -> Option<bool> {
    let mut close = false;
    for token in list_items(value) {
        if token.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if token.eq_ignore_ascii_case(b"upgrade") {
            return None;
        }
    }
    Some(close)
}

impl Head {
    /// The request: takes the head's bytes off the front of `buf` (the fields, at `spans` as
    /// [`parse`] left them, and the target share them, nothing is copied). Should the `http`
    /// types refuse what the parser accepted, the bytes are put back and `None` tells the
    /// caller to hand the connection to hyper.
    pub fn into_request(self, buf: &mut BytesMut, spans: &Spans) -> Option<Request<GatewayBody>> {
        let bytes = buf.split_to(self.len).freeze();
        match self.build(&bytes, spans) {
            Some(req) => Some(req),
            None => {
                let mut back = BytesMut::with_capacity(bytes.len() + buf.len());
                back.extend_from_slice(&bytes);
                back.extend_from_slice(buf);
                *buf = back;
                None
            }
        }
    }

    fn build(self, bytes: &Bytes, spans: &Spans) -> Option<Request<GatewayBody>> {
        let slice = |s: u16, e: u16| bytes.slice(usize::from(s)..usize::from(e));
        let uri = Uri::from_maybe_shared(slice(self.target.0, self.target.1)).ok()?;
        // room for what the flow adds (`x-request-id`, `x-forwarded-*`) without regrowing
        let mut headers = HeaderMap::with_capacity(self.count + 4);
        for &[ns, ne, vs, ve] in &spans[..self.count] {
            let name = field_name(&bytes[usize::from(ns)..usize::from(ne)]).ok()?;
            let value = HeaderValue::from_maybe_shared(slice(vs, ve)).ok()?;
            headers.append(name, value);
        }
        let mut req = Request::new(GatewayBody::empty());
        *req.method_mut() = self.method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        Some(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(raw: &str, spans: &mut Spans) -> Head {
        match parse(raw.as_bytes(), 8192, spans) {
            Parsed::Native(h) => h,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn kind(raw: &str) -> &'static str {
        match parse(raw.as_bytes(), 8192, &mut [[0; 4]; MAX_FIELDS]) {
            Parsed::Partial => "partial",
            Parsed::Native(_) => "native",
            Parsed::Other => "other",
        }
    }

    #[test]
    fn a_simple_request_becomes_the_request_hyper_would_give() {
        let raw = "GET /pets/1.0/cats?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer t\r\n\
                   X-A: 1\r\nx-a: 2\r\n\r\nGET / HTTP/1.1\r\n";
        let spans = &mut [[0; 4]; MAX_FIELDS];
        let head = native(raw, spans);
        assert!(!head.close && !head.is_head());
        let mut buf = BytesMut::from(raw);
        let req = head.into_request(&mut buf, spans).expect("a request");
        assert_eq!(
            &buf[..],
            b"GET / HTTP/1.1\r\n",
            "the next request stays in the buffer"
        );
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/pets/1.0/cats");
        assert_eq!(req.uri().query(), Some("x=1"));
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "gw");
        assert_eq!(req.headers()["authorization"], "Bearer t");
        let xa: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(req.headers().len(), 4);
    }

    #[test]
    fn connection_close_and_a_zero_length_are_served() {
        let spans = &mut [[0; 4]; MAX_FIELDS];
        assert!(
            native(
                "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n",
                spans
            )
            .close
        );
        assert!(!native("DELETE /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n", spans).close);
        assert!(native("HEAD /a HTTP/1.1\r\n\r\n", spans).is_head());
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for raw in [
            "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "POST /a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "PUT /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "CONNECT gw:443 HTTP/1.1\r\n\r\n",
            "GET http://gw/a HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(kind(raw), "other", "{raw:?}");
        }
        let many: String = (0..=MAX_FIELDS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(kind(&format!("GET / HTTP/1.1\r\n{many}\r\n")), "other");
    }

    #[test]
    fn incomplete_heads_wait_until_the_limit() {
        assert_eq!(kind("GET /a HTTP/1.1\r\nHost: gw\r\n"), "partial");
        assert_eq!(kind("GE"), "partial");
        let long = format!("GET /a HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(
            kind(&long),
            "other",
            "the limit reached without a whole head"
        );
        let whole = format!("GET /a HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(kind(&whole), "other", "a whole head over the limit");
        let spans = &mut [[0; 4]; MAX_FIELDS];
        assert!(matches!(
            parse(whole.as_bytes(), 10_000, spans),
            Parsed::Native(_)
        ));
    }

    #[test]
    fn what_the_http_types_refuse_is_put_back() {
        // httparse takes `<` in a target, http::Uri does not
        let raw = "GET /a<b> HTTP/1.1\r\nHost: gw\r\n\r\nnext";
        let spans = &mut [[0; 4]; MAX_FIELDS];
        let head = native(raw, spans);
        let mut buf = BytesMut::from(raw);
        assert!(head.into_request(&mut buf, spans).is_none());
        assert_eq!(&buf[..], raw.as_bytes(), "every byte is back for hyper");
    }
}
