//! The pure injection engine: (pod JSON, [`Plan`], request facts) → [`Outcome`]. No I/O, no clock,
//! no globals; the server, the offline `mutate` command and the golden tests all call [`mutate`].

mod inject;
pub mod keypath;
pub mod patch;
pub mod pod;
mod select;

use crate::plan::Plan;
use json_patch::PatchOperation;
use serde_json::Value;

/// The facts of an admission request the engine decides on.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub operation: &'a str,
    pub namespace: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub sub_resource: &'a str,
}

impl<'a> Request<'a> {
    /// A plain pod CREATE in `namespace` (what the offline command and tests use).
    pub fn pod_create(namespace: &'a str) -> Self {
        Request {
            operation: "CREATE",
            namespace,
            group: "",
            version: "v1",
            resource: "pods",
            sub_resource: "",
        }
    }
}

/// Why a request was let through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    NotPodCreate,
    NotARun,
    NamespaceExcluded,
    NoTargetContainer,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::NotPodCreate => "not a pod CREATE",
            IgnoreReason::NotARun => "labels do not match the run selector",
            IgnoreReason::NamespaceExcluded => "namespace excluded by injection.namespaces",
            IgnoreReason::NoTargetContainer => "no target container",
        }
    }

    /// Metric label value.
    pub fn metric(self) -> &'static str {
        match self {
            IgnoreReason::NotPodCreate => "not_pod_create",
            IgnoreReason::NotARun => "not_a_run",
            IgnoreReason::NamespaceExcluded => "namespace_excluded",
            IgnoreReason::NoTargetContainer => "no_target_container",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not ours to touch: allowed, no patch.
    Ignored(IgnoreReason),
    /// A run pod that already has everything.
    Unchanged,
    /// A run pod that gets a patch.
    Mutated,
    /// Refused, with a message for the user.
    Denied(String),
}

impl Decision {
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Ignored(_) => "ignored",
            Decision::Unchanged => "unchanged",
            Decision::Mutated => "mutated",
            Decision::Denied(_) => "denied",
        }
    }
}

/// What kind of conflict stopped an injection (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// Another volume is already mounted at the mount directory.
    MountPathTaken,
    /// The mount directory lies inside a read-only mount.
    NestedInReadOnly,
    /// Another mount lies inside our read-only mount.
    MountInsideOurs,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::MountPathTaken => "mount_path_taken",
            ConflictKind::NestedInReadOnly => "nested_in_read_only",
            ConflictKind::MountInsideOurs => "mount_inside_ours",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    pub patch: Vec<PatchOperation>,
    pub warnings: Vec<String>,
    /// Audit annotations (unprefixed keys; the apiserver prefixes them with the webhook name).
    pub audit: Vec<(&'static str, String)>,
    /// Conflicts found, whether they denied the pod or skipped a container.
    pub conflicts: Vec<ConflictKind>,
    /// Containers given (or already having) the store.
    pub injected_containers: usize,
}

impl Outcome {
    fn ignored(reason: IgnoreReason) -> Self {
        Outcome {
            decision: Decision::Ignored(reason),
            patch: Vec::new(),
            warnings: Vec::new(),
            audit: Vec::new(),
            conflicts: Vec::new(),
            injected_containers: 0,
        }
    }

    /// A denial with nothing else.
    pub fn denied(message: String) -> Self {
        Outcome {
            decision: Decision::Denied(message),
            ..Outcome::ignored(IgnoreReason::NotPodCreate)
        }
    }

    pub fn allowed(&self) -> bool {
        !matches!(self.decision, Decision::Denied(_))
    }
}

/// Decide and build the patch for one pod.
pub fn mutate(pod: &Value, plan: &Plan, req: &Request<'_>) -> Outcome {
    if req.operation != "CREATE"
        || !req.group.is_empty()
        || req.resource != "pods"
        || !req.sub_resource.is_empty()
    {
        return Outcome::ignored(IgnoreReason::NotPodCreate);
    }
    let labels = match pod::metadata(pod).and_then(|m| pod::string_map(m, "labels")) {
        Ok(l) => l,
        Err(e) => return Outcome::denied(not_a_pod(&e)),
    };
    if !select::selector_matches(labels, &plan.policy.selector) {
        return Outcome::ignored(IgnoreReason::NotARun);
    }
    if !select::namespace_allowed(req.namespace, &plan.policy) {
        return Outcome::ignored(IgnoreReason::NamespaceExcluded);
    }
    let view = match pod::PodView::read(pod) {
        Ok(v) => v,
        Err(e) => return Outcome::denied(not_a_pod(&e)),
    };
    inject::reconcile(&view, plan)
}

fn not_a_pod(detail: &str) -> String {
    format!("plx-store-webhook: the object is not a valid Pod: {detail}")
}
