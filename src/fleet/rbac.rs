//! The least RBAC the fleet view needs for a config, from the same [`scope`](super::scope) the
//! watches come from: `list` and `watch` only (no watch ever calls `get`). Run pods, and every
//! referenced object by `resourceNames` (which RBAC applies to list and watch only with
//! `fieldSelector=metadata.name=<name>`, the one form the watches use). A rule whose routes all
//! name their namespaces goes into a Role in each of those namespaces, not the ClusterRole.
//!
//! What the token can read, said plainly: RBAC has no metadata-only verbs, so `list`/`watch`
//! grant whole objects — the run pods' specs, and the named Secrets' data — wherever a rule
//! applies, even though the process asks for metadata only for the named objects.
//! Pure functions of the plan: other tools (the Helm chart) can derive the same rules.

use super::scope::{self, Where};
use super::watch::selector;
use crate::plan::Plan;
use crate::references::ObjectKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The ClusterRole's (and each Role's) name.
pub const CLUSTER_ROLE: &str = "plx-store-webhook-fleet";

/// The only verbs the watches use.
pub const VERBS: [&str; 2] = ["list", "watch"];

/// One RBAC rule: a resource, optionally restricted to names, in one namespace or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// `None`: the ClusterRole; `Some(ns)`: a Role in `ns`.
    pub namespace: Option<String>,
    /// `pods`, `secrets`, `configmaps`, `persistentvolumeclaims` or `serviceaccounts`.
    pub resource: &'static str,
    /// Empty for pods (all run pods); else exactly these names.
    pub names: Vec<String>,
}

/// Every rule the fleet view needs for `plan` (verbs: [`VERBS`]), ClusterRole rules first,
/// then each namespace's, resources in a fixed order.
pub fn grants(plan: &Plan) -> Vec<Grant> {
    let s = scope::of(plan);
    let mut by: BTreeMap<(Option<String>, ObjectKind), Vec<String>> = BTreeMap::new();
    let mut out = Vec::new();
    let pods = |namespace| Grant {
        namespace,
        resource: "pods",
        names: Vec::new(),
    };
    for ns in s.pods.each() {
        out.push(pods(ns));
    }
    for (r, at) in &s.named {
        for ns in at.each() {
            by.entry((ns, r.kind)).or_default().push(r.name.clone());
        }
    }
    out.extend(by.into_iter().map(|((namespace, kind), mut names)| {
        names.sort();
        names.dedup();
        Grant {
            namespace,
            resource: kind.resource(),
            names,
        }
    }));
    out.sort_by(|a, b| {
        (a.namespace.is_some(), &a.namespace, a.resource != "pods").cmp(&(
            b.namespace.is_some(),
            &b.namespace,
            b.resource != "pods",
        ))
    });
    out
}

/// The RBAC documents for `plan`, bound to `service_account` in `namespace`: a ClusterRole and
/// its binding for the cluster-wide rules, a Role and RoleBinding per namespace for the rest.
pub fn render(plan: &Plan, service_account: &str, namespace: &str) -> String {
    let grants = grants(plan);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The fleet view's RBAC for config {} (plx-store-webhook rbac): list and watch only.\n\
         # What this token can read, whole (RBAC has no metadata-only verbs):\n\
         #   - run pods ({}), specs included: {};\n\
         #   - the named objects below, data included (a Secret's keys), where each rule applies;\n\
         #   - nothing else: any other Secret, any Secret list, and every write are forbidden.",
        plan.config_hash,
        selector(plan),
        match scope::of(plan).pods {
            Where::Cluster => "in every namespace".to_string(),
            Where::Namespaces(ns) =>
                format!("in {}", ns.into_iter().collect::<Vec<_>>().join(", ")),
        }
    );
    let mut scopes: Vec<Option<String>> = grants.iter().map(|g| g.namespace.clone()).collect();
    scopes.dedup();
    let verbs = VERBS.map(|v| format!("{v:?}")).join(", ");
    for (i, scope) in scopes.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out, "---");
        }
        let (kind, binding, ref_kind) = match scope {
            None => ("ClusterRole", "ClusterRoleBinding", "ClusterRole"),
            Some(_) => ("Role", "RoleBinding", "Role"),
        };
        header(&mut out, kind, scope.as_deref());
        let _ = writeln!(out, "rules:");
        for g in grants.iter().filter(|g| &g.namespace == scope) {
            let _ = writeln!(out, "  - apiGroups: [\"\"]");
            let _ = writeln!(out, "    resources: [\"{}\"]", g.resource);
            if !g.names.is_empty() {
                let names: Vec<String> = g.names.iter().map(|n| format!("{n:?}")).collect();
                let _ = writeln!(out, "    resourceNames: [{}]", names.join(", "));
            }
            let _ = writeln!(out, "    verbs: [{verbs}]");
        }
        let _ = writeln!(out, "---");
        header(&mut out, binding, scope.as_deref());
        let _ = writeln!(out, "roleRef:");
        let _ = writeln!(out, "  apiGroup: rbac.authorization.k8s.io");
        let _ = writeln!(out, "  kind: {ref_kind}");
        let _ = writeln!(out, "  name: {CLUSTER_ROLE}");
        let _ = writeln!(out, "subjects:");
        let _ = writeln!(out, "  - kind: ServiceAccount");
        let _ = writeln!(out, "    name: {service_account}");
        let _ = writeln!(out, "    namespace: {namespace}");
    }
    out
}

fn header(out: &mut String, kind: &str, namespace: Option<&str>) {
    let _ = writeln!(out, "apiVersion: rbac.authorization.k8s.io/v1");
    let _ = writeln!(out, "kind: {kind}");
    let _ = writeln!(out, "metadata:");
    let _ = writeln!(out, "  name: {CLUSTER_ROLE}");
    if let Some(ns) = namespace {
        let _ = writeln!(out, "  namespace: {ns}");
    }
    let _ = writeln!(out, "  labels:");
    let _ = writeln!(out, "    app.kubernetes.io/name: plx-store-webhook");
}
