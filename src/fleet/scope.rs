//! Where each watch of the fleet view must look, from the config alone: the watches and the
//! RBAC `rbac` prints both come from here, so the permissions are exactly what the watches use.
//! An object only routes that name their namespaces literally need (no `*` or `?`) is watched,
//! and granted, in those namespaces only; anything else is cluster-wide. Pure, so other tools
//! (the Helm chart) can derive the same rules.

use crate::glob::Glob;
use crate::plan::Plan;
use crate::references::{self, ObjectRef};
use std::collections::BTreeSet;

/// Where a watch looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    Cluster,
    /// Only these namespaces (one watch, and one Role, each).
    Namespaces(BTreeSet<String>),
}

impl Where {
    fn union(self, other: Where) -> Where {
        match (self, other) {
            (Where::Namespaces(mut a), Where::Namespaces(b)) => {
                a.extend(b);
                Where::Namespaces(a)
            }
            _ => Where::Cluster,
        }
    }

    /// The namespaces to watch one by one (`None`: one cluster-wide watch).
    pub fn each(&self) -> Vec<Option<String>> {
        match self {
            Where::Cluster => vec![None],
            Where::Namespaces(ns) => ns.iter().cloned().map(Some).collect(),
        }
    }
}

/// The fleet view's watches for a plan: run pods, and each referenced object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub pods: Where,
    pub named: Vec<(ObjectRef, Where)>,
}

/// Where `plan`'s watches look.
pub fn of(plan: &Plan) -> Scope {
    let allowed = |ns: &String| crate::engine::select::namespace_allowed(ns, &plan.policy);
    let include = literal(&plan.policy.namespaces_include);
    // A route's namespaces: its rule's literal list, within injection.namespaces.include.
    let route = |rule: &[Glob]| -> Where {
        let set = match (literal(rule), &include) {
            (Some(a), Some(b)) => a.intersection(b).cloned().collect(),
            (Some(a), None) => a,
            (None, Some(b)) => b.clone(),
            (None, None) => return Where::Cluster,
        };
        Where::Namespaces(set.into_iter().filter(allowed).collect())
    };
    let routes = std::iter::once((&plan.default, route(&[]))).chain(
        plan.rules
            .iter()
            .map(|r| (&r.plan, route(&r.matcher.namespaces))),
    );
    let mut named: Vec<(ObjectRef, Where)> = references::of_plan(plan)
        .into_iter()
        .map(|r| (r, Where::Namespaces(BTreeSet::new())))
        .collect();
    for (sp, at) in routes {
        for r in references::of_store(sp) {
            if let Some((_, w)) = named.iter_mut().find(|(x, _)| *x == r) {
                *w = std::mem::replace(w, Where::Cluster).union(at.clone());
            }
        }
    }
    Scope {
        pods: route(&[]),
        named,
    }
}

/// The names in `globs` when every one is literal (and there is at least one).
fn literal(globs: &[Glob]) -> Option<BTreeSet<String>> {
    let literal = |g: &Glob| !g.as_str().contains(['*', '?']);
    (!globs.is_empty() && globs.iter().all(literal))
        .then(|| globs.iter().map(|g| g.as_str().to_string()).collect())
}
