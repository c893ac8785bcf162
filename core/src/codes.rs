//! Stable message codes: one registry of every denial, warning and finding the webhook emits,
//! each with its cause and fix (docs/codes.md is generated from it and held equal by a test).
//! Codes are assigned by what a message says, at the edge (responses, logs, CLI output), so the
//! engine's call sites stay plain strings.

use crate::engine::IgnoreReason;

/// What a code is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Denial,
    Warning,
    NotServed,
    Config,
    Cli,
}

/// One code.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Code {
    pub code: &'static str,
    pub kind: Kind,
    /// Text every message with this code contains (first match in the registry wins).
    #[serde(skip)]
    pub marker: &'static str,
    pub title: &'static str,
    pub cause: &'static str,
    pub fix: &'static str,
}

/// A message of no registered kind.
pub const UNKNOWN: &str = "PSW0000";
/// `mutate`/`validate`: an object that is not a Pod or pod template.
pub const NOT_A_POD: &str = "PSW5001";

/// `check-config`: a bucket URL whose scheme does not fit the store kind.
pub const LINT_BUCKET_SCHEME: &str = "PSW4001";
/// `check-config`: a rule's `match` field written as an empty list.
pub const LINT_EMPTY_LIST: &str = "PSW4002";
/// `check-config`: a rule an earlier one shadows.
pub const LINT_SHADOWED: &str = "PSW4003";

/// Every code.
pub const REGISTRY: &[Code] = &[Code {
    code: NOT_A_POD,
    kind: Kind::Cli,
    marker: "not a Pod or pod template",
    title: "not a Pod or pod template",
    cause: "An object given to `mutate`, `validate` or `test` is neither a Pod, an AdmissionReview nor a workload with a pod template.",
    fix: "Nothing to do: the webhook never sees it. Pass only the manifests you mean to check to make the exit code strict.",
}];

/// The code of a message (the first registry entry whose marker it contains).
pub fn code_of(message: &str) -> &'static str {
    REGISTRY
        .iter()
        .find(|c| !c.marker.is_empty() && message.contains(c.marker))
        .map_or(UNKNOWN, |c| c.code)
}

/// The code of a not-served reason.
pub fn ignore_code(r: IgnoreReason) -> &'static str {
    code_of(r.as_str())
}
