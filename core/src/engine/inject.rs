//! Reconcile each target container with the plan: reuse what the pod already has, add what is
//! missing, and report conflicts the apiserver or kubelet would otherwise fail on.

use super::keypath::{clean, is_strictly_under, key_file_path, same_path, Layout};
use super::patch::{pointer, PatchBuilder};
use super::pod::{Container, Env, Placed, PodView};
use super::report::{ContainerReport, ContainerStatus, MarkerReport, Piece, PieceKind, PieceState};
use super::select::{is_target, skip_list};
use super::volumes;
use super::{q, ConflictKind, Decision, DenyReason, IgnoreReason, Outcome, Warnings};
use crate::clients::{self, GOOGLE_APPLICATION_CREDENTIALS};
use crate::config::OnConflict;
use crate::k8s_names::is_dns_label;
use crate::plan::{
    EnvItem, MountPlan, RefKind, StorePlan, VolumeSource, ANNOTATION_SKIP_CONTAINERS,
    GC_KEY_ALIASES, GC_KEY_PATH,
};
use json_patch::jsonptr::PointerBuf;
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// How a mount plan maps onto this pod's volumes.
struct ResolvedVolume<'x> {
    /// Name of the volume containers without a mount get (existing or to be added).
    name: String,
    /// How the volume lays out the secret's keys.
    layout: Layout<'x>,
    /// The volume to add, when the pod has none with this source.
    new: Option<Value>,
    /// Whether some container needs the new volume.
    needed: bool,
    /// The mode of the GCS key's file, for the volume that holds it.
    key_mode: Option<i32>,
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
    /// What was decided for each piece, when the request asks for a report.
    pieces: Option<Vec<Piece>>,
}

impl ContainerWork {
    fn note(&mut self, kind: PieceKind, state: PieceState, detail: impl FnOnce() -> String) {
        if let Some(p) = &mut self.pieces {
            p.push(Piece {
                kind,
                state,
                detail: detail(),
            });
        }
    }
}

/// The containers that get the store: targets by the policy's globs, minus the pod's skip list.
fn targets<'v, 'p, 'a>(view: &'v PodView<'p, 'a>, plan: &StorePlan) -> Vec<&'v Placed<'p, 'a>> {
    let skip = skip_list(view);
    view.containers
        .iter()
        .filter(|p| is_target(p, &plan.policy) && !skip.contains(&p.c.name))
        .collect()
}

pub(super) fn reconcile(view: &PodView<'_, '_>, plan: &StorePlan, report: bool) -> Outcome {
    let targets = targets(view, plan);
    let mut reports: Vec<ContainerReport> = Vec::new();
    if report {
        let skip = skip_list(view);
        for p in &view.containers {
            let status = if !is_target(p, &plan.policy) {
                ContainerStatus::NotTarget
            } else if skip.contains(&p.c.name) {
                ContainerStatus::SkippedByAnnotation
            } else {
                continue;
            };
            reports.push(ContainerReport {
                name: p.c.name.to_string(),
                list: p.list,
                status,
                pieces: Vec::new(),
            });
        }
    }
    if targets.is_empty() {
        let mut out = Outcome::ignored(IgnoreReason::NoTargetContainer);
        out.report = reports;
        return out;
    }
    let mut warnings = Warnings::new();
    // Borrowed: copying every volume name of the pod was an allocation per volume per request.
    let mut taken: Vec<Cow<'_, str>> = view
        .volumes
        .iter()
        .map(|v| Cow::Borrowed(&*v.name))
        .collect();
    let mut volumes: Vec<ResolvedVolume<'_>> = plan
        .mounts
        .iter()
        .map(|m| resolve_volume(view, m, &mut taken))
        .collect();
    if let Some(gk) = &plan.gcs_key {
        if let Some(v) = volumes.get_mut(gk.mount) {
            v.key_mode = Some(key_mode(view, &plan.mounts[gk.mount], &gk.key));
        }
    }

    let mut committed = Vec::new();
    let mut denials = Vec::new();
    let mut conflicts = Vec::new();
    for p in &targets {
        let mut work = container_work(view, plan, &volumes, p, &mut warnings, report);
        if let Some(pieces) = work.pieces.take() {
            reports.push(ContainerReport {
                name: p.c.name.to_string(),
                list: p.list,
                status: if work.conflicts.is_empty() {
                    ContainerStatus::Served
                } else {
                    ContainerStatus::Conflict
                },
                pieces,
            });
        }
        if work.conflicts.is_empty() {
            for &i in &work.uses_new_volume {
                volumes[i].needed = true;
            }
            committed.push((*p, work.appends));
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
        let mut out = Outcome::denied(
            DenyReason::Conflict,
            format!(
            "plx-store-webhook: cannot give store {:?} to this pod: {}. Fix the pod or the store config, set \
             injection.onConflict: skip, or list the container in annotation {ANNOTATION_SKIP_CONTAINERS}",
            plan.store_name,
            denials.join("; ")
        ),
        );
        out.conflicts = conflicts;
        out.report = reports;
        return out;
    }

    let injected_containers = committed.len();
    let mut b = PatchBuilder::new();
    for v in volumes.iter_mut().filter(|v| v.needed) {
        if let Some(new) = v.new.take() {
            b.append(pointer(["spec", "volumes"]), view.has_volumes, new);
        }
    }
    for (p, appends) in committed {
        b.next_scope();
        let idx = p.index.to_string();
        for a in appends {
            b.append(
                pointer(["spec", p.list.field(), idx.as_str(), a.field]),
                a.exists,
                a.value,
            );
        }
    }
    if injected_containers > 0 {
        add_marker(view, plan, &mut b);
    }
    let markers = if report {
        plan.marker()
            .into_iter()
            .map(|(key, value)| MarkerReport {
                key,
                value: value.to_string(),
                state: match (view.annotation(key) == Some(value), injected_containers > 0) {
                    (true, _) => PieceState::AlreadyThere,
                    (false, true) => PieceState::Added,
                    (false, false) => PieceState::NotAdded,
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    let decision = if b.is_empty() {
        Decision::Unchanged
    } else {
        Decision::Mutated
    };
    Outcome {
        decision,
        deny_reason: None,
        patch: b.finish(),
        warnings,
        audit: vec![
            ("store", plan.store_name.clone()),
            ("config-hash", plan.config_hash.clone()),
            ("decision", plan.fingerprint.clone()),
        ],
        conflicts,
        injected_containers,
        pod_name: String::new(),
        store: String::new(),
        fingerprint: String::new(),
        rule: String::new(),
        identity: String::new(),
        identity_kept_user: false,
        report: reports,
        markers,
    }
}

/// Reuse a volume with the same source (never match by name alone); otherwise plan a new one
/// under the preferred name, or a unique variant when that name is taken by other storage.
fn resolve_volume<'x>(
    view: &'x PodView<'_, '_>,
    m: &'x MountPlan,
    taken: &mut Vec<Cow<'x, str>>,
) -> ResolvedVolume<'x> {
    if let Some(v) = view.volumes.iter().find(|v| volumes::matches(&m.source, v)) {
        return ResolvedVolume {
            name: v.name.to_string(),
            layout: Layout::of_volume(v),
            new: None,
            needed: false,
            key_mode: None,
        };
    }
    let name = unique_name(&m.preferred_name, taken);
    taken.push(Cow::Owned(name.clone()));
    ResolvedVolume {
        new: Some(m.source.to_volume(&name)),
        layout: volumes::layout(&m.source),
        name,
        needed: false,
        key_mode: None,
    }
}

/// The mode the kubelet gives `key`'s file: the item's mode, else the volume's defaultMode,
/// else Kubernetes' default. Read from the pod's volume when it has one with this source.
fn key_mode(view: &PodView<'_, '_>, m: &MountPlan, key: &str) -> i32 {
    let (item_mode, default_mode) =
        match view.volumes.iter().find(|v| volumes::matches(&m.source, v)) {
            Some(v) => {
                let s = v.secret.as_ref();
                let item = s
                    .and_then(|s| s.items.as_deref())
                    .and_then(|items| items.iter().find(|i| i.key == key))
                    .and_then(|i| i.mode);
                (item, s.and_then(|s| s.default_mode))
            }
            None => match &m.source {
                VolumeSource::Secret {
                    items,
                    default_mode,
                    ..
                } => (
                    items.iter().find(|i| i.key == key).and_then(|i| i.mode),
                    *default_mode,
                ),
                _ => (None, None),
            },
        };
    item_mode
        .or(default_mode)
        .unwrap_or(clients::DEFAULT_SECRET_MODE)
}

fn unique_name(preferred: &str, taken: &[Cow<'_, str>]) -> String {
    if !taken.iter().any(|t| t == preferred) {
        return preferred.to_string();
    }
    // Rare (the name is taken): a set, so that `name-2` … `name-N` already present cost N, not N².
    let taken: std::collections::HashSet<&str> = taken.iter().map(|t| &**t).collect();
    (2u32..)
        .map(|n| {
            let suffix = format!("-{n}");
            let mut base = preferred.to_string();
            base.truncate(63 - suffix.len());
            format!("{}{suffix}", base.trim_end_matches('-'))
        })
        .find(|cand| is_dns_label(cand) && !taken.contains(cand.as_str()))
        .unwrap_or_else(|| preferred.to_string())
}

/// The mounts a container already has plus those we are adding, for conflict checks.
struct MountSeen<'a> {
    /// Cleaned, as the runtime sees it.
    path: Cow<'a, str>,
    volume: &'a str,
    read_only: bool,
}

fn container_work(
    view: &PodView<'_, '_>,
    plan: &StorePlan,
    volumes: &[ResolvedVolume<'_>],
    p: &Placed<'_, '_>,
    warnings: &mut Warnings,
    report: bool,
) -> ContainerWork {
    let c = p.c;
    let cname = q(c.name.as_ref());
    let mut work = ContainerWork {
        appends: Vec::new(),
        conflicts: Vec::new(),
        uses_new_volume: Vec::new(),
        pieces: report.then(Vec::new),
    };
    let mut seen: Vec<MountSeen<'_>> = c
        .mounts()
        .iter()
        .map(|m| MountSeen {
            path: clean(&m.mount_path),
            volume: &m.name,
            read_only: m.read_only == Some(true)
                || view.volume(&m.name).is_some_and(|v| v.always_read_only()),
        })
        .collect();
    // Where each planned mount is in this container: (mount path, subPath).
    let mut placed: Vec<Option<(&str, Option<&str>)>> = Vec::with_capacity(plan.mounts.len());
    for (i, (m, rv)) in plan.mounts.iter().zip(volumes).enumerate() {
        let existing = c.mounts().iter().find(|mt| {
            mt.name == rv.name.as_str()
                || view
                    .volume(&mt.name)
                    .is_some_and(|v| volumes::matches(&m.source, v))
        });
        if let Some(mt) = existing {
            if mt.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
                warnings.push(format!(
                    "container {cname}: {} is mounted with subPathExpr; GC_KEY_PATH cannot be checked",
                    m.what
                ));
            }
            placed.push(Some((
                &mt.mount_path,
                mt.sub_path.as_deref().filter(|s| !s.is_empty()),
            )));
            work.note(PieceKind::Mount(i), PieceState::AlreadyThere, || {
                format!("volume {} at {}", mt.name, mt.mount_path)
            });
            continue;
        }
        let ours_ro = m.read_only || m.source.always_read_only();
        if let Some((kind, conflict)) = mount_conflict(&seen, &m.dir, ours_ro) {
            work.note(PieceKind::Mount(i), PieceState::NotAdded, || {
                conflict.clone()
            });
            work.conflicts.push((
                kind,
                format!(
                    "container {cname}: {} cannot be mounted at {}: {conflict}",
                    m.what, m.dir
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
            exists: c.volume_mounts.is_some(),
            value: Value::Object(mount),
        });
        if rv.new.is_some() {
            work.uses_new_volume.push(i);
        }
        work.note(PieceKind::Mount(i), PieceState::Added, || {
            format!("volume {} at {}", rv.name, m.dir)
        });
        seen.push(MountSeen {
            path: Cow::Borrowed(&m.dir),
            volume: &rv.name,
            read_only: ours_ro,
        });
        placed.push(Some((&m.dir, None)));
    }
    if !work.conflicts.is_empty() {
        return work;
    }

    for (i, r) in plan.env_from.iter().enumerate() {
        let present = c.env_from().iter().any(|e| {
            let named = match r.kind {
                RefKind::Secret => &e.secret_ref,
                RefKind::ConfigMap => &e.config_map_ref,
            };
            named.as_ref().and_then(|n| n.name.as_deref()) == Some(r.name.as_str())
        });
        if !present {
            work.appends.push(Append {
                field: "envFrom",
                exists: c.env_from.is_some(),
                value: json!({ r.kind.fields().0: { "name": r.name } }),
            });
        }
        let state = if present {
            PieceState::AlreadyThere
        } else {
            PieceState::Added
        };
        work.note(PieceKind::EnvFrom(i), state, String::new);
    }
    let has_env = c.env.is_some();
    let add_env = |work: &mut ContainerWork, value: Value| {
        work.appends.push(Append {
            field: "env",
            exists: has_env,
            value,
        });
    };
    for (i, item) in plan.env_items.iter().enumerate() {
        let state = match c.env_var(&item.env_name) {
            None => {
                add_env(&mut work, key_ref_env(item));
                PieceState::Added
            }
            Some(e) if refers_to(e, item.kind, &item.resource, &item.key) => {
                PieceState::AlreadyThere
            }
            Some(_) => {
                warnings.push(format!(
                    "container {cname}: env {} is already set and was kept; the store expects it from {} {}",
                    item.env_name, item.resource, item.key
                ));
                PieceState::NotAdded
            }
        };
        work.note(PieceKind::Env(i), state, String::new);
    }
    // Standard client names: only where neither the container nor the plan sets the name.
    for (i, item) in plan.client_env.iter().enumerate() {
        let (state, why) = if c.env_var(&item.env_name).is_some() {
            (PieceState::AlreadyThere, "set by the container, kept")
        } else if plan.env_items.iter().any(|e| e.env_name == item.env_name) {
            (PieceState::NotAdded, "the store sets it under that name")
        } else {
            add_env(&mut work, key_ref_env(item));
            (PieceState::Added, "")
        };
        work.note(PieceKind::ClientEnv(i), state, || why.to_string());
    }
    if let Some(gk) = &plan.gcs_key {
        let path = placed
            .get(gk.mount)
            .copied()
            .flatten()
            .and_then(|(p, sp)| key_file_path(&volumes[gk.mount].layout, &gk.key, p, sp));
        match path {
            Some(path) => {
                if let Some(Some((at, _))) = placed.get(gk.mount) {
                    hidden_key(&mut work, c, at, &path);
                }
                let gc_key_path = match c.env_var(GC_KEY_PATH) {
                    None => {
                        add_env(&mut work, json!({ "name": GC_KEY_PATH, "value": path }));
                        work.note(PieceKind::GcKeyPath, PieceState::Added, || path.clone());
                        Some(path.as_str())
                    }
                    Some(e) if e.value.as_deref() == Some(path.as_str()) => {
                        work.note(PieceKind::GcKeyPath, PieceState::AlreadyThere, || {
                            path.clone()
                        });
                        Some(path.as_str())
                    }
                    Some(e) => {
                        work.note(PieceKind::GcKeyPath, PieceState::AlreadyThere, || {
                            e.value
                                .as_deref()
                                .unwrap_or("a valueFrom reference")
                                .to_string()
                        });
                        match e.value.as_deref() {
                            Some(v) => unusable(&mut work, &c.name, GC_KEY_PATH, v, &path),
                            None => warnings.push(format!(
                                "container {cname}: GC_KEY_PATH is a valueFrom reference and was kept; the key is \
                                 mounted at {path}"
                            )),
                        }
                        e.value.as_deref()
                    }
                };
                // google-auth & co. read only GOOGLE_APPLICATION_CREDENTIALS: give it the same
                // file as GC_KEY_PATH, so the SDK's random pick among the aliases always agrees.
                if plan.policy.standard_client_env {
                    let gac = PieceKind::GoogleApplicationCredentials;
                    match (c.env_var(GOOGLE_APPLICATION_CREDENTIALS), gc_key_path) {
                        (Some(e), _) => {
                            work.note(gac, PieceState::AlreadyThere, || {
                                e.value
                                    .as_deref()
                                    .unwrap_or("a valueFrom reference")
                                    .to_string()
                            });
                            // Checked with the SDK's other aliases below.
                        }
                        (None, Some(value)) => {
                            work.note(gac, PieceState::Added, || value.to_string());
                            add_env(
                                &mut work,
                                json!({ "name": GOOGLE_APPLICATION_CREDENTIALS, "value": value }),
                            );
                        }
                        (None, None) => work.note(gac, PieceState::NotAdded, || {
                            "GC_KEY_PATH is a valueFrom reference".to_string()
                        }),
                    }
                }
                for alias in GC_KEY_ALIASES {
                    if let Some(e) = c.env_var(alias) {
                        match e.value.as_deref() {
                            Some(v) => unusable(&mut work, &c.name, alias, v, &path),
                            None => warnings.push(format!(
                                "container {cname}: {alias} is a valueFrom reference; the Polyaxon SDK picks among \
                                 GC_KEY_PATH and its aliases at random, so remove {alias}"
                            )),
                        }
                    }
                }
                if let Some(mode) = volumes[gk.mount].key_mode {
                    warnings.extend(unreadable_key(view, c, &path, mode));
                }
            }
            None => {
                work.note(PieceKind::GcKeyPath, PieceState::NotAdded, || {
                    format!("the mounted secret does not expose key {:?}", gk.key)
                });
                work.conflicts.push((
                    ConflictKind::KeyUnusable,
                    format!(
                        "container {cname}: its mount of {} does not expose key {:?} (the volume's items or the \
                         mount's subPath leave it out), so the run has no usable key",
                        plan.mounts[gk.mount].what, gk.key
                    ),
                ));
            }
        }
    }
    work
}

/// Another mount at or inside the store's mount (`at`) over the key file or a directory above it
/// hides the key (runtimes mount in order, deeper paths last): the run has no usable key. The
/// store's own mount is told apart by identity (a lookalike path such as `dir/` is another mount).
fn hidden_key(work: &mut ContainerWork, c: &Container<'_>, at: &str, path: &str) {
    let store = clean(at);
    let over = c.mounts().iter().find(|m| {
        let p = clean(&m.mount_path);
        !std::ptr::eq(m.mount_path.as_ref(), at)
            && (same_path(&p, path) || is_strictly_under(path, &p))
            && (same_path(&p, &store) || is_strictly_under(&p, &store))
    });
    if let Some(m) = over {
        work.conflicts.push((
            ConflictKind::KeyUnusable,
            format!(
                "container {}: volume {} mounted at {} hides the store's key at {path}, so the run has no usable key",
                q(&c.name),
                q(&m.name),
                q(&m.mount_path)
            ),
        ));
    }
}

/// A key variable that names another file than the store's key: the run would have no usable
/// key (or, for the SDK's aliases, one picked at random), so the container is a conflict.
fn unusable(work: &mut ContainerWork, cname: &str, name: &str, value: &str, path: &str) {
    if clean(value) != clean(path) {
        work.conflicts.push((
            ConflictKind::KeyUnusable,
            format!(
                "container {}: {name} is set to {}, but the store's key is at {path}",
                q(cname),
                q(value)
            ),
        ));
    }
}

/// An env entry taking its value from a Secret/ConfigMap key.
fn key_ref_env(item: &EnvItem) -> Value {
    let (_, key_field) = item.kind.fields();
    let mut r = json!({ "name": item.resource, "key": item.key });
    if item.optional {
        r["optional"] = Value::Bool(true);
    }
    json!({ "name": item.env_name, "valueFrom": { key_field: r } })
}

/// A warning when `c` runs as a declared non-root user who cannot read the key file: owned by
/// root, no `fsGroup` to give the user's group access, and no read bit for others.
fn unreadable_key(
    view: &PodView<'_, '_>,
    c: &Container<'_>,
    path: &str,
    mode: i32,
) -> Option<String> {
    let user = view.non_root_user(c)?;
    if view.fs_group().is_some() || clients::others_can_read(mode) {
        return None;
    }
    let who = match user {
        Some(uid) => format!("user {uid}"),
        None => "a non-root user (runAsNonRoot)".to_string(),
    };
    Some(format!(
        "container {} runs as {who} and cannot read the key file {path} (mode {mode:04o}, owned by root, no \
         fsGroup): set spec.securityContext.fsGroup, or give the secret defaultMode 0444",
        q(&c.name)
    ))
}

/// Whether an env var already takes its value from `kind` `resource` key `key`.
fn refers_to(e: &Env<'_>, kind: RefKind, resource: &str, key: &str) -> bool {
    let vf = e.value_from.as_ref();
    let r = match kind {
        RefKind::Secret => vf.and_then(|v| v.secret_key_ref.as_ref()),
        RefKind::ConfigMap => vf.and_then(|v| v.config_map_key_ref.as_ref()),
    };
    r.is_some_and(|r| r.name.as_deref() == Some(resource) && r.key == key)
}

/// Why a new mount at `dir` would make the pod invalid or unstartable, if it would.
fn mount_conflict(
    seen: &[MountSeen<'_>],
    dir: &str,
    ours_read_only: bool,
) -> Option<(ConflictKind, String)> {
    for s in seen {
        if same_path(&s.path, dir) {
            return Some((
                ConflictKind::MountPathTaken,
                format!(
                    "that path is already the mountPath of volume {:?}",
                    s.volume
                ),
            ));
        }
        if ours_read_only && is_strictly_under(&s.path, dir) {
            return Some((ConflictKind::MountInsideOurs, format!(
                "volume {:?} is mounted inside it at {}, and a read-only mount cannot hold another mount point",
                s.volume, s.path
            )));
        }
        if s.read_only && is_strictly_under(dir, &s.path) {
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
fn add_marker(view: &PodView<'_, '_>, plan: &StorePlan, b: &mut PatchBuilder) {
    annotate(view, &plan.marker(), b);
}

/// Set the annotations `pairs` that the pod does not already carry with these values.
pub(super) fn annotate(view: &PodView<'_, '_>, pairs: &[(&str, &str)], b: &mut PatchBuilder) {
    let missing: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(k, v)| view.annotation(k) != Some(*v))
        .collect();
    if missing.is_empty() {
        return;
    }
    if view.annotations().is_some() {
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
    if view.meta.is_some() {
        b.add(pointer(["metadata", "annotations"]), Value::Object(map));
    } else {
        b.add(
            PointerBuf::from_tokens(["metadata"]),
            json!({ "annotations": map }),
        );
    }
}
