//! [`GatewayBody`]: the one body type of the gateway, for requests and responses.
//!
//! It streams a hyper [`Incoming`] body through untouched (no buffering), carries small fixed
//! bodies (error responses, admin pages), and can enforce a byte limit on a streamed request
//! body: past the limit it yields [`BodyTooLarge`], which the proxy maps to 413.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apim_core::artifacts::RouteMatch;
use apim_core::auth::AuthContext;
use apim_core::throttle::{Outcome, ThrottleContext, ThrottleDecider};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;

use crate::proxy::backend_body::BackendBody;
use crate::proxy::response_head::BackendFields;

/// Boxed error of a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body exceeded the limit of the API (or the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body exceeds {limit} bytes")]
pub struct BodyTooLarge {
    /// The limit in bytes.
    pub limit: u64,
}

enum Kind {
    Full(Option<Bytes>),
    Incoming(Incoming),
    /// A backend response; the connection goes back to its pool at the body's end.
    Backend(BackendBody),
    Boxed(BoxBody<Bytes, BoxError>),
}

/// The gateway's body: streamed, fixed, or boxed; optionally limited in size.
pub struct GatewayBody {
    kind: Kind,
    /// Bytes still allowed, and the limit (for the error), when limited.
    limit: Option<(u64, u64)>,
    /// Counts the bytes that go through and reports them when the body ends or is dropped
    /// (bandwidth accounting of a response whose length was not known at its head).
    meter: Option<Box<Metered>>,
}

impl fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Full(_) => "full",
            Kind::Incoming(_) => "incoming",
            Kind::Backend(_) => "backend",
            Kind::Boxed(_) => "boxed",
        };
        f.debug_struct("GatewayBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl GatewayBody {
    /// An empty body.
    pub fn empty() -> Self {
        GatewayBody {
            kind: Kind::Full(None),
            limit: None,
            meter: None,
        }
    }

    /// Any other body (boxed).
    pub fn boxed<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        GatewayBody {
            kind: Kind::Boxed(body.map_err(Into::into).boxed()),
            limit: None,
            meter: None,
        }
    }

    /// This body, failing with [`BodyTooLarge`] once more than `limit` bytes went through.
    pub fn limited(mut self, limit: u64) -> Self {
        self.limit = Some((limit, limit));
        self
    }

    /// Counts the bytes of this (response) body and hands them to `meter` when it ends or is
    /// dropped.
    pub(crate) fn metered(&mut self, meter: Box<Metered>) {
        self.meter = Some(meter);
    }

    /// The end of the stream: a meter reports now.
    fn ended(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        drop(self.meter.take());
        Poll::Ready(None)
    }

    /// The fields of a backend's response that the proxy left as they arrived (see
    /// [`BackendFields`]): they are not in the response's header map, and a writer puts them
    /// in front of the map's fields.
    pub fn backend_fields(&self) -> Option<&BackendFields> {
        match &self.kind {
            Kind::Backend(b) => b.fields(),
            _ => None,
        }
    }
}

impl Default for GatewayBody {
    fn default() -> Self {
        GatewayBody::empty()
    }
}

impl From<Bytes> for GatewayBody {
    fn from(b: Bytes) -> Self {
        GatewayBody {
            kind: Kind::Full((!b.is_empty()).then_some(b)),
            limit: None,
            meter: None,
        }
    }
}

impl From<String> for GatewayBody {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for GatewayBody {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<Incoming> for GatewayBody {
    fn from(b: Incoming) -> Self {
        GatewayBody {
            kind: Kind::Incoming(b),
            limit: None,
            meter: None,
        }
    }
}

impl From<BackendBody> for GatewayBody {
    fn from(b: BackendBody) -> Self {
        GatewayBody {
            kind: Kind::Backend(b),
            limit: None,
            meter: None,
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // every variant is Unpin
        let this = self.get_mut();
        let frame = match &mut this.kind {
            Kind::Full(b) => match b.take() {
                Some(b) => Frame::data(b),
                None => return this.ended(),
            },
            Kind::Incoming(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(f))) => f,
                Poll::Ready(None) => return this.ended(),
                Poll::Pending => return Poll::Pending,
            },
            Kind::Backend(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(f))) => f,
                Poll::Ready(None) => return this.ended(),
                Poll::Pending => return Poll::Pending,
            },
            Kind::Boxed(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => f,
                Poll::Ready(None) => return this.ended(),
                other => return other,
            },
        };
        if let (Some(m), Some(data)) = (&mut this.meter, frame.data_ref()) {
            m.response_bytes += data.len() as u64;
        }
        if let (Some((left, limit)), Some(data)) = (&mut this.limit, frame.data_ref()) {
            let n = data.len() as u64;
            if n > *left {
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit: *limit }))));
            }
            *left -= n;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Incoming(b) => b.is_end_stream(),
            Kind::Backend(b) => b.is_end_stream(),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Incoming(b) => b.size_hint(),
            Kind::Backend(b) => b.size_hint(),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

/// Post-response accounting of a response whose length was not known at its head (or whose
/// request body had not been read to its end): the bytes that went through, reported to
/// the throttle decider when the body ends or is dropped (a client that went away).
pub(crate) struct Metered {
    pub(crate) decider: Arc<dyn ThrottleDecider>,
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) client_ip: Option<std::net::IpAddr>,
    pub(crate) route: RouteMatch,
    pub(crate) auth: Arc<AuthContext>,
    /// The request's `Content-Length` (what the decision counted).
    pub(crate) declared: u64,
    /// The request body's bytes, counted as they were read.
    pub(crate) request: Option<Arc<ClientWait>>,
    pub(crate) status: u16,
    pub(crate) response_bytes: u64,
}

impl Drop for Metered {
    fn drop(&mut self) {
        let headers = http::HeaderMap::new();
        let ctx = ThrottleContext {
            method: &self.method,
            uri: &self.uri,
            headers: &headers,
            client_ip: self.client_ip,
            route: Some(&self.route),
            auth: Some(&self.auth),
            request_bytes: self.declared,
        };
        let request_bytes = self.request.as_ref().map_or(self.declared, |r| r.bytes());
        self.decider.record(
            &ctx,
            &Outcome {
                status: self.status,
                request_bytes,
                response_bytes: self.response_bytes,
            },
        );
    }
}

/// The client sent no bytes of its request body for the client-body timeout
/// (`gateway.client_body_timeout_ms`): the proxy answers 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client sent no request body bytes for {0:?}")]
pub struct ClientBodyTimeout(pub std::time::Duration);

/// How long a request's body kept the gateway waiting for its client (shared between the
/// body, which is being sent to the backend, and the proxy, whose endpoint timer must not
/// count that time against the backend). Atomics, but one task uses them.
#[derive(Debug)]
pub(crate) struct ClientWait {
    /// When the request began (the base of `since_us`).
    base: tokio::time::Instant,
    /// Finished waits, µs.
    waited_us: AtomicU64,
    /// Start of the wait in progress, µs after `base` + 1 (0: none in progress).
    since_us: AtomicU64,
    /// Body bytes read from the client so far.
    bytes: AtomicU64,
    /// The body has been read to its end.
    done: AtomicBool,
}

impl ClientWait {
    fn new() -> Self {
        ClientWait {
            base: tokio::time::Instant::now(),
            waited_us: AtomicU64::new(0),
            since_us: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    fn micros(&self, at: tokio::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    /// The body bytes read from the client so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the body has been read to its end.
    pub(crate) fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// The time spent waiting for the client up to `now`, the wait in progress included.
    pub(crate) fn waited(&self, now: tokio::time::Instant) -> Duration {
        let mut us = self.waited_us.load(Ordering::Relaxed);
        let since = self.since_us.load(Ordering::Relaxed);
        if since != 0 {
            us += self.micros(now).saturating_sub(since - 1);
        }
        Duration::from_micros(us)
    }
}

/// A client's request body that fails with [`ClientBodyTimeout`] when the client sends
/// nothing for `timeout`, and keeps count of the time spent waiting for it ([`ClientWait`]).
/// The timer is made at the first wait (a body that arrives without waiting needs none) and
/// moved for the waits after it.
struct ClientBody {
    inner: GatewayBody,
    timeout: Duration,
    wait: Arc<ClientWait>,
    waiting: Option<tokio::time::Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if this.waiting.is_none() {
                    let now = tokio::time::Instant::now();
                    this.waiting = Some(now);
                    let w = &this.wait;
                    w.since_us.store(w.micros(now) + 1, Ordering::Relaxed);
                    let deadline = now + this.timeout;
                    match &mut this.timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                match this.timer.as_mut().map(|t| t.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => {
                        Poll::Ready(Some(Err(Box::new(ClientBodyTimeout(this.timeout)))))
                    }
                    _ => Poll::Pending,
                }
            }
            ready => {
                let w = &this.wait;
                if let Some(since) = this.waiting.take() {
                    let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
                    w.waited_us.fetch_add(us, Ordering::Relaxed);
                    w.since_us.store(0, Ordering::Relaxed);
                }
                match &ready {
                    Poll::Ready(Some(Ok(f))) => {
                        if let Some(d) = f.data_ref() {
                            w.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Poll::Ready(None) => w.done.store(true, Ordering::Relaxed),
                    _ => {}
                }
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl GatewayBody {
    /// This body (a client's request body), failing with [`ClientBodyTimeout`] when the
    /// client sends nothing for `timeout`; with the record of the time spent waiting for it.
    pub(crate) fn client_timed(self, timeout: Duration) -> (GatewayBody, Arc<ClientWait>) {
        let wait = Arc::new(ClientWait::new());
        let body = ClientBody {
            inner: self,
            timeout,
            wait: wait.clone(),
            waiting: None,
            timer: None,
        };
        (GatewayBody::boxed(body), wait)
    }
}

/// Whether an error (or anything in its source chain) is a [`ClientBodyTimeout`].
pub fn is_client_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<ClientBodyTimeout>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Whether an error (or anything in its source chain) is a [`BodyTooLarge`].
pub fn is_body_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTooLarge>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn limit_fails_past_the_limit() {
        let ok = GatewayBody::from(Bytes::from_static(b"12345")).limited(5);
        assert_eq!(ok.collect().await.unwrap().to_bytes(), "12345");
        let big = GatewayBody::from(Bytes::from_static(b"123456")).limited(5);
        let err = big.collect().await.unwrap_err();
        assert!(is_body_too_large(err.as_ref()), "{err}");
    }
}
