//! Run with: `cargo run --example all-in-one`
//!
//! Every profile in one process on the embedded defaults: SQLite under `./apim-data`, the
//! in-process event bus, ports per DESIGN §7 (shifted by `--port-offset`). Restarting keeps all
//! data. The first start writes a generated admin password to `<data-dir>/admin-password`
//! unless `APIM_ADMIN_PASSWORD` is set.

use std::process::ExitCode;

use apim::all_in_one::AllInOne;
use apim::core::ApimError;
use clap::Parser;

/// apim-rs all-in-one.
#[derive(Debug, Parser)]
#[command(name = "all-in-one", version)]
struct Args {
    #[command(flatten)]
    profile: apim::cli::ProfileArgs,
    /// Add a new active signing key (ES256) to the database, print its kid and exit.
    #[arg(long)]
    rotate_signing_key: bool,
}

async fn run(args: Args) -> Result<(), ApimError> {
    let cfg = args.profile.load()?;
    if args.rotate_signing_key {
        let kid = apim::cli::rotate_signing_key(&cfg).await?;
        println!("new active signing key: {kid} (restart running Key Managers to sign with it)");
        return Ok(());
    }
    let aio = AllInOne::start(cfg).await?;
    println!("{}", aio.ready_line());
    apim::gateway::listener::shutdown_signal().await;
    aio.shutdown().await;
    Ok(())
}

/// mimalloc: per-thread free lists make the gateway's short-lived request allocations cheap
/// (decision 28 in docs/architecture.md; a library never picks the allocator, binaries do).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    apim::cli::init_tracing("warn");
    apim::cli::exit("all-in-one", run(Args::parse()).await)
}
