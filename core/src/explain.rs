//! `mutate --explain`: which store rule matched and why each piece was or was not added. Read
//! off the engine's own per-container report (`Request::report`), so the explanation can never
//! disagree with what the engine did, and the server (which does not ask for it) pays nothing.

use crate::describe::explain_route;
use crate::engine::pod::PodView;
use crate::engine::report::{describe, state, ContainerStatus};
use crate::engine::{run_facts, Decision, Decoded, IgnoreReason, Outcome};
use crate::plan::{Plan, Route, ANNOTATION_SKIP_CONTAINERS};
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
            let _ = writeln!(
                out,
                "not served: [{}] {}",
                crate::codes::ignore_code(r),
                r.as_str()
            );
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
        let _ = writeln!(out, "denied: {}", crate::codes::tagged(m));
        return out;
    }
    if sp.mode == crate::config::Mode::Audit {
        let _ = writeln!(
            out,
            "mode: audit (the pod gets annotations only; below is what inject mode would do)"
        );
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
                    let _ = writeln!(out, "  {}", describe(sp, p));
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

fn decision(o: &Outcome) -> String {
    match &o.decision {
        Decision::Ignored(r) => format!("ignored: {}", r.as_str()),
        Decision::Denied(m) => format!("denied: {}", crate::codes::tagged(m)),
        Decision::Audited(w) => format!("audit (would {})", w.as_str()),
        d => d.label().to_string(),
    }
}
