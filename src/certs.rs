//! Certificate generation: a CA and certificates signed by it. Used by the `certs` command, the
//! ephemeral development certificate of `serve`, and the tests. The apiserver (Go) rejects
//! CN-only certificates, so every name goes into the SANs.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// PEM-encoded CA certificate, leaf certificate and leaf key.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// What clients trust: the issuing CA, and during a CA rotation the previous CA too.
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

    /// The CA kept from an earlier run (`ca.crt` and `ca.key`), to renew serving pairs under it.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, rcgen::Error> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Ca {
            pem: cert_pem.to_string(),
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
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
        leaf.use_authority_key_identifier_extension = true;
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

/// Name of the webhook entry in the shipped MutatingWebhookConfiguration.
pub const WEBHOOK_NAME: &str = "store.plx-store-webhook.dev";
/// Name of the shipped MutatingWebhookConfiguration.
pub const MWC_NAME: &str = "plx-store-webhook";
/// Name of the enforcing ValidatingWebhookConfiguration (`manifests/enforce`) and its webhook.
pub const VWC_NAME: &str = "plx-store-webhook-enforce";
pub const ENFORCE_WEBHOOK_NAME: &str = "enforce.plx-store-webhook.dev";

/// The SANs a serving certificate for `<service>.<namespace>` needs.
pub fn service_sans(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A kustomize patch that sets the shipped webhook's caBundle.
pub fn cabundle_patch(ca_pem: &str) -> String {
    ca_patch(
        ca_pem,
        "MutatingWebhookConfiguration",
        MWC_NAME,
        WEBHOOK_NAME,
    )
}

/// The same for the enforcing webhook (`manifests/enforce`), used when that component is added.
pub fn cabundle_patch_enforce(ca_pem: &str) -> String {
    ca_patch(
        ca_pem,
        "ValidatingWebhookConfiguration",
        VWC_NAME,
        ENFORCE_WEBHOOK_NAME,
    )
}

fn ca_patch(ca_pem: &str, kind: &str, name: &str, webhook: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    // The enforce component names cert-manager's injector for the cert-manager overlays; with
    // these certificates the caBundle is ours, so the annotation goes.
    let annotations = if kind == "ValidatingWebhookConfiguration" {
        "  annotations:\n    cert-manager.io/inject-ca-from: null\n"
    } else {
        ""
    };
    format!(
        "# Generated by `plx-store-webhook certs`: every CA to trust (the one that signed the\n\
         # serving certificate, and during a CA rotation the previous one).\n\
         apiVersion: admissionregistration.k8s.io/v1\n\
         kind: {kind}\n\
         metadata:\n  name: {name}\n{annotations}\
         webhooks:\n  - name: {webhook}\n    clientConfig:\n      caBundle: {b64}\n"
    )
}

/// What `certs` does with the files in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A new CA and serving pair; refuses to replace existing files unless `force`.
    Create { force: bool },
    /// A new serving pair from the kept CA (`ca.key`): the caBundle does not change.
    Renew,
    /// A new CA; the caBundle holds the previous and the new CA (`ca-previous.crt`), and the
    /// serving pair is left as it is (still trusted) until the next `Renew`.
    RotateCa,
    /// The rotation's end: the previous CA leaves the caBundle.
    DropPreviousCa,
}

const CA_KEY: &str = "ca.key";
const PREVIOUS: &str = "ca-previous.crt";

fn read(dir: &Path, name: &str) -> std::io::Result<String> {
    std::fs::read_to_string(dir.join(name)).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (run `certs` without --renew/--rotate-ca first)",
                dir.join(name).display()
            ),
        )
    })
}

fn write(dir: &Path, name: &str, content: &str, mode: u32) -> std::io::Result<()> {
    // Written beside and renamed over, so a reader never sees half a key.
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    std::io::Write::write_all(&mut opts.open(&tmp)?, content.as_bytes())?;
    std::fs::rename(&tmp, dir.join(name))
}

fn other(e: rcgen::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Carry out `step` in `dir` for a serving certificate `common_name`/`sans` valid `days`, and
/// return what is now served and trusted. Files: `ca.crt`, `ca.key` and `tls.key` (0600),
/// `tls.crt`, `ca-previous.crt` (during a CA rotation), and the two caBundle patches, which
/// always hold every CA to trust.
pub fn run_step(
    dir: &Path,
    step: Step,
    common_name: &str,
    sans: &[String],
    days: u32,
) -> std::io::Result<Bundle> {
    // Each CA its own subject (and leaves name theirs by key id), so a verifier holding the
    // previous and the new CA during a rotation picks the right one.
    let ca_name = format!(
        "{common_name} CA {}",
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let issue = |ca: &Ca| {
        ca.issue(common_name, sans, days, Usage::Server)
            .map_err(other)
    };
    let pair = match step {
        Step::Create { force } => {
            let names = [
                "ca.crt",
                CA_KEY,
                "tls.crt",
                "tls.key",
                "cabundle-patch.yaml",
            ];
            if let Some(n) = names
                .iter()
                .find(|n| dir.join(n).exists())
                .filter(|_| !force)
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists; refusing to overwrite keys (--renew keeps the CA; --force replaces it)",
                        dir.join(n).display()
                    ),
                ));
            }
            std::fs::create_dir_all(dir)?;
            let _ = std::fs::remove_file(dir.join(PREVIOUS));
            let ca = Ca::new(&ca_name, days.max(CA_MIN_DAYS)).map_err(other)?;
            write(dir, CA_KEY, &ca.issuer.key().serialize_pem(), 0o600)?;
            write(dir, "ca.crt", &ca.pem, 0o644)?;
            Some(issue(&ca)?)
        }
        Step::Renew => {
            let ca = Ca::load(&read(dir, "ca.crt")?, &read(dir, CA_KEY)?).map_err(other)?;
            Some(issue(&ca)?)
        }
        Step::RotateCa => {
            // Only the old certificate is needed: a 0.1.0 folder (no ca.key) rotates too.
            let old = read(dir, "ca.crt")?;
            let ca = Ca::new(&ca_name, days.max(CA_MIN_DAYS)).map_err(other)?;
            write(dir, PREVIOUS, &old, 0o644)?;
            write(dir, CA_KEY, &ca.issuer.key().serialize_pem(), 0o600)?;
            write(dir, "ca.crt", &ca.pem, 0o644)?;
            None
        }
        Step::DropPreviousCa => {
            let _ = std::fs::remove_file(dir.join(PREVIOUS));
            None
        }
    };
    if let Some(b) = &pair {
        // The key first: a reader that sees the new certificate finds its key.
        write(dir, "tls.key", &b.key_pem, 0o600)?;
        write(dir, "tls.crt", &b.cert_pem, 0o644)?;
    }
    let trusted =
        read(dir, "ca.crt")? + &std::fs::read_to_string(dir.join(PREVIOUS)).unwrap_or_default();
    write(dir, "cabundle-patch.yaml", &cabundle_patch(&trusted), 0o644)?;
    write(
        dir,
        "cabundle-patch-enforce.yaml",
        &cabundle_patch_enforce(&trusted),
        0o644,
    )?;
    let served = match pair {
        Some(b) => b,
        None => Bundle {
            ca_pem: String::new(),
            cert_pem: read(dir, "tls.crt")?,
            key_pem: String::new(),
            not_after: OffsetDateTime::now_utc(),
        },
    };
    Ok(Bundle {
        ca_pem: trusted,
        ..served
    })
}

/// A CA outlives the serving pairs it signs: renewing them never touches the caBundle.
const CA_MIN_DAYS: u32 = 3650;

/// What a step changed, for the operator (which files to apply, in which order).
pub fn step_summary(step: Step, dir: &str) -> String {
    let bundle = format!("{dir}/cabundle-patch.yaml and {dir}/cabundle-patch-enforce.yaml");
    match step {
        Step::Create { .. } => format!(
            "wrote {dir}/ca.crt, {dir}/ca.key (0600), {dir}/tls.crt, {dir}/tls.key (0600), {bundle}"
        ),
        Step::Renew => format!(
            "renewed {dir}/tls.crt and {dir}/tls.key from the kept CA: update the Secret only (the caBundle is unchanged)"
        ),
        Step::RotateCa => format!(
            "new CA in {dir}/ca.crt, the previous one in {dir}/ca-previous.crt; {bundle} trust both: apply them first, then run --renew"
        ),
        Step::DropPreviousCa => format!(
            "{bundle} trust only the new CA: apply them once every replica serves the renewed pair"
        ),
    }
}
