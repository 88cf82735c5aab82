//! The listener: hyper 1 over TCP or TLS, HTTP/1.1 and HTTP/2 (h2c by prior knowledge, h2 by
//! ALPN), WebSocket upgrades, connection limits and graceful shutdown.
//!
//! Limits enforced here (the per-API body limit is the proxy's):
//! - header block over `max_header_bytes` → 431 (HTTP/1; HTTP/2 via `max_header_list_size`);
//! - a malformed request line, duplicate `Content-Length`, `Content-Length` with
//!   `Transfer-Encoding` → 400 by hyper's parser, before any service runs;
//! - keep-alive idle timeout and slow heads (`idle_timeout`): a connection on which no request
//!   started and none was in flight for a whole `idle_timeout` is closed (after one to two
//!   periods), which also ends a head that never completes; a request in flight keeps its
//!   connection (see `watchdog`);
//! - `max_connections`: beyond it, a listener holds the one connection it accepted until a slot
//!   frees and accepts no more (back-pressure in the kernel backlog); the count is shared by
//!   all listeners given the same [`ConnLimits`] (the gateway's traffic ports and worker
//!   threads).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apim_core::config::Http1Server;
use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::alarm::Alarm;
use crate::body::GatewayBody;
use crate::flow::{Conn, Flow};
use crate::http1::{self, Native, Rewind};
use crate::metrics::Metrics;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Idle keep-alive connections (and slow request heads) are closed after this.
    pub idle_timeout: Duration,
    /// A connection whose response write made no progress for this long (the client stopped
    /// reading) is closed.
    pub send_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// The connection slots (`max_connections` of them), shared by every listener (and
    /// worker thread) given clones of these limits.
    pub permits: Arc<Semaphore>,
    /// Which server reads HTTP/1.1 requests (`gateway.http1_server`).
    pub http1_server: Http1Server,
}

impl ConnLimits {
    /// Limits from the gateway configuration.
    pub fn from_config(c: &apim_core::config::GatewayConfig) -> Self {
        ConnLimits {
            max_header_bytes: c.max_header_bytes,
            idle_timeout: Duration::from_millis(c.idle_timeout_ms),
            send_timeout: Duration::from_millis(c.send_timeout_ms),
            max_connections: c.max_connections.max(1),
            drain_timeout: Duration::from_millis(c.request_timeout_ms),
            permits: Arc::new(Semaphore::new(c.max_connections.max(1))),
            http1_server: c.http1_server,
        }
    }
}

fn builder(limits: &ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // slow heads and idle keep-alive connections are the watchdog's (see `watchdog`):
        // hyper's header-read timer costs a timer and an allocation per request
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting and drains
/// in-flight requests (up to `limits.drain_timeout`). With `tls`, connections are TLS.
pub async fn serve(
    listener: TcpListener,
    flow: Arc<Flow>,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    // tells native HTTP/1 connections to finish (hyper's are told through `graceful`)
    let (stop, stopped) = watch::channel(false);
    let native = (limits.http1_server == Http1Server::Native).then(|| Native {
        max_head: limits.max_header_bytes.max(8192),
        stop: stopped,
    });
    let permits = limits.permits.clone();
    let timeouts = Timeouts::of(&limits);
    tokio::pin!(shutdown);
    loop {
        // accept, then take a slot: a listener waiting for connections holds no slot, so idle
        // ports do not eat into the limit the others share; at most one accepted connection
        // per listener waits for a slot, the rest wait in the kernel backlog
        let (stream, peer) = tokio::select! {
            x = accept(&listener) => x,
            () = &mut shutdown => break,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = &mut shutdown => break,
            },
        };
        let _ = stream.set_nodelay(true);
        let flow = flow.clone();
        let builder = builder.clone();
        let metrics = metrics.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let native = native.clone();
        tokio::spawn(async move {
            metrics.connection(1);
            match tls {
                None => {
                    serve_conn(
                        &builder, stream, flow, peer, false, watcher, timeouts, native,
                    )
                    .await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => {
                            serve_conn(&builder, s, flow, peer, true, watcher, timeouts, native)
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            metrics.connection(-1);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("connections drained"),
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("drain timeout: closing remaining connections");
        }
    }
}

/// The next connection on `listener`. Accept errors (EMFILE and friends) are logged and
/// retried after a short pause instead of spinning.
pub async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The connection timeouts the [`watchdog`] keeps.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    idle: Duration,
    send: Duration,
}

impl Timeouts {
    fn of(limits: &ConnLimits) -> Self {
        Timeouts {
            idle: limits.idle_timeout,
            send: limits.send_timeout,
        }
    }
}

/// Serves one connection until it ends, shutdown drains it (`watcher`, `native.stop`), or
/// the [`watchdog`] finds it idle for `idle` or its writes stalled for `send`. With `native`, the native HTTP/1.1 server
/// ([`http1`]) starts and hands over to hyper at the first request it does not serve.
#[allow(clippy::too_many_arguments)]
async fn serve_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    flow: Arc<Flow>,
    peer: SocketAddr,
    tls: bool,
    watcher: hyper_util::server::graceful::Watcher,
    timeouts: Timeouts,
    native: Option<Native>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = Watched {
        io,
        activity: activity.clone(),
    };
    let conn = Conn::new(peer, tls);
    let hyper = {
        let (flow, conn, counted) = (flow.clone(), conn.clone(), activity.clone());
        move |io: Rewind<Watched<I>>| {
            // the flow's future is polled in place by hyper's dispatcher: no box, no
            // service clone
            let hsvc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let in_flight = InFlight::start(&counted);
                let handled = flow
                    .clone()
                    .handle(req.map(GatewayBody::from), conn.clone());
                async move {
                    let res = handled.await;
                    Ok::<_, Infallible>(res.map(|body| Tracked {
                        body,
                        _in_flight: in_flight,
                    }))
                }
            });
            let served =
                watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), hsvc));
            async move {
                if let Err(e) = served.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
        }
    };
    match native {
        Some(native) => {
            let served = http1::serve(io, &flow, &conn, &activity, native, hyper);
            watchdog(served, &activity, timeouts).await;
        }
        None => watchdog(hyper(Rewind::new(Bytes::new(), io)), &activity, timeouts).await,
    }
}

/// What a connection's [`watchdog`] sees: how many requests have started, and how many are
/// still in flight (their response body not yet sent or dropped).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
    /// The last write to the client did not complete (its socket buffer is full).
    write_blocked: AtomicBool,
    /// Blocked writes that completed since (progress while writes block).
    unblocked: AtomicU64,
}

/// A client connection's transport, telling the connection's [`Activity`] when a write to
/// the client blocks and when it completes again (for the send timeout). A write that does
/// not block costs one load.
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    fn wrote<T>(&self, r: Poll<T>) -> Poll<T> {
        let a = &self.activity;
        match r {
            Poll::Pending => a.write_blocked.store(true, Ordering::Relaxed),
            Poll::Ready(_) if a.write_blocked.load(Ordering::Relaxed) => {
                a.write_blocked.store(false, Ordering::Relaxed);
                a.unblocked.fetch_add(1, Ordering::Relaxed);
            }
            Poll::Ready(_) => {}
        }
        r
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.wrote(r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// One request in flight on a connection, until dropped.
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(crate) fn start(activity: &Arc<Activity>) -> Self {
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

/// A response body that keeps its request counted as in flight until it ends or is dropped.
struct Tracked {
    body: GatewayBody,
    /// Held for its drop.
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Runs `conn` and closes it when, over a whole `idle` period, no request started and none was
/// in flight: an idle keep-alive connection (or h2 connection without streams), and a request
/// head that does not complete (slowloris), go after `idle` to `2 × idle`. A request in flight
/// — a slow backend, a long download — keeps its connection however long it takes (the
/// request and endpoint timeouts bound those), as long as the client takes what is written:
/// a write to the client that stays blocked, without progress, for a whole `send` period (a
/// client that stopped reading) closes the connection too. One timer per connection, firing
/// every `min(idle, send)`, instead of hyper's header-read timer per request.
async fn watchdog<F: Future>(conn: F, activity: &Activity, timeouts: Timeouts) {
    tokio::pin!(conn);
    let period = timeouts
        .idle
        .min(timeouts.send)
        .max(Duration::from_millis(1));
    // how many periods make each timeout (the same as before when both are equal)
    let periods = |d: Duration| (d.as_nanos() / period.as_nanos()).max(1);
    let (idle_periods, send_periods) = (periods(timeouts.idle), periods(timeouts.send));
    let alarm = Alarm::after(period);
    tokio::pin!(alarm);
    let mut seen = activity.started.load(Ordering::Relaxed);
    let mut unblocked = activity.unblocked.load(Ordering::Relaxed);
    let (mut quiet, mut stalled) = (0u128, 0u128);
    std::future::poll_fn(|cx| {
        if conn.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(());
        }
        while alarm.as_mut().poll_fired(cx) {
            let now = activity.started.load(Ordering::Relaxed);
            quiet = if now == seen && activity.in_flight.load(Ordering::Relaxed) == 0 {
                quiet + 1
            } else {
                0
            };
            if quiet >= idle_periods {
                tracing::debug!("closing an idle connection");
                return std::task::Poll::Ready(()); // dropping the connection closes it
            }
            let progress = activity.unblocked.load(Ordering::Relaxed);
            // blocked now, and no blocked write completed since the last look
            stalled = if activity.write_blocked.load(Ordering::Relaxed) && progress == unblocked {
                stalled + 1
            } else {
                0
            };
            if stalled > send_periods {
                tracing::debug!("closing a connection whose client stopped reading");
                return std::task::Poll::Ready(());
            }
            seen = now;
            unblocked = progress;
            alarm.as_mut().reset(period);
        }
        std::task::Poll::Pending
    })
    .await;
}

/// Resolves when the process gets SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
