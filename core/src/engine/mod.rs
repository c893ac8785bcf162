//! The pure injection engine: (pod JSON, [`Plan`], request facts) → [`Outcome`]. No I/O, no clock,
//! no globals; the server, the offline `mutate` command and the golden tests all call [`mutate`].

pub mod audit;
pub use audit::ANNOTATION_MODE;
mod enforce;
mod foreign;
pub use enforce::validate;
mod identity;
mod inject;
mod keyless;
pub mod keypath;
pub mod patch;
pub mod pod;
pub mod pod_scan;
pub mod report;
pub mod select;
pub mod volumes;
pub mod warnings;
pub use warnings::{q, Finding, Warnings};

use crate::config::{Mode, NoMatch, OnMissingReference, RunFacts};
use crate::limits::PodLimits;
use crate::plan::{Plan, Route, StorePlan};
use crate::references::{self, References};
use json_patch::PatchOperation;

/// Polyaxon's annotation naming the run's owner (organisation).
pub const ANNOTATION_OWNER: &str = "operation.polyaxon.com/owner";
/// Polyaxon's annotation naming the run's project.
pub const ANNOTATION_PROJECT: &str = "operation.polyaxon.com/project";
/// Polyaxon's label naming the run kind (`polyaxon-jobs`, `polyaxon-services`, …).
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";

/// The facts of an admission request the engine decides on.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub operation: &'a str,
    pub namespace: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub sub_resource: &'a str,
    /// Also fill `Outcome::report` (explanations; the server leaves it off).
    pub report: bool,
    /// The cluster's objects as the fleet view last saw them (`None`: the view is off).
    pub references: Option<&'a dyn References>,
}

impl<'a> Request<'a> {
    /// Whether this is the one kind of request the webhook serves: a CREATE of a core/v1 pod
    /// (not a subresource). Decided here only.
    pub fn is_pod_create(&self) -> bool {
        self.operation == "CREATE"
            && self.group.is_empty()
            && self.resource == "pods"
            && self.sub_resource.is_empty()
    }

    /// A plain pod CREATE in `namespace` (what the offline command and tests use).
    pub fn pod_create(namespace: &'a str) -> Self {
        Request {
            operation: "CREATE",
            namespace,
            group: "",
            version: "v1",
            resource: "pods",
            sub_resource: "",
            report: false,
            references: None,
        }
    }

    /// The same request, asking for the per-container report.
    pub fn with_report(self) -> Self {
        Request {
            report: true,
            ..self
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
    /// No store rule matched and `injection.noMatch` is `warn`.
    NoRuleMatched,
}

impl IgnoreReason {
    /// Every reason, for the metrics present at 0 and the code registry's coverage.
    pub const ALL: [IgnoreReason; 5] = [
        IgnoreReason::NotPodCreate,
        IgnoreReason::NotARun,
        IgnoreReason::NamespaceExcluded,
        IgnoreReason::NoTargetContainer,
        IgnoreReason::NoRuleMatched,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::NotPodCreate => "not a pod CREATE",
            IgnoreReason::NotARun => "labels do not match the run selector",
            IgnoreReason::NamespaceExcluded => "namespace excluded by injection.namespaces",
            IgnoreReason::NoTargetContainer => "no target container",
            IgnoreReason::NoRuleMatched => "no store rule matched (injection.noMatch: warn)",
        }
    }

    /// Metric label value.
    pub fn metric(self) -> &'static str {
        match self {
            IgnoreReason::NotPodCreate => "not_pod_create",
            IgnoreReason::NotARun => "not_a_run",
            IgnoreReason::NamespaceExcluded => "namespace_excluded",
            IgnoreReason::NoTargetContainer => "no_target_container",
            IgnoreReason::NoRuleMatched => "no_rule_matched",
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
    /// Routed to a store in audit mode: admitted with annotations only; the warnings say what
    /// would have been added or why it would have been denied.
    Audited(Would),
}

/// What an audit-mode decision would have been in inject mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Would {
    Inject,
    Deny,
}

impl Would {
    pub fn as_str(self) -> &'static str {
        match self {
            Would::Inject => "inject",
            Would::Deny => "deny",
        }
    }
}

impl Decision {
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Ignored(_) => "ignored",
            Decision::Unchanged => "unchanged",
            Decision::Mutated => "mutated",
            Decision::Denied(_) => "denied",
            Decision::Audited(_) => "audit",
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
    /// A key in a container would win over a keyless store's identity.
    KeyOverIdentity,
    /// The run asks for another route's cloud identity: refused in every mode.
    ForeignIdentity,
    /// A container carries another route's store Secret: refused in every mode.
    ForeignStore,
    /// A container's key variable names a file the store's key is not at.
    KeyUnusable,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::MountPathTaken => "mount_path_taken",
            ConflictKind::NestedInReadOnly => "nested_in_read_only",
            ConflictKind::MountInsideOurs => "mount_inside_ours",
            ConflictKind::KeyOverIdentity => "key_over_identity",
            ConflictKind::ForeignIdentity => "foreign_identity",
            ConflictKind::ForeignStore => "foreign_store",
            ConflictKind::KeyUnusable => "key_unusable",
        }
    }

    /// A security boundary between routes: audit mode keeps these refusals, and
    /// `onConflict: skip` does not soften them.
    pub fn is_security(self) -> bool {
        matches!(
            self,
            ConflictKind::ForeignIdentity | ConflictKind::ForeignStore
        )
    }
}

/// Why a run was refused, from a closed set: the `reason` of `plx_webhook_denials_total`, so
/// the denial-ratio alert can name what is refusing most runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// A mount conflict in the pod (`injection.onConflict: deny`).
    Conflict,
    /// Keyless stores: a key beside the identity, a legacy token, or another team's account.
    Identity,
    /// No store rule matches and `injection.noMatch` is `deny`.
    NoRuleMatched,
    /// The run's namespace lacks an object its store needs (`onMissingReference: deny`).
    MissingReference,
    /// Over the pod limits (fails closed).
    TooLarge,
    /// The object is not a readable Pod.
    Malformed,
}

impl DenyReason {
    pub const ALL: [DenyReason; 6] = [
        DenyReason::Conflict,
        DenyReason::Identity,
        DenyReason::NoRuleMatched,
        DenyReason::MissingReference,
        DenyReason::TooLarge,
        DenyReason::Malformed,
    ];

    /// Metric label value.
    pub fn metric(self) -> &'static str {
        match self {
            DenyReason::Conflict => "conflict",
            DenyReason::Identity => "identity",
            DenyReason::NoRuleMatched => "no_rule_matched",
            DenyReason::MissingReference => "missing_reference",
            DenyReason::TooLarge => "too_large",
            DenyReason::Malformed => "malformed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    /// Why, when the decision is a denial.
    pub deny_reason: Option<DenyReason>,
    pub patch: Vec<PatchOperation>,
    /// Bounded where written ([`Warnings`]): every warning passes through it.
    pub warnings: Warnings,
    /// Audit annotations (unprefixed keys; the apiserver prefixes them with the webhook name).
    pub audit: Vec<(&'static str, String)>,
    /// Conflicts found, whether they denied the pod or skipped a container.
    pub conflicts: Vec<ConflictKind>,
    /// Containers given (or already having) the store.
    pub injected_containers: usize,
    /// The pod's name, or its generateName, for logs (empty when not read).
    pub pod_name: String,
    /// The store the run was routed to (empty when it was not).
    pub store: String,
    /// The routed decision's fingerprint (`plx-store-webhook.dev/decision`; empty when not routed).
    pub fingerprint: String,
    /// The rule that routed it (empty for the default store or when not routed).
    pub rule: String,
    /// Keyless stores: the run's ServiceAccount (empty when the store has a key or none ran).
    pub identity: String,
    /// The account is the user's own, kept instead of the store's identity.
    pub identity_kept_user: bool,
    /// Per container, what was decided (only when `Request::report` asks).
    pub report: Vec<report::ContainerReport>,
    /// The marker annotations and what happened to them (only with `Request::report`).
    pub markers: Vec<report::MarkerReport>,
}

impl Outcome {
    fn ignored(reason: IgnoreReason) -> Self {
        Outcome {
            decision: Decision::Ignored(reason),
            deny_reason: None,
            patch: Vec::new(),
            warnings: Warnings::new(),
            audit: Vec::new(),
            conflicts: Vec::new(),
            injected_containers: 0,
            pod_name: String::new(),
            store: String::new(),
            fingerprint: String::new(),
            rule: String::new(),
            identity: String::new(),
            identity_kept_user: false,
            report: Vec::new(),
            markers: Vec::new(),
        }
    }

    /// A denial with nothing else.
    pub fn denied(reason: DenyReason, message: String) -> Self {
        Outcome {
            decision: Decision::Denied(message),
            deny_reason: Some(reason),
            ..Outcome::ignored(IgnoreReason::NotPodCreate)
        }
    }

    pub fn allowed(&self) -> bool {
        !matches!(self.decision, Decision::Denied(_))
    }

    /// Keyless runs: what happened to the run's ServiceAccount (a metric label); `None` for
    /// stores with a key.
    pub fn identity_result(&self) -> Option<&'static str> {
        match (self.identity.is_empty(), self.identity_kept_user) {
            (true, _) => None,
            (false, true) => Some("user_account"),
            (false, false) => Some("assigned"),
        }
    }
}

/// A pod as read from a request: the engine's one input. One lives on the stack per request, so
/// the pod is kept inline rather than boxed (an allocation on the hot path).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Decoded<'a> {
    Pod(pod::Pod<'a>),
    /// It does not fit the Pod model: which field and why, and its metadata when that much is
    /// readable (to tell whether it is a run at all).
    Malformed(pod::Malformed<'a>),
    /// The request carries no object.
    Missing,
    /// More than [`PodLimits`] lets the webhook read: what was over, in words.
    OverLimit(String),
}

impl Decoded<'_> {
    /// Containers and init containers read (what the patch grows with).
    pub fn containers(&self) -> usize {
        let Decoded::Pod(p) = self else { return 0 };
        let spec = p.spec.as_ref();
        let len = |v: Option<&Vec<pod::Container<'_>>>| v.map_or(0, Vec::len);
        len(spec.and_then(|s| s.containers.as_ref()))
            + len(spec.and_then(|s| s.init_containers.as_ref()))
    }
}

/// Read a pod from its JSON text in one pass (every field the engine does not need is skipped),
/// or say which field is wrong, within the default [`PodLimits`].
pub fn decode(text: &str) -> Decoded<'_> {
    decode_with(text, &PodLimits::DEFAULT)
}

/// [`decode`] within `limits`: the one-pass reader builds at most `limits.entries` entries, and
/// the serde fallback runs only on texts of at most `limits.values` values, so reading a pod
/// costs memory bounded by the limits, not by what a client sends.
pub fn decode_with<'a>(text: &'a str, limits: &PodLimits) -> Decoded<'a> {
    let over_budget = match pod_scan::pod_text(text, limits.entries) {
        Ok(p) => return Decoded::Pod(p),
        Err(over_budget) => over_budget,
    };
    if over_budget {
        return Decoded::OverLimit(over_entries(limits));
    }
    if let Some(why) = over_values(text, limits) {
        return Decoded::OverLimit(why);
    }
    match pod::decode_serde(text) {
        Ok(p) => checked_entries(p, limits),
        Err(m) => Decoded::Malformed(m),
    }
}

/// A pod the serde reader built, held to the entry budget the one-pass reader applies.
pub fn checked_entries<'a>(pod: pod::Pod<'a>, limits: &PodLimits) -> Decoded<'a> {
    if pod.entries() > limits.entries {
        Decoded::OverLimit(over_entries(limits))
    } else {
        Decoded::Pod(pod)
    }
}

/// Why a text is too large for the serde fallback, if it is.
pub fn over_values(text: &str, limits: &PodLimits) -> Option<String> {
    let n = crate::limits::count_values(text);
    (n > limits.values).then(|| {
        format!(
            "it holds about {n} JSON values, more than the {} this webhook reads",
            limits.values
        )
    })
}

/// Why a pod is over the entry budget, in words.
pub fn over_entries(limits: &PodLimits) -> String {
    format!(
        "it has more than {} entries in its lists and maps (containers, volumes, volumeMounts, env, \
         envFrom, secret items, labels and annotations together), more than this webhook reads",
        limits.entries
    )
}

/// Decide and build the patch for one request: the one way through the engine (the server, the
/// offline command, describe/explain and the tests all come here).
pub fn mutate(pod: &Decoded<'_>, plan: &Plan, req: &Request<'_>) -> Outcome {
    let mut out = decide(pod, plan, req);
    bound(&mut out);
    out
}

/// What a review writes that grows with the pod, cut at the engine's exits ([`mutate`],
/// [`validate`]): the denial message and the pod's name (warnings are bounded as written).
fn bound(out: &mut Outcome) {
    if let Decision::Denied(m) = &mut out.decision {
        if m.len() > warnings::MAX_DENIAL_CHARS {
            *m = warnings::cut(std::mem::take(m), warnings::MAX_DENIAL_CHARS);
        }
    }
    if out.pod_name.len() > warnings::POD_NAME_CHARS {
        out.pod_name = warnings::cut(std::mem::take(&mut out.pod_name), warnings::POD_NAME_CHARS);
    }
}

fn decide(pod: &Decoded<'_>, plan: &Plan, req: &Request<'_>) -> Outcome {
    if !req.is_pod_create() {
        return Outcome::ignored(IgnoreReason::NotPodCreate);
    }
    match pod {
        Decoded::Pod(p) => decide_pod(p, plan, req),
        Decoded::Missing => Outcome::denied(
            DenyReason::Malformed,
            "plx-store-webhook: request.object is missing; cannot read the Pod".into(),
        ),
        // Fail closed: a pod this large is refused, never admitted unchecked.
        Decoded::OverLimit(why) => Outcome::denied(DenyReason::TooLarge, too_large(why)),
        // Not ours unless it is a run: only a malformed *run* pod is refused.
        Decoded::Malformed(m) => {
            let labels = m.meta.as_ref().and_then(|meta| meta.labels.as_ref());
            if m.meta.is_some() && !select::selector_matches(labels, &plan.policy.selector) {
                return Outcome::ignored(IgnoreReason::NotARun);
            }
            Outcome::denied(DenyReason::Malformed, not_a_pod(&m.problem()))
        }
    }
}

fn decide_pod(pod: &pod::Pod<'_>, plan: &Plan, req: &Request<'_>) -> Outcome {
    let meta = pod.metadata.as_ref();
    let pod_name = meta
        .and_then(|m| m.name.as_deref().or(m.generate_name.as_deref()))
        .unwrap_or("")
        .to_string();
    let mut out = decide_run(pod, plan, req);
    out.pod_name = pod_name;
    out
}

fn decide_run(pod: &pod::Pod<'_>, plan: &Plan, req: &Request<'_>) -> Outcome {
    let meta = pod.metadata.as_ref();
    if !select::selector_matches(meta.and_then(|m| m.labels.as_ref()), &plan.policy.selector) {
        return Outcome::ignored(IgnoreReason::NotARun);
    }
    let namespace = if req.namespace.is_empty() {
        meta.and_then(|m| m.namespace.as_deref()).unwrap_or("")
    } else {
        req.namespace
    };
    if !select::namespace_allowed(namespace, &plan.policy) {
        return Outcome::ignored(IgnoreReason::NamespaceExcluded);
    }
    let view = match pod::PodView::new(pod, &plan.limits) {
        Ok(view) => view,
        Err(e @ pod::NotInjectable::TooManyContainers { .. }) => {
            return Outcome::denied(DenyReason::TooLarge, too_large(&e.to_string()))
        }
        Err(e) => return Outcome::denied(DenyReason::Malformed, not_a_pod(&e.to_string())),
    };
    let facts = run_facts(&view, namespace);
    let (store_plan, rule) = match plan.route(&facts) {
        Route::Rule(r) => (&r.plan, r.name.as_str()),
        Route::Default(p) => (p, ""),
        Route::Unmatched(how) => return unmatched(how, &facts),
    };
    let audit = store_plan.mode == Mode::Audit;
    // Audit mode words what would be added from the per-container report.
    let mut out = inject::reconcile(&view, store_plan, req.report || audit);
    if !matches!(out.decision, Decision::Ignored(_)) {
        let found = foreign::carried(&view, plan, store_plan);
        if !found.is_empty() {
            let keep = (
                std::mem::take(&mut out.audit),
                std::mem::take(&mut out.report),
            );
            let mut conflicts = std::mem::take(&mut out.conflicts);
            conflicts.push(ConflictKind::ForeignStore);
            out = Outcome::denied(
                DenyReason::Conflict,
                format!(
                    "plx-store-webhook: this run is routed to store {:?}, but {}. A run may not carry \
                     another route's credentials: remove them from the run (docs/enforce.md)",
                    store_plan.store_name,
                    found.join("; ")
                ),
            );
            (out.audit, out.report) = keep;
            out.conflicts = conflicts;
        }
    }
    // The route boundaries are checked whatever else refused the run (audit mode keeps only them).
    if !matches!(out.decision, Decision::Ignored(_))
        && !out.conflicts.iter().any(|k| k.is_security())
    {
        identity::refuse_foreign_account(&view, plan, store_plan, &mut out);
    }
    if out.allowed() && !matches!(out.decision, Decision::Ignored(_)) {
        if let Some(id) = &store_plan.identity {
            identity::apply(&view, plan, store_plan, id, &mut out);
        }
    }
    if !audit
        && out.allowed()
        && !matches!(out.decision, Decision::Ignored(_))
        && view.annotation(ANNOTATION_MODE).is_some()
    {
        // A tenant's own `mode` marker would file an injected run as audited.
        out.patch
            .push(PatchOperation::Remove(json_patch::RemoveOperation {
                path: patch::pointer(["metadata", "annotations", ANNOTATION_MODE]),
            }));
        out.decision = Decision::Mutated;
    }
    if let Some(view) = req.references {
        check_references(store_plan, view, namespace, &plan.policy, &mut out);
    }
    if audit {
        audit::apply(&view, store_plan, &mut out, req.report);
    }
    out.store.clone_from(&store_plan.store_name);
    out.fingerprint.clone_from(&store_plan.fingerprint);
    if !plan.rules.is_empty() {
        out.rule = rule.to_string();
        out.audit.push((
            "rule",
            if rule.is_empty() { "(default)" } else { rule }.to_string(),
        ));
    }
    out
}

/// What store rules match on, read from the pod Polyaxon made.
pub fn run_facts<'p>(view: &pod::PodView<'p, '_>, namespace: &'p str) -> RunFacts<'p> {
    RunFacts {
        namespace,
        owner: view.annotation(ANNOTATION_OWNER),
        project: view.annotation(ANNOTATION_PROJECT),
        component: view.label(LABEL_COMPONENT),
    }
}

/// Objects the decision needs that the run's namespace lacks (as the fleet view knows it; an
/// unknown answer claims nothing): a warning each, or a denial with `onMissingReference: deny`.
fn check_references(
    sp: &StorePlan,
    view: &dyn References,
    namespace: &str,
    policy: &crate::config::Injection,
    out: &mut Outcome,
) {
    if !out.allowed() || matches!(out.decision, Decision::Ignored(_)) {
        return;
    }
    let missing = references::missing_in(&sp.references, view, namespace);
    if missing.is_empty() {
        return;
    }
    let words: Vec<String> = missing.into_iter().map(|(_, w)| w).collect();
    match policy.on_missing_reference {
        OnMissingReference::Warn => out.warnings.extend(words),
        OnMissingReference::Deny => {
            let keep = std::mem::take(&mut out.audit);
            *out = Outcome::denied(
                DenyReason::MissingReference,
                format!(
                "plx-store-webhook: this run is routed to store {:?}, but {}. Create it there (or route the \
                 namespace to another store), then recreate the pod (injection.onMissingReference: deny)",
                sp.store_name,
                words.join("; ")
            ),
            );
            out.audit = keep;
        }
    }
}

fn unmatched(how: NoMatch, f: &RunFacts<'_>) -> Outcome {
    let msg = format!(
        "plx-store-webhook: no store rule matches this run (namespace {:?}, owner {:?}, project {:?}, \
         component {:?}), so it gets no artifacts-store credentials; add a rule to injection.rules or set \
         injection.noMatch: default",
        f.namespace,
        f.owner.unwrap_or(""),
        f.project.unwrap_or(""),
        f.component.unwrap_or("")
    );
    match how {
        NoMatch::Deny => Outcome::denied(DenyReason::NoRuleMatched, msg),
        _ => {
            let mut out = Outcome::ignored(IgnoreReason::NoRuleMatched);
            out.warnings.push(msg);
            out
        }
    }
}

fn too_large(detail: &str) -> String {
    format!(
        "plx-store-webhook: this pod is too large to check: {detail}. The webhook refuses it rather \
         than admit it unchecked (README: Limits)"
    )
}

fn not_a_pod(detail: &str) -> String {
    format!("plx-store-webhook: the object is not a valid Pod: {detail}")
}
