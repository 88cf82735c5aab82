//! Run with: `cargo run --example all-in-one`
//!
//! Every profile in one process on the embedded defaults: SQLite under `./apim-data`, the
//! in-process event bus, ports per DESIGN §7 (shifted by `--port-offset`). Restarting keeps all
//! data. The first start writes a generated admin password to `<data-dir>/admin-password`
//! unless `APIM_ADMIN_PASSWORD` is set.

use std::path::PathBuf;
use std::process::ExitCode;

use apim::all_in_one::AllInOne;
use apim::core::config::Config;
use apim::core::ApimError;
use clap::Parser;

/// apim-rs all-in-one.
#[derive(Debug, Parser)]
#[command(name = "all-in-one", version)]
struct Args {
    /// TOML configuration file (`APIM_*` variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, keys, internal token).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shifts every port by this much.
    #[arg(long)]
    port_offset: Option<u16>,
}

async fn run(args: Args) -> Result<(), ApimError> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(o) = args.port_offset {
        cfg.port_offset = o;
    }
    let aio = AllInOne::start(cfg).await?;
    println!("{}", aio.ready_line());
    apim::gateway::listener::shutdown_signal().await;
    aio.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("all-in-one: {e}");
            ExitCode::FAILURE
        }
    }
}
