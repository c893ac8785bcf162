//! Certificate generation: a CA and certificates signed by it. Used by the `certs` command, the
//! ephemeral development certificate of `serve`, and the tests. The apiserver (Go) rejects
//! CN-only certificates, so every name goes into the SANs.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// PEM-encoded CA certificate, leaf certificate and leaf key.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// A certificate authority that can issue more leaves (rotation keeps the same CA).
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    // Start an hour ago to tolerate clock skew between machines.
    (
        now - Duration::hours(1),
        now + Duration::days(i64::from(days.max(1))),
    )
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

impl Ca {
    /// A new self-signed CA valid for `days`.
    pub fn new(common_name: &str, days: u32) -> Result<Ca, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (params.not_before, params.not_after) = validity(days);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Issue a leaf for `sans` (DNS names or IP addresses) valid for `days`.
    pub fn issue(
        &self,
        common_name: &str,
        sans: &[String],
        days: u32,
        usage: Usage,
    ) -> Result<Bundle, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(sans.to_vec())?;
        leaf.distinguished_name = dn(common_name);
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        (leaf.not_before, leaf.not_after) = validity(days);
        let not_after = leaf.not_after;
        let cert = leaf.signed_by(&key, &self.issuer)?;
        Ok(Bundle {
            ca_pem: self.pem.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }
}

/// A fresh CA and a serving certificate for `sans`, valid for `days`.
pub fn generate(common_name: &str, sans: &[String], days: u32) -> Result<Bundle, rcgen::Error> {
    Ca::new(&format!("{common_name} CA"), days)?.issue(common_name, sans, days, Usage::Server)
}
