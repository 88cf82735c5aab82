use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::artifacts::RouteMatch;
use crate::auth::AuthContext;
use crate::BoxResponseFuture;

/// One request's analytics record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Ms since the Unix epoch.
    pub time: i64,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// API id, if routed.
    pub api_id: Option<String>,
    /// API context, if routed.
    pub api_context: Option<String>,
    /// Application id, if authenticated.
    pub application_id: Option<String>,
    /// Response status.
    pub status: u16,
    /// Time to the response head.
    pub latency: Duration,
}

/// Where [`EventLayer`] puts records. Must not block: drop and count instead.
pub trait RequestSink: Send + Sync + 'static {
    /// Takes a record.
    fn emit(&self, record: RequestRecord);
}

/// A bounded channel sink: a background task drains it; when full, records are dropped and
/// counted rather than slowing requests down.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<RequestRecord>,
    dropped: Arc<AtomicU64>,
}

impl ChannelSink {
    /// A sink with room for `capacity` records, and its receiving end.
    pub fn new(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<RequestRecord>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (
            ChannelSink {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Records dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl RequestSink for ChannelSink {
    fn emit(&self, record: RequestRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Emits a [`RequestRecord`] for every request to a [`RequestSink`], after the inner service
/// answered. Never blocks the request.
pub struct EventLayer<K: ?Sized> {
    sink: Arc<K>,
}

impl<K: ?Sized> Clone for EventLayer<K> {
    fn clone(&self) -> Self {
        EventLayer {
            sink: self.sink.clone(),
        }
    }
}

impl<K: ?Sized> fmt::Debug for EventLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLayer").finish_non_exhaustive()
    }
}

impl<K: RequestSink + ?Sized> EventLayer<K> {
    /// A layer emitting to `sink`.
    pub fn new(sink: Arc<K>) -> Self {
        EventLayer { sink }
    }
}

impl<S, K: ?Sized> Layer<S> for EventLayer<K> {
    type Service = EventService<S, K>;
    fn layer(&self, inner: S) -> Self::Service {
        EventService {
            inner,
            sink: self.sink.clone(),
        }
    }
}

/// The service of [`EventLayer`].
pub struct EventService<S, K: ?Sized> {
    inner: S,
    sink: Arc<K>,
}

impl<S: Clone, K: ?Sized> Clone for EventService<S, K> {
    fn clone(&self) -> Self {
        EventService {
            inner: self.inner.clone(),
            sink: self.sink.clone(),
        }
    }
}

impl<S: fmt::Debug, K: ?Sized> fmt::Debug for EventService<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for EventService<S, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    K: RequestSink + ?Sized,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let route = req
            .extensions()
            .get::<RouteMatch>()
            .map(|r| (r.api.api.id.clone(), r.api.api.context.clone()));
        let app = req
            .extensions()
            .get::<Arc<AuthContext>>()
            .map(|a| a.application_id.clone());
        let fut = self.inner.call(req);
        let sink = self.sink.clone();
        Box::pin(async move {
            let res = fut.await?;
            // layers inside may have routed/authenticated: prefer what the response carries
            let (api_id, api_context) = match res.extensions().get::<RouteMatch>() {
                Some(r) => (Some(r.api.api.id.clone()), Some(r.api.api.context.clone())),
                None => route.map_or((None, None), |(a, b)| (Some(a), Some(b))),
            };
            let application_id = res
                .extensions()
                .get::<Arc<AuthContext>>()
                .map(|a| a.application_id.clone())
                .or(app);
            sink.emit(RequestRecord {
                time: crate::time::now_ms(),
                method,
                path,
                api_id,
                api_context,
                application_id,
                status: res.status().as_u16(),
                latency: start.elapsed(),
            });
            Ok(res)
        })
    }
}
