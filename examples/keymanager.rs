//! Run with: `cargo run --example keymanager -- --config apim.toml`
//!
//! The Key Manager profile alone: the OAuth2 authorization server (`/oauth2/token`, `revoke`,
//! `introspect`, `jwks`, `register`, `authorize` and the `/.well-known/` metadata) on the control
//! plane's plain HTTP port (9763 + offset). The first start generates an ES256 signing key and
//! keeps it in the database. `/oauth2/register` accepts an admin's Basic credential (any user's with
//! `[key_manager] allow_user_client_registration`), or the
//! internal token (`[internal] token`) as an RFC 7591 initial access token.

use std::process::ExitCode;

use apim_core::store::Store;
use apim_core::ApimError;
use apim_keymanager::{KeyManager, KeyManagerSettings};
use clap::Parser;

/// apim-rs Key Manager profile.
#[derive(Debug, Parser)]
#[command(name = "keymanager", version)]
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
    let store = Store::connect(&cfg).await?;
    let seed = store.seed_defaults(cfg.admin.password.as_deref()).await?;
    if let Some(p) = &seed.generated_admin_password {
        println!("generated admin password (shown once): {p}");
    }

    let port = cfg.ports().control_plane_http;
    let mut settings = KeyManagerSettings::from_config(&cfg);
    // this profile serves plain HTTP; publish the endpoints where they really are
    settings.base_url = format!("http://{}:{port}", cfg.hostname);
    settings.initial_access_token = cfg.internal.token.clone();
    settings.internal_token = cfg.internal.token.clone();
    settings.key_encryption_key = Some(apim_keymanager::keys::KeyEncryptionKey::new(
        &cfg.key_encryption_key()?,
    ));
    let km = KeyManager::new(store, settings).await?;

    let ports = cfg.ports();
    let bound = apim::serve::bind_pair(
        &cfg,
        apim::wiring::key_manager_router(&km, &cfg.server.allowed_origins),
        (ports.control_plane_http, "server.http_port"),
        (ports.control_plane_https, "server.https_port"),
    )
    .await?;
    println!(
        "apim keymanager ready: {base}/oauth2/token (https on port {tls}; metadata {base}/.well-known/oauth-authorization-server, issuer {iss})",
        base = km.settings().base_url,
        tls = bound.tls.port(),
        iss = km.settings().issuer,
    );
    bound.run().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    apim::cli::init_tracing("info");
    apim::cli::exit("keymanager", run(Args::parse()).await)
}
