//! Serving an axum [`Router`] — the control plane (9763/9443), the Traffic Manager
//! (9611/9711), the gateway's admin port — with the protections of the gateway's traffic
//! listener ([`crate::listener`]):
//!
//! - a request head that does not complete within `idle_timeout` closes the connection
//!   (hyper's header-read timer on HTTP/1.1; before the HTTP version is known, the watchdog
//!   below), and so does a connection on which no request started and none was in flight for
//!   a whole `idle_timeout` (after one to two periods; h2 included). A request in flight — a
//!   long event stream — keeps its connection;
//! - `send_timeout`: a write (a response to a client that stopped reading) that makes no
//!   progress for this long closes the connection;
//! - `max_connections`: a connection accepted beyond it is closed at once (refused), so an
//!   attacker holding connections cannot starve the process of file descriptors or memory;
//! - a TLS handshake must complete within `min(10 s, idle_timeout)`;
//! - request heads are limited to [`MAX_HEAD_BYTES`] (431).
//!
//! These ports are not on the data plane's hot path: the per-request cost (a counted
//! in-flight guard, hyper's header timer) is what the gateway's listener avoids and these can
//! afford.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apim_core::auth::key_limits::IpRange;
use axum::Router;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Largest request head (request line and fields) these servers read.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Connection limits of a router's listeners; clones share the connection count.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Slow or incomplete request heads and idle connections are closed after this.
    pub idle_timeout: Duration,
    /// A response write that makes no progress for this long closes the connection.
    pub send_timeout: Duration,
    /// Most open connections (shared by every listener given clones of these limits).
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Load balancers / proxies whose `X-Forwarded-For` names the client (see
    /// [`crate::client_address`]).
    pub trusted_proxies: Arc<[IpRange]>,
    permits: Arc<Semaphore>,
}

impl ServerLimits {
    /// Limits with a fresh connection count.
    pub fn new(idle_timeout: Duration, send_timeout: Duration, max_connections: usize) -> Self {
        let max_connections = max_connections.max(1);
        ServerLimits {
            idle_timeout,
            send_timeout,
            max_connections,
            drain_timeout: Duration::from_secs(10),
            trusted_proxies: Arc::from(Vec::new()),
            permits: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// The control plane's and Traffic Manager's limits (`server.idle_timeout_ms`,
    /// `server.send_timeout_ms`, `server.max_connections`).
    pub fn from_config(c: &apim_core::config::ServerConfig) -> Self {
        Self::new(
            Duration::from_millis(c.idle_timeout_ms),
            Duration::from_millis(c.send_timeout_ms),
            c.max_connections,
        )
        // validated with the configuration: an entry that does not parse cannot be here
        .with_trusted_proxies(
            c.trusted_proxies
                .iter()
                .filter_map(|p| IpRange::parse(p).ok())
                .collect(),
        )
    }

    /// The proxies whose `X-Forwarded-For` is believed (`server.trusted_proxies`).
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpRange>) -> Self {
        self.trusted_proxies = Arc::from(proxies);
        self
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.permits.available_permits()
    }
}

fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`, then stops accepting
/// and drains open connections for up to `limits.drain_timeout`.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            x = crate::listener::accept(&listener) => x,
            () = &mut shutdown => break,
        };
        let Ok(permit) = limits.permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.max_connections, "connection limit reached: closing");
            drop(stream);
            continue;
        };
        let (router, builder, tls, limits) =
            (router.clone(), builder.clone(), tls.clone(), limits.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match tls {
                None => serve_conn(&builder, stream, peer, router, watcher, &limits).await,
                Some(acceptor) => {
                    let handshake = limits.idle_timeout.min(Duration::from_secs(10));
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_conn(&builder, s, peer, router, watcher, &limits).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await;
}

async fn serve_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    peer: std::net::SocketAddr,
    router: Router,
    watcher: Watcher,
    limits: &ServerLimits,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let counted = activity.clone();
    let proxies = limits.trusted_proxies.clone();
    let via_proxy = proxies.iter().any(|p| p.contains(peer.ip()));
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        // the client's address, for handlers that count per address (password lock-out)
        let client = if via_proxy {
            crate::client_address::client_address(req.headers(), peer, &proxies)
        } else {
            peer
        };
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(client));
        let in_flight = InFlight::start(&counted);
        let call = tower::ServiceExt::oneshot(router.clone(), req);
        async move {
            let res = match call.await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(res.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let io = SendTimeout::new(io, limits.send_timeout);
    let conn = watcher.watch(
        builder
            .serve_connection_with_upgrades(TokioIo::new(io), svc)
            .into_owned(),
    );
    let served = async {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    };
    watchdog(served, &activity, limits.idle_timeout).await;
}

#[derive(Debug, Default)]
struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

/// A request counted as in flight until its response body ends or is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Tracked {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Runs `conn`, closing it (by dropping it) when over a whole `idle` period no request started
/// and none was in flight.
async fn watchdog<F: Future<Output = ()>>(conn: F, activity: &Activity, idle: Duration) {
    tokio::pin!(conn);
    let mut seen = activity.started.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            () = &mut conn => return,
            () = tokio::time::sleep(idle) => {
                let now = activity.started.load(Ordering::Relaxed);
                if now == seen && activity.in_flight.load(Ordering::Relaxed) == 0 {
                    tracing::debug!("closing an idle connection");
                    return;
                }
                seen = now;
            }
        }
    }
}

/// An I/O stream whose writes fail with `TimedOut` once one has been pending (the peer not
/// reading, its window full) for longer than the limit.
struct SendTimeout<I> {
    io: I,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> SendTimeout<I> {
    fn new(io: I, limit: Duration) -> Self {
        SendTimeout {
            io,
            limit,
            stalled: None,
        }
    }

    /// On `Pending`, arms the timer (once per stall) and fails when it fired; on `Ready`,
    /// disarms it.
    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "send timeout: the peer stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for SendTimeout<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for SendTimeout<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.check(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.check(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.check(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Issue 18 item 23: a write to a peer that stopped reading fails after the send timeout
    /// instead of holding the connection (and its task) for ever.
    #[tokio::test]
    async fn a_stalled_write_times_out() {
        let (near, _far) = tokio::io::duplex(1024); // the far end never reads
        let mut io = SendTimeout::new(near, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), io.write_all(&[0u8; 64 * 1024]))
            .await
            .expect("the write ends within the limit")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // a peer that reads keeps the stream going
        let (near, mut far) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut far, &mut sink)
                .await
                .map(|_| sink.len())
        });
        let mut io = SendTimeout::new(near, Duration::from_millis(200));
        io.write_all(&[0u8; 64 * 1024]).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap().unwrap(), 64 * 1024);
    }

    /// Issue 18 item 11: handlers see the client's address (`ConnectInfo`), which the password
    /// lock-out counts failures by.
    #[tokio::test]
    async fn handlers_see_the_peer_address() {
        use axum::extract::ConnectInfo;
        use tokio::io::AsyncReadExt;
        let router = Router::new().route(
            "/peer",
            axum::routing::get(
                |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
                    peer.ip().to_string()
                },
            ),
        );
        for (trusted, expected) in [(None, "127.0.0.1"), (Some("127.0.0.1"), "203.0.113.9")] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let limits = ServerLimits::new(Duration::from_secs(5), Duration::from_secs(5), 8)
                .with_trusted_proxies(
                    trusted
                        .map(|t| IpRange::parse(t).unwrap())
                        .into_iter()
                        .collect(),
                );
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve_router(
                listener,
                router.clone(),
                None,
                limits,
                async {
                    let _ = stopped.await;
                },
            ));
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                b"GET /peer HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with(expected), "{trusted:?}: {answer}");
            let _ = stop.send(());
            server.await.unwrap();
        }
    }
}
