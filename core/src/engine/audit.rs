//! Audit mode: the run is admitted with annotations only, and the decision inject mode would have
//! made is kept in words — in the response's warnings (what the creator sees), the audit
//! annotations (`mode`, `would`), the decision log line and the metrics — so a platform team can
//! switch one team on at a time and read what would happen first. Nothing else on the pod
//! changes, and the annotations make the pod findable later (`plx-store-webhook.dev/mode`).

use super::inject::annotate;
use super::patch::PatchBuilder;
use super::pod::PodView;
use super::report::{what, ContainerStatus, PieceState};
use super::{Decision, Outcome, Would};
use crate::plan::StorePlan;
use json_patch::PatchOperation;

/// The annotation that says a pod was admitted in audit mode.
pub const ANNOTATION_MODE: &str = "plx-store-webhook.dev/mode";

/// Turn the outcome inject mode would give into the audit-mode one.
pub(super) fn apply(view: &PodView<'_, '_>, sp: &StorePlan, out: &mut Outcome, report: bool) {
    let would = match &out.decision {
        Decision::Ignored(_) => return,
        // A boundary between routes holds in audit mode too.
        Decision::Denied(_) if out.conflicts.iter().any(|k| k.is_security()) => return,
        Decision::Denied(_) => Would::Deny,
        _ => Would::Inject,
    };
    let mut notes = Vec::new();
    match std::mem::replace(&mut out.decision, Decision::Audited(would)) {
        Decision::Denied(message) => notes.push(format!("audit: would deny: {message}")),
        _ => {
            for c in &out.report {
                if c.status != ContainerStatus::Served {
                    continue;
                }
                let added: Vec<String> = c
                    .pieces
                    .iter()
                    .filter(|p| p.state == PieceState::Added)
                    .map(|p| {
                        if p.detail.is_empty() {
                            what(sp, p.kind)
                        } else {
                            format!("{} ({})", what(sp, p.kind), p.detail)
                        }
                    })
                    .collect();
                if !added.is_empty() {
                    notes.push(format!(
                        "audit: would add to container {:?}: {}",
                        c.name,
                        added.join("; ")
                    ));
                }
            }
            notes.extend(out.patch.iter().filter_map(account_change));
            if notes.is_empty() {
                notes.push("audit: would change nothing (the pod already has the store)".into());
            }
        }
    }
    out.warnings.prepend(notes);
    let mut b = PatchBuilder::new();
    let mut pairs = sp.marker().to_vec();
    pairs.push((ANNOTATION_MODE, "audit"));
    annotate(view, &pairs, &mut b);
    out.patch = b.finish();
    // Nothing was given: say what would be, never claim it.
    for (key, _) in out.audit.iter_mut() {
        if *key == "identity" {
            *key = "would-identity";
        }
    }
    out.audit.push(("mode", "audit".into()));
    out.audit.push(("would", would.as_str().into()));
    // Nothing was injected and no identity given: the metrics must not count them.
    out.injected_containers = 0;
    out.identity.clear();
    out.identity_kept_user = false;
    if !report {
        out.report.clear();
        out.markers.clear();
    }
}

/// The identity operations of a keyless store, in words.
fn account_change(op: &PatchOperation) -> Option<String> {
    let PatchOperation::Add(add) = op else {
        return None;
    };
    let value = add.value.as_str()?;
    match add.path.as_str() {
        "/spec/serviceAccountName" => Some(format!("audit: would set serviceAccountName {value}")),
        "/metadata/labels/azure.workload.identity~1use" => Some(format!(
            "audit: would label the pod azure.workload.identity/use={value}"
        )),
        _ => None,
    }
}
