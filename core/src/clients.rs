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
