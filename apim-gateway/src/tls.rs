//! TLS for the HTTPS and WSS listeners: the certificate and key from the configuration, or a
//! self-signed development certificate generated once (rcgen) under the data dir as
//! `gateway-cert.pem` / `gateway-key.pem`. ALPN offers `h2` and `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apim_core::config::Config;
use apim_core::ApimError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor from PEM bytes.
pub fn acceptor_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, ApimError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ApimError::config("gateway.tls_cert", format!("not a PEM certificate: {e}"))
        })?;
    if certs.is_empty() {
        return Err(ApimError::config(
            "gateway.tls_cert",
            "no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| ApimError::config("gateway.tls_key", format!("not a PEM private key: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ApimError::Internal(format!("TLS versions: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        ApimError::config(
            "gateway.tls_key",
            format!("does not match the certificate: {e}"),
        )
    })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The CA certificates of `gateway.backend_ca_file` (PEM), for TLS to backends.
pub fn backend_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, ApimError> {
    const FIELD: &str = "gateway.backend_ca_file";
    let pem = read(FIELD, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ApimError::config(FIELD, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ApimError::config(FIELD, "no certificate in the file"));
    }
    Ok(certs)
}

fn read(field: &str, p: &Path) -> Result<Vec<u8>, ApimError> {
    std::fs::read(p)
        .map_err(|e| ApimError::config(field, format!("cannot read {}: {e}", p.display())))
}

/// Paths of the development certificate and key under `data_dir`.
pub fn dev_cert_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (
        data_dir.join("gateway-cert.pem"),
        data_dir.join("gateway-key.pem"),
    )
}

/// Writes a self-signed certificate for `hostname`, `localhost` and `127.0.0.1` unless both
/// files exist. The key file is private to the owner.
pub fn ensure_dev_cert(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), ApimError> {
    let (cert, key) = dev_cert_paths(data_dir);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| {
        ApimError::config(
            "data_dir",
            format!("cannot create {}: {e}", data_dir.display()),
        )
    })?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !names.iter().any(|n| n == hostname) {
        names.push(hostname.to_owned());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ApimError::Internal(format!("development certificate: {e}")))?;
    let write = |p: &Path, text: String, private: bool| -> Result<(), ApimError> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        use std::io::Write;
        opts.open(p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| {
                ApimError::config("data_dir", format!("cannot write {}: {e}", p.display()))
            })
    };
    write(&key, ck.key_pair.serialize_pem(), true)?;
    write(&cert, ck.cert.pem(), false)?;
    tracing::info!(cert = %cert.display(), "generated a development TLS certificate");
    Ok((cert, key))
}

/// The acceptor for the gateway's TLS listeners: configured files, else the development
/// certificate.
pub fn acceptor(config: &Config) -> Result<TlsAcceptor, ApimError> {
    let (cert, key) = match (&config.gateway.tls_cert, &config.gateway.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => ensure_dev_cert(&config.data_dir, &config.hostname)?,
    };
    acceptor_from_pem(
        &read("gateway.tls_cert", &cert)?,
        &read("gateway.tls_key", &key)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_and_reuses_dev_cert() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = ensure_dev_cert(dir.path(), "gw.local").unwrap();
        let first = std::fs::read(&c).unwrap();
        acceptor_from_pem(&first, &std::fs::read(&k).unwrap()).unwrap();
        ensure_dev_cert(dir.path(), "gw.local").unwrap();
        assert_eq!(std::fs::read(&c).unwrap(), first, "kept, not regenerated");
        assert!(acceptor_from_pem(b"nope", b"nope").is_err());
    }
}
