//! Every profile in one process: Publisher, Developer Portal, Admin and Key Manager on the
//! control-plane port, the Traffic Manager on its port, and a gateway fed in-process — on the
//! embedded defaults (SQLite under the data dir, in-process event bus carrying the outbox's
//! sequence numbers).
//!
//! ```no_run
//! # async fn demo() -> Result<(), apim::core::ApimError> {
//! let cfg = apim::core::config::Config::load(None)?;
//! let aio = apim::all_in_one::AllInOne::start(cfg).await?;
//! println!("{}", aio.ready_line());
//! aio.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apim_core::artifacts::{ArtifactStore, InMemoryArtifacts};
use apim_core::bus::{EventBus, InProcessBus};
use apim_core::config::Config;
use apim_core::store::Store;
use apim_core::ApimError;
use apim_gateway::Gateway;
use apim_keymanager::{
    ApiKeyValidator, BasicAuthValidator, CredentialValidator, IntrospectionValidator, JwtValidator,
    KeyManager, KeyManagerSettings,
};
use apim_portal::Portal;
use apim_throttle::{LocalThrottle, TrafficManager};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::serve::ServerLimits;
use crate::wiring::KeyManagerHooks;

/// Default admin port of the gateway (`/health`, `/metrics`), before the port offset.
pub const GATEWAY_ADMIN_PORT: u16 = 9901;

/// A running all-in-one server.
#[derive(Debug)]
pub struct AllInOne {
    /// The store (SQLite by default).
    pub store: Store,
    /// The Key Manager.
    pub key_manager: KeyManager,
    /// Control plane address (plain HTTP).
    pub control_plane: SocketAddr,
    /// Control plane address (HTTPS).
    pub control_plane_https: SocketAddr,
    /// Gateway HTTP address.
    pub gateway_http: SocketAddr,
    /// Gateway HTTPS address.
    pub gateway_https: Option<SocketAddr>,
    /// Gateway admin address (`/health`, `/metrics`).
    pub gateway_admin: Option<SocketAddr>,
    /// Traffic Manager address.
    pub traffic_manager: SocketAddr,
    /// Where the admin credential is, for the ready line.
    pub admin_credential: String,
    hostname: String,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

async fn listen(
    cfg: &Config,
    port: u16,
    field: &str,
) -> Result<tokio::net::TcpListener, ApimError> {
    let addr: SocketAddr = format!("{}:{port}", cfg.bind_address)
        .parse()
        .map_err(|e| ApimError::config("bind_address", format!("{e}")))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ApimError::config(field, format!("cannot listen on {addr}: {e}")))
}

fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

impl AllInOne {
    /// Opens the store (migrating and seeding it), binds every listener and starts serving.
    pub async fn start(cfg: Config) -> Result<AllInOne, ApimError> {
        cfg.validate()?;
        // owner-only data dir (an older version's 0755 dir and 0644 files are tightened)
        cfg.secure_data_dir()?;
        let store = Store::connect(&cfg).await?;
        let seed = store.seed_defaults(cfg.admin.password.as_deref()).await?;
        let admin_credential = match (&seed.generated_admin_password, seed.admin_created) {
            (Some(p), _) => {
                let path = cfg.data_dir.join("admin-password");
                write_private(&path, p)?;
                format!("admin password generated into {}", path.display())
            }
            (None, true) => "admin password from APIM_ADMIN_PASSWORD / admin.password".to_owned(),
            (None, false) => "admin user exists (password unchanged)".to_owned(),
        };
        let token = cfg.internal_token()?;

        // the in-process bus carries the outbox's sequence numbers
        let bus = InProcessBus::starting_after(store.last_seq().await?, 100_000);
        store.relay_to(bus.clone());

        let mut km_settings = KeyManagerSettings::from_config(&cfg);
        // a gateway of this deployment elsewhere checks Basic credentials here
        km_settings.internal_token = Some(token.clone());
        km_settings.key_encryption_key = Some(apim_keymanager::keys::KeyEncryptionKey::new(
            &cfg.key_encryption_key()?,
        ));
        let km = KeyManager::new(store.clone(), km_settings).await?;
        let hooks = Arc::new(KeyManagerHooks(km.clone()));
        let portal = Portal::new(store.clone())
            .with_token_issuer(hooks.clone())
            .with_api_key_issuer(hooks.clone())
            .with_introspector(hooks)
            .with_internal_token(token.clone())
            .with_self_signup(cfg.server.self_signup)
            .with_allowed_origins(&cfg.server.allowed_origins);
        let control_plane = portal.router().merge(crate::wiring::key_manager_router(
            &km,
            &cfg.server.allowed_origins,
        ));
        let tm = TrafficManager::new(token.clone(), Arc::new(bus.clone()));

        // gateway: snapshot from the store, then the bus from the snapshot's sequence
        let artifacts = Arc::new(InMemoryArtifacts::new(cfg.gateway.environments.clone()));
        artifacts.load(store.gateway_data().await?);
        let shared: Arc<dyn ArtifactStore> = artifacts.clone();
        let validator = CredentialValidator::new()
            .with_jwt(
                JwtValidator::new(km.jwks_source(), shared.clone())
                    .with_issuer(km.settings().issuer.clone()),
            )
            .with_opaque(IntrospectionValidator::new(
                Arc::new(km.clone()),
                shared.clone(),
            ))
            .with_api_key(ApiKeyValidator::new(km.jwks_source(), shared.clone()))
            .with_basic(BasicAuthValidator::new(Arc::new(km.clone())));
        let mut gw_cfg = cfg.clone();
        gw_cfg.internal.token = Some(token);
        let gateway = Arc::new(
            Gateway::builder()
                .config(gw_cfg)
                .artifacts(shared.clone())
                .validator(Arc::new(validator))
                .decider(Arc::new(LocalThrottle::new(shared)))
                .build()?,
        );
        gateway.readiness().set(true);

        let (stop, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(follow(bus, artifacts, store.clone(), stopped(&rx)));

        let ports = cfg.ports();
        let cp_listener = listen(&cfg, ports.control_plane_http, "server.http_port").await?;
        let cp_tls_listener = listen(&cfg, ports.control_plane_https, "server.https_port").await?;
        let tm_listener = listen(&cfg, ports.traffic_manager, "traffic_manager.port").await?;
        let tm_tls_listener =
            listen(&cfg, ports.traffic_manager_tls, "traffic_manager.tls_port").await?;
        let tls = crate::serve::control_plane_tls(&cfg)?;
        let admin_port = GATEWAY_ADMIN_PORT
            .checked_add(cfg.port_offset)
            .ok_or_else(|| ApimError::config("port_offset", "gateway admin port exceeds 65535"))?;
        let admin: SocketAddr = format!("{}:{admin_port}", cfg.bind_address)
            .parse()
            .map_err(|e| ApimError::config("bind_address", format!("{e}")))?;
        let (addrs, run) = gateway.clone().bind(Some(admin), stopped(&rx)).await?;
        let cp_addr = cp_listener
            .local_addr()
            .map_err(|e| ApimError::Internal(e.to_string()))?;
        let tm_addr = tm_listener
            .local_addr()
            .map_err(|e| ApimError::Internal(e.to_string()))?;
        tasks.spawn(run);
        let cp_tls_addr = cp_tls_listener
            .local_addr()
            .map_err(|e| ApimError::Internal(e.to_string()))?;
        // the control plane's two ports share one connection count, the Traffic Manager's two
        // another
        let cp_limits = ServerLimits::from_config(&cfg.server);
        let tm_limits = ServerLimits::from_config(&cfg.server);
        tasks.spawn(crate::serve::serve_tls(
            cp_tls_listener,
            control_plane.clone(),
            tls.clone(),
            cp_limits.clone(),
            stopped(&rx),
        ));
        tasks.spawn(crate::serve::serve_tls(
            tm_tls_listener,
            tm.router(),
            tls,
            tm_limits.clone(),
            stopped(&rx),
        ));
        tasks.spawn(crate::serve::serve_plain(
            cp_listener,
            control_plane,
            cp_limits,
            stopped(&rx),
        ));
        tasks.spawn(crate::serve::serve_plain(
            tm_listener,
            tm.router(),
            tm_limits,
            stopped(&rx),
        ));
        let gateway_http = *addrs
            .http
            .first()
            .ok_or_else(|| ApimError::Internal("gateway bound no HTTP listener".into()))?;
        Ok(AllInOne {
            store,
            key_manager: km,
            control_plane: cp_addr,
            control_plane_https: cp_tls_addr,
            gateway_http,
            gateway_https: addrs.https.first().copied(),
            gateway_admin: addrs.admin,
            traffic_manager: tm_addr,
            admin_credential,
            hostname: cfg.hostname.clone(),
            stop,
            tasks,
        })
    }

    /// The one line printed when ready: every URL and where the admin credential is.
    pub fn ready_line(&self) -> String {
        let h = &self.hostname;
        format!(
            "apim all-in-one ready: publisher http://{h}:{cp}/api/am/publisher/v4 | devportal http://{h}:{cp}/api/am/devportal/v3 | admin http://{h}:{cp}/api/am/admin/v4 | oauth2 http://{h}:{cp}/oauth2/token (https on {cps}) | gateway http://{h}:{gw}{gws} | traffic manager http://{h}:{tm} | {cred}",
            cp = self.control_plane.port(),
            cps = self.control_plane_https.port(),
            gw = self.gateway_http.port(),
            gws = self.gateway_https.map(|a| format!(" https://{h}:{}", a.port())).unwrap_or_default(),
            tm = self.traffic_manager.port(),
            cred = self.admin_credential,
        )
    }

    /// Stops accepting, drains in-flight requests and waits for every task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
        self.store.close().await;
    }
}

/// Applies bus events to the gateway's artifacts; resyncs from the store if the bus no longer
/// holds the position.
async fn follow(
    bus: InProcessBus,
    artifacts: Arc<InMemoryArtifacts>,
    store: Store,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let work = async move {
        loop {
            let mut events = bus.subscribe(artifacts.seq());
            while let Some(next) = events.next().await {
                match next {
                    Ok(e) => artifacts.apply(&e),
                    Err(e) => {
                        tracing::warn!(error = %e, "event position lost; reloading the snapshot");
                        match store.gateway_data().await {
                            Ok(data) => artifacts.load(data),
                            Err(e) => tracing::error!(error = %e, "snapshot reload failed"),
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stop => {}
    }
}

fn write_private(path: &std::path::Path, text: &str) -> Result<(), ApimError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(
        &mut opts.open(path).map_err(|e| {
            ApimError::config("data_dir", format!("cannot write {}: {e}", path.display()))
        })?,
        text.as_bytes(),
    )
    .map_err(|e| ApimError::config("data_dir", format!("cannot write {}: {e}", path.display())))
}
