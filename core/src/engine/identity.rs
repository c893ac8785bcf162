//! Keyless stores: give the run the ServiceAccount whose cloud identity the store's rule names,
//! instead of a key. The apiserver re-runs its ServiceAccount plugin after a webhook changes the
//! account at CREATE, and with bound tokens the token volume names no account, so the kubelet
//! then requests a token for the new account (facts: shared/docs/identity-facts.md).

use super::keyless::Catalog;
use super::keypath::{Entries, Layout};
use super::patch::pointer;
use super::pod::{Container, PodView};
use super::{q, ConflictKind, Decision, DenyReason, Finding, Outcome};
use crate::config::{Identity, OnConflict};
use crate::plan::{Plan, RefKind, StorePlan};
use json_patch::{AddOperation, PatchOperation};
use serde_json::Value;
use std::collections::HashMap;

/// Where the ServiceAccount plugin mounts the token in every container.
pub const TOKEN_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Azure Workload Identity's webhook only serves pods with this label.
pub const AZURE_LABEL: &str = "azure.workload.identity/use";

/// The pod's volumes' entries, each built on first use and kept for the review.
struct SecretEntries<'v, 'p, 'a> {
    view: &'v PodView<'p, 'a>,
    built: HashMap<String, Entries>,
}

impl<'v, 'p, 'a> SecretEntries<'v, 'p, 'a> {
    fn new(view: &'v PodView<'p, 'a>) -> Self {
        SecretEntries {
            view,
            built: HashMap::new(),
        }
    }

    /// A mount of `c` through which a Secret volume puts something at `path`.
    fn reaching<'c, 'b>(
        &mut self,
        c: &'c Container<'b>,
        path: &str,
    ) -> Option<&'c super::pod::Mount<'b>> {
        let view = self.view;
        let built = &mut self.built;
        c.mounts().iter().find(|m| {
            let Some(v) = view.volume(&m.name) else {
                return false;
            };
            let entries = built
                .entry(m.name.to_string())
                .or_insert_with(|| Entries::of(&Layout::of_volume(v)));
            entries.reach(
                &m.mount_path,
                m.sub_path.as_deref().filter(|s| !s.is_empty()),
                path,
            )
        })
    }
}

/// Whether a container gets its token from a Secret (legacy, non-expiring tokens), at the token
/// directory or, through `subPath` or `items`, at the token file.
/// Returns the container and the volume.
fn legacy_token<'v>(secrets: &mut SecretEntries<'v, '_, '_>) -> Option<(&'v str, &'v str)> {
    let token = format!("{TOKEN_MOUNT}/token");
    let view = secrets.view;
    view.containers.iter().find_map(|p| {
        secrets
            .reaching(p.c, &token)
            .map(|m| (p.c.name.as_ref(), m.name.as_ref()))
    })
}

/// Secrets and ConfigMaps a target container takes its whole environment from (their keys are
/// unknown).
const ENV_FROM_SECRET: Finding = Finding {
    code: "",
    lead: "takes its environment from secret",
};
const ENV_FROM_CONFIG_MAP: Finding = Finding {
    code: "",
    lead: "takes its environment from configMap",
};
/// Polyaxon's connection catalog set from a reference (its content is unknown).
const CATALOG_BY_REFERENCE: Finding = Finding {
    code: "",
    lead: "takes the connections catalog",
};

/// Apply `id` to the run: set its account (when it is `default` or a Polyaxon runs account),
/// keep a user's own account with a warning, refuse another team's account, a legacy token or
/// (per `onConflict`) a key that would win over the identity.
pub(super) fn apply(
    view: &PodView<'_, '_>,
    plan: &Plan,
    sp: &StorePlan,
    id: &Identity,
    out: &mut Outcome,
) {
    let target = id.service_account.as_str();
    let fail = |out: &mut Outcome, msg: String| {
        let conflicts = std::mem::take(&mut out.conflicts);
        let report = std::mem::take(&mut out.report);
        *out = Outcome::denied(DenyReason::Identity, msg);
        out.conflicts = conflicts;
        out.report = report;
    };
    // A key anywhere in a target container would be used before the identity — a container the
    // pod's skip annotation lists included: the run's identity is the pod's, for every container.
    let skip = super::select::skip_list(view);
    let mut secrets = SecretEntries::new(view);
    let mut reach = super::keyless::Reach::with_own(view, sp);
    for p in view
        .containers
        .iter()
        .filter(|p| super::select::is_target(p, &sp.policy))
    {
        let skipped = if skip.contains(&p.c.name) {
            format!(" (listed in {})", crate::plan::ANNOTATION_SKIP_CONTAINERS)
        } else {
            String::new()
        };
        for e in p.c.env_from() {
            let (finding, name, kind) = match (&e.secret_ref, &e.config_map_ref) {
                (Some(r), _) => (ENV_FROM_SECRET, r.name.as_deref(), RefKind::Secret),
                (None, Some(r)) => (ENV_FROM_CONFIG_MAP, r.name.as_deref(), RefKind::ConfigMap),
                _ => continue,
            };
            let name = name.unwrap_or("");
            // The route's own objects are the platform's config, not the tenant's: the same
            // kind and name, as the route gives them (a Secret named like the route's ConfigMap,
            // or the ConfigMap under a prefix that makes other variables, is the tenant's).
            let prefixed = e.prefix.as_deref().is_some_and(|p| !p.is_empty());
            if !prefixed && sp.env_from.iter().any(|r| r.name == name && r.kind == kind) {
                continue;
            }
            out.warnings.finding(&p.c.name, finding, name, || {
                format!(
                    "{skipped} (envFrom), whose keys the webhook cannot see: if one holds a credential variable, \
                     the clients use it, not the identity {}",
                    q(target)
                )
            });
        }
        let catalog = super::keyless::catalog(&mut reach, p.c, sp.store_kind);
        if let Some(Catalog::Unknown) = catalog {
            out.warnings.finding(&p.c.name, CATALOG_BY_REFERENCE, super::keyless::CATALOG, || {
                format!(
                    "{skipped} by valueFrom, which the webhook cannot read: a store connection there with a mountPath \
                     or credential env would be used, not the identity {}",
                    q(target)
                )
            });
        }
        let carried = super::keyless::carried(&mut reach, p.c, sp).or(match catalog {
            Some(Catalog::Carries(found)) => Some(found),
            _ => None,
        });
        if let Some(key) = carried {
            let msg = format!(
                "container {}{skipped} carries a key ({key}); Polyaxon's SDK and the cloud clients use a key before the \
                 pod's identity, so this run would not use the keyless store {:?} as service account {target:?}",
                q(&p.c.name),
                sp.store_name
            );
            out.conflicts.push(ConflictKind::KeyOverIdentity);
            match plan.policy.on_conflict {
                OnConflict::Deny => {
                    return fail(
                        out,
                        format!(
                            "plx-store-webhook: {msg}. Remove the key from the pod, or set injection.onConflict: skip \
                             to only warn"
                        ),
                    )
                }
                OnConflict::Skip => out.warnings.push(msg),
            }
        }
    }
    let current = view
        .service_account_name
        .or(view.service_account)
        .filter(|a| !a.is_empty())
        .unwrap_or("default");
    let mut ops = Vec::new();
    if current != target {
        // Another team's account was refused before (refuse_foreign_account), whatever else.
        let replaceable = current == "default"
            || crate::glob::any_match(&plan.policy.runs_service_accounts, current);
        if !replaceable {
            out.warnings.push(format!(
                "the run asked for service account {current:?}, which was kept: it does not get the keyless store \
                 {:?}'s identity {target:?}, only what {current:?} may do",
                sp.store_name
            ));
            out.identity = current.to_string();
            out.identity_kept_user = true;
            return;
        }
        if let Some((container, volume)) = legacy_token(&mut secrets) {
            let msg = format!(
                "container {} mounts its service account token from a Secret (volume {}, legacy tokens), so giving \
                 the pod service account {target:?} would leave {current:?}'s token mounted",
                q(container),
                q(volume)
            );
            out.conflicts.push(ConflictKind::KeyOverIdentity);
            if plan.policy.on_conflict == OnConflict::Skip {
                // The run keeps its account (and so no team identity), said in a warning.
                out.warnings.push(format!(
                    "container {} mounts its service account token from a Secret (volume {}, legacy tokens): the \
                     account was kept (injection.onConflict: skip), so the run does not get the keyless store {:?}'s \
                     identity",
                    q(container),
                    q(volume),
                    sp.store_name
                ));
                out.identity = current.to_string();
                out.identity_kept_user = true;
                return;
            }
            return fail(
                out,
                format!(
                    "plx-store-webhook: {msg}. Keyless stores need bound service account tokens: Kubernetes 1.22 or \
                     later (1.21 with the BoundServiceAccountTokenVolume feature on, its default)"
                ),
            );
        }
        ops.push(add(pointer(["spec", "serviceAccountName"]), target));
    }
    if view.service_account.is_some_and(|a| a != target) {
        ops.push(add(pointer(["spec", "serviceAccount"]), target));
    }
    if id.azure_label && view.label(AZURE_LABEL) != Some("true") {
        ops.push(add(pointer(["metadata", "labels", AZURE_LABEL]), "true"));
    }
    out.identity = target.to_string();
    if !ops.is_empty() {
        out.patch.extend(ops);
        out.decision = Decision::Mutated;
    }
    out.audit.push(("identity", target.to_string()));
}

/// A run must not run as another route's keyless identity: it would have that team's cloud
/// access (besides its own key, on a keyed route). Refused whatever `onConflict` says, and checked
/// on its own — whatever other refusal the run earned — so audit mode, which keeps only the
/// security refusals, cannot lose this one behind another.
pub(super) fn refuse_foreign_account(
    view: &PodView<'_, '_>,
    plan: &Plan,
    sp: &StorePlan,
    out: &mut Outcome,
) {
    let Some(current) = view
        .service_account_name
        .or(view.service_account)
        .filter(|a| !a.is_empty())
    else {
        return;
    };
    let target = sp.identity.as_ref().map(|id| id.service_account.as_str());
    if target == Some(current) {
        return;
    }
    if let Some((_, owner)) = plan.identity_owners.iter().find(|(a, _)| a == current) {
        let mut conflicts = std::mem::take(&mut out.conflicts);
        conflicts.push(ConflictKind::ForeignIdentity);
        let what = match target {
            Some(target) => format!("whose identity is {target:?}"),
            None => "which has a key".to_string(),
        };
        *out = Outcome::denied(
            DenyReason::Identity,
            format!(
            "plx-store-webhook: the pod asks for service account {current:?}, the cloud identity of {owner}; this run \
             is routed to store {:?}, {what}. A run may not use another team's identity: remove \
             serviceAccountName from the run (environment.serviceAccountName)",
            sp.store_name
        ),
        );
        out.conflicts = conflicts;
    }
}

fn add(path: json_patch::jsonptr::PointerBuf, value: &str) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path,
        value: Value::String(value.to_string()),
    })
}
