//! A backend's response body, read from the connection as the client takes it: by its
//! length, chunked, or until the backend closes. At its end the connection goes back to the
//! endpoint's idle list (when the response allows reuse); dropped early, it is closed. A wait
//! for more bytes is bounded by the endpoint's timeout (nginx's `proxy_read_timeout`).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncReadExt as _;
use tokio::time::{Instant, Sleep};

use super::client::BackendConn;
use super::framing::{Chunked, Decoded, Framing};
use super::response_head::BackendFields;
use crate::endpoints::Target;

/// Bytes read from a backend at a time (at least).
pub(crate) const READ_CHUNK: usize = 8 << 10;
/// Largest body frame handed on at once.
const MAX_FRAME: usize = 64 << 10;

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
    /// The response's fields, when they were left as they arrived (boxed: a body is moved
    /// several times on its way to the client, and a pointer moves for less).
    fields: Option<Box<BackendFields>>,
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
    pub(crate) fn new(
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
            fields: None,
        };
        if matches!(body.reading, Reading::Length(0)) {
            body.finish();
        }
        body
    }

    /// The body of a response whose fields (those the client may see) are `fields`, as they
    /// arrived, instead of in the response's header map.
    pub(crate) fn with_fields(mut self, fields: Option<Box<BackendFields>>) -> Self {
        self.fields = fields;
        self
    }

    /// The response's fields, when the proxy left them as they arrived: they are not in the
    /// response's header map then, and go to the client as they are.
    pub fn fields(&self) -> Option<&BackendFields> {
        self.fields.as_deref()
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
