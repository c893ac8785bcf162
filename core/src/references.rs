//! The objects a decision needs in the run's namespace (store and connection Secrets and
//! ConfigMaps, claims, a keyless identity's ServiceAccount), and what the cluster has of them as
//! the shell last saw it. The engine only asks; it never looks itself, and an answer of
//! [`Presence::Unknown`] (not synced yet, the API unreachable) makes it claim nothing.

use crate::plan::{Plan, RefKind, StorePlan, VolumeSource};
use std::collections::BTreeSet;
use std::fmt;

/// The kinds of object a decision can reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    ServiceAccount,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::Secret,
        ObjectKind::ConfigMap,
        ObjectKind::PersistentVolumeClaim,
        ObjectKind::ServiceAccount,
    ];

    /// The label value and the word in messages (`kubectl get <this>`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::PersistentVolumeClaim => "persistentvolumeclaim",
            ObjectKind::ServiceAccount => "serviceaccount",
        }
    }

    /// The API resource (RBAC rules, URLs).
    pub fn resource(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secrets",
            ObjectKind::ConfigMap => "configmaps",
            ObjectKind::PersistentVolumeClaim => "persistentvolumeclaims",
            ObjectKind::ServiceAccount => "serviceaccounts",
        }
    }

    /// What happens to a run whose namespace lacks such an object.
    pub fn consequence(self) -> &'static str {
        match self {
            // The ServiceAccount plugin refuses the pod at admission.
            ObjectKind::ServiceAccount => "the apiserver will refuse the pod",
            // Volumes: stuck in ContainerCreating; env: CreateContainerConfigError.
            _ => "the pod will not start",
        }
    }
}

/// One object a decision needs, by name (in the run's namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub name: String,
}

/// What the shell knows of one object in one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    Missing,
    /// Not synced yet, or the watch is failing: no claim is made.
    Unknown,
}

/// The shell's in-memory view of which namespaces have which named objects.
pub trait References: Send + Sync {
    fn presence(&self, kind: ObjectKind, name: &str, namespace: &str) -> Presence;
}

impl fmt::Debug for dyn References + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("References")
    }
}

/// Every object a run routed to `plan` needs: volumes' Secrets, ConfigMaps and claims,
/// `envFrom` sources, non-optional key references, the identity's account. Optional key
/// references (the standard client names) are left out: a missing one only leaves a name unset.
pub fn of_store(plan: &StorePlan) -> Vec<ObjectRef> {
    let mut refs = BTreeSet::new();
    let mut add = |kind, name: &str| {
        refs.insert(ObjectRef {
            kind,
            name: name.to_string(),
        });
    };
    for m in &plan.mounts {
        match &m.source {
            VolumeSource::Secret { name, .. } => add(ObjectKind::Secret, name),
            VolumeSource::ConfigMap { name, .. } => add(ObjectKind::ConfigMap, name),
            VolumeSource::Claim { claim_name, .. } => {
                add(ObjectKind::PersistentVolumeClaim, claim_name)
            }
            VolumeSource::HostPath { .. } => {}
        }
    }
    let kind = |k: RefKind| match k {
        RefKind::Secret => ObjectKind::Secret,
        RefKind::ConfigMap => ObjectKind::ConfigMap,
    };
    for e in &plan.env_from {
        add(kind(e.kind), &e.name);
    }
    for e in plan.env_items.iter().filter(|e| !e.optional) {
        add(kind(e.kind), &e.resource);
    }
    if let Some(id) = &plan.identity {
        add(ObjectKind::ServiceAccount, &id.service_account);
    }
    refs.into_iter().collect()
}

/// Every object any route of `plan` needs (what the fleet view watches, what `rbac` grants).
pub fn of_plan(plan: &Plan) -> Vec<ObjectRef> {
    let mut all: BTreeSet<ObjectRef> = BTreeSet::new();
    for sp in std::iter::once(&plan.default).chain(plan.rules.iter().map(|r| &r.plan)) {
        all.extend(of_store(sp));
    }
    all.into_iter().collect()
}

/// The objects of `refs` that `view` says `namespace` lacks, in words.
pub fn missing_in(
    refs: &[ObjectRef],
    view: &dyn References,
    namespace: &str,
) -> Vec<(ObjectRef, String)> {
    refs.iter()
        .filter(|r| view.presence(r.kind, &r.name, namespace) == Presence::Missing)
        .map(|r| {
            let words = format!(
                "{} {} not found in namespace {}: {}",
                r.kind.as_str(),
                r.name,
                namespace,
                r.kind.consequence()
            );
            (r.clone(), words)
        })
        .collect()
}
