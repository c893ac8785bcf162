//! Judging a live run pod against today's config from what it carries, with the check
//! `/validate` applies ([`engine::validate`]): `current` only if it has every piece today's
//! decision gives, `stale` if it carries an earlier decision's pieces, `missing` if it carries
//! none, `audit` only when today's route is in audit mode, and `missing-reference` when its
//! namespace lacks an object the decision needs. Markers (`store`, `decision`, `mode`) are
//! tenant-writable: they only say which decision a pod claims, so they can turn a pod that
//! passes the check into `stale`, never a pod that fails it into anything but a problem.
//!
//! The shell reads each pod once per watch event, calls [`judge`] and keeps only the small
//! [`RunPod`] it returns: every string in it is capped, so a pod costs the same few hundred bytes
//! whatever its metadata says. Pure: the shell passes what it watched.

use crate::config::{NoMatch, RunFacts};
use crate::engine::report::{ContainerStatus, PieceState};
use crate::engine::{self, Decision, Decoded, IgnoreReason, Request};
use crate::plan::{Plan, Route, StorePlan, ANNOTATION_DECISION, ANNOTATION_STORE};
use crate::references::{missing_in, ObjectRef, References};

/// Polyaxon's label carrying the run's uuid.
pub const LABEL_RUN_UUID: &str = "operation.polyaxon.com/uuid";

/// Longest owner Polyaxon makes: a user name (Django's 150) or an organisation name.
pub const MAX_OWNER: usize = 150;
/// Longest project name Polyaxon accepts (its `name` fields: 128, a slug).
pub const MAX_PROJECT: usize = 128;
/// A run uuid, with or without dashes.
pub const MAX_RUN_UUID: usize = 36;
/// Kubernetes' own limits on a namespace and a pod name (the apiserver enforces them).
pub const MAX_NAMESPACE: usize = 63;
pub const MAX_POD_NAME: usize = 253;
/// The reason kept per pod, in bytes (the rest of the words is cut).
pub const MAX_WHY: usize = 480;

/// What the fleet view keeps of one run pod: its judgement, never its spec or metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPod {
    pub namespace: String,
    pub name: String,
    /// Polyaxon's run, for the report: `operation.polyaxon.com/owner|project` and the uuid
    /// label, each kept only if within Polyaxon's own limits (a longer one is not Polyaxon's).
    pub owner: Option<String>,
    pub project: Option<String>,
    pub run: Option<String>,
    /// The state before the namespace's objects are looked at.
    pub verdict: State,
    /// Which of today's routes judged it (its store and the objects it needs).
    pub route: Routed,
    /// Why, in words (capped at [`MAX_WHY`]).
    pub why: String,
}

/// A route of the plan the pod was judged under, by position (valid for that plan only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    Default,
    Rule(usize),
    /// Unmatched, or the pod could not be read far enough to route it.
    None,
}

impl Routed {
    fn of(plan: &Plan, route: &Route<'_>) -> Routed {
        match route {
            Route::Rule(r) => plan
                .rules
                .iter()
                .position(|x| std::ptr::eq(x, *r))
                .map_or(Routed::None, Routed::Rule),
            Route::Default(_) => Routed::Default,
            Route::Unmatched(_) => Routed::None,
        }
    }

    /// The store plan and rule name it stands for in `plan`.
    pub fn resolve(self, plan: &Plan) -> Option<(&StorePlan, &str)> {
        match self {
            Routed::Default => Some((&plan.default, "")),
            Routed::Rule(i) => plan.rules.get(i).map(|r| (&r.plan, r.name.as_str())),
            Routed::None => None,
        }
    }
}

/// A run pod's state, as the gauge and `/fleet` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Current,
    Stale,
    Missing,
    Audit,
    MissingReference,
    /// No rule matches and `noMatch` is `warn` or `deny`: no store by design.
    Unmatched,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Current,
        State::Stale,
        State::Missing,
        State::Audit,
        State::MissingReference,
        State::Unmatched,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Current => "current",
            State::Stale => "stale",
            State::Missing => "missing",
            State::Audit => "audit",
            State::MissingReference => "missing-reference",
            State::Unmatched => "unmatched",
        }
    }

    /// Whether a platform team must act (`fleet` exits 1; the alert counts it).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            State::Stale | State::Missing | State::MissingReference
        )
    }
}

/// Judge one live run pod, read from its JSON text (`namespace`/`name` as the API names it),
/// against `plan`. `None`: not a pod the webhook serves (not a run, namespace excluded).
pub fn judge(namespace: &str, name: &str, text: &str, plan: &Plan) -> Option<RunPod> {
    let decoded = engine::decode_with(text, &plan.limits);
    let meta = match &decoded {
        Decoded::Pod(p) => p.metadata.as_ref(),
        Decoded::Malformed(m) => m.meta.as_deref(),
        _ => None,
    };
    let annotation =
        |k: &str| meta.and_then(|m| m.annotations.as_ref()?.get(k).map(|v| v.as_ref()));
    let label = |k: &str| meta.and_then(|m| m.labels.as_ref()?.get(k).map(|v| v.as_ref()));
    let facts = RunFacts {
        namespace,
        owner: annotation(engine::ANNOTATION_OWNER),
        project: annotation(engine::ANNOTATION_PROJECT),
        component: label(engine::LABEL_COMPONENT),
    };
    let mut pod = RunPod {
        namespace: cut(namespace, MAX_NAMESPACE),
        name: cut(name, MAX_POD_NAME),
        owner: within(facts.owner, MAX_OWNER),
        project: within(facts.project, MAX_PROJECT),
        run: within(label(LABEL_RUN_UUID), MAX_RUN_UUID),
        verdict: State::Missing,
        route: Routed::None,
        why: String::new(),
    };
    // The one check `/validate` applies, on the pod as it runs.
    let out = engine::validate(&decoded, plan, &Request::pod_create(namespace));
    let route = plan.route(&facts);
    pod.route = Routed::of(plan, &route);
    let (verdict, why) = match (&out.decision, route) {
        (Decision::Ignored(IgnoreReason::NotARun | IgnoreReason::NamespaceExcluded), _)
        | (Decision::Ignored(IgnoreReason::NotPodCreate), _) => return None,
        // Under `noMatch: deny` the webhook refuses such a run: one that exists went around it
        // (created unlabelled and labelled later, or re-routed by an edit).
        (Decision::Denied(_), Route::Unmatched(NoMatch::Deny)) => (
            State::Missing,
            "no rule matches and noMatch is deny: the webhook would have refused it, so it was \
             created or changed around the webhook; recreate it"
                .to_string(),
        ),
        (Decision::Ignored(IgnoreReason::NoRuleMatched), Route::Unmatched(how))
        | (Decision::Denied(_), Route::Unmatched(how)) => (
            State::Unmatched,
            format!("no rule matches and noMatch is {}", how.as_str()),
        ),
        // A routed run none of whose containers gets the store (all skipped by the pod's own
        // annotation, which a tenant can add after admission, or none is a target): it carries
        // no credentials, whatever the annotation says.
        (Decision::Ignored(IgnoreReason::NoTargetContainer), Route::Rule(_) | Route::Default(_)) => (
            State::Missing,
            "no container of it gets the store (none is a target, or the pod's skip annotation \
             lists them all): it carries no credentials"
                .to_string(),
        ),
        (Decision::Audited(_), _) => (
            State::Audit,
            format!(
                "its route is in audit mode: no credentials from the webhook (store {:?} would be given)",
                out.store
            ),
        ),
        (Decision::Denied(check), _) => lacking(&decoded, plan, namespace, annotation, check),
        (Decision::Ignored(_) | Decision::Unchanged | Decision::Mutated, _) => {
            passing(route, annotation)
        }
    };
    pod.verdict = verdict;
    pod.why = cut(&why, MAX_WHY);
    Some(pod)
}

/// The pod passes today's check: current, unless its markers claim another decision (it has
/// today's pieces, and may still carry what that one gave).
fn passing<'a>(route: Route<'_>, annotation: impl Fn(&str) -> Option<&'a str>) -> (State, String) {
    let sp = match route {
        Route::Rule(r) => &r.plan,
        Route::Default(p) => p,
        Route::Unmatched(_) => return (State::Current, String::new()),
    };
    match (annotation(ANNOTATION_STORE), annotation(ANNOTATION_DECISION)) {
        (Some(store), _) if store != sp.store_name => (
            State::Stale,
            format!(
                "has store {:?}'s marker, today's config gives {:?}; recreate it",
                clip(store),
                sp.store_name
            ),
        ),
        (_, Some(d)) if d != sp.fingerprint => (
            State::Stale,
            format!(
                "has today's credentials but was injected under decision {}, today's is {}; recreate it to get the change",
                clip(d),
                sp.fingerprint
            ),
        ),
        _ => (State::Current, String::new()),
    }
}

/// The pod fails today's check: `stale` if it carries part of what the webhook gives (an
/// earlier decision's pieces where today's go), `missing` if it carries none of it, whatever
/// its annotations claim.
fn lacking<'a>(
    decoded: &Decoded<'_>,
    plan: &Plan,
    namespace: &str,
    annotation: impl Fn(&str) -> Option<&'a str>,
    check: &str,
) -> (State, String) {
    let claims = match (
        annotation(ANNOTATION_STORE),
        annotation(ANNOTATION_DECISION),
    ) {
        (Some(s), Some(d)) => format!(
            " (its markers claim store {:?}, decision {})",
            clip(s),
            clip(d)
        ),
        (Some(s), None) => format!(" (its markers claim store {:?})", clip(s)),
        _ => String::new(),
    };
    if carries_some(decoded, plan, namespace) {
        (
            State::Stale,
            format!("carries an earlier decision's credentials, not today's{claims}; recreate it: {check}"),
        )
    } else {
        (
            State::Missing,
            format!(
                "carries none of its store's credentials{claims}: the webhook never gave them \
                 (created or labelled while it was not called); recreate it: {check}"
            ),
        )
    }
}

/// Whether any target container already has, or has something else at the place of, a piece
/// today's decision gives (the engine's own per-container report).
fn carries_some(decoded: &Decoded<'_>, plan: &Plan, namespace: &str) -> bool {
    let out = engine::mutate(decoded, plan, &Request::pod_create(namespace).with_report());
    out.report.iter().any(|c| match c.status {
        ContainerStatus::Conflict => true,
        ContainerStatus::Served => c.pieces.iter().any(|p| p.state != PieceState::Added),
        _ => false,
    })
}

/// `s` if within `max` bytes; a longer value is none of Polyaxon's, so nothing is kept.
fn within(s: Option<&str>, max: usize) -> Option<String> {
    s.filter(|s| s.len() <= max).map(str::to_string)
}

/// `s`, cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A tenant-written value quoted in a reason: at most 64 bytes of it.
fn clip(s: &str) -> String {
    cut(s, 64)
}

/// One pod's classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub state: State,
    /// The store today's config routes it to (empty when unmatched).
    pub store: String,
    /// The rule that routes it (empty: the default store).
    pub rule: String,
    /// Why, in words.
    pub why: String,
    /// Objects the decision needs that the namespace lacks (as far as the view knows).
    pub missing: Vec<ObjectRef>,
}

/// Classify a judged pod (judged under `plan`) with what the view knows of its namespace's
/// objects. `None`: not a pod the webhook serves.
pub fn classify(pod: &RunPod, plan: &Plan, refs: &dyn References) -> Option<Classified> {
    if !engine::select::namespace_allowed(&pod.namespace, &plan.policy) {
        return None;
    }
    let Some((sp, rule)) = pod.route.resolve(plan) else {
        return Some(Classified {
            state: pod.verdict,
            store: String::new(),
            rule: String::new(),
            why: pod.why.clone(),
            missing: Vec::new(),
        });
    };
    let missing: Vec<(ObjectRef, String)> = match pod.verdict {
        State::Unmatched => Vec::new(),
        _ => missing_in(&sp.references, refs, &pod.namespace),
    };
    let words = || {
        missing
            .iter()
            .map(|(_, w)| w.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (state, why) = match (pod.verdict, missing.is_empty()) {
        (_, true) => (pod.verdict, pod.why.clone()),
        (State::Current | State::Stale, false) => (State::MissingReference, words()),
        (s, false) if pod.why.is_empty() => (s, words()),
        (s, false) => (s, format!("{}; {}", pod.why, words())),
    };
    Some(Classified {
        state,
        store: sp.store_name.clone(),
        rule: rule.to_string(),
        why,
        missing: missing.into_iter().map(|(r, _)| r).collect(),
    })
}
