//! The offline commands: `mutate` (the `/mutate` answer) and `validate` (the `/validate`
//! answer) on files, and `test` (expected answers declared in YAML). Same engine as the server;
//! every object is answered on its own, with its kind and name.

pub mod objects;
pub mod render;
pub mod testfile;

use crate::admission::{self, ApiVersion};
use crate::engine::{self, Decision, Outcome, Request};
use crate::plan::Plan;
use objects::{Doc, Shape};
use serde::Serialize;
use serde_json::Value;

/// Which webhook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The mutating webhook (`/mutate`).
    Mutate,
    /// The validating webhook (`/validate`, enforce): never a patch.
    Validate,
}

/// A warning with its stable code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub message: String,
}

impl Finding {
    pub fn of(message: &str) -> Self {
        Finding {
            code: crate::codes::code_of(message),
            message: message.to_string(),
        }
    }
}

/// The answer for one pod or pod template (the JSON shape of `mutate -o results`, `validate -o
/// json` and the `test` results: every field always present).
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// The file (or `<stdin>`) it was read from.
    pub source: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// The replica type of a training job's template (`Worker`), else empty.
    pub replica: String,
    /// `mutated`, `unchanged`, `allowed` (validate), `denied`, `not-served`, `audited`,
    /// `skipped` (not a pod or pod template) or `error` (unreadable).
    pub decision: &'static str,
    /// Its stable code (denials, not-served reasons, skips), else empty.
    pub code: &'static str,
    /// Why: the denial, the reason it is not served, the skip or the error.
    pub message: String,
    pub store: String,
    pub rule: String,
    /// Keyless stores: the ServiceAccount the run runs as.
    pub identity: String,
    pub warnings: Vec<Finding>,
    /// `mutate` only: the JSON patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Vec<json_patch::PatchOperation>>,
    /// `--explain`: which rule matched and why each piece was or was not added.
    #[serde(skip)]
    pub explanation: Option<String>,
    /// The AdmissionReview response (`-o review`).
    #[serde(skip)]
    pub review: Option<Vec<u8>>,
}

impl ObjectResult {
    /// `Kind/name` (with the replica type), as kubectl names objects.
    pub fn label(&self) -> String {
        let mut s = format!(
            "{}/{}",
            if self.kind.is_empty() {
                "?"
            } else {
                &self.kind
            },
            self.name
        );
        if !self.replica.is_empty() {
            s.push_str(&format!(" ({})", self.replica));
        }
        s
    }

    fn new(doc: &Doc, kind: &str, name: &str, namespace: &str) -> Self {
        ObjectResult {
            source: doc.source.clone(),
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
            replica: String::new(),
            decision: "skipped",
            code: "",
            message: String::new(),
            store: String::new(),
            rule: String::new(),
            identity: String::new(),
            warnings: Vec::new(),
            patch: None,
            explanation: None,
            review: None,
        }
    }

    fn error(mut self, message: String) -> Self {
        self.decision = "error";
        self.message = message;
        self
    }

    fn fill(&mut self, outcome: &Outcome, mode: Mode) {
        self.decision = decision_label(&outcome.decision, mode);
        match &outcome.decision {
            Decision::Denied(m) => {
                self.message = m.clone();
                self.code = crate::codes::code_of(m);
            }
            Decision::Ignored(r) => {
                self.message = r.as_str().to_string();
                self.code = crate::codes::ignore_code(*r);
            }
            _ => {}
        }
        self.store.clone_from(&outcome.store);
        self.rule.clone_from(&outcome.rule);
        self.identity.clone_from(&outcome.identity);
        self.warnings = outcome.warnings.iter().map(|w| Finding::of(w)).collect();
        if mode == Mode::Mutate {
            self.patch = Some(outcome.patch.clone());
        }
    }
}

/// The decision's name in results.
pub fn decision_label(d: &Decision, mode: Mode) -> &'static str {
    match d {
        Decision::Ignored(_) => "not-served",
        Decision::Denied(_) => "denied",
        Decision::Audited(_) => "audited",
        Decision::Mutated if mode == Mode::Mutate => "mutated",
        Decision::Unchanged if mode == Mode::Mutate => "unchanged",
        Decision::Mutated | Decision::Unchanged => "allowed",
    }
}

/// Every object's answer, and the objects as the webhook would leave them.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub results: Vec<ObjectResult>,
    /// The input objects, patched (denied ones and non-pods left out).
    pub objects: Vec<Doc>,
}

impl Evaluated {
    /// The exit code: 1 when an object could not be read (or nothing was a pod), 2 when one was
    /// denied, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.results.iter().any(|r| r.decision == "error")
            || !self.results.iter().any(|r| r.decision != "skipped")
        {
            1
        } else if self.results.iter().any(|r| r.decision == "denied") {
            2
        } else {
            0
        }
    }
}

/// Answer every pod and pod template of `docs` as `mode`'s webhook would. `namespace` overrides
/// the objects' own (default: their `metadata.namespace`, else `default`).
pub fn evaluate(
    docs: Vec<Doc>,
    plan: &Plan,
    mode: Mode,
    namespace: Option<&str>,
    explain: bool,
) -> Evaluated {
    let mut out = Evaluated::default();
    for mut doc in docs {
        let kind = objects::kind(&doc.value).to_string();
        let name = doc
            .value
            .pointer("/metadata/name")
            .or_else(|| doc.value.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ns = namespace
            .map(str::to_string)
            .or_else(|| {
                doc.value
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "default".to_string());
        let base = ObjectResult::new(&doc, &kind, &name, &ns);
        let mut keep = true;
        match objects::shape(&doc.value) {
            Shape::Pod => {
                let (r, patched) = one_pod(base, &doc.value, plan, mode, &ns, explain);
                keep = r.decision != "denied" && r.decision != "error";
                if let Some(p) = patched {
                    doc.value = p;
                }
                out.results.push(r);
            }
            Shape::Review => {
                let (r, patched) = review(base, &doc.value, plan, mode, explain);
                keep = r.decision != "denied" && r.decision != "error";
                if let Some(p) = patched {
                    doc.value = p;
                }
                out.results.push(r);
            }
            Shape::Templates(ts) if ts.is_empty() => {
                let mut r = base;
                r.code = crate::codes::NOT_A_POD;
                r.message = format!("not a Pod or pod template: kind {kind} with no pod template");
                out.results.push(r);
                keep = false;
            }
            Shape::Templates(ts) => {
                for t in ts {
                    let mut r = base.clone();
                    r.replica.clone_from(&t.replica);
                    let Some(pod) = objects::template_pod(&doc.value, &t.pointer) else {
                        continue;
                    };
                    let (r, patched) = one_pod(r, &pod, plan, mode, &ns, explain);
                    keep &= r.decision != "denied" && r.decision != "error";
                    if let Some(p) = patched {
                        objects::put_template(&mut doc.value, &t.pointer, &p);
                    }
                    out.results.push(r);
                }
            }
            Shape::NotAPod(what) => {
                let mut r = base;
                r.code = crate::codes::NOT_A_POD;
                r.message = format!("not a Pod or pod template: {what}");
                out.results.push(r);
                keep = false;
            }
        }
        if keep {
            out.objects.push(doc);
        }
    }
    if mode == Mode::Mutate {
        for r in &mut out.results {
            r.patch.get_or_insert_with(Vec::new);
        }
    }
    out
}

fn request(ns: &str, explain: bool) -> Request<'_> {
    let r = Request::pod_create(ns);
    if explain {
        r.with_report()
    } else {
        r
    }
}

/// One pod: its answer and, for `mutate`, the patched pod.
fn one_pod(
    mut r: ObjectResult,
    pod: &Value,
    plan: &Plan,
    mode: Mode,
    ns: &str,
    explain: bool,
) -> (ObjectResult, Option<Value>) {
    let text = pod.to_string();
    let decoded = engine::decode(&text);
    let outcome = match mode {
        Mode::Mutate => engine::mutate(&decoded, plan, &request(ns, explain)),
        Mode::Validate => engine::validate(&decoded, plan, &Request::pod_create(ns)),
    };
    r.fill(&outcome, mode);
    if explain && mode == Mode::Mutate {
        r.explanation = Some(crate::explain::explain(&decoded, plan, ns, &outcome));
    }
    r.review = admission::response_for(ApiVersion::V1, "offline", &outcome).ok();
    patched(r, pod, &outcome)
}

fn patched(r: ObjectResult, pod: &Value, outcome: &Outcome) -> (ObjectResult, Option<Value>) {
    if outcome.patch.is_empty() {
        return (r, None);
    }
    let mut p = pod.clone();
    match json_patch::patch(&mut p, &outcome.patch) {
        Ok(()) => (r, Some(p)),
        Err(e) => (
            r.error(format!("internal error: the patch does not apply: {e}")),
            None,
        ),
    }
}

/// An AdmissionReview: answered as the server answers it.
fn review(
    mut r: ObjectResult,
    doc: &Value,
    plan: &Plan,
    mode: Mode,
    explain: bool,
) -> (ObjectResult, Option<Value>) {
    let body = doc.to_string();
    let review = match admission::Review::parse(body.as_bytes()) {
        Ok(rv) => rv,
        Err(e) => return (r.error(e.to_string()), None),
    };
    let object = doc
        .pointer("/request/object")
        .cloned()
        .unwrap_or(Value::Null);
    r.kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Pod")
        .to_string();
    r.name = object
        .pointer("/metadata/name")
        .or_else(|| object.pointer("/metadata/generateName"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    r.namespace = review.namespace.to_string();
    let outcome = match mode {
        Mode::Mutate => {
            let mut req = review.facts();
            if explain {
                req = req.with_report();
            }
            engine::mutate(&review.object, plan, &req)
        }
        Mode::Validate => review.validate(plan),
    };
    r.fill(&outcome, mode);
    if explain && mode == Mode::Mutate {
        r.explanation = Some(crate::explain::explain(
            &review.object,
            plan,
            &review.namespace,
            &outcome,
        ));
    }
    r.review = admission::response_body(&review, &outcome).ok();
    patched(r, &object, &outcome)
}
