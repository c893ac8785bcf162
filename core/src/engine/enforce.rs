//! Enforce: the same engine asked, on the final pod (after every mutating webhook), "would you
//! still add anything?". A validating webhook never patches: a run routed to an inject-mode
//! store that still lacks part of its store (a later webhook removed it, or the mutating
//! webhook was bypassed) is refused, naming what is missing and where. Whatever mutate refuses
//! (another route's store or identity, a key that is not usable) is refused here too, by the
//! same code. Audit-mode routes pass with a warning, except for those security refusals; pods
//! that are not runs pass.

use super::report::{what, ContainerStatus, PieceState};
use super::{Decision, Decoded, Outcome, Request};
use crate::plan::{Plan, StorePlan};

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
                // Containers mutate leaves alone (not targets, listed in the skip annotation, or
                // skipped for a conflict under `onConflict: skip`) are not owed anything.
                if matches!(
                    c.status,
                    ContainerStatus::NotTarget
                        | ContainerStatus::SkippedByAnnotation
                        | ContainerStatus::Conflict
                ) {
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
        }
    }
    out.patch.clear();
    out.report.clear();
    out.markers.clear();
    if !missing.is_empty() {
        out.decision = Decision::Denied(format!(
            "plx-store-webhook (enforce): this run is routed to store {:?} but {}. Its credentials were \
             removed after the mutating webhook ran, or it was not called: recreate the pod with the \
             mutating webhook in place (docs/enforce.md)",
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
