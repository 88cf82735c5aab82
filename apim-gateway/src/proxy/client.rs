//! The backend side of the proxy: HTTP/1.1 exchanges on a connection the request owns.
//!
//! hyper's client runs every connection as a task of its own and hands it requests, responses
//! and body chunks through channels: per proxied request several task wake-ups and channel
//! operations. Here the request's own future writes the request and reads the response head,
//! and the response body ([`BackendBody`]) reads the rest straight from the socket; at the
//! body's end the connection goes back to its endpoint's idle list. One request at a time per
//! connection, no pipelining (as nginx and hyper's pooled client do).
//!
//! What is sent: the request line in origin-form, the headers as given (the proxy has
//! removed the hop-by-hop ones and set `Host`), no `Expect` (the body follows at once), and
//! the body framed by its `Content-Length` or, when its length is unknown, chunked.
//! What is accepted: a response head up to [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields,
//! framed as RFC 9112 §6.3 says (see [`super::framing`]); interim 1xx responses are skipped,
//! `101` ends the exchange with the connection handed over for an upgrade.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::{header, response, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::framing::{self, Chunked, Decoded, Framing};

use crate::body::{BoxError, GatewayBody};
use crate::endpoints::Target;

/// Largest response head accepted from a backend.
pub(crate) const MAX_HEAD: usize = 64 << 10;
/// Most header fields accepted in a response head.
pub(crate) const MAX_HEADERS: usize = 100;
/// Bytes read from a backend at a time (at least).
const READ_CHUNK: usize = 8 << 10;
/// Largest body frame handed on at once.
const MAX_FRAME: usize = 64 << 10;
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

fn invalid(msg: impl Into<BoxError>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
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
    io: BackendIo,
    buf: BytesMut,
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
}

impl Outbound {
    /// Encodes a request for `target`: `method`, the request target `target.base_path` +
    /// `resource` (+ `?query`) in origin-form, `Host` naming the endpoint, then `headers`
    /// (hop-by-hop ones already removed; any `Host` or `Expect` among them is left out) and
    /// `body`. With `upgrade` a `101` answer is expected and accepted. The response body
    /// fails when the backend sends nothing for `read_timeout` (nginx's `proxy_read_timeout`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        method: &Method,
        target: &Target,
        resource: &str,
        query: Option<&str>,
        headers: &HeaderMap,
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
        for (k, v) in headers {
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
        for (k, v) in headers {
            if k == header::HOST || k == header::EXPECT {
                continue;
            }
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
        }
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
        let (parts, framing, reusable) = match self.write_request(out).await {
            Ok(()) => self.read_head(out).await?,
            // a backend may answer before it has read the whole body (413, 401) and close:
            // the write then fails, and the answer, if it came, is what the client gets
            Err(SendError::Io(e)) if out.body_started => match self.read_head(out).await {
                Ok((parts, framing, _)) => (parts, framing, false),
                Err(_) => return Err(SendError::Io(e)),
            },
            Err(e) => return Err(e),
        };
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Answer::Upgrade(parts, self));
        }
        let body = BackendBody::new(self, framing, reusable, home.clone(), out.read_timeout);
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
    async fn read_head(
        &mut self,
        out: &Outbound,
    ) -> Result<(response::Parts, Framing, bool), SendError> {
        let mut received = false;
        loop {
            if !self.buf.is_empty() {
                if let Some((parts, framing, reusable)) =
                    parse_response_head(&mut self.buf, out.head_request, out.upgrade)?
                {
                    if parts.status.is_informational()
                        && parts.status != StatusCode::SWITCHING_PROTOCOLS
                    {
                        continue; // 100 Continue, 103 Early Hints: the final answer follows
                    }
                    return Ok((parts, framing, reusable));
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
    let count = res.headers.len();
    for (i, (span, h)) in spans.iter_mut().zip(res.headers.iter()).enumerate() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
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
    let mut headers = HeaderMap::with_capacity(count);
    for (i, &[ns, ne, vs, ve]) in spans[..count].iter().enumerate() {
        if keep & (1 << i) == 0 {
            continue;
        }
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name = HeaderName::from_bytes(&head[ns..ne])
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
            for token in head[vs as usize..ve as usize].split(|b| *b == b',') {
                if let Ok(name) = HeaderName::from_bytes(token.trim_ascii()) {
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
        let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
        let single =
            values.next().is_some_and(|v| !v.as_bytes().contains(&b',')) && values.next().is_none();
        if !single {
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

/// Where a response body is.
#[derive(Debug)]
enum Reading {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// A backend response body, read from the connection as the client takes it. At its end
/// the connection goes back to the endpoint's idle list (when the response allows reuse);
/// dropped early, the connection is closed.
pub struct BackendBody {
    reading: Reading,
    conn: Option<BackendConn>,
    reusable: bool,
    home: Arc<Target>,
    read_timeout: Duration,
    /// Armed when a read has to wait (a response that arrived whole never needs it).
    deadline: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for BackendBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendBody")
            .field("reading", &self.reading)
            .field("done", &self.conn.is_none())
            .finish_non_exhaustive()
    }
}

impl BackendBody {
    fn new(
        conn: BackendConn,
        framing: Framing,
        reusable: bool,
        home: Arc<Target>,
        read_timeout: Duration,
    ) -> Self {
        let reading = match framing {
            Framing::Empty => Reading::Length(0),
            Framing::Length(n) => Reading::Length(n),
            Framing::Chunked => Reading::Chunked(Chunked::Size),
            Framing::UntilClose => Reading::UntilClose,
        };
        let mut body = BackendBody {
            reading,
            conn: Some(conn),
            reusable,
            home,
            read_timeout,
            deadline: None,
        };
        if matches!(body.reading, Reading::Length(0)) {
            body.finish();
        }
        body
    }

    /// The body ended: the connection goes back (if reusable and nothing extra was sent).
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.buf.is_empty() {
                self.home.idle.push(conn);
            }
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut self.reading {
                Reading::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len())
                            .min(MAX_FRAME);
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Reading::Chunked(state) => match state.decode(&mut conn.buf, MAX_FRAME)? {
                    Decoded::Data(d) => return Poll::Ready(Some(Ok(d))),
                    Decoded::End => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    Decoded::NeedMore => {}
                },
                Reading::UntilClose => {
                    if !conn.buf.is_empty() {
                        let n = conn.buf.len().min(MAX_FRAME);
                        return Poll::Ready(Some(Ok(conn.buf.split_to(n).freeze())));
                    }
                }
            }
            conn.buf.reserve(READ_CHUNK);
            let read = {
                let read = conn.io.read_buf(&mut conn.buf);
                std::pin::pin!(read).poll(cx)
            };
            let n = match read {
                Poll::Ready(r) => {
                    if let Some(d) = self.deadline.as_mut() {
                        d.as_mut().reset(Instant::now() + self.read_timeout);
                    }
                    r?
                }
                Poll::Pending => {
                    let timeout = self.read_timeout;
                    let deadline = self
                        .deadline
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    ready!(deadline.as_mut().poll(cx));
                    self.conn = None;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the backend sent no response data for {timeout:?}"),
                    ))));
                }
            };
            if n == 0 {
                if matches!(self.reading, Reading::UntilClose) {
                    self.conn = None;
                    return Poll::Ready(None);
                }
                self.conn = None;
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the backend closed the connection before the end of the response body",
                ))));
            }
        }
    }
}

impl Body for BackendBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        match this.poll_data(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                Poll::Ready(Some(Err(e)))
            }
            other => other.map(|d| d.map(|d| d.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.conn, &self.reading) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Reading::Length(n)) => SizeHint::with_exact(*n),
            _ => SizeHint::default(),
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
