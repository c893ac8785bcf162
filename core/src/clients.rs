//! The variables standard cloud clients read, next to the names Polyaxon's own secrets use.
//!
//! Polyaxon's SDK (vents) reads its own names (`GC_KEY_PATH`, `AWS_REGION`, `AZURE_ACCOUNT_NAME`,
//! …); google-auth, gcsfs, boto3 and adlfs read others. The webhook gives a run both, pointing at
//! the same credentials, so `storage.Client()` or `pd.read_csv("s3://…")` work as well as the SDK.
//! Sources for every name: `docs/client-credentials.md`.

use crate::config::{Resource, Store, StoreKind};

/// The file google-auth, google-cloud-storage, gcsfs, TensorFlow and the Go/Java clients read.
pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// (standard name a client reads, the Polyaxon key of the store's Secret it takes its value from).
pub type Alias = (&'static str, &'static str);

/// boto3/botocore and the other AWS SDKs: the region and session token under their standard names.
const S3: &[Alias] = &[
    ("AWS_DEFAULT_REGION", "AWS_REGION"),
    ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"),
];

/// adlfs (fsspec `az://`, `abfs://`) and `azure-storage-*` samples: the `AZURE_STORAGE_*` names.
const WASB: &[Alias] = &[
    ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_ACCOUNT_NAME"),
    ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_ACCOUNT_KEY"),
    ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_CONNECTION_STRING"),
    ("AZURE_STORAGE_SAS_TOKEN", "AZURE_SAS_TOKEN"),
    ("AZURE_STORAGE_CLIENT_ID", "AZURE_CLIENT_ID"),
    ("AZURE_STORAGE_CLIENT_SECRET", "AZURE_CLIENT_SECRET"),
    ("AZURE_STORAGE_TENANT_ID", "AZURE_TENANT_ID"),
];

/// The standard names a store kind's secret is also exposed under.
pub fn aliases(kind: StoreKind) -> &'static [Alias] {
    match kind {
        StoreKind::S3 => S3,
        StoreKind::Wasb => WASB,
        _ => &[],
    }
}

/// Where a client looks for a credential: a variable, a file, a directory, or a directory under
/// the user's home (`/root` and the container's `HOME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Var(&'static str),
    File(&'static str),
    Dir(&'static str),
    HomeDir(&'static str),
    /// A file in the user's home (`~/.boto`).
    HomeFile(&'static str),
    /// A key Polyaxon's SDK (vents) reads, in every form it tries: as written, lower case, lower
    /// case without `_`, each also prefixed `POLYAXON_` (vents' `read_keys`, env prefix `POLYAXON`).
    Sdk(&'static str),
    /// Every variable starting with this (fsspec's `FSSPEC_<protocol>[_<kwarg>]` configuration).
    VarPrefix(&'static str),
}

/// Whether the variable `name` is one of the forms vents reads key `key` under.
pub fn sdk_form(key: &str, name: &str) -> bool {
    let name = name.strip_prefix("POLYAXON_").unwrap_or(name);
    name == key
        || name.eq_ignore_ascii_case(key) && (name == key.to_ascii_lowercase())
        || (name.len() < key.len()
            && name.bytes().eq(key
                .bytes()
                .filter(|&b| b != b'_')
                .map(|b| b.to_ascii_lowercase())))
}

/// When a keyless run may carry a place a client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Never: a value there is a credential used before the team identity.
    Never,
    /// Only as a file the kubelet fills with the pod's own service account token (a projected
    /// `serviceAccountToken` volume, what IRSA, EKS Pod Identity and Azure WI add).
    OwnToken,
    /// Only beside this variable, itself accepted (the identity webhooks set them together).
    With(&'static str),
    /// Only with one of these values (the EKS Pod Identity agent's address).
    Values(&'static [&'static str]),
}

/// One place a client reads, in the client's own order.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub client: &'static str,
    pub place: Place,
    pub accept: Accept,
}

const fn never(client: &'static str, place: Place) -> Read {
    Read {
        client,
        place,
        accept: Accept::Never,
    }
}

const fn read(client: &'static str, place: Place, accept: Accept) -> Read {
    Read {
        client,
        place,
        accept,
    }
}

use Place::{Dir, File, HomeDir, HomeFile, Sdk, Var, VarPrefix};

/// Where Polyaxon's SDK reads a GCS key when no variable names one.
pub const SDK_KEY_FILE: &str = "/plx-context/.gc/gc-secret.json";
/// The EKS Pod Identity agent's addresses (IPv4, IPv6).
const EKS_AGENT: &[&str] = &[
    "http://169.254.170.23/v1/credentials",
    "http://[fd00:ec2::23]/v1/credentials",
];

/// The Microsoft Entra authority hosts the Azure WI webhook sets (public, China, US Gov clouds):
/// another host would receive the pod's token and answer with any credential.
const AZURE_AUTHORITIES: &[&str] = &[
    "https://login.microsoftonline.com/",
    "https://login.chinacloudapi.cn/",
    "https://login.microsoftonline.us/",
];

/// A table of reads, after the ones every store kind shares: Polyaxon's agent config, which
/// replaces the connection catalog when the SDK runs as the agent (`POLYAXON_SET_AGENT`, or
/// `POLYAXON_SERVICE=agent`), whatever the store's cloud.
macro_rules! with_polyaxon_agent_config {
    ($($read:expr),* $(,)?) => {
        [
            never("Polyaxon SDK (agent config)", Var("POLYAXON_SET_AGENT")),
            never("Polyaxon SDK (agent config)", Var("POLYAXON_SERVICE")),
            never("Polyaxon SDK (agent config)", Var("POLYAXON_AGENT_ARTIFACTS_STORE")),
            never("Polyaxon SDK (agent config)", Var("POLYAXON_AGENT_CONNECTIONS")),
            $($read),*
        ]
    };
}

/// GCS: Polyaxon's SDK (vents), then google-auth's ADC and gcloud, in their order.
const GCS_READS: &[Read] = &with_polyaxon_agent_config![
    never("Polyaxon SDK (vents)", Sdk("GC_KEY_PATH")),
    never("Polyaxon SDK (vents)", Sdk("GOOGLE_KEY_PATH")),
    never("Polyaxon SDK (vents)", Sdk(GOOGLE_APPLICATION_CREDENTIALS)),
    never("Polyaxon SDK (vents)", Sdk("GC_KEYFILE_DICT")),
    never("Polyaxon SDK (vents)", Sdk("GOOGLE_KEYFILE_DICT")),
    never("Polyaxon SDK (vents)", Var("POLYAXON_CONTEXT_ROOT")),
    never("Polyaxon SDK (vents)", File(SDK_KEY_FILE)),
    never("google-auth", Var(GOOGLE_APPLICATION_CREDENTIALS)),
    never("google-auth", Var("CLOUDSDK_CONFIG")),
    never("google-auth", HomeDir(".config/gcloud")),
    never("google-auth", Var("GCE_METADATA_HOST")),
    never("google-auth", Var("GCE_METADATA_IP")),
    never("google-auth", Var("GCE_METADATA_ROOT")),
    never("gcloud", Var("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE")),
    never("gcloud", Var("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")),
    never("fsspec (gcsfs)", VarPrefix("FSSPEC_")),
    never("fsspec (gcsfs)", HomeDir(".config/fsspec")),
];

/// S3: vents, then botocore's chain (environment, assume-role and web identity, shared files,
/// the container provider, instance metadata).
const S3_READS: &[Read] = &with_polyaxon_agent_config![
    never("Polyaxon SDK (vents), botocore", Sdk("AWS_ACCESS_KEY_ID")),
    never(
        "Polyaxon SDK (vents), botocore",
        Sdk("AWS_SECRET_ACCESS_KEY"),
    ),
    never("Polyaxon SDK (vents), botocore", Sdk("AWS_SECURITY_TOKEN")),
    never("fsspec (s3fs)", VarPrefix("FSSPEC_")),
    never("fsspec (s3fs)", HomeDir(".config/fsspec")),
    never("botocore", Var("AWS_SESSION_TOKEN")),
    never("botocore", Var("AWS_PROFILE")),
    never("botocore", Var("AWS_DEFAULT_PROFILE")),
    never("botocore", Var("AWS_CONFIG_FILE")),
    never("botocore", Var("AWS_ENDPOINT_URL_STS")),
    never("Polyaxon SDK (vents), botocore", Sdk("AWS_ENDPOINT_URL")),
    // vents' own STS address for its assume-role: another host answers with any credential.
    never("Polyaxon SDK (vents)", Sdk("AWS_STS_ENDPOINT_URL")),
    read(
        "botocore (IRSA)",
        Var("AWS_ROLE_ARN"),
        Accept::With("AWS_WEB_IDENTITY_TOKEN_FILE"),
    ),
    read(
        "botocore (IRSA)",
        Var("AWS_WEB_IDENTITY_TOKEN_FILE"),
        Accept::OwnToken,
    ),
    never("botocore", Var("AWS_SHARED_CREDENTIALS_FILE")),
    never("botocore", HomeDir(".aws")),
    never("botocore", Var("AWS_CREDENTIAL_FILE")),
    never("botocore (boto2 config)", Var("BOTO_CONFIG")),
    never("botocore (boto2 config)", File("/etc/boto.cfg")),
    never("botocore (boto2 config)", HomeFile(".boto")),
    read(
        "botocore (EKS Pod Identity)",
        Var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        Accept::Values(EKS_AGENT),
    ),
    never("botocore", Var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")),
    never("botocore", Var("AWS_CONTAINER_AUTHORIZATION_TOKEN")),
    read(
        "botocore (EKS Pod Identity)",
        Var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        Accept::OwnToken,
    ),
    never("botocore", Var("AWS_EC2_METADATA_SERVICE_ENDPOINT")),
];

/// Azure: adlfs's storage names first, vents, then azure-identity's DefaultAzureCredential
/// (environment, workload identity, managed identity, shared cache, Azure CLI).
const WASB_READS: &[Read] = &with_polyaxon_agent_config![
    never("fsspec (adlfs)", VarPrefix("FSSPEC_")),
    never("fsspec (adlfs)", HomeDir(".config/fsspec")),
    never("adlfs", Var("AZURE_STORAGE_CONNECTION_STRING")),
    never("adlfs", Var("AZURE_STORAGE_ACCOUNT_KEY")),
    never(
        "adlfs, Polyaxon SDK (vents)",
        Sdk("AZURE_STORAGE_SAS_TOKEN"),
    ),
    never("adlfs", Var("AZURE_STORAGE_CLIENT_ID")),
    never("adlfs", Var("AZURE_STORAGE_CLIENT_SECRET")),
    never("adlfs", Var("AZURE_STORAGE_TENANT_ID")),
    never("Polyaxon SDK (vents)", Sdk("AZURE_ACCOUNT_KEY")),
    never("Polyaxon SDK (vents)", Sdk("AZURE_CONNECTION_STRING")),
    never("Polyaxon SDK (vents)", Sdk("AZURE_SAS_TOKEN")),
    never(
        "Polyaxon SDK (vents), azure-identity",
        Sdk("AZURE_CLIENT_SECRET"),
    ),
    never("azure-identity", Var("AZURE_CLIENT_CERTIFICATE_PATH")),
    never("azure-identity", Var("AZURE_CLIENT_CERTIFICATE_PASSWORD")),
    never("azure-identity", Var("AZURE_USERNAME")),
    never("azure-identity", Var("AZURE_PASSWORD")),
    read(
        "Polyaxon SDK (vents), azure-identity (Azure WI)",
        Var("AZURE_CLIENT_ID"),
        Accept::With("AZURE_FEDERATED_TOKEN_FILE"),
    ),
    read(
        "Polyaxon SDK (vents), azure-identity (Azure WI)",
        Var("AZURE_TENANT_ID"),
        Accept::With("AZURE_FEDERATED_TOKEN_FILE"),
    ),
    read(
        "azure-identity (Azure WI)",
        Var("AZURE_AUTHORITY_HOST"),
        Accept::Values(AZURE_AUTHORITIES),
    ),
    never("azure-identity", Var("AZURE_POD_IDENTITY_AUTHORITY_HOST")),
    read(
        "azure-identity (Azure WI)",
        Var("AZURE_FEDERATED_TOKEN_FILE"),
        Accept::OwnToken,
    ),
    never("azure-identity", Var("IDENTITY_ENDPOINT")),
    never("azure-identity", Var("IDENTITY_HEADER")),
    never("azure-identity", Var("MSI_ENDPOINT")),
    never("azure-identity", Var("MSI_SECRET")),
    never("azure-identity", HomeDir(".IdentityService")),
    never("azure-identity (Azure CLI)", Var("AZURE_CONFIG_DIR")),
    never("azure-identity (Azure CLI)", HomeDir(".azure")),
];

/// Every place a store kind's clients read a credential, in the clients' order: what a target
/// container of a keyless run may not carry (beyond what [`Accept`] lets through).
pub fn reads(kind: StoreKind) -> &'static [Read] {
    match kind {
        StoreKind::Gcs => GCS_READS,
        StoreKind::S3 => S3_READS,
        StoreKind::Wasb => WASB_READS,
        _ => &[],
    }
}

/// The variable `name` in a store kind's table, if clients read it.
pub fn variable(kind: StoreKind, name: &str) -> Option<&'static Read> {
    reads(kind).iter().find(|r| match r.place {
        Var(v) => v == name,
        Sdk(k) => sdk_form(k, name),
        VarPrefix(p) => name.starts_with(p),
        _ => false,
    })
}

/// The keyless table as the docs show it (docs/client-credentials.md keeps it verbatim).
pub fn keyless_table_markdown() -> String {
    let mut s = String::from(
        "| store kind | client | reads | a keyless run may carry it |\n|---|---|---|---|\n",
    );
    for (kind, name) in [
        (StoreKind::Gcs, "gcs"),
        (StoreKind::S3, "s3"),
        (StoreKind::Wasb, "wasb"),
    ] {
        for r in reads(kind) {
            let place = match r.place {
                Var(v) => format!("env `{v}`"),
                File(f) => format!("file `{f}`"),
                Dir(d) => format!("directory `{d}`"),
                HomeDir(d) => format!("directory `~/{d}`"),
                HomeFile(d) => format!("file `~/{d}`"),
                Sdk(k) => format!(
                    "env `{k}`, `{}`, `{}`, each also `POLYAXON_`-prefixed",
                    k.to_ascii_lowercase(),
                    k.to_ascii_lowercase().replace('_', "")
                ),
                VarPrefix(p) => format!("every env `{p}*`"),
            };
            let accept = match r.accept {
                Accept::Never => "never".to_string(),
                Accept::OwnToken => "only as the pod's own projected service account token".into(),
                Accept::With(v) => format!("only beside an accepted `{v}`"),
                Accept::Values(vs) => format!(
                    "only as {}",
                    vs.iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            };
            s.push_str(&format!("| {name} | {} | {place} | {accept} |\n", r.client));
        }
    }
    s
}

/// Whether a file mode lets a user that is neither the owner (root) nor in the file's group read it.
pub fn others_can_read(mode: i32) -> bool {
    mode & 0o004 != 0
}

/// The mode the kubelet gives a Secret volume's files when none is set.
pub const DEFAULT_SECRET_MODE: i32 = 0o644;

/// Why the configured key file mode is only readable by root, if it is (for `check-config`).
pub fn root_only_mode(secret: &Resource, key: &str) -> Option<i32> {
    let mode = secret
        .items
        .iter()
        .find(|i| i.key == key)
        .and_then(|i| i.mode)
        .or(secret.default_mode)
        .unwrap_or(DEFAULT_SECRET_MODE);
    (!others_can_read(mode)).then_some(mode)
}

/// What a platform engineer should know about how clients will see this store's credentials
/// (printed by `check-config` and `mutate --explain`).
pub fn notes(store: &Store) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(secret) = &store.secret else {
        return notes;
    };
    if store.kind != StoreKind::Gcs {
        return notes;
    }
    match &secret.mount_path {
        None => notes.push(format!(
            "secret {name} has no mountPath, so it reaches containers as environment variables (the \
             GC_KEYFILE_DICT form). Polyaxon's SDK can read a key from GC_KEYFILE_DICT, but google-auth, \
             google-cloud-storage, gcsfs (pandas gs://), TensorFlow and gcloud read only a key *file* \
             (GOOGLE_APPLICATION_CREDENTIALS) and get no credentials. For every client, store the key as a file \
             and mount it:\n    kubectl create secret generic {name} --from-file=gc-secret.json=key.json\n    \
             secret: {{name: {name}, mountPath: /plx-context/.gc}}",
            name = secret.name
        )),
        Some(_) => {
            let key = store.gcs_key.as_deref();
            if let Some((key, mode)) = key.and_then(|k| root_only_mode(secret, k).map(|m| (k, m))) {
                notes.push(format!(
                    "secret {}: key {key} gets mode {mode:04o}, which only root can read; a container running as a \
                     non-root user needs the pod's securityContext.fsGroup (the kubelet then gives the file that \
                     group and mode|0440), or defaultMode 0444. The webhook warns per pod when this bites.",
                    secret.name
                ));
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The docs show the table the engine refuses by, not prose beside it.
    #[test]
    fn the_docs_table_is_the_engines_table() {
        let doc = include_str!("../../docs/client-credentials.md");
        let (begin, end) = (
            "<!-- keyless-table:begin -->\n",
            "<!-- keyless-table:end -->",
        );
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc.find(end).expect("end marker");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/client-credentials.md");
            let text = format!(
                "{}{}{}",
                &doc[..start],
                keyless_table_markdown(),
                &doc[stop..]
            );
            std::fs::write(path, text).expect("write docs/client-credentials.md");
            return;
        }
        assert_eq!(
            &doc[start..stop],
            keyless_table_markdown(),
            "docs/client-credentials.md: paste clients::keyless_table_markdown() between the markers"
        );
    }

    /// The names injected for keyed stores that carry a credential are refused in keyless runs.
    #[test]
    fn injected_credential_names_are_refused_in_keyless_runs() {
        for kind in [StoreKind::S3, StoreKind::Wasb] {
            for (name, from) in aliases(kind) {
                if variable(kind, from).is_some() {
                    assert!(variable(kind, name).is_some(), "{name} (from {from})");
                }
            }
        }
    }
}
