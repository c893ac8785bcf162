//! Raw config → validated model. Errors name the field path and what was expected.

use super::model::*;
use super::raw::*;
use super::Invalid;
use crate::glob::Glob;
use crate::k8s_names::{is_dns_subdomain, is_env_var_name};

/// The GCS key file name Polyaxon's docs create (`--from-file=gc-secret.json=…`).
pub const DEFAULT_GCS_KEY: &str = "gc-secret.json";

pub(super) fn store(raw: RawConnection, at: &str) -> Result<Store, Invalid> {
    if raw.name.trim().is_empty() {
        return Err(Invalid(format!("{at}name: must not be empty")));
    }
    let kind = StoreKind::parse(&raw.kind).ok_or_else(|| {
        format!(
            "{at}kind: unknown store kind {:?}; expected one of {}",
            raw.kind,
            StoreKind::ALL.join(", ")
        )
    })?;
    let schema = raw.schema;
    let mut volume = None;
    let mut bucket = None;
    if kind.is_bucket() {
        bucket = schema.as_ref().and_then(|s| s.bucket.clone());
        match &bucket {
            Some(b) if !b.trim().is_empty() => {}
            _ => {
                return Err(Invalid(format!(
                    "{at}schema.bucket: required for a `{}` store (e.g. \"gs://my-bucket\")",
                    kind.as_str()
                )))
            }
        }
    } else {
        let Some(s) = schema else {
            return Err(Invalid(format!(
                "{at}schema: required for a `{}` store",
                kind.as_str()
            )));
        };
        let mount_path = s.mount_path.ok_or_else(|| {
            format!(
                "{at}schema.mountPath: required for a `{}` store",
                kind.as_str()
            )
        })?;
        let mount_path = absolute_path(&mount_path, &format!("{at}schema.mountPath"))?;
        let source = match kind {
            StoreKind::VolumeClaim => {
                let c = s.volume_claim.ok_or_else(|| {
                    format!("{at}schema.volumeClaim: required for a `volume_claim` store")
                })?;
                if !is_dns_subdomain(&c) {
                    return Err(Invalid(format!(
                        "{at}schema.volumeClaim: {c:?} is not a valid PersistentVolumeClaim name (lowercase RFC 1123 subdomain)"
                    )));
                }
                VolumeStoreSource::Claim(c)
            }
            _ => {
                let h = s.host_path.ok_or_else(|| {
                    format!("{at}schema.hostPath: required for a `host_path` store")
                })?;
                VolumeStoreSource::HostPath(absolute_path(&h, &format!("{at}schema.hostPath"))?)
            }
        };
        volume = Some(VolumeStore {
            source,
            mount_path,
            read_only: s.read_only.unwrap_or(false),
        });
    }
    let secret = raw
        .secret
        .map(|r| resource(r, &format!("{at}secret"), "Secret"))
        .transpose()?;
    let config_map = raw
        .config_map
        .map(|r| resource(r, &format!("{at}configMap"), "ConfigMap"))
        .transpose()?;
    if let (Some(s), Some(c)) = (&secret, &config_map) {
        if let (Some(a), Some(b)) = (&s.mount_path, &c.mount_path) {
            if a.dir == b.dir {
                return Err(Invalid(format!(
                    "{at}configMap.mountPath: {} is also the secret's mount directory; two volumes cannot share a mountPath",
                    b.dir
                )));
            }
        }
    }
    let gcs_key = match (&secret, kind) {
        (Some(s), StoreKind::Gcs) => {
            Some(gcs_key(s).map_err(|m| format!("{at}secret.items: {m}"))?)
        }
        _ => None,
    };
    Ok(Store {
        name: raw.name,
        kind,
        bucket,
        secret,
        config_map,
        volume,
        gcs_key,
    })
}

fn resource(raw: RawResource, at: &str, what: &str) -> Result<Resource, Invalid> {
    if !is_dns_subdomain(&raw.name) {
        return Err(Invalid(format!(
            "{at}.name: {:?} is not a valid {what} name (lowercase RFC 1123 subdomain, at most 253 characters)",
            raw.name
        )));
    }
    let mount_path = raw
        .mount_path
        .map(|p| mount_target(&p, &format!("{at}.mountPath")))
        .transpose()?;
    let mut items = Vec::new();
    for (i, item) in raw.items.into_iter().flatten().enumerate() {
        let kp = match item {
            RawItem::Key(key) => KeyToPath {
                path: key.clone(),
                key,
                mode: None,
            },
            RawItem::KeyToPath { key, path, mode } => KeyToPath {
                key,
                path,
                mode: mode
                    .map(|m| file_mode(m, &format!("{at}.items[{i}].mode")))
                    .transpose()?,
            },
        };
        if kp.key.is_empty()
            || kp.path.is_empty()
            || kp.path.starts_with('/')
            || kp.path.split('/').any(|c| c == "..")
        {
            return Err(Invalid(format!(
                "{at}.items[{i}]: key and path must be non-empty and path relative without `..` (got key {:?}, path {:?})",
                kp.key, kp.path
            )));
        }
        if mount_path.is_none() && !is_env_var_name(&kp.key) {
            return Err(Invalid(format!(
                "{at}.items[{i}]: without a mountPath each item becomes an env var named after its key, and {:?} is not a valid env var name",
                kp.key
            )));
        }
        items.push(kp);
    }
    let default_mode = raw
        .default_mode
        .map(|m| file_mode(m, &format!("{at}.defaultMode")))
        .transpose()?;
    Ok(Resource {
        name: raw.name,
        mount_path,
        items,
        default_mode,
    })
}

/// Which key of the secret holds the GCS key: `gc-secret.json` unless `items` names a single
/// `.json` key. Where the file lands is decided per pod, from the volume actually mounted.
pub fn gcs_key(secret: &Resource) -> Result<String, Invalid> {
    if secret.items.is_empty() {
        return Ok(DEFAULT_GCS_KEY.to_string());
    }
    let json: Vec<&KeyToPath> = secret
        .items
        .iter()
        .filter(|i| i.key.ends_with(".json"))
        .collect();
    match json.as_slice() {
        [one] => Ok(one.key.clone()),
        [] => Err(Invalid(format!(
            "no `.json` key is listed, so the GCS key would not be mounted; add {DEFAULT_GCS_KEY:?} (or your key's name)"
        ))),
        many => many
            .iter()
            .find(|i| i.key == DEFAULT_GCS_KEY)
            .map(|i| i.key.clone())
            .ok_or_else(|| {
                Invalid("several `.json` keys are listed and none is gc-secret.json; list only the key file".to_string())
            }),
    }
}

fn absolute_path(p: &str, at: &str) -> Result<String, Invalid> {
    let trimmed = p.trim_end_matches('/');
    if !p.starts_with('/') || trimmed.is_empty() {
        return Err(Invalid(format!(
            "{at}: {p:?} must be an absolute path below / (e.g. \"/plx-context/.gc\")"
        )));
    }
    if trimmed.split('/').any(|c| c == ".." || c == ".") || trimmed.contains("//") {
        return Err(Invalid(format!(
            "{at}: {p:?} must not contain `.`/`..` components or `//`"
        )));
    }
    Ok(trimmed.to_string())
}

fn mount_target(p: &str, at: &str) -> Result<MountTarget, Invalid> {
    let written = absolute_path(p, at)?;
    // A path ending in `.json` names the key file itself (the seed's legacy form): the volume goes
    // on its directory, so the key lands exactly where the operator meant.
    if written.ends_with(".json") {
        let (dir, file) = written.rsplit_once('/').unwrap_or(("", &written));
        if dir.is_empty() {
            return Err(Invalid(format!(
                "{at}: {p:?} names a file directly under /; use a directory"
            )));
        }
        return Ok(MountTarget {
            dir: dir.to_string(),
            file: Some(file.to_string()),
            written,
        });
    }
    Ok(MountTarget {
        dir: written.clone(),
        file: None,
        written,
    })
}

fn file_mode(m: RawMode, at: &str) -> Result<i32, Invalid> {
    let v = match &m {
        RawMode::Int(i) => *i,
        RawMode::Text(s) => i64::from_str_radix(s.trim().trim_start_matches("0o"), 8)
            .map_err(|_| format!("{at}: {s:?} is not an octal mode like \"0400\""))?,
    };
    if !(0..=0o777).contains(&v) {
        return Err(Invalid(format!(
            "{at}: {v} is out of range; write an octal string like \"0400\" or a decimal integer from 0 to 511"
        )));
    }
    Ok(v as i32)
}

pub(super) fn injection(raw: RawInjection) -> Result<Injection, Invalid> {
    let mut inj = Injection::default();
    if let Some(sel) = raw.selector {
        if sel.is_empty() {
            return Err(Invalid(
                "injection.selector: must not be empty (it would match every pod)".into(),
            ));
        }
        inj.selector = sel.into_iter().collect();
    }
    if let Some(ns) = raw.namespaces {
        inj.namespaces_include = ns.include.into_iter().map(Glob::new).collect();
        inj.namespaces_exclude = ns.exclude.into_iter().map(Glob::new).collect();
    }
    if let Some(c) = raw.containers {
        inj.containers = c.into_iter().map(Glob::new).collect();
    }
    if let Some(c) = raw.init_containers {
        inj.init_containers = c.into_iter().map(Glob::new).collect();
    }
    if let Some(on) = raw.standard_client_env {
        inj.standard_client_env = on;
    }
    if let Some(accounts) = raw.runs_service_accounts {
        if accounts.iter().any(|a| a.trim().is_empty()) {
            return Err(Invalid(
                "injection.runsServiceAccounts: patterns must not be empty".into(),
            ));
        }
        inj.runs_service_accounts = accounts.into_iter().map(Glob::new).collect();
    }
    if let Some(m) = raw.mode {
        inj.mode = mode(&m, "injection.mode")?;
    }
    if let Some(m) = raw.on_missing_reference {
        inj.on_missing_reference = match m.as_str() {
            "warn" => OnMissingReference::Warn,
            "deny" => OnMissingReference::Deny,
            other => {
                return Err(Invalid(format!(
                    "injection.onMissingReference: {other:?}; expected `warn` or `deny`"
                )))
            }
        };
    }
    if let Some(oc) = raw.on_conflict {
        inj.on_conflict = match oc.as_str() {
            "deny" => OnConflict::Deny,
            "skip" => OnConflict::Skip,
            other => {
                return Err(Invalid(format!(
                    "injection.onConflict: {other:?}; expected `deny` or `skip`"
                )))
            }
        };
    }
    Ok(inj)
}

/// Resolve `connections:`: each one valid, names unique.
pub(super) fn declared(raw: Vec<RawConnection>) -> Result<Vec<Store>, Invalid> {
    let mut declared: Vec<Store> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let at = format!("connections[{i}].");
        if c.injection.is_some() {
            return Err(Invalid(format!(
                "{at}injection: not allowed inside a connection"
            )));
        }
        let conn = self::store(c, &at)?;
        if declared.iter().any(|d| d.name == conn.name) {
            return Err(Invalid(format!(
                "{at}name: duplicate connection name {:?}",
                conn.name
            )));
        }
        declared.push(conn);
    }
    Ok(declared)
}

/// The connections `names` (written at `at`) refer to, in order; names in `skip` and repeats are
/// left out. Naming an unknown connection is a load-time error, never a request-time one.
fn pick(
    declared: &[Store],
    names: &[String],
    at: &str,
    skip: &[&str],
) -> Result<Vec<Store>, Invalid> {
    let mut out: Vec<Store> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if skip.contains(&name.as_str()) || out.iter().any(|o| &o.name == name) {
            continue;
        }
        let found = declared.iter().find(|d| &d.name == name).ok_or_else(|| {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            format!(
                "{at}[{i}]: unknown connection {name:?}; declared under connections: [{}]",
                names.join(", ")
            )
        })?;
        out.push(found.clone());
    }
    Ok(out)
}

/// Two volumes of one pod cannot share a mount directory: refused here rather than per pod.
fn check_dirs(store: &Store, conns: &[Store], context: &str) -> Result<(), Invalid> {
    let mut dirs: Vec<(String, &str)> = Vec::new();
    for s in std::iter::once(store).chain(conns.iter()) {
        let own = [s.secret.as_ref(), s.config_map.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|r| r.mount_path.as_ref().map(|m| m.dir.clone()))
            .chain(s.volume.as_ref().map(|v| v.mount_path.clone()));
        for d in own {
            if let Some((_, other)) = dirs.iter().find(|(x, _)| *x == d) {
                return Err(Invalid(format!(
                    "{context}connection {:?} mounts at {d}, where {other:?} already mounts; two volumes cannot share a mountPath",
                    s.name
                )));
            }
            dirs.push((d, &s.name));
        }
    }
    Ok(())
}

/// The connections `injection.connections` names, in that order (the store itself is not
/// repeated), checked for mount clashes with the store.
pub(super) fn mandated(
    store: &Store,
    declared: &[Store],
    wanted: &[String],
) -> Result<Vec<Store>, Invalid> {
    let out = pick(declared, wanted, "injection.connections", &[&store.name])?;
    check_dirs(store, &out, "")?;
    Ok(out)
}

/// Resolve `injection.rules`: each rule's store is the artifactsStore or a declared connection,
/// its connections are the mandated ones then its own, and mounts must not clash.
fn mode(text: &str, at: &str) -> Result<Mode, Invalid> {
    match text {
        "inject" => Ok(Mode::Inject),
        "audit" => Ok(Mode::Audit),
        other => Err(Invalid(format!(
            "{at}: {other:?}; expected `inject` or `audit`"
        ))),
    }
}

pub(super) fn rules(
    store: &Store,
    declared: &[Store],
    mandated: &[Store],
    raw: Vec<RawRule>,
) -> Result<Vec<Rule>, Invalid> {
    let mut out: Vec<Rule> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = format!("injection.rules[{i}]");
        let name = r.name.unwrap_or_else(|| format!("rules[{i}]"));
        if name.trim().is_empty() {
            return Err(Invalid(format!("{at}.name: must not be empty")));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(Invalid(format!("{at}.name: duplicate rule name {name:?}")));
        }
        let rule_store = if r.store == store.name {
            store.clone()
        } else {
            declared
                .iter()
                .find(|d| d.name == r.store)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
                    format!(
                        "{at}.store: unknown store {:?}; expected the artifactsStore {:?} or one of connections: [{}]",
                        r.store,
                        store.name,
                        names.join(", ")
                    )
                })?
        };
        let mut connections: Vec<Store> = mandated
            .iter()
            .filter(|m| m.name != rule_store.name)
            .cloned()
            .collect();
        let mut skip: Vec<&str> = vec![rule_store.name.as_str()];
        skip.extend(connections.iter().map(|c| c.name.as_str()));
        let own = pick(
            declared,
            &r.connections.unwrap_or_default(),
            &format!("{at}.connections"),
            &skip,
        )?;
        connections.extend(own);
        check_dirs(&rule_store, &connections, &format!("{at} ({name}): "))?;
        let m = r.matcher.unwrap_or_default();
        let empty_lists: Vec<&'static str> = [
            ("namespaces", &m.namespaces),
            ("owners", &m.owners),
            ("projects", &m.projects),
            ("components", &m.components),
        ]
        .into_iter()
        .filter(|(_, v)| v.as_ref().is_some_and(Vec::is_empty))
        .map(|(f, _)| f)
        .collect();
        let globs = |field: &str, v: Option<Vec<String>>| -> Result<Vec<Glob>, Invalid> {
            let v = v.unwrap_or_default();
            if v.iter().any(|g| g.trim().is_empty()) {
                return Err(Invalid(format!(
                    "{at}.match.{field}: patterns must not be empty"
                )));
            }
            Ok(v.into_iter().map(Glob::new).collect())
        };
        let matcher = RuleMatch {
            namespaces: globs("namespaces", m.namespaces)?,
            owners: globs("owners", m.owners)?,
            projects: globs("projects", m.projects)?,
            components: globs("components", m.components)?,
        };
        let identity = r
            .identity
            .map(|i| identity(i, &rule_store, &format!("{at}.identity")))
            .transpose()?;
        let mode = r
            .mode
            .map(|m| mode(&m, &format!("{at}.mode")))
            .transpose()?;
        out.push(Rule {
            name,
            matcher,
            store: rule_store,
            connections,
            identity,
            mode,
            empty_lists,
        });
    }
    Ok(out)
}

/// A keyless store's identity, checked: a cloud store, no key beside it, a valid account name.
pub(super) fn identity(raw: RawIdentity, store: &Store, at: &str) -> Result<Identity, Invalid> {
    if !store.kind.is_bucket() {
        return Err(Invalid(format!(
            "{at}: store {:?} is a {} store; an identity only means something for gcs, s3 and wasb stores",
            store.name,
            store.kind.as_str()
        )));
    }
    if let Some(secret) = &store.secret {
        return Err(Invalid(format!(
            "{at}: store {:?} also has a key (secret {:?}); a keyless store must carry none, because Polyaxon's SDK \
             and the cloud clients use a key before the pod's identity. Remove `secret` from the connection",
            store.name, secret.name
        )));
    }
    let azure = raw.azure_workload_identity.unwrap_or(false);
    if azure && store.kind != StoreKind::Wasb {
        return Err(Invalid(format!(
            "{at}.azureWorkloadIdentity: only for wasb stores (store {:?} is {})",
            store.name,
            store.kind.as_str()
        )));
    }
    if !crate::k8s_names::is_dns_subdomain(&raw.service_account_name) {
        return Err(Invalid(format!(
            "{at}.serviceAccountName: {:?} is not a valid ServiceAccount name (a DNS subdomain)",
            raw.service_account_name
        )));
    }
    Ok(Identity {
        service_account: raw.service_account_name,
        azure_label: azure,
    })
}

/// No two stores may share an account (one team would borrow another's cloud identity), and no
/// identity may be one of Polyaxon's shared runs accounts (every run would have it).
pub(super) fn check_identities(
    default: Option<(&Identity, &Store)>,
    rules: &[Rule],
    injection: &Injection,
) -> Result<(), Invalid> {
    let mut seen: Vec<(&str, &str, String)> = Vec::new();
    let all = default
        .map(|(i, s)| (i, s, "injection.identity".to_string()))
        .into_iter()
        .chain(rules.iter().enumerate().filter_map(|(n, r)| {
            r.identity.as_ref().map(|i| {
                (
                    i,
                    &r.store,
                    format!("injection.rules[{n}].identity ({})", r.name),
                )
            })
        }));
    for (id, store, at) in all {
        let account = id.service_account.as_str();
        if account == "default" {
            return Err(Invalid(format!(
                "{at}: \"default\" is every namespace's default account: every pod in the namespace, not only \
                 this store's runs, would get its cloud identity; give the store an account of its own"
            )));
        }
        if crate::glob::any_match(&injection.runs_service_accounts, account) {
            return Err(Invalid(format!(
                "{at}: {account:?} is one of Polyaxon's shared runs accounts (injection.runsServiceAccounts); \
                 give each team an account of its own"
            )));
        }
        if let Some((_, other_store, other_at)) = seen
            .iter()
            .find(|(a, s, _)| *a == account && *s != store.name)
        {
            return Err(Invalid(format!(
                "{at}: account {account:?} is also {other_at} for store {other_store:?}; two stores sharing one \
                 account would let one team's runs use the other's bucket"
            )));
        }
        seen.push((account, &store.name, at));
    }
    Ok(())
}

pub(super) fn no_match(raw: Option<&str>) -> Result<NoMatch, Invalid> {
    Ok(match raw {
        None | Some("default") => NoMatch::Default,
        Some("warn") => NoMatch::Warn,
        Some("deny") => NoMatch::Deny,
        Some(other) => {
            return Err(Invalid(format!(
                "injection.noMatch: {other:?}; expected `default` (the artifactsStore), `warn` or `deny`"
            )))
        }
    })
}
