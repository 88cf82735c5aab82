//! Backend connections: HTTP/1.1 connections kept per endpoint ([`Target`]), handed out LIFO
//! and given back when the response body has been read to its end.
//!
//! A general-purpose pooled client would look connections up by `(scheme, authority)` per
//! request and run a task per connection; here the idle list lives in the endpoint (so a
//! redeployed API revision starts with fresh connections and an undeployed one closes its
//! own), and the response body itself gives the connection back at its end (see
//! [`super::client`]).
//!
//! A pooled connection the backend closed while it was idle is noticed before use (the
//! socket turned readable: `BackendConn::looks_open`). When the close races the request —
//! the backend closed the connection without answering, its keep-alive timeout expiring at
//! that moment — an idempotent request without a body is sent once more, byte for byte, on a
//! new connection, as nginx's `proxy_next_upstream error` does; other requests fail with 503.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use tower::ServiceExt as _;

pub use super::client::SendError;
use super::client::{self, Answer, BackendConn, BackendIo, Outbound};
use crate::endpoints::Target;

/// Most idle connections kept per endpoint.
const MAX_IDLE: usize = 1024;

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

/// An idle connection of an endpoint.
struct IdleConn {
    conn: BackendConn,
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

    /// Keeps `conn` for the next request (up to [`MAX_IDLE`] per endpoint).
    pub(crate) fn push(&self, conn: BackendConn) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < MAX_IDLE {
            v.push(IdleConn {
                conn,
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

/// Opens backend connections (TCP, TLS for https) and keeps them per endpoint.
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
    /// A pool whose connects time out after `connect_timeout`; TLS trusts the webpki roots.
    pub fn new(connect_timeout: Duration) -> Self {
        Self::with_roots(connect_timeout, &[]).expect("the webpki roots are valid")
    }

    /// A pool whose TLS connections also trust `extra_roots` (a private CA, a self-signed
    /// backend); fails on a certificate that cannot be a trust anchor.
    pub fn with_roots(
        connect_timeout: Duration,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots.add(cert.clone())?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(BackendPool {
            connector,
            idle_timeout: Duration::from_secs(90),
        })
    }

    /// Sends `out` to `target` on an idle connection or a new one, and reads the response
    /// head.
    #[allow(clippy::manual_async_fn)] // an async fn keeps each argument twice (rust-lang/rust#62958)
    pub(crate) fn send<'a>(
        &'a self,
        target: &'a Arc<Target>,
        mut out: Outbound,
    ) -> impl Future<Output = Result<Answer, SendError>> + 'a {
        // an `async move` block: an async fn would keep `out` twice (see `Proxy::forward`)
        async move {
            while let Some(IdleConn { conn, since }) = target.idle.pop() {
                if since.elapsed() > self.idle_timeout || !conn.looks_open() {
                    continue;
                }
                match conn.exchange(&mut out, target).await {
                    // a backend may close a connection idle for a while just as the request goes
                    // out; an idempotent request without a body is then sent again on a new one
                    Err(SendError::Io(e)) if out.replayable && client::closed_unanswered(&e) => {
                        tracing::debug!(endpoint = %target.url, error = %e,
                        "pooled connection closed before answering; sending again");
                        break;
                    }
                    answer => return answer,
                }
            }
            // boxed: opening a connection (TCP, maybe TLS) is the rare path, and its large future
            // would otherwise be part of every request's future, copied as it moves
            let conn = Box::pin(self.connect(target)).await?;
            conn.exchange(&mut out, target).await
        }
    }

    async fn connect(&self, target: &Target) -> Result<BackendConn, SendError> {
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
        Ok(BackendConn::new(BackendIo::from_connector(io)))
    }
}
