//! The least RBAC the fleet view needs for a config: pods list/watch cluster-wide (metadata is
//! read, but RBAC authorizes a metadata request like a full one), and for every referenced
//! object get/list/watch restricted by `resourceNames` — which RBAC applies to list and watch
//! only with `fieldSelector=metadata.name=<name>`, the one form the watches use. Never a
//! Secret list or read beyond those names.

use super::watch::{selector, targets, Target};
use crate::plan::Plan;
use crate::references::ObjectKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The ClusterRole's name.
pub const CLUSTER_ROLE: &str = "plx-store-webhook-fleet";

/// The ClusterRole and ClusterRoleBinding for `plan`, bound to `service_account` in `namespace`.
pub fn render(plan: &Plan, service_account: &str, namespace: &str) -> String {
    let mut by_kind: BTreeMap<ObjectKind, Vec<String>> = BTreeMap::new();
    for t in targets(plan) {
        if let Target::Named(r) = t {
            by_kind.entry(r.kind).or_default().push(r.name);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The fleet view's RBAC for config {} (plx-store-webhook rbac): run pods ({}) list/watch,\n\
         # and only the named objects the config references get/list/watch (resourceNames).",
        plan.config_hash,
        selector(plan)
    );
    let _ = writeln!(out, "apiVersion: rbac.authorization.k8s.io/v1");
    let _ = writeln!(out, "kind: ClusterRole");
    let _ = writeln!(out, "metadata:");
    let _ = writeln!(out, "  name: {CLUSTER_ROLE}");
    let _ = writeln!(out, "  labels:");
    let _ = writeln!(out, "    app.kubernetes.io/name: plx-store-webhook");
    let _ = writeln!(out, "rules:");
    let _ = writeln!(out, "  - apiGroups: [\"\"]");
    let _ = writeln!(out, "    resources: [\"pods\"]");
    let _ = writeln!(out, "    verbs: [\"list\", \"watch\"]");
    for (kind, names) in &by_kind {
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        let _ = writeln!(out, "  - apiGroups: [\"\"]");
        let _ = writeln!(out, "    resources: [\"{}\"]", kind.resource());
        let _ = writeln!(out, "    resourceNames: [{}]", names.join(", "));
        let _ = writeln!(out, "    verbs: [\"get\", \"list\", \"watch\"]");
    }
    let _ = writeln!(out, "---");
    let _ = writeln!(out, "apiVersion: rbac.authorization.k8s.io/v1");
    let _ = writeln!(out, "kind: ClusterRoleBinding");
    let _ = writeln!(out, "metadata:");
    let _ = writeln!(out, "  name: {CLUSTER_ROLE}");
    let _ = writeln!(out, "  labels:");
    let _ = writeln!(out, "    app.kubernetes.io/name: plx-store-webhook");
    let _ = writeln!(out, "roleRef:");
    let _ = writeln!(out, "  apiGroup: rbac.authorization.k8s.io");
    let _ = writeln!(out, "  kind: ClusterRole");
    let _ = writeln!(out, "  name: {CLUSTER_ROLE}");
    let _ = writeln!(out, "subjects:");
    let _ = writeln!(out, "  - kind: ServiceAccount");
    let _ = writeln!(out, "    name: {service_account}");
    let _ = writeln!(out, "    namespace: {namespace}");
    out
}
