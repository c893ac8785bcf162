//! `mutate --explain`: which store rule matched and why each piece was or was not added. Read
//! off the engine's own per-container report (`Request::report`), so the explanation can never
//! disagree with what the engine did, and the server (which does not ask for it) pays nothing.

use crate::clients::GOOGLE_APPLICATION_CREDENTIALS;
use crate::describe::explain_route;
use crate::engine::pod::PodView;
use crate::engine::report::{ContainerStatus, Piece, PieceKind, PieceState};
use crate::engine::{run_facts, Decision, Decoded, IgnoreReason, Outcome};
use crate::plan::{Plan, Route, StorePlan, ANNOTATION_SKIP_CONTAINERS, GC_KEY_PATH};
use std::fmt::Write as _;

/// Explain `outcome`, the engine's answer for `pod` in `namespace` under `plan`, computed with
/// `Request::report` on: everything said here is what the engine recorded.
pub fn explain(pod: &Decoded<'_>, plan: &Plan, namespace: &str, outcome: &Outcome) -> String {
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
    let before = match pod {
        Decoded::Pod(p) => p,
        Decoded::Malformed(m) => return format!("the pod cannot be read: {}\n", m.problem()),
        Decoded::Missing => return "the request carries no pod\n".to_string(),
        Decoded::OverLimit(why) => return format!("the pod is too large to check: {why}\n"),
    };
    let Ok(view) = PodView::new(before, &plan.limits) else {
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
    for c in &outcome.report {
        let name = &c.name;
        match c.status {
            ContainerStatus::NotTarget => {
                let _ = writeln!(
                    out,
                    "container {name}: not a target (not matched by injection.containers / initContainers)"
                );
            }
            ContainerStatus::SkippedByAnnotation => {
                let _ = writeln!(
                    out,
                    "container {name}: skipped (listed in annotation {ANNOTATION_SKIP_CONTAINERS})"
                );
            }
            ContainerStatus::Conflict | ContainerStatus::Served => {
                let suffix = if c.status == ContainerStatus::Conflict {
                    " skipped for a conflict (injection.onConflict: skip; see the warnings)"
                } else {
                    ""
                };
                let _ = writeln!(out, "container {name}:{suffix}");
                for p in &c.pieces {
                    let _ = writeln!(out, "  {}", piece(sp, p));
                }
            }
        }
    }
    for m in &outcome.markers {
        let _ = writeln!(out, "annotation {}={}: {}", m.key, m.value, state(m.state));
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

/// One planned piece and what the engine did with it.
fn piece(sp: &StorePlan, p: &Piece) -> String {
    let detail = if p.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", p.detail)
    };
    let what = match p.kind {
        PieceKind::Mount(i) => format!("mount of {}", sp.mounts[i].what),
        PieceKind::EnvFrom(i) => {
            let r = &sp.env_from[i];
            format!("envFrom {} {}", r.kind.fields().0, r.name)
        }
        PieceKind::Env(i) => {
            let e = &sp.env_items[i];
            format!("env {} (key {} of {})", e.env_name, e.key, e.resource)
        }
        PieceKind::ClientEnv(i) => {
            let e = &sp.client_env[i];
            format!(
                "env {} (standard client name, key {} of {}, optional)",
                e.env_name, e.key, e.resource
            )
        }
        PieceKind::GcKeyPath => format!("env {GC_KEY_PATH}"),
        PieceKind::GoogleApplicationCredentials => format!("env {GOOGLE_APPLICATION_CREDENTIALS}"),
    };
    let st = match (p.kind, p.state) {
        (PieceKind::GcKeyPath | PieceKind::GoogleApplicationCredentials, PieceState::Added) => {
            "added: the file where the kubelet puts the key"
        }
        (
            PieceKind::GcKeyPath | PieceKind::GoogleApplicationCredentials,
            PieceState::AlreadyThere,
        ) => "already set, kept",
        (_, s) => state(s),
    };
    format!("{what}: {st}{detail}")
}

fn state(s: PieceState) -> &'static str {
    match s {
        PieceState::AlreadyThere => "already there",
        PieceState::Added => "added",
        PieceState::NotAdded => "NOT added (see the warnings)",
    }
}

fn decision(o: &Outcome) -> String {
    match &o.decision {
        Decision::Ignored(r) => format!("ignored: {}", r.as_str()),
        Decision::Denied(m) => format!("denied: {m}"),
        d => d.label().to_string(),
    }
}
