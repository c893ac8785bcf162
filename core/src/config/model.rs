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
    /// Per-team rules, first match wins; left out of the hash when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(skip_serializing_if = "NoMatch::is_default")]
    pub no_match: NoMatch,
    /// Keyless artifactsStore: the identity of runs no rule matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
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
    /// GCS stores with a secret: the key file's name in it, resolved (and checked) once at load.
    /// Derived from `secret`, so left out of the hash.
    #[serde(skip)]
    pub gcs_key: Option<String>,
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

/// A per-team rule, resolved: its store and every connection its pods get (the mandated ones
/// first, then the rule's own), all checked against each other at load time.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: String,
    pub matcher: RuleMatch,
    pub store: Store,
    pub connections: Vec<Store>,
    /// Keyless: the run gets this ServiceAccount (and so its cloud identity), no key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// This rule's mode, when it differs from `injection.mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// `match` fields written as an empty list (which match every run): for the lints only.
    #[serde(skip)]
    pub empty_lists: Vec<&'static str>,
}

/// A keyless store's identity: clouds map a pod's ServiceAccount to a cloud identity (GKE
/// Workload Identity Federation, IRSA / EKS Pod Identity, Azure Workload Identity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub service_account: String,
    /// Azure Workload Identity also needs the pod label `azure.workload.identity/use: "true"`.
    pub azure_label: bool,
}

/// Globs on the facts Polyaxon puts on a run pod; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Glob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Glob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<Glob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Glob>,
}

/// The facts of one run that rules match on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFacts<'a> {
    pub namespace: &'a str,
    pub owner: Option<&'a str>,
    pub project: Option<&'a str>,
    pub component: Option<&'a str>,
}

/// Why a rule did or did not match, one line per criterion (for `--explain` and check-config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub field: &'static str,
    pub matched: bool,
    pub detail: String,
}

impl RuleMatch {
    pub fn matches(&self, f: &RunFacts<'_>) -> bool {
        crit(&self.namespaces, Some(f.namespace))
            && crit(&self.owners, f.owner)
            && crit(&self.projects, f.project)
            && crit(&self.components, f.component)
    }

    /// Each criterion with its verdict; empty lists are not listed.
    pub fn explain(&self, f: &RunFacts<'_>) -> Vec<Criterion> {
        [
            ("namespace", &self.namespaces, Some(f.namespace)),
            ("owner", &self.owners, f.owner),
            ("project", &self.projects, f.project),
            ("component", &self.components, f.component),
        ]
        .into_iter()
        .filter(|(_, globs, _)| !globs.is_empty())
        .map(|(field, globs, value)| {
            let list: Vec<&str> = globs.iter().map(Glob::as_str).collect();
            Criterion {
                field,
                matched: crit(globs, value),
                detail: format!(
                    "{field} {} in [{}]",
                    value.map_or("(none)".to_string(), |v| format!("{v:?}")),
                    list.join(", ")
                ),
            }
        })
        .collect()
    }
}

fn crit(globs: &[Glob], value: Option<&str>) -> bool {
    globs.is_empty() || value.is_some_and(|v| crate::glob::any_match(globs, v))
}

/// What a run pod that no rule matches gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoMatch {
    /// The `artifactsStore`.
    #[default]
    Default,
    /// Nothing, with a warning to the user.
    Warn,
    /// Refused.
    Deny,
}

impl NoMatch {
    fn is_default(&self) -> bool {
        *self == NoMatch::Default
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NoMatch::Default => "default",
            NoMatch::Warn => "warn",
            NoMatch::Deny => "deny",
        }
    }
}

/// What the webhook does to a run routed to a store: give it the store (`inject`), or only
/// record on the pod and in warnings, logs and metrics what it would have done (`audit`), so a
/// platform team can roll out one team at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Inject,
    Audit,
}

impl Mode {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Inject => "inject",
            Mode::Audit => "audit",
        }
    }

    fn is_inject(&self) -> bool {
        *self == Mode::Inject
    }
}

/// What a run whose namespace lacks an object its decision needs gets (seen only with the fleet
/// view on): a warning naming the object, or a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissingReference {
    Warn,
    Deny,
}

impl OnMissingReference {
    pub fn as_str(self) -> &'static str {
        match self {
            OnMissingReference::Warn => "warn",
            OnMissingReference::Deny => "deny",
        }
    }

    fn is_warn(&self) -> bool {
        *self == OnMissingReference::Warn
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    Deny,
    Skip,
}

impl OnConflict {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Deny => "deny",
            OnConflict::Skip => "skip",
        }
    }
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
    /// Left out of the hash when `warn` (the default), so earlier configs keep their hash.
    #[serde(skip_serializing_if = "OnMissingReference::is_warn")]
    pub on_missing_reference: OnMissingReference,
    /// Left out of the hash when `inject` (the default), so earlier configs keep their hash.
    #[serde(skip_serializing_if = "Mode::is_inject")]
    pub mode: Mode,
    /// Also give the variables standard cloud clients read (google-auth, boto3, adlfs), pointing
    /// at the same credentials. Left out of the hash when on (the default), so configs written
    /// before the switch existed keep their hash.
    #[serde(skip_serializing_if = "is_true")]
    pub standard_client_env: bool,
    /// The accounts Polyaxon gives runs, which a keyless rule replaces by its identity.
    #[serde(skip_serializing_if = "is_default_runs_accounts")]
    pub runs_service_accounts: Vec<Glob>,
}

/// Polyaxon's chart names the runs account `<release>-polyaxon-runs-sa`.
pub const DEFAULT_RUNS_SERVICE_ACCOUNTS: &[&str] = &["*-polyaxon-runs-sa"];

fn is_default_runs_accounts(v: &[Glob]) -> bool {
    v.len() == DEFAULT_RUNS_SERVICE_ACCOUNTS.len()
        && v.iter()
            .zip(DEFAULT_RUNS_SERVICE_ACCOUNTS)
            .all(|(g, d)| g.as_str() == *d)
}

fn is_true(b: &bool) -> bool {
    *b
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
            on_missing_reference: OnMissingReference::Warn,
            mode: Mode::Inject,
            standard_client_env: true,
            runs_service_accounts: DEFAULT_RUNS_SERVICE_ACCOUNTS
                .iter()
                .map(|s| Glob::new(*s))
                .collect(),
        }
    }
}
