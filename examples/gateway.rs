//! Run with: `cargo run --example gateway -- --config apim.toml`
//!
//! The Gateway profile alone: API traffic on 8280 (HTTP, h2c) / 8243 (HTTPS, h2) and WebSocket
//! on 8099 / 9099 (+ port offset); `/health`, `/health/ready` and `/metrics` on the admin port
//! (9901 + offset). It loads its artifacts from the control plane's snapshot, follows the
//! Traffic Manager's event stream, validates JWTs and API keys against the Key Manager's JWKS and
//! throttles through the Traffic Manager.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use apim_core::artifacts::{ArtifactStore, InMemoryArtifacts};
use apim_core::ApimError;
use apim_gateway::listener::shutdown_signal;
use apim_gateway::Gateway;
use apim_keymanager::jwks::JwksSource;
use apim_keymanager::validator::HttpIntrospector;
use apim_keymanager::{
    ApiKeyValidator, BasicAuthValidator, CredentialValidator, HttpUserVerifier,
    IntrospectionValidator, JwtValidator,
};
use apim_throttle::{GlobalConfig, GlobalThrottle};
use clap::Parser;

/// apim-rs Gateway profile.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Args {
    #[command(flatten)]
    profile: apim::cli::ProfileArgs,
    /// Admin port for health and metrics (before the offset).
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
}

async fn run(args: Args) -> Result<(), ApimError> {
    let mut cfg = args.profile.load()?;
    let token = apim_portal::internal::internal_token_for(&cfg)?;
    let artifacts: Arc<dyn ArtifactStore> =
        Arc::new(InMemoryArtifacts::new(cfg.gateway.environments.clone()));

    // keys: the Key Manager's JWKS (its own URL, else the control plane's)
    let km = cfg.key_manager.url.clone();
    let jwks_url = format!(
        "{}/oauth2/jwks",
        km.as_deref()
            .unwrap_or(&cfg.gateway.control_plane_url)
            .trim_end_matches('/')
    );
    let keys = JwksSource::remote(&jwks_url).await.map_err(|e| {
        ApimError::config(
            "key_manager.url",
            format!("cannot fetch the JWKS from {jwks_url}: {e}"),
        )
    })?;
    // opaque tokens and Basic credentials: the Key Manager checks them with the internal token
    // (this gateway has no token or user store)
    let km_base = km
        .as_deref()
        .unwrap_or(&cfg.gateway.control_plane_url)
        .trim_end_matches('/');
    let introspector =
        HttpIntrospector::with_internal_token(&format!("{km_base}/oauth2/introspect"), &token)?;
    let users = HttpUserVerifier::new(km_base, &token)?;
    let validator = CredentialValidator::new()
        .with_jwt(JwtValidator::new(keys.clone(), artifacts.clone()))
        .with_opaque(IntrospectionValidator::new(
            Arc::new(introspector),
            artifacts.clone(),
        ))
        .with_api_key(ApiKeyValidator::new(keys, artifacts.clone()))
        .with_basic(BasicAuthValidator::new(Arc::new(users)));
    let decider = GlobalThrottle::new(artifacts.clone(), GlobalConfig::from_config(&cfg, &token));

    let admin_port = args
        .admin_port
        .checked_add(cfg.port_offset)
        .ok_or_else(|| {
            ApimError::config("--admin-port", "admin port + port offset exceeds 65535")
        })?;
    let admin: SocketAddr = format!("{}:{admin_port}", cfg.bind_address)
        .parse()
        .map_err(|e| ApimError::config("bind_address", format!("{e}")))?;
    cfg.internal.token = Some(token);
    let gateway = Arc::new(
        Gateway::builder()
            .config(cfg.clone())
            .artifacts(artifacts)
            .validator(Arc::new(validator))
            .decider(Arc::new(decider))
            .build()?,
    );
    let sync = tokio::spawn(gateway.syncer()?.run());
    let (addrs, serve) = gateway.clone().bind(Some(admin), shutdown_signal()).await?;
    println!(
        "apim gateway ready: http://{host}:{} https://{host}:{} ws://{host}:{} wss://{host}:{} | admin http://{} | environments {:?}",
        addrs.http[0].port(),
        addrs.https[0].port(),
        addrs.http[1].port(),
        addrs.https[1].port(),
        addrs.admin.map_or_else(String::new, |a| a.to_string()),
        cfg.gateway.environments,
        host = cfg.hostname,
    );
    serve.await;
    sync.abort();
    Ok(())
}

/// mimalloc: per-thread free lists make the gateway's short-lived request allocations cheap
/// (decision 28 in docs/architecture.md; a library never picks the allocator, binaries do).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    apim::cli::init_tracing("info,apim_gateway=info");
    apim::cli::exit("gateway", run(Args::parse()).await)
}
