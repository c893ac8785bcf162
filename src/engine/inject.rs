//! Reconcile each target container with the plan: reuse what the pod already has, add what is
//! missing, and report conflicts the apiserver or kubelet would otherwise fail on.

use super::keypath::{is_strictly_under, key_file_path, same_path};
use super::patch::{pointer, PatchBuilder};
use super::pod::{Container, PodView, Volume};
use super::select::{is_target, skip_list};
use super::{ConflictKind, Decision, IgnoreReason, Outcome};
use crate::config::OnConflict;
use crate::k8s_names::is_dns_label;
use crate::plan::{MountPlan, Plan, ANNOTATION_SKIP_CONTAINERS, GC_KEY_ALIASES, GC_KEY_PATH};
use json_patch::jsonptr::PointerBuf;
use serde_json::{json, Map, Value};

/// How a mount plan maps onto this pod's volumes.
struct ResolvedVolume<'p> {
    /// Name of the volume containers without a mount get (existing or to be added).
    name: String,
    /// The volume entry (the pod's, or the one we would add).
    entry: VolumeEntry<'p>,
    /// Whether some container needs the volume added to the pod.
    needed: bool,
}

enum VolumeEntry<'p> {
    Existing(&'p Value),
    New(Value),
}

impl VolumeEntry<'_> {
    fn json(&self) -> &Value {
        match self {
            VolumeEntry::Existing(v) => v,
            VolumeEntry::New(v) => v,
        }
    }
}

/// One pending append to a container array.
struct Append {
    field: &'static str,
    exists: bool,
    value: Value,
}

/// What a container needs, before we know whether it is committed or skipped.
struct ContainerWork {
    appends: Vec<Append>,
    conflicts: Vec<(ConflictKind, String)>,
    uses_new_volume: Vec<usize>,
}

pub(super) fn reconcile(view: &PodView<'_>, plan: &Plan) -> Outcome {
    let skip = skip_list(view);
    let targets: Vec<&Container<'_>> = view
        .containers
        .iter()
        .filter(|c| is_target(c, &plan.policy) && !skip.contains(&c.name))
        .collect();
    if targets.is_empty() {
        return Outcome::ignored(IgnoreReason::NoTargetContainer);
    }
    let mut warnings = Vec::new();
    let mut taken: Vec<String> = view.volumes.iter().map(|v| v.name.to_string()).collect();
    let mut volumes: Vec<ResolvedVolume<'_>> = plan
        .mounts
        .iter()
        .map(|m| resolve_volume(view, m, &mut taken))
        .collect();

    let mut committed = Vec::new();
    let mut denials = Vec::new();
    let mut conflicts = Vec::new();
    let mut any_served = false;
    for c in &targets {
        let work = container_work(view, plan, &volumes, c, &mut warnings);
        if work.conflicts.is_empty() {
            for &i in &work.uses_new_volume {
                volumes[i].needed = true;
            }
            any_served = true;
            committed.push((*c, work.appends));
            continue;
        }
        conflicts.extend(work.conflicts.iter().map(|(k, _)| *k));
        let messages = work.conflicts.into_iter().map(|(_, m)| m);
        match plan.policy.on_conflict {
            OnConflict::Deny => denials.extend(messages),
            OnConflict::Skip => warnings.extend(
                messages.map(|c| format!("{c}; container skipped (injection.onConflict: skip)")),
            ),
        }
    }
    if !denials.is_empty() {
        let mut out = Outcome::denied(format!(
            "plx-store-webhook: cannot give store {:?} to this pod: {}. Fix the pod or the store config, set \
             injection.onConflict: skip, or list the container in annotation {ANNOTATION_SKIP_CONTAINERS}",
            plan.store_name,
            denials.join("; ")
        ));
        out.conflicts = conflicts;
        return out;
    }

    let committed_count = committed.len();
    let mut b = PatchBuilder::new();
    for v in volumes.iter().filter(|v| v.needed) {
        b.append(
            pointer(["spec", "volumes"]),
            view.has_volumes,
            v.entry.json().clone(),
        );
    }
    for (c, appends) in committed {
        let idx = c.index.to_string();
        for a in appends {
            b.append(
                pointer(["spec", c.list.field(), idx.as_str(), a.field]),
                a.exists,
                a.value,
            );
        }
    }
    let injected_containers = committed_count;
    let audit = vec![
        ("store", plan.store_name.clone()),
        ("config-hash", plan.config_hash.clone()),
    ];
    if any_served {
        add_marker(view, plan, &mut b);
    }
    let decision = if b.is_empty() {
        Decision::Unchanged
    } else {
        Decision::Mutated
    };
    Outcome {
        decision,
        patch: b.finish(),
        warnings,
        audit,
        conflicts,
        injected_containers,
    }
}

/// Reuse a volume with the same source (never match by name alone); otherwise plan a new one
/// under the preferred name, or a unique variant when that name is taken by other storage.
fn resolve_volume<'p>(
    view: &PodView<'p>,
    m: &MountPlan,
    taken: &mut Vec<String>,
) -> ResolvedVolume<'p> {
    if let Some(v) = view.volumes.iter().find(|v| m.source.matches(v.raw)) {
        return ResolvedVolume {
            name: v.name.to_string(),
            entry: VolumeEntry::Existing(v.raw),
            needed: false,
        };
    }
    let name = unique_name(&m.preferred_name, taken);
    taken.push(name.clone());
    ResolvedVolume {
        entry: VolumeEntry::New(m.source.to_volume(&name)),
        name,
        needed: false,
    }
}

fn unique_name(preferred: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == preferred) {
        return preferred.to_string();
    }
    (2u32..)
        .map(|n| {
            let suffix = format!("-{n}");
            let mut base = preferred.to_string();
            base.truncate(63 - suffix.len());
            format!("{}{suffix}", base.trim_end_matches('-'))
        })
        .find(|cand| is_dns_label(cand) && !taken.iter().any(|t| t == cand))
        .unwrap_or_else(|| preferred.to_string())
}

/// The mounts a container already has plus those we are adding, for conflict checks.
struct MountSeen<'a> {
    path: &'a str,
    volume: &'a str,
    read_only: bool,
}

fn container_work(
    view: &PodView<'_>,
    plan: &Plan,
    volumes: &[ResolvedVolume<'_>],
    c: &Container<'_>,
    warnings: &mut Vec<String>,
) -> ContainerWork {
    let mut work = ContainerWork {
        appends: Vec::new(),
        conflicts: Vec::new(),
        uses_new_volume: Vec::new(),
    };
    let mut seen: Vec<MountSeen<'_>> = c
        .mounts
        .iter()
        .map(|m| MountSeen {
            path: m.mount_path,
            volume: m.name,
            read_only: m.read_only || view.volume(m.name).is_some_and(Volume::always_read_only),
        })
        .collect();
    // Where each planned mount is in this container: (mount path, subPath).
    let mut placed: Vec<Option<(String, Option<String>)>> = Vec::with_capacity(plan.mounts.len());
    for (i, (m, rv)) in plan.mounts.iter().zip(volumes).enumerate() {
        let existing = c.mounts.iter().find(|mt| {
            mt.name == rv.name
                || view
                    .volume(mt.name)
                    .is_some_and(|v| m.source.matches(v.raw))
        });
        if let Some(mt) = existing {
            if mt.sub_path_expr {
                warnings.push(format!(
                    "container {:?}: {} is mounted with subPathExpr; GC_KEY_PATH cannot be checked",
                    c.name, m.what
                ));
            }
            placed.push(Some((
                mt.mount_path.to_string(),
                mt.sub_path.map(str::to_string),
            )));
            continue;
        }
        let ours_ro = m.read_only || m.source.always_read_only();
        if let Some((kind, conflict)) = mount_conflict(&seen, &m.dir, ours_ro) {
            work.conflicts.push((
                kind,
                format!(
                    "container {:?}: {} cannot be mounted at {}: {conflict}",
                    c.name, m.what, m.dir
                ),
            ));
            placed.push(None);
            continue;
        }
        let mut mount = Map::new();
        mount.insert("name".into(), Value::String(rv.name.clone()));
        mount.insert("mountPath".into(), Value::String(m.dir.clone()));
        if ours_ro {
            mount.insert("readOnly".into(), Value::Bool(true));
        }
        work.appends.push(Append {
            field: "volumeMounts",
            exists: c.has_mounts,
            value: Value::Object(mount),
        });
        if matches!(rv.entry, VolumeEntry::New(_)) {
            work.uses_new_volume.push(i);
        }
        seen.push(MountSeen {
            path: &m.dir,
            volume: &rv.name,
            read_only: ours_ro,
        });
        placed.push(Some((m.dir.clone(), None)));
    }
    if !work.conflicts.is_empty() {
        return work;
    }

    for r in &plan.env_from {
        let (field, _) = r.kind.fields();
        let present = c.env_from.iter().any(|e| {
            e.get(field)
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                == Some(&r.name)
        });
        if !present {
            work.appends.push(Append {
                field: "envFrom",
                exists: c.has_env_from,
                value: json!({ field: { "name": r.name } }),
            });
        }
    }
    let add_env = |work: &mut ContainerWork, value: Value| {
        work.appends.push(Append {
            field: "env",
            exists: c.has_env,
            value,
        });
    };
    for item in &plan.env_items {
        let (_, key_field) = item.kind.fields();
        let want = json!({ key_field: { "name": item.resource, "key": item.key } });
        match c.env_var(&item.env_name) {
            None => add_env(&mut work, json!({ "name": item.env_name, "valueFrom": want })),
            Some(e) if e.get("valueFrom") == Some(&want) => {}
            Some(_) => warnings.push(format!(
                "container {:?}: env {} is already set and was kept; the store expects it from {} {}",
                c.name, item.env_name, item.resource, item.key
            )),
        }
    }
    if let Some(gk) = &plan.gcs_key {
        let at = placed.get(gk.mount).and_then(Option::as_ref);
        let path = at.and_then(|(p, sp)| {
            key_file_path(volumes[gk.mount].entry.json(), &gk.key, p, sp.as_deref())
        });
        match path {
            Some(path) => {
                match c.env_var(GC_KEY_PATH) {
                    None => add_env(&mut work, json!({ "name": GC_KEY_PATH, "value": path })),
                    Some(e) if env_value(e) == Some(path.as_str()) => {}
                    Some(e) => warnings.push(format!(
                        "container {:?}: GC_KEY_PATH is set to {} and was kept, but the key is mounted at {path}",
                        c.name,
                        env_value(e).unwrap_or("a valueFrom reference")
                    )),
                }
                for alias in GC_KEY_ALIASES {
                    if let Some(e) = c.env_var(alias) {
                        if env_value(e) != Some(path.as_str()) {
                            warnings.push(format!(
                                "container {:?}: {alias} points elsewhere than the key at {path}; the Polyaxon SDK picks \
                                 among GC_KEY_PATH and its aliases at random, so remove {alias}",
                                c.name
                            ));
                        }
                    }
                }
            }
            None => warnings.push(format!(
                "container {:?}: the mounted secret does not expose key {:?}, so GC_KEY_PATH was not set",
                c.name, gk.key
            )),
        }
    }
    work
}

fn env_value(e: &Value) -> Option<&str> {
    e.get("value").and_then(Value::as_str)
}

/// Why a new mount at `dir` would make the pod invalid or unstartable, if it would.
fn mount_conflict(
    seen: &[MountSeen<'_>],
    dir: &str,
    ours_read_only: bool,
) -> Option<(ConflictKind, String)> {
    for s in seen {
        if same_path(s.path, dir) {
            return Some((
                ConflictKind::MountPathTaken,
                format!(
                    "that path is already the mountPath of volume {:?}",
                    s.volume
                ),
            ));
        }
        if ours_read_only && is_strictly_under(s.path, dir) {
            return Some((ConflictKind::MountInsideOurs, format!(
                "volume {:?} is mounted inside it at {}, and a read-only mount cannot hold another mount point",
                s.volume, s.path
            )));
        }
        if s.read_only && is_strictly_under(dir, s.path) {
            return Some((
                ConflictKind::NestedInReadOnly,
                format!(
                    "it lies inside the read-only mount {} of volume {:?}",
                    s.path, s.volume
                ),
            ));
        }
    }
    None
}

/// Record which store and config produced the injection; `add` replaces a stale value.
fn add_marker(view: &PodView<'_>, plan: &Plan, b: &mut PatchBuilder) {
    let missing: Vec<(&str, &str)> = plan
        .marker()
        .into_iter()
        .filter(|(k, v)| view.annotation(k) != Some(*v))
        .collect();
    if missing.is_empty() {
        return;
    }
    if view.annotations.is_some() {
        for (k, v) in missing {
            b.add(
                pointer(["metadata", "annotations", k]),
                Value::String(v.to_string()),
            );
        }
        return;
    }
    let map: Map<String, Value> = missing
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    if view.metadata.is_some() {
        b.add(pointer(["metadata", "annotations"]), Value::Object(map));
    } else {
        b.add(
            PointerBuf::from_tokens(["metadata"]),
            json!({ "annotations": map }),
        );
    }
}
