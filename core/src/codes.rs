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

/// Every code, in matching order (audit notes first: they quote the denial they would be).
pub const REGISTRY: &[Code] = &[
    Code {
        code: "PSW2101",
        kind: Kind::Warning,
        marker: "audit: would deny",
        title: "audit: would deny",
        cause: "The run's route is in audit mode and inject mode would refuse the pod; the text after it is that denial (with its own cause).",
        fix: "Fix what the quoted denial says before switching the rule to `mode: inject`.",
    },
    Code {
        code: "PSW2102",
        kind: Kind::Warning,
        marker: "audit: would add",
        title: "audit: would add",
        cause: "The run's route is in audit mode: the pod was admitted unchanged, and inject mode would add these pieces.",
        fix: "Nothing, while rolling out; switch the rule to `mode: inject` when the audit looks right.",
    },
    Code {
        code: "PSW2103",
        kind: Kind::Warning,
        marker: "audit: would change nothing",
        title: "audit: would change nothing",
        cause: "Audit mode, and the pod already has everything the store gives.",
        fix: "Nothing.",
    },
    Code {
        code: "PSW2104",
        kind: Kind::Warning,
        marker: "audit: would set serviceAccountName",
        title: "audit: would set the ServiceAccount",
        cause: "Audit mode on a keyless route: inject mode would run the pod as the store's identity.",
        fix: "Nothing, while rolling out.",
    },
    Code {
        code: "PSW2105",
        kind: Kind::Warning,
        marker: "audit: would label the pod",
        title: "audit: would add the Azure label",
        cause: "Audit mode on a keyless wasb route: inject mode would add `azure.workload.identity/use`.",
        fix: "Nothing, while rolling out.",
    },
    Code {
        code: "PSW1001",
        kind: Kind::Denial,
        marker: "cannot give store",
        title: "the store cannot be added to the pod",
        cause: "A container already uses the store's mount directory, a read-only mount holds it, or another mount lies inside it (`injection.onConflict: deny`).",
        fix: "Fix the pod or the store's mountPath, set `injection.onConflict: skip`, or list the container in the annotation `plx-store-webhook.dev/skip-containers`.",
    },
    Code {
        code: "PSW1002",
        kind: Kind::Denial,
        marker: "too large to check",
        title: "the pod is too large to check",
        cause: "The pod is over the webhook's size limits; it is refused rather than admitted unchecked.",
        fix: "Shrink the pod (fewer containers, env entries or volumes), or raise the limits (docs: operations).",
    },
    Code {
        code: "PSW1003",
        kind: Kind::Denial,
        marker: "is not a valid Pod",
        title: "the object is not a valid Pod",
        cause: "A run pod does not fit the Pod schema at the named field.",
        fix: "Fix the field named in the message.",
    },
    Code {
        code: "PSW1004",
        kind: Kind::Denial,
        marker: "request.object is missing",
        title: "the request carries no pod",
        cause: "An AdmissionReview without `request.object`.",
        fix: "A client bug: send the pod in `request.object`.",
    },
    Code {
        code: "PSW1005",
        kind: Kind::Denial,
        marker: "no store rule matches this run",
        title: "no store rule matches the run",
        cause: "No rule of `injection.rules` matches the run and `injection.noMatch` is `deny` (a denial) or `warn` (a warning; the run gets no credentials).",
        fix: "Add a rule for the run's namespace/owner/project, or set `injection.noMatch: default`.",
    },
    Code {
        code: "PSW1006",
        kind: Kind::Denial,
        marker: "(injection.onMissingReference: deny)",
        title: "an object the decision needs is missing",
        cause: "The fleet view saw that the run's namespace lacks a Secret, ConfigMap or claim the store needs (`injection.onMissingReference: deny`).",
        fix: "Create the object in that namespace, or route the namespace to another store; then recreate the pod.",
    },
    Code {
        code: "PSW1007",
        kind: Kind::Denial,
        marker: "(enforce): this run is routed to store",
        title: "enforce: the run lacks its store",
        cause: "The validating webhook saw a run without the credentials of its route (removed after the mutating webhook, or it was bypassed), or with another route's.",
        fix: "Recreate the pod with the mutating webhook in place (docs: enforce).",
    },
    Code {
        code: "PSW1008",
        kind: Kind::Denial,
        marker: "the pod asks for service account",
        title: "the pod asks for another identity",
        cause: "A keyless run asks for a ServiceAccount that is another store's cloud identity.",
        fix: "Remove `serviceAccountName` from the run, or route it to that store.",
    },
    Code {
        code: "PSW1009",
        kind: Kind::Denial,
        marker: "Keyless stores need bound service account tokens",
        title: "no bound service account token",
        cause: "A keyless run mounts a legacy token Secret; cloud identity federation needs the projected, bound token.",
        fix: "Use Kubernetes 1.22+ bound tokens (remove the legacy token volume).",
    },
    Code {
        code: "PSW1010",
        kind: Kind::Denial,
        marker: "Remove the key from the pod",
        title: "a key would win over the identity",
        cause: "A keyless run carries a key (env or file) the cloud clients use before the identity (`injection.onConflict: deny`).",
        fix: "Remove the key from the pod, or set `injection.onConflict: skip`.",
    },
    Code {
        code: "PSW1011",
        kind: Kind::Denial,
        marker: "A run may not carry another route's credentials",
        title: "another route's store credentials",
        cause: "The run is routed to one store but carries another route's store Secret (a plain or projected volume, `envFrom` or `env` `secretKeyRef`); refused in every mode, whatever `onConflict` says.",
        fix: "Remove the other store's Secret from the run, or route the run to that store.",
    },
    Code {
        code: "PSW2001",
        kind: Kind::Warning,
        marker: "container skipped (injection.onConflict: skip)",
        title: "a container was skipped",
        cause: "A container conflicts with the store's mounts and `injection.onConflict: skip` let the pod in without the store in that container.",
        fix: "Fix the container's mounts if it needs the store.",
    },
    Code {
        code: "PSW2002",
        kind: Kind::Warning,
        marker: "mounted with subPathExpr",
        title: "GC_KEY_PATH cannot be checked",
        cause: "The key's directory is mounted with `subPathExpr`, whose files the webhook cannot know.",
        fix: "Mount the store's secret without `subPathExpr`.",
    },
    Code {
        code: "PSW2003",
        kind: Kind::Warning,
        marker: "is already set and was kept",
        title: "an env var was kept",
        cause: "The container already sets a variable the store would set; its value wins.",
        fix: "Remove the variable from the pod if the store's value is wanted.",
    },
    Code {
        code: "PSW2004",
        kind: Kind::Warning,
        marker: "GC_KEY_PATH is set to",
        title: "GC_KEY_PATH points elsewhere",
        cause: "The container's own `GC_KEY_PATH` was kept but does not name the mounted key.",
        fix: "Remove `GC_KEY_PATH` from the pod.",
    },
    Code {
        code: "PSW2005",
        kind: Kind::Warning,
        marker: "the Polyaxon SDK picks among GC_KEY_PATH and its aliases at random",
        title: "a key-path alias set by valueFrom",
        cause: "An alias of `GC_KEY_PATH` (e.g. `GOOGLE_APPLICATION_CREDENTIALS`) is set by `valueFrom`, which the webhook cannot check; the Polyaxon SDK picks among the aliases at random.",
        fix: "Remove the alias from the pod (the webhook sets it to the key file).",
    },
    Code {
        code: "PSW2017",
        kind: Kind::Warning,
        marker: "GC_KEY_PATH is a valueFrom reference and was kept",
        title: "GC_KEY_PATH set by valueFrom",
        cause: "The container sets `GC_KEY_PATH` by `valueFrom`, which the webhook cannot check; it was kept.",
        fix: "Remove `GC_KEY_PATH` from the pod so the webhook sets it to the mounted key file.",
    },
    Code {
        code: "PSW2006",
        kind: Kind::Warning,
        marker: "does not expose key",
        title: "the secret does not expose the key",
        cause: "The mounted Secret's `items` leave out the GCS key file, so `GC_KEY_PATH` was not set.",
        fix: "List the key in the store's `secret.items`.",
    },
    Code {
        code: "PSW2007",
        kind: Kind::Warning,
        marker: "is owned by root and the pod",
        title: "the key file is unreadable",
        cause: "The container runs as a non-root user and the key file's mode lets only root read it.",
        fix: "Set `secret.defaultMode` (e.g. `0444`) or `fsGroup` so the user can read it.",
    },
    Code {
        code: "PSW2008",
        kind: Kind::Warning,
        marker: "takes its environment from secret",
        title: "envFrom may carry a key",
        cause: "A keyless run's container takes its environment from a Secret whose keys may hold a credential that wins over the identity.",
        fix: "Remove the `envFrom` Secret, or check it holds no cloud key.",
    },
    Code {
        code: "PSW2009",
        kind: Kind::Warning,
        marker: "carries a key (",
        title: "a container carries a key",
        cause: "A keyless run's container carries a key the clients would use before the identity (`injection.onConflict: skip`).",
        fix: "Remove the key from the pod.",
    },
    Code {
        code: "PSW2010",
        kind: Kind::Warning,
        marker: "which was kept: it does not get the keyless store",
        title: "the run's own ServiceAccount was kept",
        cause: "A keyless run asked for its own ServiceAccount, which was kept; it does not get the store's identity.",
        fix: "Drop `serviceAccountName` from the run, or give that account the store's cloud identity.",
    },
    Code {
        code: "PSW2011",
        kind: Kind::Warning,
        marker: "the account was kept (injection.onConflict: skip)",
        title: "the identity was not applied",
        cause: "A keyless identity conflict and `injection.onConflict: skip`: the run keeps its account.",
        fix: "Resolve the conflict named in the message.",
    },
    Code {
        code: "PSW2012",
        kind: Kind::Warning,
        marker: "mounts its service account token from a Secret",
        title: "legacy token Secret",
        cause: "A container mounts a legacy ServiceAccount token Secret (`injection.onConflict: skip`).",
        fix: "Use bound tokens (remove the volume).",
    },
    Code {
        code: "PSW2013",
        kind: Kind::Warning,
        marker: "is in audit mode for this run: not enforced",
        title: "enforce: audit-mode route",
        cause: "The validating webhook does not enforce a route in audit mode.",
        fix: "Nothing; switch the rule to `mode: inject` to enforce it.",
    },
    Code {
        code: "PSW2014",
        kind: Kind::Warning,
        marker: "not found in namespace",
        title: "an object the decision needs is missing",
        cause: "The fleet view saw that the run's namespace lacks a Secret, ConfigMap or claim the store needs (`injection.onMissingReference: warn`): the pod will not start.",
        fix: "Create the object in that namespace, or route the namespace to another store.",
    },
    Code {
        code: "PSW2015",
        kind: Kind::Warning,
        marker: "more warnings not shown",
        title: "warnings cut short",
        cause: "The pod drew more warnings than a response carries; the rest were dropped.",
        fix: "Fix the warnings shown and check again (`mutate -o results` lists each object's).",
    },
    Code {
        code: "PSW2016",
        kind: Kind::Warning,
        marker: "takes its environment from configMap",
        title: "envFrom of a ConfigMap may carry a credential",
        cause: "A keyless run's container takes its environment from a ConfigMap (not the route's own) whose keys the webhook cannot see; one could hold a credential variable that wins over the identity.",
        fix: "Remove the `envFrom` ConfigMap, or check it holds no credential variable.",
    },
    Code {
        code: "PSW2018",
        kind: Kind::Warning,
        marker: "takes the connections catalog",
        title: "connections catalog by reference",
        cause: "A keyless run's container sets POLYAXON_CONNECTIONS_CATALOG by valueFrom, so the webhook cannot read the connections Polyaxon's SDK (vents) will use; a store connection there with a secret or configMap mountPath, or credential env, would be used before the identity.",
        fix: "Let Polyaxon set the catalog (by value), or check the referenced value holds no credential source for the store's connection.",
    },
    Code {
        code: "PSW3001",
        kind: Kind::NotServed,
        marker: "not a pod CREATE",
        title: "not a pod CREATE",
        cause: "The request is not the creation of a core/v1 Pod (an update, a subresource, another resource).",
        fix: "Nothing: the webhook serves pod CREATE only.",
    },
    Code {
        code: "PSW3002",
        kind: Kind::NotServed,
        marker: "labels do not match the run selector",
        title: "not a Polyaxon run",
        cause: "The pod's labels do not match `injection.selector` (Polyaxon's run labels by default).",
        fix: "Nothing, unless it is a run: check its labels and `injection.selector`.",
    },
    Code {
        code: "PSW3003",
        kind: Kind::NotServed,
        marker: "namespace excluded by injection.namespaces",
        title: "namespace excluded",
        cause: "`injection.namespaces` leaves the pod's namespace out.",
        fix: "Change `injection.namespaces` if the namespace's runs need the store.",
    },
    Code {
        code: "PSW3004",
        kind: Kind::NotServed,
        marker: "no target container",
        title: "no target container",
        cause: "No container matches `injection.containers` / `initContainers`.",
        fix: "Add the container's name (or a glob) to `injection.containers`.",
    },
    Code {
        code: "PSW3005",
        kind: Kind::NotServed,
        marker: "no store rule matched (injection.noMatch: warn)",
        title: "no rule matched (warn)",
        cause: "No rule matches and `injection.noMatch` is `warn`: the pod is let in without credentials.",
        fix: "Add a rule, or set `injection.noMatch: default`.",
    },
    Code {
        code: "PSW4001",
        kind: Kind::Config,
        marker: "",
        title: "bucket scheme does not fit the store kind",
        cause: "A store's bucket URL has a scheme for another kind (`gs://` on an `s3` store). A `check-config` error.",
        fix: "Fix the bucket or the store's `kind`.",
    },
    Code {
        code: "PSW4002",
        kind: Kind::Config,
        marker: "",
        title: "a rule matches every run by an empty list",
        cause: "A rule's `match` field is an empty list, which matches every run. A `check-config` error.",
        fix: "Leave the field out to mean any, or list what it should match.",
    },
    Code {
        code: "PSW4003",
        kind: Kind::Config,
        marker: "",
        title: "a rule can never match",
        cause: "An earlier rule catches every run this one matches (first match wins). A `check-config` note (an error with `--strict`).",
        fix: "Move the rule above the earlier one, or narrow the earlier one.",
    },
    Code {
        code: "PSW5001",
        kind: Kind::Cli,
        marker: "not a Pod or pod template",
        title: "not a Pod or pod template",
        cause: "An object given to `mutate`, `validate` or `test` is neither a Pod, an AdmissionReview nor a workload with a pod template. Reported and skipped; only when nothing in the input is a pod is it an error (exit 1).",
        fix: "Nothing: the webhook never sees it.",
    },
];

/// The code of a message (the first registry entry whose marker it contains).
pub fn code_of(message: &str) -> &'static str {
    REGISTRY
        .iter()
        .find(|c| !c.marker.is_empty() && message.contains(c.marker))
        .map_or(UNKNOWN, |c| c.code)
}

/// The entry of `code`.
pub fn lookup(code: &str) -> Option<&'static Code> {
    REGISTRY.iter().find(|c| c.code == code)
}

/// `message` with its code in front, as the command line and logs show it: `[PSW1001] …`.
pub fn tagged(message: &str) -> String {
    format!("[{}] {message}", code_of(message))
}

/// A warning with its code, still within what the kube-apiserver keeps of one warning: the tag
/// is part of the text the apiserver counts.
pub fn tagged_warning(message: &str) -> String {
    crate::engine::warnings::cut(tagged(message), crate::engine::warnings::MAX_CHARS)
}

/// docs/codes.md: every code with its cause and fix (a test keeps the file equal to this).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Message codes\n\nAfter this page you can tell, from the code a user or a log line shows, why \
         the webhook said it and what to do.\n\n<!-- Generated from core/src/codes.rs by `cargo test --test cli_reference` \
         (UPDATE_DOCS=1 rewrites it). -->\n\nEvery denial, warning, not-served reason and \
         `check-config` finding carries a stable code. It is shown in `[PSWnnnn]` form by `mutate`, \
         `validate`, `test` and `check-config`, in `mutate --explain`, in the JSON outputs (`code`, \
         `warnings[].code`) and in the JSON decision log (`codes`). The text of a message may change \
         between releases; its code does not. `PSW0000` marks a message with no code yet.\n\n\
         | range | kind |\n|---|---|\n| PSW1xxx | denials (the pod is refused) |\n\
         | PSW2xxx | warnings (the pod is admitted; `PSW21xx`: audit mode) |\n\
         | PSW3xxx | not served (the webhook leaves the pod alone) |\n\
         | PSW4xxx | `check-config` findings |\n| PSW5xxx | command-line notes |\n",
    );
    let mut codes: Vec<&Code> = REGISTRY.iter().collect();
    codes.sort_by_key(|c| c.code);
    for c in codes {
        out.push_str(&format!(
            "\n## {}: {}\n\n**Cause.** {}\n\n**Fix.** {}\n",
            c.code, c.title, c.cause, c.fix
        ));
    }
    out
}

/// The code of a not-served reason.
pub fn ignore_code(r: IgnoreReason) -> &'static str {
    code_of(r.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_each_marker_finds_its_own_code() {
        let mut seen = std::collections::HashSet::new();
        for c in REGISTRY {
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!(c.code.len() == 7 && c.code.starts_with("PSW"), "{}", c.code);
            if !c.marker.is_empty() {
                assert_eq!(code_of(c.marker), c.code, "{}", c.marker);
            }
        }
        for r in IgnoreReason::ALL {
            assert_ne!(ignore_code(r), UNKNOWN, "{r:?}");
        }
    }
}
