//! The offline `mutate` command: a Pod or an AdmissionReview (JSON or YAML) in, a patch, the
//! patched pod, or the review response out. Same engine as the server.

use crate::admission::{self, ApiVersion};
use crate::engine::{self, Decision, Outcome, Request};
use crate::plan::Plan;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The RFC 6902 patch (`[]` when nothing is to be done).
    Patch,
    /// The patched pod, in the input's format.
    Pod,
    /// The AdmissionReview response.
    Review,
}

/// What the command prints, and the engine's outcome (for exit codes and warnings).
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    pub outcome: Outcome,
    /// With `explain`: which rule matched and why each piece was or was not added.
    pub explanation: Option<String>,
}

/// Parse JSON, or else YAML, into a JSON value.
pub fn parse_document(input: &str) -> Result<(Value, bool), String> {
    let trimmed = input.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str(input) {
            return Ok((v, false));
        }
    }
    serde_saphyr::from_str::<Value>(input)
        .map(|v| (v, true))
        .map_err(|e| format!("input is neither JSON nor YAML: {e}"))
}

/// Run the engine on `input` and render `output`. `namespace` overrides the pod's own (for bare pods).
pub fn run(
    input: &str,
    plan: &Plan,
    output: Output,
    namespace: Option<&str>,
    explain: bool,
) -> Result<Rendered, String> {
    let (doc, yaml) = parse_document(input)?;
    let is_review = doc.get("kind").and_then(Value::as_str) == Some("AdmissionReview");
    let (pod, ns, outcome, review_bytes) = if is_review {
        let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        let (review, outcome, bytes) = admission::review(&body, plan).map_err(|e| e.to_string())?;
        let pod = doc
            .pointer("/request/object")
            .cloned()
            .unwrap_or(Value::Null);
        let ns = review.namespace.to_string();
        (pod, ns, outcome, bytes)
    } else {
        if !doc.is_object() || doc.get("spec").is_none() {
            return Err("input is neither a Pod (no `spec`) nor an AdmissionReview".into());
        }
        let ns = namespace
            .map(str::to_string)
            .or_else(|| {
                doc.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "default".to_string());
        let outcome = engine::mutate(&doc, plan, &Request::pod_create(&ns));
        let bytes = admission::response_for(ApiVersion::V1, "offline", &outcome);
        (doc, ns, outcome, bytes)
    };
    let explanation = explain.then(|| crate::explain::explain(&pod, plan, &ns, &outcome));
    let text = match output {
        Output::Patch => pretty(&serde_json::to_value(&outcome.patch).map_err(|e| e.to_string())?),
        Output::Pod => {
            if let Decision::Denied(m) = &outcome.decision {
                return Err(format!("denied: {m}"));
            }
            let mut pod = pod;
            json_patch::patch(&mut pod, &outcome.patch)
                .map_err(|e| format!("internal error: the patch does not apply: {e}"))?;
            if yaml {
                serde_saphyr::to_string(&pod).map_err(|e| e.to_string())?
            } else {
                pretty(&pod)
            }
        }
        Output::Review => {
            let v: Value = serde_json::from_slice(&review_bytes).map_err(|e| e.to_string())?;
            pretty(&v)
        }
    };
    Ok(Rendered {
        text,
        outcome,
        explanation,
    })
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
