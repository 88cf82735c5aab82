//! Writing a response for the native HTTP/1.1 server: the head in one pass over the
//! response's fields, then the body with the framing hyper's server would choose for it
//! (`content-length` when the length is known, `chunked` otherwise, none for `HEAD`, 1xx, 204
//! and 304), so a client cannot tell the two servers apart.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::body::GatewayBody;
use crate::proxy::headers::list_items;
use crate::request_id::X_REQUEST_ID;

/// Body data up to this size is copied behind the head (one write for both).
const COALESCE: usize = 16 << 10;

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body bytes at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Writes the head of a response with `parts` and `body` to `out`: the backend's fields
/// that `body` holds as they arrived ([`GatewayBody::backend_fields`]), then every field of
/// the map as it is, then `x-request-id: request_id` (replacing the map's, if any), except
/// that `content-length` and `transfer-encoding` are left out where the status has no body,
/// framing is added where the response names none, `date` where it has none, and
/// `connection: close` when `close` and the response does not say so.
pub(crate) fn encode_head(
    parts: &http::response::Parts,
    body: &GatewayBody,
    request_id: Option<&HeaderValue>,
    head_request: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Framing {
    let status = parts.status;
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    let no_body = no_length || head_request || status == StatusCode::NOT_MODIFIED;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let can_length = !no_length && status != StatusCode::NOT_MODIFIED;
    let end = body.is_end_stream();
    let known = if end {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let mut framing = None;
    let (mut date, mut says_close) = (false, false);
    if let Some(fields) = body.backend_fields() {
        // a backend's fields as they arrived (never hop-by-hop ones, never for a status
        // without a body, never for HEAD): their `content-length` frames the body
        fields.write_to(out);
        date = fields.has_date();
        framing = fields.content_length().map(Framing::Length);
    }
    for (name, value) in &parts.headers {
        match *name {
            header::CONTENT_LENGTH if no_length || framing.is_some() => continue,
            // an empty body's length is written below (hyper drops the field, too)
            header::CONTENT_LENGTH if end && !head_request => continue,
            header::CONTENT_LENGTH => {
                let Some(n) = known.or_else(|| parse_length(value)) else {
                    continue; // unusable: the body's own framing below
                };
                framing = Some(Framing::Length(n));
            }
            header::TRANSFER_ENCODING if no_body || framing.is_some() => continue,
            header::TRANSFER_ENCODING => {
                framing = Some(Framing::Chunked);
                let last = list_items(value.as_bytes()).next_back().unwrap_or(b"");
                if !last.eq_ignore_ascii_case(b"chunked") {
                    let v = [value.as_bytes(), b", chunked"].concat();
                    field(out, b"transfer-encoding", &v);
                    continue;
                }
            }
            header::DATE => date = true,
            header::CONNECTION => says_close |= names_close(value),
            // the request's id replaces any other (as inserting it into the map would)
            _ if request_id.is_some() && name == X_REQUEST_ID => continue,
            _ => {}
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(id) = request_id {
        // where inserting it into the map would have put it: after the map's fields
        field(out, X_REQUEST_ID.as_str().as_bytes(), id.as_bytes());
    }
    // where hyper puts them: its `connection: close` goes into the map, the implicit framing
    // after the map
    if close && !says_close {
        field(out, b"connection", b"close");
    }
    let framing = match framing {
        Some(f) => f,
        None => match known {
            Some(0) => {
                if can_length && !head_request {
                    field(out, b"content-length", b"0");
                }
                Framing::Length(0)
            }
            Some(n) => {
                if can_length {
                    field(
                        out,
                        b"content-length",
                        itoa::Buffer::new().format(n).as_bytes(),
                    );
                }
                Framing::Length(n)
            }
            None if no_body => Framing::None,
            None => {
                field(out, b"transfer-encoding", b"chunked");
                Framing::Chunked
            }
        },
    };
    if !date {
        DATE.with_borrow_mut(|d| field(out, b"date", d.now()));
    }
    out.extend_from_slice(b"\r\n");
    if no_body {
        Framing::None
    } else {
        framing
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn parse_length(v: &HeaderValue) -> Option<u64> {
    let s = v.to_str().ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether a `Connection` value names `close`.
pub(crate) fn names_close(v: &HeaderValue) -> bool {
    list_items(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"))
}

/// The `Date` value, formatted once a second per thread.
struct CachedDate {
    second: u64,
    value: Vec<u8>,
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.value.is_empty() {
            self.second = second;
            self.value = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.value
    }
}

thread_local! {
    static DATE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: 0, value: Vec::new() })
    };
}

/// Writes `res` to `io` (`out` is the connection's write buffer, empty on return). `Ok(true)`
/// when the response went out whole and framed so that the connection can carry another
/// request; `Ok(false)` when it must close (the body ended early or failed: the client sees
/// a truncated response, as with hyper); `Err` when writing failed.
pub(crate) async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    res: Response<GatewayBody>,
    request_id: Option<&HeaderValue>,
    head_request: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let (parts, mut body) = res.into_parts();
    out.clear();
    let framing = encode_head(&parts, &body, request_id, head_request, close, out);
    let mut sent: u64 = 0;
    let mut whole = true;
    let mut terminated = false;
    if framing != Framing::None {
        loop {
            // what the body has ready goes behind the head; when it has nothing ready, the
            // buffered bytes go out before waiting for it
            let ready = poll_fn(|cx| {
                Poll::Ready(match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(f) => Some(f),
                    Poll::Pending => None,
                })
            })
            .await;
            let frame = match ready {
                Some(f) => f,
                None => {
                    flush(io, out).await?;
                    body.frame().await
                }
            };
            match frame {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "response body failed");
                    whole = false;
                    break;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        sent += data.len() as u64;
                        if let Framing::Length(n) = framing {
                            if sent > n {
                                whole = false;
                                break;
                            }
                        }
                        data_frame(io, out, framing, data).await?;
                    }
                    Err(frame) => {
                        // trailers are the last frame
                        terminated = trailers(out, framing, &parts.headers, frame);
                        break;
                    }
                },
            }
        }
        match framing {
            Framing::Length(n) if sent != n => whole = false,
            Framing::Chunked if whole && !terminated => out.extend_from_slice(b"0\r\n\r\n"),
            _ => {}
        }
    }
    flush(io, out).await?;
    Ok(whole)
}

async fn data_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    framing: Framing,
    data: Bytes,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let chunked = framing == Framing::Chunked;
    if chunked {
        // writing to a Vec cannot fail
        let _ = write!(out, "{:X}\r\n", data.len());
    }
    if data.len() <= COALESCE {
        out.extend_from_slice(&data);
    } else {
        flush(io, out).await?;
        io.write_all(&data).await?;
    }
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
    if out.len() > COALESCE {
        flush(io, out).await?;
    }
    Ok(())
}

/// Trailers end a chunked body: the last chunk carries the fields the response declared in
/// `Trailer` (as hyper does); other framings drop them. Whether the last chunk was written.
fn trailers(
    out: &mut Vec<u8>,
    framing: Framing,
    head: &http::HeaderMap,
    frame: Frame<Bytes>,
) -> bool {
    let Ok(map) = frame.into_trailers() else {
        return false;
    };
    if framing != Framing::Chunked {
        return false;
    }
    let declared = |name: &http::HeaderName| {
        head.get_all(header::TRAILER).iter().any(|v| {
            list_items(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(name.as_str().as_bytes()))
        })
    };
    out.extend_from_slice(b"0\r\n");
    for (name, value) in map.iter().filter(|(n, _)| declared(n)) {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    true
}

async fn flush<W: AsyncWrite + Unpin>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
        io.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http_body_util::StreamBody;

    fn response(status: u16, fields: &[(&str, &str)], body: GatewayBody) -> Response<GatewayBody> {
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        for (n, v) in fields {
            res.headers_mut().append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        res
    }

    /// The bytes written for `res`, with the date field's value blanked, and whether the
    /// connection may carry another request.
    async fn wire(res: Response<GatewayBody>, head_request: bool, close: bool) -> (String, bool) {
        let mut io = Vec::new();
        let mut out = Vec::new();
        let reuse = write(&mut io, res, None, head_request, close, &mut out)
            .await
            .unwrap();
        assert!(out.is_empty());
        let text = String::from_utf8(io).unwrap();
        let text = match text.find("date: ").filter(|_| !text.contains("1970")) {
            Some(i) => format!("{}date: D{}", &text[..i], &text[i + 35..]),
            None => text,
        };
        (text, reuse)
    }

    fn streamed(chunks: &[&'static str], trailers: Option<HeaderMap>) -> GatewayBody {
        let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        if let Some(t) = trailers {
            frames.push(Ok(Frame::trailers(t)));
        }
        GatewayBody::boxed(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn the_request_id_replaces_any_other_after_the_fields() {
        let res = response(200, &[("x-request-id", "other"), ("x-a", "1")], "hi".into());
        let (mut io, mut out) = (Vec::new(), Vec::new());
        let id = HeaderValue::from_static("gw-1");
        write(&mut io, res, Some(&id), false, true, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(io).unwrap();
        assert_eq!(text.matches("x-request-id").count(), 1, "{text}");
        assert!(
            text.starts_with(
                "HTTP/1.1 200 OK\r\nx-a: 1\r\nx-request-id: gw-1\r\nconnection: close\r\n"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_known_length_is_sent_as_content_length_with_a_date() {
        let (w, reuse) = wire(response(200, &[("x-a", "1")], "hello".into()), false, false).await;
        assert_eq!(
            w,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\ndate: D\r\n\r\nhello"
        );
        assert!(reuse);
        let (w, _) = wire(response(404, &[], GatewayBody::empty()), false, false).await;
        assert_eq!(
            w,
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\ndate: D\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn the_response_s_own_fields_are_kept() {
        let res = response(
            200,
            &[
                ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("content-length", "5"),
                ("x-b", "2"),
            ],
            "hello".into(),
        );
        let (w, _) = wire(res, false, false).await;
        assert_eq!(
            w,
            "HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-length: 5\r\n\
             x-b: 2\r\n\r\nhello"
        );
    }

    #[tokio::test]
    async fn an_unknown_length_is_chunked_with_declared_trailers() {
        let mut t = HeaderMap::new();
        t.insert("x-sum", HeaderValue::from_static("9"));
        t.insert("x-undeclared", HeaderValue::from_static("1"));
        let res = response(
            200,
            &[("trailer", "x-sum")],
            streamed(&["ab", "", "cde"], Some(t)),
        );
        let (w, reuse) = wire(res, false, false).await;
        assert_eq!(
            w,
            "HTTP/1.1 200 OK\r\ntrailer: x-sum\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n\
             2\r\nab\r\n3\r\ncde\r\n0\r\nx-sum: 9\r\n\r\n"
        );
        assert!(reuse);
        let (w, _) = wire(response(200, &[], streamed(&["x"], None)), false, false).await;
        assert!(w.ends_with("\r\n\r\n1\r\nx\r\n0\r\n\r\n"), "{w}");
        let res = response(
            200,
            &[("transfer-encoding", "gzip")],
            streamed(&["x"], None),
        );
        let (w, _) = wire(res, false, false).await;
        assert!(
            w.contains("\r\ntransfer-encoding: gzip, chunked\r\n"),
            "{w}"
        );
    }

    #[tokio::test]
    async fn head_204_and_304_have_no_body() {
        let (w, _) = wire(response(200, &[], "hello".into()), true, false).await;
        assert_eq!(w, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\n\r\n");
        let (w, _) = wire(response(200, &[], GatewayBody::empty()), true, false).await;
        assert_eq!(w, "HTTP/1.1 200 OK\r\ndate: D\r\n\r\n");
        let res = response(
            204,
            &[("content-length", "0"), ("transfer-encoding", "chunked")],
            "x".into(),
        );
        let (w, reuse) = wire(res, false, false).await;
        assert_eq!(w, "HTTP/1.1 204 No Content\r\ndate: D\r\n\r\n");
        assert!(reuse);
        let (w, _) = wire(
            response(304, &[("etag", "\"1\"")], streamed(&["x"], None)),
            false,
            false,
        )
        .await;
        assert_eq!(
            w,
            "HTTP/1.1 304 Not Modified\r\netag: \"1\"\r\ndate: D\r\n\r\n"
        );
        let res = response(
            304,
            &[("content-length", "9"), ("transfer-encoding", "chunked")],
            "x".into(),
        );
        let (w, _) = wire(res, false, false).await;
        assert_eq!(
            w, "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\ndate: D\r\n\r\n",
            "a 304 keeps the representation's length (as hyper does), never a transfer coding"
        );
        let res = response(200, &[("content-length", "9")], GatewayBody::empty());
        let (w, _) = wire(res, true, false).await;
        assert_eq!(
            w, "HTTP/1.1 200 OK\r\ncontent-length: 9\r\ndate: D\r\n\r\n",
            "HEAD keeps the length"
        );
    }

    #[tokio::test]
    async fn closing_is_announced_once() {
        let (w, _) = wire(response(200, &[], GatewayBody::empty()), false, true).await;
        assert!(w.contains("\r\nconnection: close\r\n"), "{w}");
        let (w, _) = wire(
            response(400, &[("connection", "close")], GatewayBody::empty()),
            false,
            true,
        )
        .await;
        assert_eq!(w.matches("close").count(), 1, "{w}");
    }

    #[tokio::test]
    async fn a_body_that_breaks_its_length_ends_the_connection() {
        let short = response(200, &[("content-length", "10")], streamed(&["abc"], None));
        let (w, reuse) = wire(short, false, false).await;
        assert!(w.ends_with("\r\n\r\nabc"), "{w}");
        assert!(!reuse, "a short body leaves the connection unusable");
        let long = response(200, &[("content-length", "2")], streamed(&["abc"], None));
        let (w, reuse) = wire(long, false, false).await;
        assert!(
            w.ends_with("\r\n\r\n"),
            "nothing past the length is sent: {w}"
        );
        assert!(!reuse);
    }

    #[tokio::test]
    async fn a_failing_body_is_cut_off_without_a_last_chunk() {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("backend reset")),
        ];
        let body = GatewayBody::boxed(StreamBody::new(futures_util::stream::iter(frames)));
        let (w, reuse) = wire(response(200, &[], body), false, false).await;
        assert!(w.ends_with("\r\n\r\n2\r\nab\r\n"), "{w}");
        assert!(!reuse);
    }

    #[test]
    fn the_date_is_an_http_date() {
        let d = DATE.with_borrow_mut(|d| d.now().to_vec());
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&d).unwrap()).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() < 2 && d.len() == 29, "{d:?}");
    }
}
