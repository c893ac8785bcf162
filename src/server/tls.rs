//! Serving TLS: PEM material → rustls config (ALPN h2 and http/1.1, ring provider chosen
//! explicitly), optionally requiring client certificates (mTLS). A whole config is rebuilt on
//! any change and swapped in by [`super::reload`]; a pair that does not parse or match is refused
//! here, so the last good one keeps serving.

use rustls::crypto::{ring, CryptoProvider};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Why a certificate set cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("TLS {what}: {message}")]
pub struct TlsError {
    pub what: &'static str,
    pub message: String,
}

fn err(what: &'static str, message: impl ToString) -> TlsError {
    TlsError {
        what,
        message: message.to_string(),
    }
}

/// Lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

/// The PEM files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

/// A ready server config and facts about it.
#[derive(Debug)]
pub struct Built {
    pub config: Arc<ServerConfig>,
    /// notAfter of the serving (leaf) certificate, Unix seconds.
    pub not_after: i64,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Build a server config from PEM material.
pub fn build(m: &Material, min: MinVersion) -> Result<Built, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&m.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err("certificate", e))?;
    let leaf = certs
        .first()
        .ok_or_else(|| err("certificate", "no PEM certificate found"))?;
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| err("certificate", e))?
        .1
        .validity()
        .not_after
        .timestamp();
    let key = PrivateKeyDer::from_pem_slice(&m.key_pem).map_err(|e| err("key", e))?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| err("config", e))?;
    let builder = match &m.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca) {
                roots
                    .add(c.map_err(|e| err("client CA", e))?)
                    .map_err(|e| err("client CA", e))?;
            }
            if roots.is_empty() {
                return Err(err("client CA", "no PEM certificate found"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| err("client CA", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| err("certificate/key pair", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Built {
        config: Arc::new(config),
        not_after,
    })
}

/// Build from in-memory PEM with defaults (TLS 1.2+, no client auth): tests and the dev cert.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let m = Material {
        cert_pem: cert_pem.to_vec(),
        key_pem: key_pem.to_vec(),
        client_ca_pem: None,
    };
    build(&m, MinVersion::Tls12).map(|b| b.config)
}

/// Names a client certificate presents: subject CNs and DNS/URI SANs.
pub fn client_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let mut names: Vec<String> = c
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::URI(u) => names.push(u.to_string()),
                _ => {}
            }
        }
    }
    names
}
