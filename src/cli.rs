//! What every profile binary shares: the command line (`--config`, `--data-dir`,
//! `--port-offset`), configuration loading, logging set-up and the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use apim_core::config::Config;
use apim_core::ApimError;

/// The common command-line arguments of a profile; flatten it into the binary's `clap` parser.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProfileArgs {
    /// TOML configuration file (`APIM_*` variables override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, keys, certificates, internal token).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Shifts every port by this much.
    #[arg(long)]
    pub port_offset: Option<u16>,
}

impl ProfileArgs {
    /// Loads the configuration file and `APIM_*` variables, applies the command line on top and
    /// validates the result (errors name the field); creates the data directory owner-only
    /// (0700) and takes group and other access from the files in it.
    pub fn load(&self) -> Result<Config, ApimError> {
        let mut cfg = Config::load(self.config.as_deref())?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(o) = self.port_offset {
            cfg.port_offset = o;
        }
        cfg.validate()?;
        // every profile: the data dir owner-only, older versions' files tightened
        cfg.secure_data_dir()?;
        // every internal HTTP client trusts `internal.ca_file` besides the public roots
        apim_core::tls::install_internal_ca(&cfg)?;
        Ok(cfg)
    }
}

/// `--rotate-signing-key` (Key Manager and all-in-one profiles): adds a fresh ES256 signing key
/// to the database, sealed with the configured key-encryption key, and makes it the active one;
/// returns its `kid`. Older keys stay in the JWKS, so tokens they signed stay valid until they
/// expire. Key Managers already running keep signing with the key they loaded until they
/// restart (docs/security.md, *Rotating the signing key*).
pub async fn rotate_signing_key(cfg: &Config) -> Result<String, ApimError> {
    let store = apim_core::store::Store::connect(cfg).await?;
    let mut settings = apim_keymanager::KeyManagerSettings::from_config(cfg);
    settings.key_encryption_key = Some(apim_keymanager::keys::KeyEncryptionKey::new(
        &cfg.key_encryption_key()?,
    ));
    let km = apim_keymanager::KeyManager::new(store, settings).await?;
    km.rotate_key().await
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_filter`).
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// The process exit: success, or the error on stderr prefixed with the profile name and a
/// non-zero code.
pub fn exit(profile: &str, result: Result<(), ApimError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{profile}: {e}");
            ExitCode::FAILURE
        }
    }
}
