//! The backend side of the proxy: HTTP/1.1 exchanges on a connection the request owns.
//!
//! hyper's client runs every connection as a task of its own and hands it requests, responses
//! and body chunks through channels: per proxied request several task wake-ups and channel
//! operations. Here the request's own future writes the request and reads the response head,
//! and the response body ([`BackendBody`]) reads the rest straight from the socket; at the
//! body's end the connection goes back to its endpoint's idle list. One request at a time per
//! connection, no pipelining (as nginx and hyper's pooled client do).
//!
//! What is sent: the request line in origin-form, `Host` naming the endpoint, the client's
//! headers (the proxy has removed the hop-by-hop ones) without `Expect` (the body follows at
//! once), and the body framed by its `Content-Length` or, when its length is unknown,
//! chunked. What is accepted: a response head up to [`MAX_HEAD`] bytes and
//! [`MAX_HEADERS`](super::response_head::MAX_HEADERS) fields (see [`super::response_head`]),
//! framed as RFC 9112 §6.3 says (see [`super::framing`]); interim 1xx responses are skipped,
//! `101` ends the exchange with the connection handed over for an upgrade.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt as _;
use http::{header, response, HeaderMap, Method, StatusCode};
use http_body::Body;
use http_body_util::BodyExt as _;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

use super::backend_body::{BackendBody, READ_CHUNK};
use super::framing::{self, invalid};
use super::headers::ToBackend;
use super::response_head::{parse_head, ResponseHead, MAX_HEAD};

use crate::body::{BoxError, GatewayBody};
use crate::endpoints::Target;

/// Body bytes gathered into one write before it is made.
const WRITE_BATCH: usize = 64 << 10;

/// Why a backend exchange failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (nothing was sent).
    Connect(BoxError),
    /// The connection failed, or the backend's answer was not valid HTTP/1.1.
    Io(io::Error),
    /// The request body could not be read from the client (or exceeded its limit).
    Body(BoxError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Io(e) => write!(f, "{e}"),
            SendError::Body(e) => write!(f, "request body: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) | SendError::Body(e) => Some(e.as_ref()),
            SendError::Io(e) => Some(e),
        }
    }
}

impl From<io::Error> for SendError {
    fn from(e: io::Error) -> Self {
        SendError::Io(e)
    }
}

/// The message of the error for a connection the backend closed before answering.
const CLOSED_UNANSWERED: &str = "the backend closed the connection without answering";

/// Whether `e` says the backend closed (or reset) the connection after the request went out
/// and before any byte of a response: what a keep-alive timeout racing the request looks like.
pub(crate) fn closed_unanswered(e: &io::Error) -> bool {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => true,
        io::ErrorKind::UnexpectedEof => e.to_string() == CLOSED_UNANSWERED,
        _ => false,
    }
}

/// A backend connection's transport.
pub(crate) enum BackendIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (through hyper-rustls' connector).
    Tls(Box<TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>>),
}

impl BackendIo {
    /// From what the connector opened.
    pub(crate) fn from_connector(s: MaybeHttpsStream<TokioIo<TcpStream>>) -> Self {
        match s {
            MaybeHttpsStream::Http(io) => BackendIo::Plain(io.into_inner()),
            tls => BackendIo::Tls(Box::new(TokioIo::new(tls))),
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            BackendIo::Plain(s) => s,
            BackendIo::Tls(s) => match s.inner() {
                MaybeHttpsStream::Http(io) => io.inner(),
                MaybeHttpsStream::Https(tls) => tls.inner().get_ref().0.inner().inner(),
            },
        }
    }
}

impl AsyncRead for BackendIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection to a backend endpoint, with the bytes read from it and not used yet.
pub struct BackendConn {
    pub(super) io: BackendIo,
    /// Bytes read and not used yet.
    pub(super) buf: BytesMut,
}

impl std::fmt::Debug for BackendConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConn")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    None,
    Length(u64),
    Chunked,
}

/// A request ready to go to a backend: its head encoded (kept, so a request without a body
/// can be sent again as it is) and its body.
pub(crate) struct Outbound {
    head: Vec<u8>,
    framing: Outgoing,
    body: Option<GatewayBody>,
    head_request: bool,
    upgrade: bool,
    /// The body has begun to go out (a failed write may then have an early answer).
    body_started: bool,
    /// Longest wait for the next bytes of the response body.
    read_timeout: Duration,
    /// Idempotent and without a body: safe to send again.
    pub(crate) replayable: bool,
    /// The response's fields may stay unparsed (see [`parse_head`]).
    keep_fields: bool,
}

impl Outbound {
    /// Encodes a request for `target`: `method`, the request target `target.base_path` +
    /// `resource` (+ `?query`) in origin-form, `Host` naming the endpoint, then the client's
    /// `headers` that `fields` forwards and the ones it adds, and `body`. With `upgrade` a `101` answer is expected and accepted. The response body
    /// fails when the backend sends nothing for `read_timeout` (nginx's `proxy_read_timeout`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        method: &Method,
        target: &Target,
        resource: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        fields: &ToBackend,
        body: GatewayBody,
        upgrade: bool,
        read_timeout: Duration,
    ) -> Self {
        let method_name = method.as_str();
        let mut size = method_name.len()
            + target.base_path.len()
            + resource.len()
            + query.map_or(0, str::len)
            + target.host.len()
            + 64;
        for (k, v) in headers.iter().chain(fields.added()) {
            size += k.as_str().len() + v.len() + 4;
        }
        let mut head = Vec::with_capacity(size);
        head.extend_from_slice(method_name.as_bytes());
        head.push(b' ');
        request_target(&mut head, &target.base_path, resource, query);
        head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        head.extend_from_slice(target.host.as_bytes());
        head.extend_from_slice(b"\r\n");
        let mut declared = None;
        let forwarded = headers.iter().filter(|(k, _)| fields.forwards(k));
        for (k, v) in forwarded.chain(fields.added()) {
            if k == header::CONTENT_LENGTH {
                declared = v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
            }
            head.extend_from_slice(k.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        let empty = body.is_end_stream();
        let framing = match (empty, declared, body.size_hint().exact()) {
            (true, _, _) => Outgoing::None,
            (false, Some(n), _) => Outgoing::Length(n),
            (false, None, Some(n)) => {
                use std::io::Write as _;
                let _ = write!(head, "content-length: {n}\r\n");
                Outgoing::Length(n)
            }
            (false, None, None) => {
                head.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Outgoing::Chunked
            }
        };
        head.extend_from_slice(b"\r\n");
        Outbound {
            head,
            framing,
            replayable: empty && method.is_idempotent(),
            body: (!empty).then_some(body),
            head_request: method == Method::HEAD,
            upgrade,
            body_started: false,
            read_timeout,
            keep_fields: false,
        }
    }

    /// Lets the response's fields stay as they arrived, when they can
    /// ([`BackendFields`](super::response_head::BackendFields)): for a caller that writes them
    /// to an HTTP/1.1 client as they are and reads none of them.
    pub(crate) fn keep_fields(mut self, keep: bool) -> Self {
        self.keep_fields = keep;
        self
    }
}

/// Appends the origin-form request target: the endpoint's base path, then `resource` (with a
/// `/` between them when it has none; `/` alone when both are empty), then `?query`. The
/// pieces come from parsed URIs (the endpoint's and the client's), so the result is one too.
fn request_target(out: &mut Vec<u8>, base_path: &str, resource: &str, query: Option<&str>) {
    out.extend_from_slice(base_path.as_bytes());
    let slash = !resource.is_empty() && !resource.starts_with('/');
    if slash || (base_path.is_empty() && resource.is_empty()) {
        out.push(b'/');
    }
    out.extend_from_slice(resource.as_bytes());
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
}

/// The backend's answer.
pub(crate) enum Answer {
    /// A response; its body reads from the connection.
    Response(response::Parts, BackendBody),
    /// `101 Switching Protocols`: the connection now carries the upgraded protocol.
    Upgrade(response::Parts, BackendConn),
}

impl BackendConn {
    /// A connection over `io`.
    pub(crate) fn new(io: BackendIo) -> Self {
        BackendConn {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection still looks usable: nothing unread, and the backend has not
    /// closed it. Costs no system call unless the socket turned readable while idle.
    pub(crate) fn looks_open(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let tcp = self.io.tcp();
        let mut cx = Context::from_waker(Waker::noop());
        match tcp.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                let mut rb = ReadBuf::new(&mut probe);
                match tcp.poll_peek(&mut cx, &mut rb) {
                    Poll::Pending => true,
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => false,
                    // bytes on an idle TLS connection are TLS records (a session ticket, say),
                    // which the next read handles; on a plain one they are garbage
                    Poll::Ready(Ok(_)) => matches!(self.io, BackendIo::Tls(_)),
                }
            }
        }
    }

    /// Sends `out` and reads the response head. On success the response body (or the
    /// upgraded connection) owns the connection; `home` is where it goes back to.
    pub(crate) async fn exchange(
        mut self,
        out: &mut Outbound,
        home: &Arc<Target>,
    ) -> Result<Answer, SendError> {
        let head = match self.write_request(out).await {
            Ok(()) => self.read_head(out).await?,
            // a backend may answer before it has read the whole body (413, 401) and close:
            // the write then fails, and the answer, if it came, is what the client gets
            Err(SendError::Io(e)) if out.body_started => match self.read_head(out).await {
                Ok(head) => ResponseHead {
                    reusable: false,
                    ..head
                },
                Err(_) => return Err(SendError::Io(e)),
            },
            Err(e) => return Err(e),
        };
        if head.parts.status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Answer::Upgrade(head.parts, self));
        }
        let ResponseHead {
            parts,
            framing,
            reusable,
            fields,
        } = head;
        let body = BackendBody::new(self, framing, reusable, home.clone(), out.read_timeout)
            .with_fields(fields);
        Ok(Answer::Response(parts, body))
    }

    async fn write_request(&mut self, out: &mut Outbound) -> Result<(), SendError> {
        let Some(mut body) = out.body.take() else {
            self.io.write_all(&out.head).await?;
            // TLS may hold the last record back until flushed; TCP's flush is a no-op
            self.io.flush().await?;
            return Ok(());
        };
        out.body_started = true;
        let chunked = out.framing == Outgoing::Chunked;
        let mut pending = Vec::with_capacity(out.head.len() + 1024);
        pending.extend_from_slice(&out.head);
        let mut sent: u64 = 0;
        loop {
            // frames that are ready now go out together with the head (or each other)
            let next = match body.frame().now_or_never() {
                Some(f) => f,
                None => {
                    if !pending.is_empty() {
                        self.io.write_all(&pending).await?;
                        pending.clear();
                    }
                    body.frame().await
                }
            };
            match next {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers are not forwarded
                    };
                    if data.is_empty() {
                        continue;
                    }
                    sent += data.len() as u64;
                    if chunked {
                        framing::chunk_header(&mut pending, data.len());
                    }
                    if pending.len() + data.len() <= WRITE_BATCH {
                        pending.extend_from_slice(&data);
                    } else {
                        self.io.write_all(&pending).await?;
                        pending.clear();
                        self.io.write_all(&data).await?;
                    }
                    if chunked {
                        pending.extend_from_slice(b"\r\n");
                    }
                    if pending.len() >= WRITE_BATCH {
                        self.io.write_all(&pending).await?;
                        pending.clear();
                    }
                }
                Some(Err(e)) => return Err(SendError::Body(e)),
                None => break,
            }
        }
        match out.framing {
            Outgoing::Chunked => pending.extend_from_slice(b"0\r\n\r\n"),
            Outgoing::Length(n) if n != sent => {
                return Err(SendError::Body(
                    format!("the request body has {sent} bytes, Content-Length says {n}").into(),
                ))
            }
            _ => {}
        }
        if !pending.is_empty() {
            self.io.write_all(&pending).await?;
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Reads until a final response head has arrived (skipping interim 1xx ones).
    async fn read_head(&mut self, out: &Outbound) -> Result<ResponseHead, SendError> {
        let mut received = false;
        loop {
            if !self.buf.is_empty() {
                if let Some(head) = parse_head(
                    &mut self.buf,
                    out.head_request,
                    out.upgrade,
                    out.keep_fields,
                )? {
                    let status = head.parts.status;
                    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                        continue; // 100 Continue, 103 Early Hints: the final answer follows
                    }
                    return Ok(head);
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(invalid(format!(
                        "the backend's response head exceeds {MAX_HEAD} bytes"
                    ))
                    .into());
                }
            }
            self.buf.reserve(READ_CHUNK);
            let n = self.io.read_buf(&mut self.buf).await?;
            if n == 0 {
                let e = if received {
                    invalid("the backend closed the connection within the response head")
                } else {
                    io::Error::new(io::ErrorKind::UnexpectedEof, CLOSED_UNANSWERED)
                };
                return Err(e.into());
            }
            received = true;
        }
    }
}

/// Copies bytes both ways between an upgraded client connection and `backend` (first what
/// the backend sent after its `101`), until either side closes.
pub(crate) async fn splice<C>(mut client: C, mut backend: BackendConn) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    if !backend.buf.is_empty() {
        client.write_all(&backend.buf).await?;
        backend.buf.clear();
    }
    tokio::io::copy_bidirectional(&mut client, &mut backend.io)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_target_joins_base_path_resource_and_query() {
        let t = |base: &str, resource: &str, query: Option<&str>| {
            let mut out = Vec::new();
            request_target(&mut out, base, resource, query);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(t("", "", None), "/");
        assert_eq!(t("", "/a", Some("x=1")), "/a?x=1");
        assert_eq!(t("/api", "", None), "/api");
        assert_eq!(t("/api", "/a/b", None), "/api/a/b");
        assert_eq!(t("/api", "a", Some("")), "/api/a?");
        assert_eq!(t("", "", Some("q")), "/?q");
    }
}
