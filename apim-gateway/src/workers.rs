//! Worker threads for the traffic ports (`gateway.worker_threads` = N ≥ 1): N threads, each
//! with its own single-threaded tokio runtime, its own `SO_REUSEPORT` listener on every
//! traffic port (the kernel spreads new connections over them) and its own [`Flow`] with its
//! own backend connections. A request, its backend connection and the tasks serving both stay
//! on one thread, as in nginx's worker processes; what the threads share (artifacts, token
//! cache, throttle counters, metrics) is built for concurrent use. With 0 the traffic ports
//! are served on the caller's runtime instead.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::flow::Flow;
use crate::listener::{self, ConnLimits};
use crate::metrics::Metrics;

/// Binds `addr` once (`workers` = 0) or once per worker with `SO_REUSEPORT`; with port 0 the
/// first listener picks the port and the others join it. `SO_REUSEADDR` is set, so a
/// restarted gateway can bind while old connections linger in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr, workers: usize) -> io::Result<Vec<TcpListener>> {
    let mut addr = addr;
    let mut out = Vec::with_capacity(workers.max(1));
    for _ in 0..workers.max(1) {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if workers > 0 {
            reuse_port(&socket)?;
        }
        socket.bind(addr)?;
        let l = socket.listen(1024)?;
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(unix)]
fn reuse_port(socket: &TcpSocket) -> io::Result<()> {
    socket.set_reuseport(true)
}

#[cfg(not(unix))]
fn reuse_port(_: &TcpSocket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "gateway.worker_threads needs SO_REUSEPORT (unix)",
    ))
}

/// One worker thread's share of the gateway.
pub(crate) struct Worker {
    /// Its own flow ([`Flow::for_worker`]).
    pub(crate) flow: Arc<Flow>,
    /// One listener per traffic port, with the TLS acceptor for the secure ones.
    pub(crate) listeners: Vec<(TcpListener, Option<TlsAcceptor>)>,
    /// Connection limits (the connection slots are shared with the other workers).
    pub(crate) limits: ConnLimits,
    /// Shared metrics.
    pub(crate) metrics: Arc<Metrics>,
}

impl Worker {
    /// Starts the thread; it serves until `stop` says so (or its sender is gone), drains, and
    /// then completes the returned receiver.
    pub(crate) fn spawn(
        self,
        index: usize,
        stop: watch::Receiver<bool>,
    ) -> io::Result<oneshot::Receiver<()>> {
        // leave the caller's runtime; the worker's runtime registers them again
        let listeners = self
            .listeners
            .into_iter()
            .map(|(l, tls)| Ok((l.into_std()?, tls)))
            .collect::<io::Result<Vec<_>>>()?;
        let (flow, limits, metrics) = (self.flow, self.limits, self.metrics);
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("apim-gateway-{index}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(worker = index, error = %e, "cannot start a worker runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (l, tls) in listeners {
                        let l = match TcpListener::from_std(l) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(worker = index, error = %e, "cannot register a listener");
                                continue;
                            }
                        };
                        tasks.spawn(listener::serve(
                            l,
                            flow.clone(),
                            tls,
                            limits.clone(),
                            metrics.clone(),
                            stopped(stop.clone()),
                        ));
                    }
                    while tasks.join_next().await.is_some() {}
                });
                let _ = done.send(());
            })?;
        Ok(finished)
    }
}

/// Completes once `rx` turns true or its sender is gone (the serving future was dropped).
pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
