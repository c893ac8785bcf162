//! Classifying a live run pod against today's config, from its metadata alone (what the fleet
//! view keeps of it): is it carrying what today's decision would give (`current`), an older
//! decision (`stale`), nothing of ours (`missing`), only the audit-mode annotations (`audit`),
//! or does its namespace lack an object the decision needs (`missing-reference`)? Pure: the
//! shell passes what it watched.

use crate::config::RunFacts;
use crate::engine::audit::ANNOTATION_MODE;
use crate::engine::select;
use crate::plan::{Plan, Route, ANNOTATION_CONFIG_HASH, ANNOTATION_DECISION, ANNOTATION_STORE};
use crate::references::{missing_in, ObjectRef, References};

/// What the fleet view keeps of one run pod (its metadata, a few hundred bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunPod {
    pub namespace: String,
    pub name: String,
    /// Polyaxon's run facts (annotations `operation.polyaxon.com/owner|project`, label
    /// `app.kubernetes.io/component`) and the run's uuid label.
    pub owner: Option<String>,
    pub project: Option<String>,
    pub component: Option<String>,
    pub run: Option<String>,
    /// Our markers as the pod carries them.
    pub store: Option<String>,
    pub decision: Option<String>,
    pub config_hash: Option<String>,
    pub audit: bool,
}

impl RunPod {
    /// Read what classification needs from a pod's labels and annotations.
    pub fn from_meta<'a>(
        namespace: &str,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        annotations: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> RunPod {
        let mut p = RunPod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ..RunPod::default()
        };
        for (k, v) in labels {
            match k {
                crate::engine::LABEL_COMPONENT => p.component = Some(v.to_string()),
                LABEL_RUN_UUID => p.run = Some(v.to_string()),
                _ => {}
            }
        }
        for (k, v) in annotations {
            match k {
                crate::engine::ANNOTATION_OWNER => p.owner = Some(v.to_string()),
                crate::engine::ANNOTATION_PROJECT => p.project = Some(v.to_string()),
                ANNOTATION_STORE => p.store = Some(v.to_string()),
                ANNOTATION_DECISION => p.decision = Some(v.to_string()),
                ANNOTATION_CONFIG_HASH => p.config_hash = Some(v.to_string()),
                ANNOTATION_MODE => p.audit = v == "audit",
                _ => {}
            }
        }
        p
    }
}

/// Polyaxon's label carrying the run's uuid.
pub const LABEL_RUN_UUID: &str = "operation.polyaxon.com/uuid";

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

    /// Whether a platform team must act (`fleet` exits 1).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            State::Stale | State::Missing | State::MissingReference
        )
    }
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

/// Classify `pod` against `plan`. `None`: not a pod the webhook serves (namespace excluded).
pub fn classify(pod: &RunPod, plan: &Plan, refs: &dyn References) -> Option<Classified> {
    if !select::namespace_allowed(&pod.namespace, &plan.policy) {
        return None;
    }
    let facts = RunFacts {
        namespace: &pod.namespace,
        owner: pod.owner.as_deref(),
        project: pod.project.as_deref(),
        component: pod.component.as_deref(),
    };
    let (sp, rule) = match plan.route(&facts) {
        Route::Rule(r) => (&r.plan, r.name.as_str()),
        Route::Default(p) => (p, ""),
        Route::Unmatched(how) => {
            return Some(Classified {
                state: State::Unmatched,
                store: String::new(),
                rule: String::new(),
                why: format!("no rule matches and noMatch is {}", how.as_str()),
                missing: Vec::new(),
            })
        }
    };
    let missing: Vec<(ObjectRef, String)> = missing_in(&sp.references, refs, &pod.namespace);
    let (state, why) = match (&pod.store, &pod.decision, &pod.config_hash) {
        (None, _, _) => (
            State::Missing,
            "the webhook never admitted it (no plx-store-webhook.dev/store): created before the \
             webhook was installed or while it was not called; recreate it"
                .to_string(),
        ),
        _ if pod.audit => (
            State::Audit,
            format!("admitted in audit mode: it has no credentials from the webhook (store {:?} would be given)", sp.store_name),
        ),
        (Some(store), decision, hash) => {
            let same = match decision {
                Some(d) => d == &sp.fingerprint,
                // Admitted before the fingerprint existed: current only under the same config.
                None => hash.as_deref() == Some(plan.config_hash.as_str()),
            };
            if same && store == &sp.store_name {
                (State::Current, String::new())
            } else if store != &sp.store_name {
                (
                    State::Stale,
                    format!("has store {store:?}, today's config gives {:?}; recreate it", sp.store_name),
                )
            } else {
                (
                    State::Stale,
                    format!(
                        "injected under decision {}, today's is {}; recreate it to get the change",
                        decision.as_deref().or(hash.as_deref()).unwrap_or("?"),
                        sp.fingerprint
                    ),
                )
            }
        }
    };
    let (state, why) = match (state, missing.is_empty()) {
        (State::Current | State::Stale, false) => (
            State::MissingReference,
            missing
                .iter()
                .map(|(_, w)| w.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (s, false) if !why.is_empty() => (
            s,
            format!(
                "{why}; {}",
                missing
                    .iter()
                    .map(|(_, w)| w.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        (s, _) => (s, why),
    };
    Some(Classified {
        state,
        store: sp.store_name.clone(),
        rule: rule.to_string(),
        why,
        missing: missing.into_iter().map(|(r, _)| r).collect(),
    })
}
