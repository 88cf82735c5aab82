//! Run with: `cargo run --example publisher -- --config apim.toml`
//!
//! The Publisher profile alone: the Publisher and Admin REST APIs plus the internal data API
//! (gateways take their snapshot here), on the control plane's plain HTTP port (9763 + offset).

use std::process::ExitCode;

use apim_core::store::Store;
use apim_core::ApimError;
use apim_portal::internal::internal_token_for;
use apim_portal::Portal;
use clap::Parser;

/// apim-rs Publisher profile.
#[derive(Debug, Parser)]
#[command(name = "publisher", version)]
struct Args {
    #[command(flatten)]
    profile: apim::cli::ProfileArgs,
}

async fn run(args: Args) -> Result<(), ApimError> {
    let cfg = args.profile.load()?;
    let store = Store::connect(&cfg).await?;
    let seed = store.seed_defaults(cfg.admin.password.as_deref()).await?;
    if let Some(p) = &seed.generated_admin_password {
        println!("generated admin password (shown once): {p}");
    }
    let portal = Portal::new(store)
        .with_internal_token(internal_token_for(&cfg)?)
        .with_allowed_origins(&cfg.server.allowed_origins);
    let app = portal
        .publisher_router()
        .merge(portal.admin_router())
        .merge(portal.internal_router());

    let port = cfg.ports().control_plane_http;
    let ports = cfg.ports();
    let bound = apim::serve::bind_pair(
        &cfg,
        app,
        (ports.control_plane_http, "server.http_port"),
        (ports.control_plane_https, "server.https_port"),
    )
    .await?;
    println!(
        "apim publisher ready: http://{host}:{port}{pb} | admin http://{host}:{port}{ab} | internal http://{host}:{port}{ib} | https on port {tls}",
        host = cfg.hostname,
        pb = apim_portal::PUBLISHER_BASE,
        ab = apim_portal::ADMIN_BASE,
        ib = apim_portal::INTERNAL_BASE,
        tls = bound.tls.port(),
    );
    bound.run().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    apim::cli::init_tracing("info");
    apim::cli::exit("publisher", run(Args::parse()).await)
}
