//! Serving TLS: PEM files → rustls config (TLS 1.2+, ALPN h2 and http/1.1), ring provider chosen
//! explicitly rather than the process default.

use rustls::crypto::ring;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// A certificate/key pair that cannot be served, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("TLS {what} {path}: {message}")]
pub struct TlsError {
    pub what: &'static str,
    pub path: String,
    pub message: String,
}

/// Build a server config from PEM bytes.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    names: (&str, &str),
) -> Result<Arc<ServerConfig>, TlsError> {
    let err = |what, path: &str, message: String| TlsError {
        what,
        path: path.to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err("certificate", names.0, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(
            "certificate",
            names.0,
            "no PEM certificate found".into(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| err("key", names.1, e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err("config", names.0, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err("certificate/key pair", names.0, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Read a certificate and key from files.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |what, p: &Path| {
        std::fs::read(p).map_err(|e| TlsError {
            what,
            path: p.display().to_string(),
            message: e.to_string(),
        })
    };
    let c = read("certificate", cert)?;
    let k = read("key", key)?;
    server_config(
        &c,
        &k,
        (&cert.display().to_string(), &key.display().to_string()),
    )
}
