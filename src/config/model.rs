//! The validated config: everything here is already valid Kubernetes, so the engine never has to
//! second-guess it.

use crate::glob::Glob;
use serde::Serialize;

/// A loaded, validated config. `hash` identifies it in the marker annotation and logs.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub store: Store,
    /// Connections every run pod gets besides the store (platform-mandated), in config order.
    /// Left out of the hash when empty, so configs without connections keep their hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mandated: Vec<Store>,
    pub injection: Injection,
    #[serde(skip)]
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Gcs,
    S3,
    Wasb,
    VolumeClaim,
    HostPath,
}

impl StoreKind {
    pub const ALL: &'static [&'static str] = &["gcs", "s3", "wasb", "volume_claim", "host_path"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "gcs" => Self::Gcs,
            "s3" => Self::S3,
            "wasb" => Self::Wasb,
            "volume_claim" => Self::VolumeClaim,
            "host_path" => Self::HostPath,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gcs => "gcs",
            Self::S3 => "s3",
            Self::Wasb => "wasb",
            Self::VolumeClaim => "volume_claim",
            Self::HostPath => "host_path",
        }
    }

    pub fn is_bucket(self) -> bool {
        matches!(self, Self::Gcs | Self::S3 | Self::Wasb)
    }
}

/// The artifacts store, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Store {
    pub name: String,
    pub kind: StoreKind,
    pub bucket: Option<String>,
    pub secret: Option<Resource>,
    pub config_map: Option<Resource>,
    pub volume: Option<VolumeStore>,
}

/// A Secret or ConfigMap reference with Kubernetes-valid items and mode.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub name: String,
    pub mount_path: Option<MountTarget>,
    pub items: Vec<KeyToPath>,
    pub default_mode: Option<i32>,
}

/// Where the operator asked the resource to be mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountTarget {
    /// The path as written (normalised: no trailing slash).
    pub written: String,
    /// The directory the volume is mounted at (`dirname(written)` when `written` names a file).
    pub dir: String,
    /// The file name the operator meant, when `written` names a `.json` file.
    pub file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<i32>,
}

/// `volume_claim` / `host_path` stores.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeStore {
    pub source: VolumeStoreSource,
    pub mount_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeStoreSource {
    Claim(String),
    HostPath(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    Deny,
    Skip,
}

/// Which pods and containers get the store.
#[derive(Debug, Clone, Serialize)]
pub struct Injection {
    pub selector: Vec<(String, String)>,
    pub namespaces_include: Vec<Glob>,
    pub namespaces_exclude: Vec<Glob>,
    pub containers: Vec<Glob>,
    pub init_containers: Vec<Glob>,
    pub on_conflict: OnConflict,
}

pub const DEFAULT_SELECTOR: &[(&str, &str)] = &[
    ("app.kubernetes.io/managed-by", "polyaxon"),
    ("app.kubernetes.io/part-of", "polyaxon-runs"),
];
pub const DEFAULT_CONTAINERS: &[&str] = &[
    "polyaxon-main",
    "pytorch",
    "tensorflow",
    "mxnet",
    "xgboost",
    "polyaxon-sidecar",
];
pub const DEFAULT_INIT_CONTAINERS: &[&str] = &["polyaxon-init-artifacts-*", "polyaxon-init-tb-*"];

impl Default for Injection {
    fn default() -> Self {
        Injection {
            selector: DEFAULT_SELECTOR
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            namespaces_include: Vec::new(),
            namespaces_exclude: Vec::new(),
            containers: DEFAULT_CONTAINERS.iter().map(|s| Glob::new(*s)).collect(),
            init_containers: DEFAULT_INIT_CONTAINERS
                .iter()
                .map(|s| Glob::new(*s))
                .collect(),
            on_conflict: OnConflict::Deny,
        }
    }
}
