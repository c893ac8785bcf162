//! The offline `mutate` command: a Pod or an AdmissionReview (JSON or YAML) in, a patch, the
//! patched pod, or the review response out. Same engine as the server.

use crate::admission::{self, ApiVersion, EncodeError, ReviewError};
use crate::engine::{self, Decision, Outcome, Request};
use crate::plan::Plan;
use serde_json::Value;

/// What `mutate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The RFC 6902 patch (`[]` when nothing is to be done).
    Patch,
    /// The patched pod, in the input's format.
    Pod,
    /// The AdmissionReview response.
    Review,
}

/// Why `mutate` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("input is neither JSON nor YAML: {0}")]
    NotADocument(#[source] serde_saphyr::Error),
    #[error("input is neither a Pod (no `spec`) nor an AdmissionReview")]
    NotPodOrReview,
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("denied: {0}")]
    Denied(String),
    #[error("internal error: the patch does not apply: {0}")]
    Patch(#[source] json_patch::PatchError),
    #[error("cannot write the output: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the output as YAML: {0}")]
    Yaml(#[source] serde_saphyr::ser::Error),
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
pub fn parse_document(input: &str) -> Result<(Value, bool), OfflineError> {
    let trimmed = input.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str(input) {
            return Ok((v, false));
        }
    }
    serde_saphyr::from_str::<Value>(input)
        .map(|v| (v, true))
        .map_err(OfflineError::NotADocument)
}

/// Run the engine on `input` and render `output`. `namespace` overrides the pod's own (for bare pods).
pub fn run(
    input: &str,
    plan: &Plan,
    output: Output,
    namespace: Option<&str>,
    explain: bool,
) -> Result<Rendered, OfflineError> {
    let (doc, yaml) = parse_document(input)?;
    let is_review = doc.get("kind").and_then(Value::as_str) == Some("AdmissionReview");
    let (pod, outcome, review_bytes, explanation) = if is_review {
        let body = serde_json::to_vec(&doc)?;
        let review = admission::Review::parse(&body)?;
        let outcome = engine::mutate(&review.object, plan, &report_if(review.facts(), explain));
        let bytes = admission::response_body(&review, &outcome)?;
        let explanation = explain
            .then(|| crate::explain::explain(&review.object, plan, &review.namespace, &outcome));
        let pod = doc
            .pointer("/request/object")
            .cloned()
            .unwrap_or(Value::Null);
        (pod, outcome, bytes, explanation)
    } else {
        if !doc.is_object() || doc.get("spec").is_none() {
            return Err(OfflineError::NotPodOrReview);
        }
        let ns = namespace
            .map(str::to_string)
            .or_else(|| {
                doc.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "default".to_string());
        let text = doc.to_string();
        let decoded = engine::decode(&text);
        let outcome = engine::mutate(
            &decoded,
            plan,
            &report_if(Request::pod_create(&ns), explain),
        );
        let bytes = admission::response_for(ApiVersion::V1, "offline", &outcome)?;
        let explanation = explain.then(|| crate::explain::explain(&decoded, plan, &ns, &outcome));
        (doc, outcome, bytes, explanation)
    };
    let text = match output {
        Output::Patch => pretty(&serde_json::to_value(&outcome.patch)?)?,
        Output::Pod => {
            if let Decision::Denied(m) = &outcome.decision {
                return Err(OfflineError::Denied(m.clone()));
            }
            let mut pod = pod;
            json_patch::patch(&mut pod, &outcome.patch).map_err(OfflineError::Patch)?;
            if yaml {
                serde_saphyr::to_string(&pod).map_err(OfflineError::Yaml)?
            } else {
                pretty(&pod)?
            }
        }
        Output::Review => pretty(&serde_json::from_slice::<Value>(&review_bytes)?)?,
    };
    Ok(Rendered {
        text,
        outcome,
        explanation,
    })
}

fn report_if(r: Request<'_>, on: bool) -> Request<'_> {
    if on {
        r.with_report()
    } else {
        r
    }
}

fn pretty(v: &Value) -> Result<String, OfflineError> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}
