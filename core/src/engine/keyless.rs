//! What a target container of a keyless run may not carry: every place the store kind's clients
//! read a credential before the team identity (`clients::reads`, in their order), reached by a
//! variable or by a file any volume can put there. One table, one reach model ([`Files`]).

use super::identity::TOKEN_MOUNT;
use super::keypath::{clean, is_strictly_under, Files};
use super::pod::{Container, Env, Mount, PodView, Volume};
use super::q;
use crate::clients::{self, Accept, Place, Read};
use crate::config::StoreKind;
use crate::plan::{RefKind, StorePlan, VolumeSource};
use std::collections::HashMap;

/// Where the kubelet may put files, per volume of one pod, built on first use.
pub(super) struct Reach<'v, 'p, 'a> {
    view: &'v PodView<'p, 'a>,
    built: HashMap<&'p str, Files>,
    /// The route's own ConfigMaps and Secrets: the platform's config, which the webhook itself
    /// mounts (so `/validate` sees what `/mutate` added), never a tenant's credential.
    own: Vec<(RefKind, String)>,
}

impl<'v, 'p, 'a> Reach<'v, 'p, 'a> {
    pub fn new(view: &'v PodView<'p, 'a>) -> Self {
        Reach {
            view,
            built: HashMap::new(),
            own: Vec::new(),
        }
    }

    /// Also skipping the volumes of the route's own objects.
    pub fn with_own(view: &'v PodView<'p, 'a>, sp: &StorePlan) -> Self {
        let own = sp
            .mounts
            .iter()
            .filter_map(|m| match &m.source {
                VolumeSource::Secret { name, .. } => Some((RefKind::Secret, name.clone())),
                VolumeSource::ConfigMap { name, .. } => Some((RefKind::ConfigMap, name.clone())),
                _ => None,
            })
            .collect();
        Reach {
            own,
            ..Self::new(view)
        }
    }

    fn is_own(&self, v: &Volume<'_>) -> bool {
        let secret = v.secret.as_ref().and_then(|s| s.secret_name.as_deref());
        let config_map = v.config_map.as_ref().and_then(|c| c.name.as_deref());
        self.own.iter().any(|(kind, name)| match kind {
            RefKind::Secret => secret == Some(name.as_str()),
            RefKind::ConfigMap => config_map == Some(name.as_str()),
        })
    }

    /// The first mount of `c` whose volume can put something at `target` (or under it, with
    /// `below`), with its volume, skipping volumes `skip` says are fine there.
    fn mount_reaching<'c, 'b>(
        &mut self,
        c: &'c Container<'b>,
        target: &str,
        below: bool,
        skip: impl Fn(&Volume<'_>) -> bool,
    ) -> Option<(&'c Mount<'b>, &'p Volume<'a>)> {
        let view = self.view;
        for m in c.mounts() {
            let Some(v) = view.volume(&m.name) else {
                continue;
            };
            if skip(v) || self.is_own(v) {
                continue;
            }
            let files = self
                .built
                .entry(&*v.name)
                .or_insert_with(|| Files::of_volume(v));
            let sub = match (&m.sub_path_expr, &m.sub_path) {
                (Some(e), _) if !e.is_empty() => Some(None),
                (_, Some(s)) if !s.is_empty() => Some(Some(s.as_ref())),
                _ => None,
            };
            if files.reach(&m.mount_path, sub, target, below) {
                return Some((m, v));
            }
        }
        None
    }
}

impl Reach<'_, '_, '_> {
    /// The first mount of `c` that may put files in `D/rel` for some directory `D` (`HOME`
    /// unknown), in words.
    fn mount_reaching_any_home(
        &mut self,
        c: &Container<'_>,
        rel: &str,
        r: &Read,
        why: &str,
    ) -> Option<String> {
        let view = self.view;
        for m in c.mounts() {
            let Some(v) = view.volume(&m.name) else {
                continue;
            };
            let files = self
                .built
                .entry(&*v.name)
                .or_insert_with(|| Files::of_volume(v));
            if files.reach_any_home(&m.mount_path, rel) {
                return Some(format!(
                    "{why}, so ~ may be any directory, and a {} volume {} mounted at {} \
                     that may put files in ~/{rel}, where {} reads credentials",
                    source(v),
                    q(&v.name),
                    q(&m.mount_path),
                    r.client
                ));
            }
        }
        None
    }
}

/// The kind of a volume's source, in the words of the pod spec.
fn source(v: &Volume<'_>) -> &'static str {
    if v.secret.is_some() {
        "secret"
    } else if v.config_map.is_some() {
        "configMap"
    } else if v.projected.is_some() {
        "projected"
    } else if v.downward_api.is_some() {
        "downwardAPI"
    } else if v.host_path.is_some() {
        "hostPath"
    } else if v.persistent_volume_claim.is_some() {
        "persistentVolumeClaim"
    } else {
        "csi, ephemeral or another"
    }
}

/// Where a path from the pod (a `HOME`, a catalog's `mountPath`, the catalog read as a file)
/// lands. The webhook compares paths as text, so only a plain absolute path is taken at its word:
/// one holding a `$` (the kubelet turns `$$` into `$` and expands `$(VAR)` in variables) or passing
/// through `/proc` (the kernel's aliases of other places, at any depth, across containers sharing
/// a process namespace) is a place the webhook does not follow, and refused.
enum Resolved {
    /// This absolute path of the container.
    At(String),
    /// Under the image's own working directory (relative, no `workingDir`): like every file the
    /// image holds, not seen here.
    Image,
    /// Somewhere the webhook does not follow.
    Unknown,
}

/// `path` resolved in container `c`: a relative path is under `workingDir` (taken literally: the
/// kubelet does not expand it) when it is set.
fn resolve(c: &Container<'_>, path: &str) -> Resolved {
    if path.contains('$') {
        return Resolved::Unknown;
    }
    let absolute = if path.starts_with('/') {
        path.to_string()
    } else {
        match c.working_dir.as_deref() {
            Some(dir) if dir.starts_with('/') => format!("{}/{path}", dir.trim_end_matches('/')),
            Some(_) => return Resolved::Unknown,
            None => return Resolved::Image,
        }
    };
    // As written and as cleaned: `/x/../proc/…` and `/proc/self/cwd/../../../x` both go there.
    let cleaned = clean(&absolute);
    let through_proc = |p: &str| p.contains("/proc/") || p.ends_with("/proc");
    if through_proc(&absolute) || through_proc(&cleaned) {
        return Resolved::Unknown;
    }
    Resolved::At(cleaned.into_owned())
}

/// What may be at a path the pod gives, in words.
enum Reached {
    /// A mount of the container that may put files there.
    Mount(String),
    /// The path itself is one the webhook does not follow.
    Unfollowed(String),
}

impl std::fmt::Display for Reached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reached::Mount(w) | Reached::Unfollowed(w) => f.write_str(w),
        }
    }
}

impl Reach<'_, '_, '_> {
    /// The first mount of `c` that may put a file at `path` (or, with `below`, files under it),
    /// `path` as the pod gives it (resolved first).
    fn mount_reaching_path(
        &mut self,
        c: &Container<'_>,
        path: &str,
        below: bool,
    ) -> Option<Reached> {
        match resolve(c, path) {
            Resolved::At(at) => self.mount_reaching(c, &at, below, |_| false).map(|(m, v)| {
                Reached::Mount(format!("a {} volume {} mounted at {}", source(v), q(&v.name), q(&m.mount_path)))
            }),
            Resolved::Image => None,
            Resolved::Unknown => Some(Reached::Unfollowed(format!(
                "{}, a path the webhook does not follow (a `$` the kubelet rewrites, or `/proc`, the kernel's aliases of \
                 other places)",
                q(path)
            ))),
        }
    }
}

/// The first credential `c` carries that a `kind` client would use before the pod's identity,
/// in words; `None` when it carries none.
pub(super) fn carried(
    reach: &mut Reach<'_, '_, '_>,
    c: &Container<'_>,
    sp: &StorePlan,
) -> Option<String> {
    let kind = sp.store_kind;
    let home_unknown = home_unknown(c, sp);
    for r in clients::reads(kind) {
        match r.place {
            Place::Var(name) => {
                if let Some(e) = c.env_var(name) {
                    if !accepted(reach.view, c, kind, r, e) {
                        return Some(format!("env {name}, read by {}", r.client));
                    }
                }
            }
            Place::Sdk(_) | Place::VarPrefix(_) => {
                // Every entry (the last of each name is what the container sees; any form counts).
                let env = c.env.as_deref().unwrap_or_default();
                let hit = env.iter().enumerate().rev().find(|(i, e)| {
                    clients::variable(kind, &e.name).is_some_and(|x| std::ptr::eq(x, r))
                        && !env[i + 1..].iter().any(|l| l.name == e.name)
                });
                if let Some((_, e)) = hit {
                    let plain = e.name.len() <= 63
                        && e.name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    return Some(if plain {
                        format!("env {}, read by {}", e.name, r.client)
                    } else {
                        format!("env {}, read by {}", q(&e.name), r.client)
                    });
                }
            }
            Place::File(path) | Place::Dir(path) => {
                let below = matches!(r.place, Place::Dir(_));
                if let Some(found) = file_at(reach, c, path, below, r) {
                    return Some(found);
                }
            }
            Place::HomeFile(rel) | Place::HomeDir(rel) => {
                if let Some(why) = &home_unknown {
                    if let Some(found) = reach.mount_reaching_any_home(c, rel, r, why) {
                        return Some(found);
                    }
                }
                let below = matches!(r.place, Place::HomeDir(_));
                for home in homes(c) {
                    let at = format!("{}/{rel}", home.trim_end_matches('/'));
                    if let Some(found) = file_at(reach, c, &at, below, r) {
                        return Some(found);
                    }
                }
            }
        }
    }
    token_directory(reach, c)
}

fn file_at(
    reach: &mut Reach<'_, '_, '_>,
    c: &Container<'_>,
    path: &str,
    below: bool,
    r: &Read,
) -> Option<String> {
    Some(match reach.mount_reaching_path(c, path, below)? {
        Reached::Unfollowed(what) => format!("{what}, where {} reads credentials", r.client),
        Reached::Mount(what) => format!(
            "{what} that puts {} {path}, where {} reads credentials",
            if below { "files in" } else { "a file at" },
            r.client
        ),
    })
}

/// Why `HOME` may be a value the webhook cannot read, if it may: set by `valueFrom`, with a
/// `$(VAR)` the kubelet expands, or — with no `HOME` entry, which would win over `envFrom` — by an
/// `envFrom` Secret or ConfigMap (other than the route's own, unprefixed) whose keys are unknown,
/// under a prefix that can make `HOME`. Then `~` may be any directory.
fn home_unknown(c: &Container<'_>, sp: &StorePlan) -> Option<String> {
    if let Some(e) = c.env_var("HOME") {
        let unknown = e.value_from.is_some() || e.value.as_deref().is_some_and(|v| v.contains('$'));
        return unknown
            .then(|| "HOME set by valueFrom or with a $ the kubelet rewrites".to_string());
    }
    c.env_from().iter().find_map(|e| {
        let (what, name, kind) = match (&e.secret_ref, &e.config_map_ref) {
            (Some(r), _) => ("secret", r.name.as_deref(), RefKind::Secret),
            (None, Some(r)) => ("configMap", r.name.as_deref(), RefKind::ConfigMap),
            _ => return None,
        };
        let name = name.unwrap_or("");
        let prefix = e.prefix.as_deref().unwrap_or("");
        let own = prefix.is_empty() && sp.env_from.iter().any(|r| r.name == name && r.kind == kind);
        ("HOME".starts_with(prefix) && !own)
            .then(|| format!("HOME may come from envFrom of {what} {}", q(name)))
    })
}

/// Home directories a client may expand `~` to: root's, the container's `HOME` when set by
/// value, and — with no `HOME` entry — `/`, which the runtime gives a user the image's passwd
/// does not list (root included; a passwd entry's home is the image's, not seen here).
fn homes<'c>(c: &'c Container<'_>) -> impl Iterator<Item = &'c str> {
    let entry = c.env_var("HOME");
    // A `$` the kubelet rewrites makes `HOME` unknown: `home_unknown`'s any-directory model.
    let home = entry
        .and_then(|e| e.value.as_deref())
        .filter(|h| !h.contains('$'));
    let slash = entry.is_none().then_some("/");
    std::iter::once("/root")
        .chain(home.filter(|h| clean(h) != "/root"))
        .chain(slash)
}

/// Anything but the pod's own bound token in the service-account token directory (a copied
/// token in a ConfigMap, a hostPath …). Secrets there are the legacy-token case, decided apart.
fn token_directory(reach: &mut Reach<'_, '_, '_>, c: &Container<'_>) -> Option<String> {
    let (m, v) = reach.mount_reaching(c, TOKEN_MOUNT, true, |v| {
        bound_token(v) || super::keypath::Layout::of_volume(v).is_secret()
    })?;
    Some(format!(
        "a {} volume {} mounted at {} that puts files in the service account token directory {TOKEN_MOUNT}, \
         where only the pod's bound token may be",
        source(v),
        q(&v.name),
        q(&m.mount_path)
    ))
}

/// The volume the ServiceAccount plugin adds with bound tokens: projected from the pod's own
/// token, the cluster's CA (`kube-root-ca.crt`) and the namespace (downward API).
fn bound_token(v: &Volume<'_>) -> bool {
    let Some(sources) = v.projected.as_ref().and_then(|p| p.sources.as_deref()) else {
        return false;
    };
    // Only the token source may put a file named `token` (a downward API item or the CA
    // bundle's items renamed to `token` would be a token clients read, but not the pod's).
    let not_token = |p: &str| clean(p).trim_start_matches('/') != "token";
    sources.iter().any(|s| s.service_account_token.is_some())
        && sources.iter().all(|s| {
            s.secret.is_none()
                && s.config_map.as_ref().is_none_or(|c| {
                    c.name.as_deref() == Some("kube-root-ca.crt")
                        && c.items.iter().flatten().all(|i| not_token(&i.path))
                })
                && s.downward_api
                    .as_ref()
                    .is_none_or(|d| d.items.iter().flatten().all(|i| not_token(&i.path)))
        })
}

/// Whether a variable `r` names is what the identity webhooks set for the pod's own account.
fn accepted(
    view: &PodView<'_, '_>,
    c: &Container<'_>,
    kind: StoreKind,
    r: &Read,
    e: &Env<'_>,
) -> bool {
    match r.accept {
        Accept::Never => false,
        Accept::OwnToken => {
            e.value_from.is_none()
                && e.value.as_deref().is_some_and(|p| {
                    matches!(resolve(c, p), Resolved::At(_)) && own_token(view, c, p)
                })
        }
        Accept::Values(vs) => {
            e.value_from.is_none() && e.value.as_deref().is_some_and(|v| vs.contains(&v))
        }
        Accept::With(other) => match (c.env_var(other), clients::variable(kind, other)) {
            (Some(o), Some(ro)) if !matches!(ro.accept, Accept::With(_)) => {
                accepted(view, c, kind, ro, o)
            }
            _ => false,
        },
    }
}

/// Whether `path` is, in `c`, a file of a projected volume made only of service account
/// tokens (the kubelet fills it with the pod's own account's token; nothing else can be there).
fn own_token(view: &PodView<'_, '_>, c: &Container<'_>, path: &str) -> bool {
    let path = clean(path);
    // The innermost mount at or above the path decides what is there (a file mounted at the
    // token path itself, by subPath, is innermost).
    let Some(m) = c
        .mounts()
        .iter()
        .filter(|m| {
            let at = clean(&m.mount_path);
            at == path || is_strictly_under(&path, &at)
        })
        .max_by_key(|m| clean(&m.mount_path).len())
    else {
        return false;
    };
    if m.sub_path.as_deref().is_some_and(|s| !s.is_empty())
        || m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
    {
        return false;
    }
    let Some(sources) = view
        .volume(&m.name)
        .and_then(|v| v.projected.as_ref())
        .and_then(|p| p.sources.as_deref())
    else {
        return false;
    };
    let rel = path[clean(&m.mount_path).trim_end_matches('/').len()..].trim_start_matches('/');
    !sources.is_empty()
        && sources.iter().all(|s| {
            s.secret.is_none()
                && s.config_map.is_none()
                && s.downward_api.is_none()
                && s.service_account_token.is_some()
        })
        && sources
            .iter()
            .filter_map(|s| s.service_account_token.as_ref())
            .any(|t| clean(&t.path).trim_start_matches('/') == rel)
}

/// The variable Polyaxon sets on every run with its connections (JSON); Polyaxon's SDK (vents,
/// env prefix `POLYAXON`) reads it by exactly this name.
pub const CATALOG: &str = "POLYAXON_CONNECTIONS_CATALOG";
/// The longest catalog read (Polyaxon's hold the run's few connections, a few hundred bytes each).
const CATALOG_MAX_BYTES: usize = 64 * 1024;
/// The variable naming which catalog connection is the run's artifacts store.
pub const STORE_NAME: &str = "POLYAXON_ARTIFACTS_STORE_NAME";

/// What a container's connection catalog says about credentials.
pub(super) enum Catalog {
    /// A connection the clients would use for the store names a credential source, in words.
    Carries(String),
    /// The catalog comes from a reference the webhook cannot read (`valueFrom`).
    Unknown,
}

/// The store kind a catalog connection's clients are (vents' `gcs`/`gcp`, `s3`/`aws`,
/// `wasb`/`azure`); `None` for kinds that read no store credentials.
fn catalog_kind(kind: &str) -> Option<StoreKind> {
    match kind {
        "gcs" | "gcp" => Some(StoreKind::Gcs),
        "s3" | "aws" => Some(StoreKind::S3),
        "wasb" | "azure" => Some(StoreKind::Wasb),
        _ => None,
    }
}

/// Whether vents, for a `kind` connection, reads `key` from its `env` or `schema`: every variable
/// of the kind's table, in each form vents tries (as written, lower case, lower case without
/// `_`, each also `POLYAXON_`-prefixed).
fn catalog_key(kind: StoreKind, key: &str) -> bool {
    clients::reads(kind).iter().any(|r| match r.place {
        Place::Var(v) | Place::Sdk(v) => clients::sdk_form(v, key),
        _ => false,
    })
}

/// The credential sources a connection of a catalog names, in words: a `secret` or `configMap`
/// `mountPath` where a volume of this container puts files (vents reads a file per key there:
/// `GC_KEY_PATH`, `gc_keyfile_dict`, …; the same reach as every other credential path, so
/// Polyaxon's own catalog naming its agent store's mount is harmless where nothing is mounted
/// there), or `env` / `schema` entries vents reads as credentials. Field names as vents accepts
/// them (alias or field name).
fn connection_carries(
    reach: &mut Reach<'_, '_, '_>,
    c: &Container<'_>,
    conn: &serde_json::Map<String, serde_json::Value>,
    kind: StoreKind,
) -> Option<String> {
    use serde_json::Value;
    let name = conn.get("name").and_then(Value::as_str).unwrap_or("");
    for field in ["secret", "configMap", "config_map"] {
        let Some(Value::Object(r)) = conn.get(field) else {
            continue;
        };
        for at in ["mountPath", "mount_path"] {
            // Not a string: vents cannot join it into a path, so it reads nothing there.
            let Some(p) = r.get(at).and_then(Value::as_str).filter(|p| !p.is_empty()) else {
                continue;
            };
            if let Some(what) = reach.mount_reaching_path(c, p, true) {
                return Some(format!(
                    "env {CATALOG}: connection {} has a {field} mounted at {} ({what}), where the Polyaxon SDK (vents) \
                     reads credential files",
                    q(name),
                    q(p)
                ));
            }
        }
    }
    for field in ["env", "schema", "schema_"] {
        let keys: Box<dyn Iterator<Item = &str>> = match conn.get(field) {
            Some(Value::Object(m)) => Box::new(m.keys().map(String::as_str)),
            Some(Value::Array(a)) => Box::new(
                a.iter()
                    .filter_map(|p| p.as_array().and_then(|p| p.first()).and_then(Value::as_str)),
            ),
            _ => continue,
        };
        for key in keys {
            if catalog_key(kind, key) {
                return Some(format!(
                    "env {CATALOG}: connection {} sets {} in its {field}, read by the Polyaxon SDK (vents)",
                    q(name),
                    q(key)
                ));
            }
        }
    }
    None
}

/// Whether `c`'s connection catalog gives the clients of the run's store a credential (vents
/// 0.10 `AppConfig.load_connections_catalog`, providers' `load_from_connection`). The
/// connections that count: every one of the store's kind (any name: code may load any), and
/// the one `POLYAXON_ARTIFACTS_STORE_NAME` names, of any bucket kind (every one when that name
/// cannot be read). Parsed once per container, linear in the value, the first finding only.
pub(super) fn catalog(
    reach: &mut Reach<'_, '_, '_>,
    c: &Container<'_>,
    kind: StoreKind,
) -> Option<Catalog> {
    use serde_json::Value;
    let e = c.env_var(CATALOG)?;
    if e.value_from.is_some() {
        return Some(Catalog::Unknown);
    }
    let text = e.value.as_deref().unwrap_or("");
    if text.is_empty() {
        return None;
    }
    let unreadable = |why: &str| {
        Some(Catalog::Carries(format!(
            "env {CATALOG} {why}, so the connections the Polyaxon SDK (vents) reads cannot be checked"
        )))
    };
    if text.contains('$') {
        return unreadable("holds a $ the kubelet rewrites ($(VAR), $$)");
    }
    // vents (clipped's ConfigSpec) first reads the value as a file path when such a file exists.
    if let Some(what) = reach.mount_reaching_path(c, text, false) {
        return Some(Catalog::Carries(format!(
            "env {CATALOG} names a path where {what} may put a file, which the Polyaxon SDK (vents) reads as the \
             catalog"
        )));
    }
    // A parsed tree costs more than its text (up to ~16x for `[0,0,…]`): read only what a real
    // catalog needs, so one container's catalog costs at most a fixed amount, one at a time.
    if text.len() > CATALOG_MAX_BYTES {
        return unreadable("is longer than the 64 KiB the webhook reads");
    }
    // Polyaxon writes valid JSON; anything the webhook cannot read (NaN, nesting past 128, …) may
    // still be read by Python, so it is not taken as harmless.
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return unreadable("is not JSON the webhook can read");
    };
    let list = match &v {
        Value::Null => return None,
        Value::Array(a) => a,
        Value::Object(m) => match m.get("connections") {
            None | Some(Value::Null) => return None,
            Some(Value::Array(a)) => a,
            Some(_) => return unreadable("has connections that are not a list"),
        },
        _ => return unreadable("is not a connection catalog"),
    };
    let store = c.env_var(STORE_NAME);
    let any_name = store.is_some_and(|s| {
        s.value_from.is_some() || s.value.as_deref().is_some_and(|v| v.contains("$("))
    });
    let store = store.and_then(|s| s.value.as_deref());
    for conn in list {
        let Value::Object(conn) = conn else {
            return unreadable("has a connection that is not an object");
        };
        let Some(ckind) = conn
            .get("kind")
            .and_then(Value::as_str)
            .and_then(catalog_kind)
        else {
            continue;
        };
        let name = conn.get("name").and_then(Value::as_str);
        if ckind != kind && !any_name && (name.is_none() || name != store) {
            continue;
        }
        if let Some(found) = connection_carries(reach, c, conn, ckind) {
            return Some(Catalog::Carries(found));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{catalog, Catalog, Reach, CATALOG};
    use crate::config::StoreKind;
    use crate::engine::pod::{decode, PodView};
    use crate::PodLimits;
    use serde_json::json;

    /// What the catalog check finds in a pod of one container `c` with `volumes`.
    fn found_in(c: serde_json::Value, volumes: serde_json::Value) -> Option<String> {
        let text = json!({"spec": {"containers": [c], "volumes": volumes}}).to_string();
        let pod = decode(&text).unwrap();
        let view = PodView::new(&pod, &PodLimits::DEFAULT).unwrap();
        let mut reach = Reach::new(&view);
        match catalog(&mut reach, view.containers[0].c, StoreKind::Gcs) {
            None => None,
            Some(Catalog::Unknown) => Some("unknown".into()),
            Some(Catalog::Carries(w)) => Some(w),
        }
    }

    fn found(env: serde_json::Value) -> Option<String> {
        found_in(json!({"name": "c", "env": env}), json!([]))
    }

    #[test]
    fn a_catalog_mount_path_counts_where_a_volume_puts_files() {
        let conn = json!([{"name": "gcs-artifacts", "kind": "gcs",
                           "secret": {"name": "gcs-secret", "mountPath": "/plx-context/.gc/gc-secret.json"}}]);
        // Polyaxon's own catalog naming its agent store's mount, with nothing mounted there.
        assert_eq!(found(json!([cat(conn.clone())])), None);
        // A volume of this container at (or above) that path: vents reads the key there.
        let mounted = |at: &str| {
            found_in(
                json!({"name": "c", "env": [cat(conn.clone())],
                       "volumeMounts": [{"name": "k", "mountPath": at}]}),
                json!([{"name": "k", "secret": {"secretName": "mine"}}]),
            )
        };
        assert!(mounted("/plx-context/.gc/gc-secret.json").is_some());
        assert_eq!(mounted("/elsewhere"), None);
        // Above it, a plain Secret puts files one level down only (keys hold no `/`); items
        // can put one deeper.
        assert_eq!(mounted("/plx-context"), None);
        let items = found_in(
            json!({"name": "c", "env": [cat(conn.clone())],
                   "volumeMounts": [{"name": "k", "mountPath": "/plx-context"}]}),
            json!([{"name": "k", "secret": {"secretName": "mine",
                    "items": [{"key": "k", "path": ".gc/gc-secret.json/GC_KEY_PATH"}]}}]),
        );
        assert!(items.is_some());
        // A relative path is under the working directory: `workingDir` when set, else the
        // image's (like every file an image holds, not seen).
        let rel =
            json!([{"name": "s", "kind": "gcs", "configMap": {"name": "m", "mountPath": "keys"}}]);
        let with_dir = |dir: Option<&str>| {
            let mut c = json!({"name": "c", "env": [cat(rel.clone())],
                               "volumeMounts": [{"name": "k", "mountPath": "/w/keys"}]});
            if let Some(d) = dir {
                c["workingDir"] = json!(d);
            }
            found_in(c, json!([{"name": "k", "configMap": {"name": "mine"}}]))
        };
        assert!(with_dir(Some("/w")).is_some());
        assert_eq!(with_dir(None), None);
        // Kernel aliases of the same place: /proc/self/root, /proc/<pid>/root.
        for at in [
            "/proc/self/root/plx-context/.gc/gc-secret.json",
            "/proc/1/root/plx-context/.gc/gc-secret.json",
        ] {
            let alias = json!([{"name": "gcs-artifacts", "kind": "gcs",
                                "secret": {"name": "s", "mountPath": at}}]);
            let hit = found_in(
                json!({"name": "c", "env": [cat(alias)],
                       "volumeMounts": [{"name": "k", "mountPath": "/plx-context/.gc/gc-secret.json"}]}),
                json!([{"name": "k", "secret": {"secretName": "mine"}}]),
            );
            assert!(hit.is_some(), "{at}");
        }
        // The catalog read as a file (vents tries the value as a path first).
        let as_file = |value: &str| {
            found_in(
                json!({"name": "c", "workingDir": "/cat",
                       "env": [{"name": CATALOG, "value": value}],
                       "volumeMounts": [{"name": "k", "mountPath": "/cat"}]}),
                json!([{"name": "k", "configMap": {"name": "mine"}}]),
            )
        };
        for v in ["null", "{}", "[]"] {
            assert!(as_file(v).unwrap().contains("reads as the catalog"), "{v}");
        }
    }

    fn cat(conns: serde_json::Value) -> serde_json::Value {
        json!({"name": CATALOG, "value": json!({"connections": conns}).to_string()})
    }

    #[test]
    fn which_catalog_connections_count() {
        let keyed_s3 = json!({"name": "data", "kind": "s3", "env": {"AWS_ACCESS_KEY_ID": "k"}});
        let keyless = json!({"name": "store", "kind": "gcs", "schema": {"bucket": "gs://b"}});
        let git =
            json!({"name": "repo", "kind": "git", "secret": {"name": "s", "mountPath": "/k"}});
        // Keyless store, other kinds' keys: nothing.
        assert_eq!(found(json!([cat(json!([keyless, keyed_s3, git]))])), None);
        // The other kind's connection named as the artifacts store counts, by its own table.
        let named = json!([{"name": "POLYAXON_ARTIFACTS_STORE_NAME", "value": "data"}, cat(json!([keyed_s3]))]);
        assert!(found(named).unwrap().contains("AWS_ACCESS_KEY_ID"));
        // A store name by reference: every bucket connection counts (git still not).
        let by_ref = json!([
            {"name": "POLYAXON_ARTIFACTS_STORE_NAME", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}},
            cat(json!([git, keyed_s3]))
        ]);
        assert!(found(by_ref).unwrap().contains("\"data\""));
        // vents' key forms: lower case without `_`, POLYAXON_-prefixed.
        for key in [
            "gckeypath",
            "POLYAXON_GOOGLE_KEY_PATH",
            "google_application_credentials",
        ] {
            let c = json!([{"name": "s", "kind": "gcs", "env": {key: "/k.json"}}]);
            assert!(found(json!([cat(c)])).is_some(), "{key}");
        }
        // Not a credential: the project, the scopes.
        let c = json!([{"name": "s", "kind": "gcs", "env": {"GC_PROJECT": "p", "GC_SCOPES": "x"}}]);
        assert_eq!(found(json!([cat(c)])), None);
        // The last entry counts; empty is no catalog.
        let last = json!([cat(json!([{"name": "s", "kind": "gcs", "env": {"GC_KEY_PATH": "/k.json"}}])),
                          {"name": CATALOG, "value": ""}]);
        assert_eq!(found(last), None);
        // Too long to read: not taken as harmless.
        let long = json!([{"name": CATALOG, "value": format!("[{}0]", "0,".repeat(40 * 1024))}]);
        assert!(found(long).unwrap().contains("64 KiB"));
        // By reference: unknown (a warning).
        let r =
            json!([{"name": CATALOG, "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
        assert_eq!(found(r).as_deref(), Some("unknown"));
    }
}
