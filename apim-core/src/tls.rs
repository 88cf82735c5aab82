//! The TLS client set-up of every internal HTTP client of a deployment — the gateway's
//! snapshot and event stream, the Traffic Manager count reporter, the gateway's calls to a
//! remote Key Manager (JWKS, introspection, user checks): rustls with ring, the public
//! (webpki) roots plus the deployment's private CA from `internal.ca_file`.
//!
//! A profile calls [`install_internal_ca`] once at start (the facade's `ProfileArgs::load` and
//! the all-in-one do); clients built afterwards take [`internal_client_config`].

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::Config;
use crate::ApimError;

static INTERNAL: RwLock<Option<Arc<rustls::ClientConfig>>> = RwLock::new(None);

/// A client configuration trusting the webpki roots and the PEM certificates of `ca_file`
/// (errors name `field`).
pub fn client_config(
    ca_file: Option<&Path>,
    field: &str,
) -> Result<Arc<rustls::ClientConfig>, ApimError> {
    let mut extra = Vec::new();
    if let Some(p) = ca_file {
        let pem = std::fs::read(p)
            .map_err(|e| ApimError::config(field, format!("cannot read {}: {e}", p.display())))?;
        extra = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApimError::config(field, format!("not a PEM certificate: {e}")))?;
        if extra.is_empty() {
            return Err(ApimError::config(field, "no certificate in the file"));
        }
    }
    client_config_with(&extra)
        .map_err(|e| ApimError::config(field, format!("not a usable CA: {e}")))
}

/// A client configuration trusting the webpki roots and `extra` trust anchors.
pub fn client_config_with(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in extra {
        roots.add(c.clone())?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Reads `internal.ca_file` and makes it what [`internal_client_config`] trusts from now on
/// (besides the webpki roots); without it, the webpki roots alone.
pub fn install_internal_ca(cfg: &Config) -> Result<(), ApimError> {
    let c = client_config(cfg.internal.ca_file.as_deref(), "internal.ca_file")?;
    *INTERNAL.write().unwrap_or_else(|p| p.into_inner()) = Some(c);
    Ok(())
}

/// The internal clients' TLS configuration: the installed one, else the webpki roots.
pub fn internal_client_config() -> Arc<rustls::ClientConfig> {
    if let Some(c) = INTERNAL.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return c.clone();
    }
    client_config_with(&[]).expect("the webpki roots are valid")
}
