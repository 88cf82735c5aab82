//! Backend connections: HTTP/1.1 connections kept per endpoint ([`Target`]), handed out LIFO
//! and given back when the response body has been read to its end.
//!
//! This replaces hyper-util's general-purpose pooled client on the hot path. Per request it
//! saves the pool's hash lookup by `(scheme, authority)`, the connect/checkout race future,
//! and the task the pooled client spawns to learn when an HTTP/1 connection is idle again:
//! here the response body itself gives the connection back at its end (see [`PoolReturn`]).
//! The idle list lives in the endpoint, so a redeployed API revision starts with fresh
//! connections and an undeployed one closes its own.
//!
//! A pooled connection the backend closed while it was idle is detected before use
//! (`is_closed`) or, if the close races the request, by hyper handing the unsent request back
//! (`try_send_request`), which is then sent on a new connection. When the request did go out
//! and the backend closed the connection without answering (its keep-alive timeout expiring
//! at that moment), an idempotent request without a body is sent once more on a new
//! connection, as nginx's `proxy_next_upstream error` does; other requests fail with 503.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt as _;

use crate::body::GatewayBody;
use crate::endpoints::Target;

/// Most idle connections kept per endpoint.
const MAX_IDLE: usize = 1024;

/// A pooled connection idle for longer than this may be closed by the backend (its keep-alive
/// timeout) while a request is being written to it; such requests keep a copy for a resend.
/// Under load connections are reused within microseconds and no copy is made.
const STALE_AFTER: Duration = Duration::from_secs(1);

/// A copy of `req` to send again, when that is safe: an idempotent method (RFC 9110 §9.2.2)
/// and no body.
fn replay_copy(req: &Request<GatewayBody>) -> Option<Request<GatewayBody>> {
    use http_body::Body as _;
    if !req.method().is_idempotent() || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(GatewayBody::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// The backend closed (or reset) the connection after the request went out and before any
/// response: what a keep-alive timeout racing the request looks like.
fn closed_unanswered(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_closed() {
        return true;
    }
    matches!(
        io_error_kind(e),
        Some(
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
        )
    )
}

/// The kind of the first I/O error in `e`'s source chain (`e` included).
pub(crate) fn io_error_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// Why a backend exchange failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (nothing was sent).
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed while the request was sent or the response awaited.
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(e.as_ref()),
            SendError::Http(e) => Some(e),
        }
    }
}

/// An idle connection of an endpoint.
pub struct IdleConn {
    tx: SendRequest<GatewayBody>,
    since: Instant,
}

/// The idle connections of one endpoint.
#[derive(Default)]
pub struct IdleList(Mutex<Vec<IdleConn>>);

impl std::fmt::Debug for IdleList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |v| v.len());
        f.debug_struct("IdleList").field("idle", &n).finish()
    }
}

impl IdleList {
    fn pop(&self) -> Option<IdleConn> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn push(&self, tx: SendRequest<GatewayBody>) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < MAX_IDLE {
            v.push(IdleConn {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// How many connections are idle (for tests and metrics).
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |v| v.len())
    }

    /// Whether no connection is idle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Gives a backend connection back to its endpoint once the response body has ended.
/// Dropped early (the client went away mid-body), it drops the connection instead, which
/// hyper then closes.
pub struct PoolReturn {
    tx: SendRequest<GatewayBody>,
    target: Arc<Target>,
}

impl PoolReturn {
    /// The body ended: the connection is reusable.
    pub fn give_back(self) {
        self.target.idle.push(self.tx);
    }
}

/// Opens backend connections (TCP, TLS for https) and runs them.
#[derive(Clone)]
pub struct BackendPool {
    connector: HttpsConnector<HttpConnector>,
    idle_timeout: Duration,
}

impl std::fmt::Debug for BackendPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendPool")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl BackendPool {
    /// A pool whose connects time out after `connect_timeout`; TLS uses the webpki roots.
    pub fn new(connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        BackendPool {
            connector,
            idle_timeout: Duration::from_secs(90),
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) to `target` on an idle connection or a new
    /// one. On success, the response and what gives the connection back at the body's end.
    pub async fn send(
        &self,
        target: &Arc<Target>,
        mut req: Request<GatewayBody>,
    ) -> Result<(Response<Incoming>, PoolReturn), SendError> {
        while let Some(IdleConn { mut tx, since }) = target.idle.pop() {
            let idle = since.elapsed();
            if tx.is_closed() || idle > self.idle_timeout {
                continue;
            }
            if !tx.is_ready() && tx.ready().await.is_err() {
                continue;
            }
            // a backend may close a connection idle for a while just as the request goes out;
            // an idempotent request without a body is then sent again on a new connection
            let replay = if idle > STALE_AFTER {
                replay_copy(&req)
            } else {
                None
            };
            match tx.try_send_request(req).await {
                Ok(res) => {
                    let back = PoolReturn {
                        tx,
                        target: target.clone(),
                    };
                    return Ok((res, back));
                }
                Err(mut e) => match e.take_message() {
                    // not sent: the connection went away meanwhile; try the next one
                    Some(r) => req = r,
                    None => {
                        let err = e.into_error();
                        match replay {
                            Some(r) if closed_unanswered(&err) => {
                                tracing::debug!(endpoint = %target.url, error = %err,
                                    "pooled connection closed before answering; sending again");
                                req = r;
                                break;
                            }
                            _ => return Err(SendError::Http(err)),
                        }
                    }
                },
            }
        }
        // boxed: opening a connection (TCP, maybe TLS) is the rare path, and its large future
        // would otherwise be part of every request's future, copied as it moves
        let mut tx = Box::pin(self.connect(target)).await?;
        let res = tx.send_request(req).await.map_err(SendError::Http)?;
        Ok((
            res,
            PoolReturn {
                tx,
                target: target.clone(),
            },
        ))
    }

    async fn connect(&self, target: &Target) -> Result<SendRequest<GatewayBody>, SendError> {
        let uri = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let io = self
            .connector
            .clone()
            .oneshot(uri)
            .await
            .map_err(SendError::Connect)?;
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Http)?;
        let url = target.url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(endpoint = %url, error = %e, "backend connection ended");
            }
        });
        Ok(tx)
    }
}
