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
