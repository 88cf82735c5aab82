//! Run with: `cargo run --example trafficmanager -- --config apim.toml`
//!
//! The Traffic Manager profile alone: the shared throttle counters (in memory, or in Redis when
//! `traffic_manager.redis_url` is set, so several Traffic Managers share them) and the event hub
//! stream relaying apimgtdb's outbox, on the Traffic Manager's plain port (9611 + offset).

use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use apim_core::bus::EventBus;
use apim_core::config::Config;
use apim_core::store::{OutboxBus, Store};
use apim_core::ApimError;
use apim_throttle::TrafficManager;
use clap::Parser;

/// apim-rs Traffic Manager profile.
#[derive(Debug, Parser)]
#[command(name = "trafficmanager", version)]
struct Args {
    #[command(flatten)]
    profile: apim::cli::ProfileArgs,
}

/// The event source the hub relays: the outbox of apimgtdb (woken by LISTEN/NOTIFY on
/// PostgreSQL, short polling otherwise).
async fn event_bus(cfg: &Config) -> Result<Arc<dyn EventBus>, ApimError> {
    let store = Store::connect(cfg).await?;
    Ok(Arc::new(OutboxBus::new(store, Duration::from_millis(250))))
}

async fn run(args: Args) -> Result<(), ApimError> {
    let cfg = args.profile.load()?;
    let mut tm = TrafficManager::new(cfg.internal_token()?, event_bus(&cfg).await?);
    let counters = match &cfg.traffic_manager.redis_url {
        Some(url) => {
            tm = tm.with_redis(url).await?;
            format!("redis {}", apim_core::config::redact(url))
        }
        None => "in memory".to_owned(),
    };
    let port = cfg.ports().traffic_manager;
    let ports = cfg.ports();
    let bound = apim::serve::bind_pair(
        &cfg,
        tm.router(),
        (ports.traffic_manager, "traffic_manager.port"),
        (ports.traffic_manager_tls, "traffic_manager.tls_port"),
    )
    .await?;
    println!(
        "apim trafficmanager ready: http://{host}:{port}/internal/throttle/v1/counts | events http://{host}:{port}/internal/events/v1/stream | counters {counters} | tls on port {tls}",
        host = cfg.hostname,
        tls = bound.tls.port(),
    );
    bound.run().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    apim::cli::init_tracing("info");
    apim::cli::exit("trafficmanager", run(Args::parse()).await)
}
