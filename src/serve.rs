//! Serving the control-plane routers (Publisher, Developer Portal, Admin, Key Manager, Traffic
//! Manager) on plain HTTP and on TLS — the seed's 9763/9443 and 9611/9711 pairs.

use std::future::Future;
use std::net::SocketAddr;

use apim_core::config::Config;
use apim_core::ApimError;
use apim_gateway::router_server::serve_router;
pub use apim_gateway::router_server::ServerLimits;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Binds `bind_address:port`; the error names the config field.
pub async fn bind(cfg: &Config, port: u16, field: &str) -> Result<TcpListener, ApimError> {
    let addr: SocketAddr = format!("{}:{port}", cfg.bind_address)
        .parse()
        .map_err(|e| ApimError::config("bind_address", format!("{e}")))?;
    TcpListener::bind(addr)
        .await
        .map_err(|e| ApimError::config(field, format!("cannot listen on {addr}: {e}")))
}

/// The control plane's TLS acceptor: `server.tls_cert` / `server.tls_key`, else the development
/// certificate under the data dir (generated once).
pub fn control_plane_tls(cfg: &Config) -> Result<TlsAcceptor, ApimError> {
    let (cert, key) = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => apim_gateway::tls::ensure_dev_cert(&cfg.data_dir, &cfg.hostname)?,
    };
    let read = |field: &str, p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| ApimError::config(field, format!("cannot read {}: {e}", p.display())))
    };
    apim_gateway::tls::acceptor_from_pem(
        &read("server.tls_cert", &cert)?,
        &read("server.tls_key", &key)?,
    )
}

/// Serves an axum router on `listener` over TLS (HTTP/1.1 and h2 by ALPN) until `shutdown`,
/// then drains open connections for up to 10 s; with the control plane's connection limits
/// (`server.idle_timeout_ms`, `server.send_timeout_ms`, `server.max_connections`; see
/// [`apim_gateway::router_server`]).
pub async fn serve_tls(
    listener: TcpListener,
    router: axum::Router,
    tls: TlsAcceptor,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_router(listener, router, Some(tls), limits, shutdown).await
}

/// Serves an axum router on `listener` over plain HTTP (HTTP/1.1, h2c) until `shutdown`, with
/// the same limits as [`serve_tls`].
pub async fn serve_plain(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_router(listener, router, None, limits, shutdown).await
}

/// A router bound to a plain and a TLS port, ready to serve.
pub struct BoundPair {
    /// Plain HTTP address.
    pub plain: SocketAddr,
    /// TLS address.
    pub tls: SocketAddr,
    run: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for BoundPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundPair")
            .field("plain", &self.plain)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl BoundPair {
    /// Serves both listeners until SIGTERM or Ctrl-C, then drains.
    pub async fn run(self) {
        self.run.await
    }
}

/// Binds `router` on `plain` and `tls` (port, config field) with the control plane's TLS
/// certificate and connection limits (one connection count for both ports). Print the ready
/// line after this returns, then call [`BoundPair::run`].
pub async fn bind_pair(
    cfg: &Config,
    router: axum::Router,
    plain: (u16, &str),
    tls: (u16, &str),
) -> Result<BoundPair, ApimError> {
    let acceptor = control_plane_tls(cfg)?;
    let limits = ServerLimits::from_config(&cfg.server);
    let plain_l = bind(cfg, plain.0, plain.1).await?;
    let tls_l = bind(cfg, tls.0, tls.1).await?;
    let addr = |l: &TcpListener| {
        l.local_addr()
            .map_err(|e| ApimError::Internal(e.to_string()))
    };
    let (p, t) = (addr(&plain_l)?, addr(&tls_l)?);
    let run = async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let plain_task = tokio::spawn(serve_plain(
            plain_l,
            router.clone(),
            limits.clone(),
            stop(rx.clone()),
        ));
        let tls_task = tokio::spawn(serve_tls(tls_l, router, acceptor, limits, stop(rx)));
        apim_gateway::listener::shutdown_signal().await;
        let _ = tx.send(true);
        let _ = tokio::join!(plain_task, tls_task);
    };
    Ok(BoundPair {
        plain: p,
        tls: t,
        run: Box::pin(run),
    })
}
