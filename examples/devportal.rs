//! Run with: `cargo run --example devportal -- --config apim.toml`
//!
//! The Developer Portal profile alone: the Developer Portal REST API (self-signup, applications,
//! keys, subscriptions, ratings) on the control plane's plain HTTP port (9763 + offset). Token
//! generation needs a Key Manager; run the all-in-one for that.

use std::process::ExitCode;

use apim_core::store::Store;
use apim_core::ApimError;
use apim_portal::Portal;
use clap::Parser;

/// apim-rs Developer Portal profile.
#[derive(Debug, Parser)]
#[command(name = "devportal", version)]
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
    let app = Portal::new(store)
        .with_self_signup(cfg.server.self_signup)
        .with_allowed_origins(&cfg.server.allowed_origins)
        .devportal_router();

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
        "apim devportal ready: http://{host}:{port}{base} (self-signup {signup}; https on port {tls})",
        host = cfg.hostname,
        base = apim_portal::DEVPORTAL_BASE,
        signup = if cfg.server.self_signup { "on" } else { "off" },
        tls = bound.tls.port(),
    );
    bound.run().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    apim::cli::init_tracing("info");
    apim::cli::exit("devportal", run(Args::parse()).await)
}
