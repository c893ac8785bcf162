//! Config → [`Plan`]: for every store a run can be routed to (the default and each rule), what
//! every target container must end up with. Computed once per config load, so a request only
//! picks a ready [`StorePlan`] and compares the pod against it.

use crate::clients;
use crate::config::{
    decision_fingerprint, Config, Identity, Injection, KeyToPath, Mode, NoMatch, Resource,
    RuleMatch, RunFacts, Store, StoreKind, VolumeStoreSource,
};
use crate::k8s_names::to_dns_label;
use crate::limits::PodLimits;
use crate::references::{self, ObjectRef};
use serde_json::{json, Map, Value};

/// Marker: the store a pod was given.
pub const ANNOTATION_STORE: &str = "plx-store-webhook.dev/store";
/// Marker: the hash of the config that produced the injection.
pub const ANNOTATION_CONFIG_HASH: &str = "plx-store-webhook.dev/config-hash";
/// Marker: the fingerprint of the decision that produced the injection
/// ([`crate::config::decision_fingerprint`]): the fleet view compares it with today's.
pub const ANNOTATION_DECISION: &str = "plx-store-webhook.dev/decision";
/// Pod annotation listing containers (comma-separated names) the webhook must leave alone.
pub const ANNOTATION_SKIP_CONTAINERS: &str = "plx-store-webhook.dev/skip-containers";
/// The env var the Polyaxon SDK reads first for the GCS key file.
pub const GC_KEY_PATH: &str = "GC_KEY_PATH";
/// Other names the SDK reads for the key file; it picks among them at random.
pub const GC_KEY_ALIASES: &[&str] = &[
    "GOOGLE_KEY_PATH",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "POLYAXON_GC_KEY_PATH",
    "POLYAXON_GOOGLE_KEY_PATH",
    "POLYAXON_GOOGLE_APPLICATION_CREDENTIALS",
];

/// Everything the engine needs, derived from one config.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config_hash: String,
    /// Which pods are runs and which of their containers are served (shared by every store).
    pub policy: Injection,
    /// The artifactsStore's plan: what runs no rule matches get when `noMatch` is `default`.
    pub default: StorePlan,
    pub rules: Vec<RulePlan>,
    pub no_match: NoMatch,
    /// Every keyless identity of the config, with who owns it ("rule vision", "the default"):
    /// a run may not take another team's account.
    pub identity_owners: Vec<(String, String)>,
    /// What one pod may carry (not configurable: documented defaults; tests and benchmarks
    /// raise them to measure the engine past them).
    pub limits: PodLimits,
}

/// One per-team rule, ready to match.
#[derive(Debug, Clone)]
pub struct RulePlan {
    pub name: String,
    pub matcher: RuleMatch,
    pub plan: StorePlan,
}

/// Where a run was routed.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    Rule(&'a RulePlan),
    Default(&'a StorePlan),
    /// No rule matched and `noMatch` is `warn` or `deny`.
    Unmatched(NoMatch),
}

impl Plan {
    /// Build every store plan of `config` once.
    pub fn from_config(config: &Config) -> Plan {
        let build = |store: &Store, conns: &[Store], identity: &Option<Identity>| {
            let mut p = StorePlan::build(store, conns, &config.injection, &config.hash);
            p.identity.clone_from(identity);
            p.fingerprint =
                decision_fingerprint(store, conns, identity.as_ref(), &config.injection);
            p.references = references::of_store(&p);
            p
        };
        let mut identity_owners: Vec<(String, String)> = Vec::new();
        if let Some(i) = &config.identity {
            identity_owners.push((i.service_account.clone(), "the default store".into()));
        }
        for r in &config.rules {
            if let Some(i) = &r.identity {
                identity_owners.push((i.service_account.clone(), format!("rule {}", r.name)));
            }
        }
        Plan {
            config_hash: config.hash.clone(),
            policy: config.injection.clone(),
            default: build(&config.store, &config.mandated, &config.identity),
            rules: config
                .rules
                .iter()
                .map(|r| RulePlan {
                    name: r.name.clone(),
                    matcher: r.matcher.clone(),
                    plan: StorePlan {
                        mode: r.mode.unwrap_or(config.injection.mode),
                        ..build(&r.store, &r.connections, &r.identity)
                    },
                })
                .collect(),
            no_match: config.no_match,
            identity_owners,
            limits: PodLimits::DEFAULT,
        }
    }

    /// A plan with one store and no rules (to try one store plan on its own).
    pub fn single(store: StorePlan) -> Plan {
        let identity_owners = store
            .identity
            .iter()
            .map(|i| (i.service_account.clone(), "the default store".into()))
            .collect();
        Plan {
            config_hash: store.config_hash.clone(),
            policy: store.policy.clone(),
            default: store,
            rules: Vec::new(),
            no_match: NoMatch::Default,
            identity_owners,
            limits: PodLimits::DEFAULT,
        }
    }

    /// First matching rule, else what `noMatch` says.
    pub fn route(&self, facts: &RunFacts<'_>) -> Route<'_> {
        match self.rules.iter().find(|r| r.matcher.matches(facts)) {
            Some(r) => Route::Rule(r),
            None if self.no_match == NoMatch::Default => Route::Default(&self.default),
            None => Route::Unmatched(self.no_match),
        }
    }

    /// The artifactsStore's name (the default store), for metrics and logs.
    pub fn store_name(&self) -> &str {
        &self.default.store_name
    }
}

/// What every target container of a run routed to one store must end up with.
#[derive(Debug, Clone)]
pub struct StorePlan {
    pub store_name: String,
    pub store_kind: StoreKind,
    pub config_hash: String,
    /// What this decision gives, hashed (`plx-store-webhook.dev/decision`).
    pub fingerprint: String,
    pub policy: Injection,
    pub mounts: Vec<MountPlan>,
    pub env_from: Vec<EnvFromRef>,
    pub env_items: Vec<EnvItem>,
    /// The store secret's keys again under the names standard clients read (`optional`, never
    /// overriding a name the container already sets).
    pub client_env: Vec<EnvItem>,
    /// For GCS stores with a mounted secret: which mount holds the key, and its key name.
    pub gcs_key: Option<GcsKey>,
    /// The secret's mountPath as written in the config (Polyaxon mounts exactly there).
    pub written_secret_path: Option<String>,
    /// How many of `mounts` / `env_from` come from the store (the rest: mandated connections).
    pub store_mounts: usize,
    pub store_env_from: usize,
    /// Names of the connections given besides the store (mandated, then the rule's own).
    pub connections: Vec<String>,
    /// What clients in the run will and will not be able to use (`clients::notes`).
    pub notes: Vec<String>,
    /// Keyless: the run's ServiceAccount (its cloud identity) instead of a key.
    pub identity: Option<Identity>,
    /// Give the store, or only say what would be given (`rules[].mode`, else `injection.mode`).
    pub mode: Mode,
    /// The objects a run routed here needs in its namespace (`references::of_store`).
    pub references: Vec<ObjectRef>,
}

#[derive(Debug, Clone)]
pub struct GcsKey {
    pub mount: usize,
    pub key: String,
}

/// A volume every target container must mount.
#[derive(Debug, Clone)]
pub struct MountPlan {
    /// What this mount is for, in messages ("secret gcs-secret").
    pub what: String,
    /// Volume name used when the pod has no volume with this source yet.
    pub preferred_name: String,
    pub source: VolumeSource,
    /// Mount directory for containers that do not mount the volume yet.
    pub dir: String,
    pub read_only: bool,
}

/// The identity of a volume: two volumes with the same source are the same storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    Secret {
        name: String,
        items: Vec<KeyToPath>,
        default_mode: Option<i32>,
    },
    ConfigMap {
        name: String,
        items: Vec<KeyToPath>,
        default_mode: Option<i32>,
    },
    Claim {
        claim_name: String,
        read_only: bool,
    },
    HostPath {
        path: String,
    },
}

impl VolumeSource {
    /// Volumes of these kinds are always mounted read-only by the kubelet.
    pub fn always_read_only(&self) -> bool {
        matches!(
            self,
            VolumeSource::Secret { .. } | VolumeSource::ConfigMap { .. }
        )
    }

    /// The pod `volumes[]` entry for this source under `name`.
    pub fn to_volume(&self, name: &str) -> Value {
        let mut v = Map::new();
        v.insert("name".into(), Value::String(name.to_string()));
        let (key, body) = match self {
            VolumeSource::Secret {
                name,
                items,
                default_mode,
            } => (
                "secret",
                projection("secretName", name, items, *default_mode),
            ),
            VolumeSource::ConfigMap {
                name,
                items,
                default_mode,
            } => ("configMap", projection("name", name, items, *default_mode)),
            VolumeSource::Claim {
                claim_name,
                read_only,
            } => {
                let mut m = json!({ "claimName": claim_name });
                if *read_only {
                    m["readOnly"] = Value::Bool(true);
                }
                ("persistentVolumeClaim", m)
            }
            VolumeSource::HostPath { path } => ("hostPath", json!({ "path": path })),
        };
        v.insert(key.into(), body);
        Value::Object(v)
    }
}

fn projection(name_field: &str, name: &str, items: &[KeyToPath], mode: Option<i32>) -> Value {
    let mut m = Map::new();
    m.insert(name_field.into(), Value::String(name.to_string()));
    if !items.is_empty() {
        m.insert(
            "items".into(),
            serde_json::to_value(items).unwrap_or(Value::Null),
        );
    }
    if let Some(mode) = mode {
        m.insert("defaultMode".into(), Value::from(mode));
    }
    Value::Object(m)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Secret,
    ConfigMap,
}

impl RefKind {
    /// The `envFrom` / `valueFrom` field names for this kind.
    pub fn fields(self) -> (&'static str, &'static str) {
        match self {
            RefKind::Secret => ("secretRef", "secretKeyRef"),
            RefKind::ConfigMap => ("configMapRef", "configMapKeyRef"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EnvFromRef {
    pub kind: RefKind,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct EnvItem {
    pub env_name: String,
    pub kind: RefKind,
    pub resource: String,
    pub key: String,
    /// `optional: true` on the key reference: a key the resource lacks leaves the name unset.
    pub optional: bool,
}

impl StorePlan {
    /// Build the plan, applying Polyaxon's secret/configMap table (name only → `envFrom`,
    /// `items` → one env per key, `mountPath` → volume + mount) to the store's resources and
    /// then to each connection.
    pub fn build(store: &Store, connections: &[Store], policy: &Injection, hash: &str) -> Self {
        let mut plan = StorePlan {
            store_name: store.name.clone(),
            store_kind: store.kind,
            config_hash: hash.to_string(),
            fingerprint: decision_fingerprint(store, connections, None, policy),
            policy: policy.clone(),
            mounts: Vec::new(),
            env_from: Vec::new(),
            env_items: Vec::new(),
            client_env: Vec::new(),
            gcs_key: None,
            written_secret_path: store
                .secret
                .as_ref()
                .and_then(|s| s.mount_path.as_ref())
                .map(|t| t.written.clone()),
            store_mounts: 0,
            store_env_from: 0,
            connections: Vec::new(),
            notes: clients::notes(store),
            identity: None,
            mode: policy.mode,
            references: Vec::new(),
        };
        plan.mounts.extend(volume_mount(store, "store"));
        if let Some(s) = &store.secret {
            let key = store.gcs_key.clone();
            let idx = plan.add_resource(s, RefKind::Secret, key.as_deref());
            if let (Some(idx), Some(key)) = (idx, key) {
                plan.gcs_key = Some(GcsKey { mount: idx, key });
            }
        }
        if let Some(c) = &store.config_map {
            plan.add_resource(c, RefKind::ConfigMap, None);
        }
        if policy.standard_client_env {
            plan.client_env = client_env(store);
        }
        plan.store_mounts = plan.mounts.len();
        plan.store_env_from = plan.env_from.len();
        for conn in connections {
            plan.add_connection(conn);
            plan.connections.push(conn.name.clone());
        }
        plan.references = references::of_store(&plan);
        plan
    }

    /// A platform-mandated connection: its volume and Polyaxon's secret/configMap table, without
    /// the store-only GC_KEY_PATH; pieces already planned (same envFrom, same env) are not repeated.
    fn add_connection(&mut self, conn: &Store) {
        self.mounts.extend(volume_mount(conn, "connection"));
        for (r, kind) in [
            (&conn.secret, RefKind::Secret),
            (&conn.config_map, RefKind::ConfigMap),
        ] {
            let Some(r) = r else { continue };
            let before = (self.env_from.len(), self.env_items.len());
            self.add_resource(r, kind, None);
            dedup_tail(&mut self.env_from, before.0, |a, b| {
                a.kind == b.kind && a.name == b.name
            });
            dedup_tail(&mut self.env_items, before.1, |a, b| {
                a.env_name == b.env_name
            });
        }
    }

    /// Adds one Secret/ConfigMap per Polyaxon's table; returns the mount index when mounted.
    fn add_resource(&mut self, r: &Resource, kind: RefKind, key: Option<&str>) -> Option<usize> {
        let Some(target) = &r.mount_path else {
            if r.items.is_empty() {
                self.env_from.push(EnvFromRef {
                    kind,
                    name: r.name.clone(),
                });
            } else {
                for item in &r.items {
                    self.env_items.push(EnvItem {
                        env_name: item.key.clone(),
                        kind,
                        resource: r.name.clone(),
                        key: item.key.clone(),
                        optional: false,
                    });
                }
            }
            return None;
        };
        let mut items = r.items.clone();
        // Legacy `mountPath: /dir/name.json`: project the key as `name.json`, so it lands exactly
        // at the path the operator wrote.
        if let (Some(file), Some(key)) = (&target.file, key) {
            match items.iter_mut().find(|i| i.key == key) {
                Some(item) => item.path = file.clone(),
                None if file != key => items.push(KeyToPath {
                    key: key.to_string(),
                    path: file.clone(),
                    mode: None,
                }),
                None => {}
            }
        }
        let (what, source) = match kind {
            RefKind::Secret => (
                format!("secret {}", r.name),
                VolumeSource::Secret {
                    name: r.name.clone(),
                    items,
                    default_mode: r.default_mode,
                },
            ),
            RefKind::ConfigMap => (
                format!("configMap {}", r.name),
                VolumeSource::ConfigMap {
                    name: r.name.clone(),
                    items,
                    default_mode: r.default_mode,
                },
            ),
        };
        self.mounts.push(MountPlan {
            what,
            preferred_name: to_dns_label(&r.name),
            source,
            dir: target.dir.clone(),
            read_only: true,
        });
        Some(self.mounts.len() - 1)
    }

    /// The marker annotations recorded on every injected pod.
    pub fn marker(&self) -> [(&'static str, &str); 3] {
        [
            (ANNOTATION_STORE, self.store_name.as_str()),
            (ANNOTATION_CONFIG_HASH, self.config_hash.as_str()),
            (ANNOTATION_DECISION, self.fingerprint.as_str()),
        ]
    }
}

/// The volume of a `volume_claim` / `host_path` connection, named after the connection as
/// Polyaxon names it.
fn volume_mount(conn: &Store, role: &str) -> Option<MountPlan> {
    let v = conn.volume.as_ref()?;
    let source = match &v.source {
        VolumeStoreSource::Claim(c) => VolumeSource::Claim {
            claim_name: c.clone(),
            read_only: v.read_only,
        },
        VolumeStoreSource::HostPath(p) => VolumeSource::HostPath { path: p.clone() },
    };
    Some(MountPlan {
        what: format!("{role} {}", conn.name),
        preferred_name: to_dns_label(&conn.name),
        source,
        dir: v.mount_path.clone(),
        read_only: v.read_only,
    })
}

/// The store's keys again under the names standard clients read. Each name takes its value from
/// the store resource that lists the Polyaxon key in `items`, else from the Secret when it comes
/// whole by `envFrom`; a mounted resource feeds none (a platform that mounts its keys as files
/// chose not to put them in the environment).
fn client_env(store: &Store) -> Vec<EnvItem> {
    let as_env = [
        (&store.secret, RefKind::Secret),
        (&store.config_map, RefKind::ConfigMap),
    ]
    .into_iter()
    .filter_map(|(r, kind)| Some((r.as_ref()?, kind)))
    .filter(|(r, _)| r.mount_path.is_none())
    .collect::<Vec<_>>();
    clients::aliases(store.kind)
        .iter()
        .filter_map(|(name, from)| {
            let listed = as_env
                .iter()
                .find(|(r, _)| r.items.iter().any(|i| i.key == *from));
            let whole = || {
                as_env
                    .iter()
                    .find(|(r, kind)| *kind == RefKind::Secret && r.items.is_empty())
            };
            let (r, kind) = listed.or_else(whole)?;
            Some(EnvItem {
                env_name: name.to_string(),
                kind: *kind,
                resource: r.name.clone(),
                key: from.to_string(),
                optional: true,
            })
        })
        .collect()
}

/// Drop entries added after `from` that repeat an earlier one.
fn dedup_tail<T>(v: &mut Vec<T>, from: usize, same: impl Fn(&T, &T) -> bool) {
    let mut i = from;
    while i < v.len() {
        if v[..i].iter().any(|e| same(e, &v[i])) {
            v.remove(i);
        } else {
            i += 1;
        }
    }
}
