//! The AdmissionReview envelope: read the uid and request facts first (so a malformed pod can
//! still be answered with its uid), answer in the request's API version with a standard base64
//! patch. kube-core's typed review is not used: it loses the uid when the pod is malformed and
//! serialises the patch as an array of numbers (kube-rs/kube#1781).

use crate::engine::{self, Decision, Outcome, Request};
use crate::plan::Plan;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

/// The two admission API versions the apiserver may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V1Beta1,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "admission.k8s.io/v1",
            ApiVersion::V1Beta1 => "admission.k8s.io/v1beta1",
        }
    }

    /// Short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V1Beta1 => "v1beta1",
        }
    }
}

/// A body that cannot be answered as a review (the HTTP layer turns it into a 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not an AdmissionReview: {0}")]
    NotAReview(String),
}

/// An AdmissionReview request, envelope decoded, pod still raw JSON.
#[derive(Debug)]
pub struct Review {
    pub api_version: ApiVersion,
    pub uid: String,
    pub operation: String,
    pub namespace: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub sub_resource: String,
    pub dry_run: bool,
    pub object: Value,
}

fn not_review(msg: impl Into<String>) -> ReviewError {
    ReviewError::NotAReview(msg.into())
}

/// Optional string field: absent or null is empty, anything else but a string is an error.
fn opt_str(o: &Map<String, Value>, key: &str, at: &str) -> Result<String, ReviewError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(not_review(format!("{at}.{key} must be a string"))),
    }
}

impl Review {
    /// Decode a request body (one JSON parse; the pod is moved out, not copied).
    pub fn parse(body: &[u8]) -> Result<Review, ReviewError> {
        let mut doc: Value =
            serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
        let top = doc
            .as_object_mut()
            .ok_or_else(|| not_review("expected a JSON object"))?;
        let api_version = match top.get("apiVersion").and_then(Value::as_str) {
            Some("admission.k8s.io/v1") => ApiVersion::V1,
            Some("admission.k8s.io/v1beta1") => ApiVersion::V1Beta1,
            other => {
                return Err(not_review(format!(
                    "apiVersion must be admission.k8s.io/v1 or admission.k8s.io/v1beta1, got {}",
                    other.map_or("nothing".to_string(), |v| format!("{v:?}"))
                )))
            }
        };
        if top.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
            return Err(not_review("kind must be AdmissionReview"));
        }
        let req = match top.get_mut("request") {
            Some(Value::Object(r)) => r,
            _ => return Err(not_review("request is missing or not an object")),
        };
        let uid = match req.get("uid") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(not_review("request.uid must be a non-empty string")),
        };
        let (group, version, resource) = match req.get("resource") {
            Some(Value::Object(r)) => (
                opt_str(r, "group", "request.resource")?,
                opt_str(r, "version", "request.resource")?,
                opt_str(r, "resource", "request.resource")?,
            ),
            None | Some(Value::Null) => Default::default(),
            Some(_) => return Err(not_review("request.resource must be an object")),
        };
        let dry_run = match req.get("dryRun") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(not_review("request.dryRun must be a boolean")),
        };
        let operation = opt_str(req, "operation", "request")?;
        let namespace = opt_str(req, "namespace", "request")?;
        let sub_resource = opt_str(req, "subResource", "request")?;
        let object = req.remove("object").unwrap_or(Value::Null);
        Ok(Review {
            api_version,
            uid,
            operation,
            namespace,
            group,
            version,
            resource,
            sub_resource,
            dry_run,
            object,
        })
    }

    /// The request facts for the engine; the namespace falls back to the object's own.
    pub fn facts(&self) -> Request<'_> {
        let namespace = if self.namespace.is_empty() {
            self.object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
        } else {
            &self.namespace
        };
        Request {
            operation: &self.operation,
            namespace,
            group: &self.group,
            version: &self.version,
            resource: &self.resource,
            sub_resource: &self.sub_resource,
        }
    }

    /// Run the engine on this review.
    pub fn decide(&self, plan: &Plan) -> Outcome {
        let facts = self.facts();
        if self.object.is_null() && facts.operation == "CREATE" && facts.resource == "pods" {
            return Outcome::denied(
                "plx-store-webhook: request.object is missing; cannot read the Pod".into(),
            );
        }
        engine::mutate(&self.object, plan, &facts)
    }

    /// A v1 review wrapping a bare pod, for rendering offline results.
    pub fn synthetic(object: Value) -> Review {
        Review {
            api_version: ApiVersion::V1,
            uid: "offline".to_string(),
            operation: "CREATE".to_string(),
            namespace: String::new(),
            group: String::new(),
            version: "v1".to_string(),
            resource: "pods".to_string(),
            sub_resource: String::new(),
            dry_run: false,
            object,
        }
    }

    /// Pod name for logs: `name`, else `generateName`.
    pub fn pod_name(&self) -> &str {
        let meta = self.object.get("metadata");
        meta.and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .or_else(|| {
                meta.and_then(|m| m.get("generateName"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("")
    }
}

#[derive(Serialize)]
struct ReviewOut<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(rename = "auditAnnotations", skip_serializing_if = "Map::is_empty")]
    audit_annotations: Map<String, Value>,
}

#[derive(Serialize)]
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
}

/// The response body for `outcome`, in the request's version, echoing its uid.
pub fn response_body(review: &Review, outcome: &Outcome) -> Vec<u8> {
    let patch = (!outcome.patch.is_empty()).then(|| {
        let raw = serde_json::to_vec(&outcome.patch).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(raw)
    });
    let status = match &outcome.decision {
        Decision::Denied(message) => Some(StatusOut { code: 403, message }),
        _ => None,
    };
    let out = ReviewOut {
        api_version: review.api_version.as_str(),
        kind: "AdmissionReview",
        response: ResponseOut {
            uid: &review.uid,
            allowed: outcome.allowed(),
            status,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings: &outcome.warnings,
            audit_annotations: outcome
                .audit
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                .collect(),
        },
    };
    serde_json::to_vec(&out).unwrap_or_default()
}

/// Body bytes in, response bytes out: what `POST /mutate` and `mutate --output review` do.
pub fn review(body: &[u8], plan: &Plan) -> Result<(Review, Outcome, Vec<u8>), ReviewError> {
    let review = Review::parse(body)?;
    let outcome = review.decide(plan);
    let bytes = response_body(&review, &outcome);
    Ok((review, outcome, bytes))
}
