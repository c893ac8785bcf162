//! `mutate --explain`: which store rule matched and why each piece was or was not added. Read
//! off the engine's own outcome (the pod before and after its patch), so the explanation can
//! never disagree with what the engine did, and the hot path pays nothing for it.

use crate::clients::GOOGLE_APPLICATION_CREDENTIALS;
use crate::describe::explain_route;
use crate::engine::pod::{self, Container, PodView, Volume};
use crate::engine::select::{is_target, skip_list};
use crate::engine::{run_facts, Decision, IgnoreReason, Outcome};
use crate::plan::{Plan, RefKind, Route, StorePlan, ANNOTATION_SKIP_CONTAINERS, GC_KEY_PATH};
use serde_json::Value;
use std::fmt::Write as _;

/// Explain `outcome`, the engine's answer for `pod` in `namespace` under `plan`.
pub fn explain(pod: &Value, plan: &Plan, namespace: &str, outcome: &Outcome) -> String {
    let mut out = String::new();
    if let Decision::Ignored(r) = outcome.decision {
        if !matches!(
            r,
            IgnoreReason::NoRuleMatched | IgnoreReason::NoTargetContainer
        ) {
            let _ = writeln!(out, "not served: {}", r.as_str());
            return out;
        }
    }
    let before = match pod::from_value(pod) {
        Ok(p) => p,
        Err(e) => return format!("the pod cannot be read: {e}\n"),
    };
    let Ok(view) = PodView::new(&before) else {
        return format!("decision: {}\n", decision(outcome));
    };
    let ns = if namespace.is_empty() {
        view.meta.and_then(|m| m.namespace.as_deref()).unwrap_or("")
    } else {
        namespace
    };
    let facts = run_facts(&view, ns);
    out.push_str(&explain_route(plan, &facts));
    let sp = match plan.route(&facts) {
        Route::Rule(r) => &r.plan,
        Route::Default(p) => p,
        Route::Unmatched(_) => {
            let _ = writeln!(out, "decision: {}", decision(outcome));
            return out;
        }
    };
    if let Decision::Denied(m) = &outcome.decision {
        let _ = writeln!(out, "denied: {m}");
        return out;
    }
    let mut patched = pod.clone();
    if let Err(e) = json_patch::patch(&mut patched, &outcome.patch) {
        let _ = writeln!(out, "internal error: the patch does not apply: {e}");
        return out;
    }
    let Ok(after) = pod::from_value(&patched) else {
        return out;
    };
    let Ok(after_view) = PodView::new(&after) else {
        return out;
    };
    let skip = skip_list(&view);
    for (b, a) in view.containers.iter().zip(&after_view.containers) {
        let name = a.c.name.as_ref();
        if !is_target(a, &sp.policy) {
            let _ = writeln!(
                out,
                "container {name}: not a target (not matched by injection.containers / initContainers)"
            );
            continue;
        }
        if skip.contains(&name) {
            let _ = writeln!(
                out,
                "container {name}: skipped (listed in annotation {ANNOTATION_SKIP_CONTAINERS})"
            );
            continue;
        }
        let _ = writeln!(out, "container {name}:");
        for line in pieces(sp, (&view, b.c), (&after_view, a.c)) {
            let _ = writeln!(out, "  {line}");
        }
    }
    for (k, v) in sp.marker() {
        let had = view.annotation(k) == Some(v);
        let _ = writeln!(
            out,
            "annotation {k}={v}: {}",
            status(had, after_view.annotation(k) == Some(v))
        );
    }
    for w in &outcome.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some(id) = &sp.identity {
        let _ = writeln!(
            out,
            "identity (keyless): serviceAccountName {} → {}",
            id.service_account,
            match (outcome.identity_result(), outcome.allowed()) {
                (Some("assigned"), _) => format!("the run runs as {}", outcome.identity),
                (Some(_), _) => format!(
                    "the run's own account {} was kept (see the warning)",
                    outcome.identity
                ),
                (None, false) => "not applied (denied)".to_string(),
                (None, true) => "not applied".to_string(),
            }
        );
    }
    for n in &sp.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(out, "decision: {}", decision(outcome));
    out
}

type Side<'x, 'p, 'a> = (&'x PodView<'p, 'a>, &'x Container<'a>);

/// One line per planned piece: already there, added, or not added.
fn pieces(sp: &StorePlan, before: Side<'_, '_, '_>, after: Side<'_, '_, '_>) -> Vec<String> {
    let mut lines = Vec::new();
    for m in &sp.mounts {
        let mounted = |(view, c): Side<'_, '_, '_>| {
            let vol: Option<&Volume<'_>> = view.volumes.iter().find(|v| m.source.matches(v));
            vol.and_then(|v| {
                c.mounts()
                    .iter()
                    .find(|x| x.name == v.name)
                    .map(|x| format!("volume {} at {}", v.name, x.mount_path))
            })
        };
        let (b, a) = (mounted(before), mounted(after));
        lines.push(format!(
            "mount of {}: {}{}",
            m.what,
            status(b.is_some(), a.is_some()),
            a.or(b).map(|w| format!(" ({w})")).unwrap_or_default()
        ));
    }
    for r in &sp.env_from {
        let has = |c: &Container<'_>| {
            c.env_from().iter().any(|e| {
                let n = match r.kind {
                    RefKind::Secret => e.secret_ref.as_ref(),
                    RefKind::ConfigMap => e.config_map_ref.as_ref(),
                };
                n.and_then(|n| n.name.as_deref()) == Some(r.name.as_str())
            })
        };
        lines.push(format!(
            "envFrom {} {}: {}",
            r.kind.fields().0,
            r.name,
            status(has(before.1), has(after.1))
        ));
    }
    for i in &sp.env_items {
        let has = |c: &Container<'_>| c.env_var(&i.env_name).is_some();
        lines.push(format!(
            "env {} (key {} of {}): {}",
            i.env_name,
            i.key,
            i.resource,
            status(has(before.1), has(after.1))
        ));
    }
    for i in &sp.client_env {
        let has = |c: &Container<'_>| c.env_var(&i.env_name).is_some();
        let (b, a) = (has(before.1), has(after.1));
        lines.push(format!(
            "env {} (standard client name, key {} of {}, optional): {}",
            i.env_name,
            i.key,
            i.resource,
            match (b, a) {
                (true, _) => "already set, kept",
                (false, true) => "added",
                (false, false) => "not added (the store sets it under that name)",
            }
        ));
    }
    if sp.gcs_key.is_some() {
        let mut names = vec![GC_KEY_PATH];
        if sp.policy.standard_client_env {
            names.push(GOOGLE_APPLICATION_CREDENTIALS);
        }
        for name in names {
            let value = |c: &Container<'_>| {
                c.env_var(name)
                    .and_then(|e| e.value.as_deref().map(str::to_string))
            };
            let (b, a) = (value(before.1), value(after.1));
            lines.push(format!(
                "env {name}: {}{}",
                match (&b, &a) {
                    (Some(_), _) => "already set, kept",
                    (None, Some(_)) => "added: the file where the kubelet puts the key",
                    (None, None) => "not added",
                },
                a.or(b).map(|v| format!(" ({v})")).unwrap_or_default()
            ));
        }
    }
    lines
}

fn status(before: bool, after: bool) -> &'static str {
    match (before, after) {
        (true, _) => "already there",
        (false, true) => "added",
        (false, false) => "NOT added (see the warnings)",
    }
}

fn decision(o: &Outcome) -> String {
    match &o.decision {
        Decision::Ignored(r) => format!("ignored: {}", r.as_str()),
        Decision::Denied(m) => format!("denied: {m}"),
        d => d.label().to_string(),
    }
}
