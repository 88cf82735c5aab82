//! [`Gateway`]: assembles the request flow ([`crate::flow::Flow`]) and runs its listeners.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::{ArtifactStore, InMemoryArtifacts};
use apim_core::auth::KeyValidator;
use apim_core::bus::RequestSink;
use apim_core::config::Config;
use apim_core::throttle::{Decision, ThrottleContext, ThrottleDecider};
use apim_core::ApimError;
use http::{Request, Response};
use tower::util::BoxCloneSyncService;

use crate::body::GatewayBody;
use crate::endpoints::EndpointRegistry;
use crate::flow::{Flow, FlowService};
use crate::health::{admin_router, Readiness};
use crate::listener::{self, ConnLimits};
use crate::metrics::Metrics;
use crate::proxy::{BackendJwt, BackendPool, Proxy, ProxySettings};
use crate::request_id::RequestIds;
use crate::sync::Syncer;
use crate::workers;

/// The gateway's request flow as one service.
pub type GatewayService =
    BoxCloneSyncService<Request<GatewayBody>, Response<GatewayBody>, Infallible>;

/// Admits everything: the decider when none is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait::async_trait]
impl ThrottleDecider for AllowAll {
    async fn decide(&self, _ctx: &ThrottleContext<'_>) -> Decision {
        Decision::Allow
    }
}

/// Builds a [`Gateway`].
#[must_use]
pub struct GatewayBuilder {
    config: Config,
    artifacts: Option<Arc<dyn ArtifactStore>>,
    validator: Option<Arc<dyn KeyValidator>>,
    decider: Option<Arc<dyn ThrottleDecider>>,
    sink: Option<Arc<dyn RequestSink>>,
    suspend: Duration,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder").finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// The configuration (ports, limits, environments, control plane, TLS).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The artifact store (default: an [`InMemoryArtifacts`] for the configured environments).
    pub fn artifacts(mut self, artifacts: Arc<dyn ArtifactStore>) -> Self {
        self.artifacts = Some(artifacts);
        self
    }

    /// Who may call (required): JWT / opaque / API-key validation incl. the subscription check.
    pub fn validator(mut self, validator: Arc<dyn KeyValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Rate limiting (default: admit everything).
    pub fn decider(mut self, decider: Arc<dyn ThrottleDecider>) -> Self {
        self.decider = Some(decider);
        self
    }

    /// Where per-request analytics records go (default: none).
    pub fn analytics(mut self, sink: Arc<dyn RequestSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Default suspension of a failing endpoint (endpoints may set their own).
    pub fn endpoint_suspension(mut self, d: Duration) -> Self {
        self.suspend = d;
        self
    }

    /// Assembles the gateway. Fails without a validator or when the backend JWT key cannot
    /// be generated.
    pub fn build(self) -> Result<Gateway, ApimError> {
        let config = self.config;
        let validator = self
            .validator
            .ok_or_else(|| ApimError::config("validator", "the gateway needs a KeyValidator"))?;
        let decider = self.decider.unwrap_or_else(|| Arc::new(AllowAll));
        let artifacts = self.artifacts.unwrap_or_else(|| {
            Arc::new(InMemoryArtifacts::new(config.gateway.environments.clone()))
        });
        let g = &config.gateway;
        let metrics = Arc::new(Metrics::new());
        let jwt = if g.backend_jwt {
            Some(BackendJwt::generate()?)
        } else {
            None
        };
        let timeout = Duration::from_millis(g.request_timeout_ms);
        let roots = match &g.backend_ca_file {
            Some(path) => crate::tls::backend_roots(path)?,
            None => Vec::new(),
        };
        let pool = BackendPool::with_roots(Duration::from_millis(g.connect_timeout_ms), &roots)
            .map_err(|e| {
                ApimError::config("gateway.backend_ca_file", format!("not a usable CA: {e}"))
            })?;
        let proxy = Proxy::new(
            pool,
            Arc::new(EndpointRegistry::new(self.suspend)),
            metrics.clone(),
            jwt,
            ProxySettings {
                timeout,
                max_body_bytes: g.max_body_bytes,
                client_body_timeout: Duration::from_millis(g.client_body_timeout_ms),
            },
        );
        let flow = Arc::new(Flow {
            ids: RequestIds::new(),
            metrics: metrics.clone(),
            timeout,
            artifacts: artifacts.clone(),
            validator,
            decider,
            sink: self.sink,
            proxy,
            // validated with the configuration
            trusted_proxies: g
                .trusted_proxies
                .iter()
                .filter_map(|p| apim_core::auth::key_limits::IpRange::parse(p).ok())
                .collect(),
        });
        let limits = ConnLimits::from_config(&config.gateway);
        Ok(Gateway {
            config,
            artifacts,
            metrics,
            ready: Arc::new(Readiness::new()),
            limits,
            flow,
        })
    }
}

/// A gateway: the request flow, its artifacts and its observability handles.
pub struct Gateway {
    config: Config,
    artifacts: Arc<dyn ArtifactStore>,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    flow: Arc<Flow>,
    /// Connection limits; one set of connection slots for every traffic listener.
    limits: ConnLimits,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// Where a running gateway listens.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// Plain HTTP (and WS) listeners.
    pub http: Vec<SocketAddr>,
    /// TLS (HTTPS and WSS) listeners.
    pub https: Vec<SocketAddr>,
    /// Admin listener (`/health`, `/metrics`).
    pub admin: Option<SocketAddr>,
}

impl Gateway {
    /// A builder with the default configuration.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            config: Config::default(),
            artifacts: None,
            validator: None,
            decider: None,
            sink: None,
            suspend: Duration::from_secs(30),
        }
    }

    /// The request flow as a tower service (clone it per connection or per request). The
    /// client's address is taken from a `ClientAddr` request extension when present.
    pub fn service(&self) -> GatewayService {
        BoxCloneSyncService::new(FlowService(self.flow.clone()))
    }

    /// The artifact store.
    pub fn artifacts(&self) -> &Arc<dyn ArtifactStore> {
        &self.artifacts
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Readiness (set once the artifacts are synced).
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.ready
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The admin router: `/health`, `/health/ready`, `/metrics`.
    pub fn admin_router(&self) -> axum::Router {
        admin_router(
            self.ready.clone(),
            self.metrics.clone(),
            self.artifacts.clone(),
        )
    }

    /// The artifact synchroniser for this gateway's configuration.
    pub fn syncer(&self) -> Result<Syncer, ApimError> {
        Syncer::from_config(&self.config, self.artifacts.clone(), self.ready.clone())
    }

    /// Serves `service` on one bound listener (plain or TLS) until `shutdown`.
    pub async fn serve_on(
        &self,
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        listener::serve(
            listener,
            self.flow.clone(),
            tls,
            self.limits.clone(),
            self.metrics.clone(),
            shutdown,
        )
        .await
    }

    /// Binds the configured ports (HTTP, HTTPS, WS, WSS, with the port offset) and the admin
    /// listener at `admin`, returning the addresses and a future that serves until `shutdown`
    /// and then drains. With `gateway.worker_threads` = N ≥ 1 the traffic ports are served by
    /// N threads, each with its own single-threaded runtime and `SO_REUSEPORT` listeners
    /// (started here); the admin listener runs on the caller's runtime.
    pub async fn bind(
        self: Arc<Self>,
        admin: Option<SocketAddr>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(Addresses, impl Future<Output = ()>), ApimError> {
        let ip: std::net::IpAddr = self
            .config
            .bind_address
            .parse()
            .map_err(|_| ApimError::config("bind_address", "must be an IP address"))?;
        let ports = self.config.ports();
        let workers = self.config.gateway.worker_threads;
        let tls = crate::tls::acceptor(&self.config)?;
        // per port: one listener, or one per worker thread
        let mut traffic = Vec::new();
        for (port, field, secure) in [
            (ports.gateway_http, "gateway.http_port", false),
            (ports.gateway_ws, "gateway.ws_port", false),
            (ports.gateway_https, "gateway.https_port", true),
            (ports.gateway_wss, "gateway.wss_port", true),
        ] {
            let ls = workers::bind(SocketAddr::new(ip, port), workers)
                .map_err(|e| ApimError::config(field, format!("cannot bind {ip}:{port}: {e}")))?;
            traffic.push((ls, secure));
        }
        let admin_listener = match admin {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.map_err(|e| {
                ApimError::config("admin address", format!("cannot bind {a}: {e}"))
            })?),
            None => None,
        };
        let first = |secure: bool| {
            traffic
                .iter()
                .filter(move |(_, s)| *s == secure)
                .filter_map(|(ls, _)| ls.first()?.local_addr().ok())
                .collect()
        };
        let addrs = Addresses {
            http: first(false),
            https: first(true),
            admin: admin_listener.as_ref().and_then(|l| l.local_addr().ok()),
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        if workers == 0 {
            for (ls, secure) in traffic {
                for l in ls {
                    let gw = self.clone();
                    let t = secure.then(|| tls.clone());
                    let s = workers::stopped(rx.clone());
                    tasks.spawn(async move { gw.serve_on(l, t, s).await });
                }
            }
        } else {
            let mut per_worker: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
            for (ls, secure) in traffic {
                for (w, l) in ls.into_iter().enumerate() {
                    per_worker[w].push((l, secure.then(|| tls.clone())));
                }
            }
            for (i, listeners) in per_worker.into_iter().enumerate() {
                let worker = workers::Worker {
                    flow: Arc::new(self.flow.for_worker()),
                    listeners,
                    limits: self.limits.clone(),
                    metrics: self.metrics.clone(),
                    scheduling: self.config.gateway.worker_scheduling,
                };
                let done = worker
                    .spawn(i, rx.clone())
                    .map_err(|e| ApimError::Internal(format!("cannot start a worker: {e}")))?;
                threads.push(done);
            }
        }
        let run = async move {
            if let Some(l) = admin_listener {
                let router = self.admin_router();
                let s = workers::stopped(rx.clone());
                // the limits of the control plane's ports: slow heads, idle connections,
                // stalled writes and a connection cap
                let idle = Duration::from_millis(self.config.gateway.idle_timeout_ms);
                let limits = crate::router_server::ServerLimits::new(idle, idle, 256);
                tasks.spawn(crate::router_server::serve_router(
                    l, router, None, limits, s,
                ));
            }
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = tx.send(true);
            while tasks.join_next().await.is_some() {}
            for done in threads {
                let _ = done.await;
            }
        };
        Ok((addrs, run))
    }
}
