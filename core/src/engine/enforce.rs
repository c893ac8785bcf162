//! Enforce: the same engine asked, on the final pod (after every mutating webhook), "would you
//! still add anything?". A validating webhook never patches: a run routed to an inject-mode
//! store that still lacks part of its store (a later webhook removed it, or the mutating
//! webhook was bypassed) is refused, naming what is missing and where; so is a run that carries
//! another rule's store. Audit-mode routes pass with a warning; pods that are not runs pass.

use super::pod::PodView;
use super::report::{what, ContainerStatus, PieceState};
use super::{volumes, Decision, Decoded, Outcome, Request};
use crate::plan::{Plan, StorePlan, VolumeSource};

/// Decide a validating review of `pod`: allowed or denied, never a patch.
pub fn validate(pod: &Decoded<'_>, plan: &Plan, req: &Request<'_>) -> Outcome {
    let mut out = super::mutate(pod, plan, &req.with_report());
    let mut missing = Vec::new();
    match &out.decision {
        Decision::Ignored(_) | Decision::Denied(_) => {}
        Decision::Audited(_) => {
            out.warnings = vec![format!(
                "plx-store-webhook (enforce): store {:?} is in audit mode for this run: not enforced",
                out.store
            )]
            .into();
        }
        Decision::Unchanged | Decision::Mutated => {
            let sp = route_plan(plan, &out.rule);
            for c in &out.report {
                if c.status == ContainerStatus::NotTarget
                    || c.status == ContainerStatus::SkippedByAnnotation
                {
                    continue;
                }
                let lacking: Vec<String> = c
                    .pieces
                    .iter()
                    .filter(|p| p.state == PieceState::Added)
                    .map(|p| what(sp, p.kind))
                    .collect();
                if !lacking.is_empty() {
                    missing.push(format!(
                        "container {} lacks {}",
                        super::q(&c.name),
                        lacking.join(", ")
                    ));
                }
            }
            if out.patch.iter().any(sets_account) {
                missing.push(format!(
                    "the pod does not run as service account {:?}, the store's identity",
                    out.identity
                ));
            }
            if let Decoded::Pod(p) = pod {
                if let Ok(view) = PodView::new(p, &plan.limits) {
                    missing.extend(foreign_stores(&view, plan, &out.store));
                }
            }
        }
    }
    out.patch.clear();
    out.report.clear();
    out.markers.clear();
    if !missing.is_empty() {
        out.decision = Decision::Denied(format!(
            "plx-store-webhook (enforce): this run is routed to store {:?} but {}. Its credentials were \
             removed after the mutating webhook ran, or it was not called: recreate the pod with the \
             mutating webhook in place (README: Enforce)",
            out.store,
            missing.join("; ")
        ));
    } else if matches!(out.decision, Decision::Mutated | Decision::Unchanged) {
        // Only markers were missing, or nothing: the credentials are all there.
        out.decision = Decision::Unchanged;
    }
    super::bound(&mut out);
    out
}

fn route_plan<'p>(plan: &'p Plan, rule: &str) -> &'p StorePlan {
    plan.rules
        .iter()
        .find(|r| r.name == rule)
        .map_or(&plan.default, |r| &r.plan)
}

fn sets_account(op: &json_patch::PatchOperation) -> bool {
    matches!(op, json_patch::PatchOperation::Add(a) if a.path.as_str() == "/spec/serviceAccountName")
}

/// Volumes of the pod that are another route's store secret or config map (and not this
/// route's): a run must not carry another team's credentials.
fn foreign_stores(view: &PodView<'_, '_>, plan: &Plan, ours: &str) -> Vec<String> {
    let own = plan
        .rules
        .iter()
        .map(|r| &r.plan)
        .chain([&plan.default])
        .find(|p| p.store_name == ours);
    let is_ours = |s: &VolumeSource| own.is_some_and(|p| p.mounts.iter().any(|m| &m.source == s));
    let mut found = Vec::new();
    for other in plan.rules.iter().map(|r| &r.plan).chain([&plan.default]) {
        if other.store_name == ours {
            continue;
        }
        for m in other.mounts.iter().filter(|m| {
            matches!(
                m.source,
                VolumeSource::Secret { .. } | VolumeSource::ConfigMap { .. }
            ) && !is_ours(&m.source)
        }) {
            if let Some(v) = view.volumes.iter().find(|v| volumes::matches(&m.source, v)) {
                found.push(format!(
                    "it carries store {:?}'s {} (volume {:?})",
                    other.store_name, m.what, v.name
                ));
            }
        }
    }
    found.dedup();
    found
}
