//! The config as written: Polyaxon's connection format (Helm `artifactsStore`, a bare connection,
//! or the agent ConfigMap's JSON) plus this webhook's `injection` section. Unknown fields inside a
//! connection are errors, so a typo is caught at load time with its line and column.

use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A Polyaxon Helm values file: only `artifactsStore` and `injection` are read.
#[derive(Debug, Deserialize)]
pub struct HelmValues {
    #[serde(rename = "artifactsStore")]
    pub artifacts_store: Option<RawConnection>,
    /// Polyaxon's other connections; `injection.connections` names those every run gets.
    pub connections: Option<Vec<RawConnection>>,
    pub injection: Option<RawInjection>,
}

/// One Polyaxon connection (`vents` `V1Connection`). `injection` is accepted only when the
/// document is a bare connection, so the webhook's settings can live beside it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    pub name: String,
    pub kind: String,
    #[serde(default, alias = "schema_")]
    pub schema: Option<RawSchema>,
    #[serde(default)]
    pub secret: Option<RawResource>,
    #[serde(default, rename = "configMap", alias = "config_map")]
    pub config_map: Option<RawResource>,
    // Accepted so Polyaxon configs load unchanged; Polyaxon itself applies them, not this webhook.
    #[serde(default)]
    #[allow(dead_code)]
    pub env: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    pub annotations: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    pub tags: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<IgnoredAny>,
    #[serde(default)]
    pub injection: Option<RawInjection>,
}

/// Field names of [`RawConnection`], for error messages.
pub const CONNECTION_FIELDS: &[&str] = &[
    "name",
    "kind",
    "schema",
    "secret",
    "configMap",
    "env",
    "annotations",
    "tags",
    "description",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchema {
    pub bucket: Option<String>,
    #[serde(rename = "volumeClaim", alias = "volume_claim")]
    pub volume_claim: Option<String>,
    #[serde(rename = "hostPath", alias = "host_path")]
    pub host_path: Option<String>,
    #[serde(rename = "mountPath", alias = "mount_path")]
    pub mount_path: Option<String>,
    #[serde(rename = "readOnly", alias = "read_only")]
    pub read_only: Option<bool>,
}

/// A connection's `secret` or `configMap`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    pub name: String,
    #[serde(default, rename = "mountPath", alias = "mount_path")]
    pub mount_path: Option<String>,
    #[serde(default)]
    pub items: Option<Vec<RawItem>>,
    #[serde(default, rename = "defaultMode", alias = "default_mode")]
    pub default_mode: Option<RawMode>,
}

/// Polyaxon writes items as bare key strings; Kubernetes wants `{key, path}`. Both are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawItem {
    Key(String),
    KeyToPath {
        key: String,
        path: String,
        #[serde(default)]
        mode: Option<RawMode>,
    },
}

/// Polyaxon writes modes as octal strings (`"0400"`); Kubernetes wants an integer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMode {
    Int(i64),
    Text(String),
}

/// The webhook's own settings (top-level `injection:`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawInjection {
    pub selector: Option<BTreeMap<String, String>>,
    pub namespaces: Option<RawNamespaces>,
    pub containers: Option<Vec<String>>,
    pub init_containers: Option<Vec<String>>,
    pub on_conflict: Option<String>,
    /// `warn` (default) or `deny`: a run whose namespace lacks an object its decision needs.
    pub on_missing_reference: Option<String>,
    /// `inject` (default) or `audit`: what routed runs get.
    pub mode: Option<String>,
    /// Names from `connections:` that every run pod gets besides the artifacts store.
    pub connections: Option<Vec<String>>,
    /// Per-team store rules, first match wins.
    pub rules: Option<Vec<RawRule>>,
    /// What a run pod no rule matches gets: `default` (the artifactsStore), `warn` or `deny`.
    pub no_match: Option<String>,
    /// Also set the variables the standard cloud clients read (default true).
    pub standard_client_env: Option<bool>,
    /// The cloud identity (a ServiceAccount) of runs no rule matches: keyless artifactsStore.
    pub identity: Option<RawIdentity>,
    /// Globs of the accounts Polyaxon gives runs (replaced by a rule's identity).
    pub runs_service_accounts: Option<Vec<String>>,
}

/// A keyless store's identity: the ServiceAccount whose cloud identity the run gets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawIdentity {
    pub service_account_name: String,
    /// Azure Workload Identity: also label the pod `azure.workload.identity/use: "true"`.
    pub azure_workload_identity: Option<bool>,
}

/// One store rule: which runs (`match`) get which store and extra connections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matcher: Option<RawMatch>,
    pub store: String,
    #[serde(default)]
    pub connections: Option<Vec<String>>,
    /// Keyless: the ServiceAccount whose cloud identity this rule's runs get.
    #[serde(default)]
    pub identity: Option<RawIdentity>,
    /// This rule's `inject` or `audit`, over `injection.mode`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// What a rule matches on; every list given must match (a list matches when any glob does).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub namespaces: Option<Vec<String>>,
    pub owners: Option<Vec<String>>,
    pub projects: Option<Vec<String>>,
    pub components: Option<Vec<String>>,
}

/// The webhook's own settings file, used beside Polyaxon's agent ConfigMap (or a connection file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub injection: Option<RawInjection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNamespaces {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}
