//! The AdmissionReview envelope: read the uid and request facts first (so a malformed pod can
//! still be answered with its uid), answer in the request's API version with a standard base64
//! patch. kube-core's typed review is not used: it loses the uid when the pod is malformed and
//! serialises the patch as an array of numbers (kube-rs/kube#1781).

use crate::engine::pod::{borrowed, Pod};
use crate::engine::pod_scan;
use crate::engine::{self, Decision, Decoded, Outcome, Request};
use crate::json_scan::{field, Cursor, Scan, Seen};
use crate::limits::PodLimits;
use crate::plan::Plan;
use crate::references::References;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

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

/// A body that cannot be answered as a review (the HTTP layer turns it into a 400), or an
/// answer that cannot be written (a 500; never a well-formed-looking empty answer).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the body is not an AdmissionReview: {0}")]
    NotAReview(String),
    #[error("the body is too large to read: {0}")]
    TooLarge(String),
}

/// An AdmissionReview request: the envelope decoded with borrowed strings, the pod read in the
/// same pass (only the fields the engine needs are built).
#[derive(Debug)]
pub struct Review<'a> {
    pub api_version: ApiVersion,
    pub uid: Cow<'a, str>,
    pub operation: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub version: Cow<'a, str>,
    pub resource: Cow<'a, str>,
    pub sub_resource: Cow<'a, str>,
    pub dry_run: bool,
    /// The pod, read in the same pass as the envelope when it fits the model (the fast path);
    /// otherwise decoded on its own so the answer can name the offending field.
    pub object: Decoded<'a>,
}

/// The envelope, generic over how the object is read (a [`Pod`] on the fast path, raw text on
/// the slow one).
#[derive(Deserialize)]
#[serde(bound(deserialize = "O: Deserialize<'de>, 'de: 'a"))]
struct ReviewIn<'a, O> {
    #[serde(
        borrow,
        rename = "apiVersion",
        default,
        deserialize_with = "borrowed::opt"
    )]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    kind: Option<Cow<'a, str>>,
    request: Option<RequestIn<'a, O>>,
}

#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "O: Deserialize<'de>, 'de: 'a")
)]
struct RequestIn<'a, O> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource: Option<Gvr<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    operation: Option<Cow<'a, str>>,
    dry_run: Option<bool>,
    object: Option<O>,
}

#[derive(Deserialize)]
struct Gvr<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    group: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    version: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    resource: Option<Cow<'a, str>>,
}

/// The envelope and its object in one pass of the JSON scanner, field for field what serde makes
/// of `ReviewIn<O>` (`object` reads the object: the pod, or a skip); when it is unsure the body
/// goes to serde. The cursor builds at most `entries` list and map entries.
fn scan_review<'a, O>(
    text: &'a str,
    entries: usize,
    object: fn(&mut Cursor<'a>) -> Scan<O>,
) -> Result<ReviewIn<'a, O>, bool> {
    let mut c = Cursor::with_budget(text, entries);
    let mut doc = ReviewIn {
        api_version: None,
        kind: None,
        request: None,
    };
    let mut seen = Seen::default();
    let read = c.object(|c, key| match &*key {
        "apiVersion" => field!(seen, 0, doc.api_version, c.opt(Cursor::str)?),
        "kind" => field!(seen, 1, doc.kind, c.opt(Cursor::str)?),
        "request" => field!(seen, 2, doc.request, c.opt(|c| scan_request(c, object))?),
        _ => c.skip(),
    });
    if read.is_err() {
        return Err(c.over_budget());
    }
    c.finish().map_err(|_| false)?;
    Ok(doc)
}

fn scan_request<'a, O>(
    c: &mut Cursor<'a>,
    object: fn(&mut Cursor<'a>) -> Scan<O>,
) -> Scan<RequestIn<'a, O>> {
    let mut r = RequestIn {
        uid: None,
        resource: None,
        sub_resource: None,
        namespace: None,
        operation: None,
        dry_run: None,
        object: None,
    };
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "uid" => field!(seen, 0, r.uid, c.opt(Cursor::str)?),
        "resource" => field!(seen, 1, r.resource, c.opt(scan_gvr)?),
        "subResource" => field!(seen, 2, r.sub_resource, c.opt(Cursor::str)?),
        "namespace" => field!(seen, 3, r.namespace, c.opt(Cursor::str)?),
        "operation" => field!(seen, 4, r.operation, c.opt(Cursor::str)?),
        "dryRun" => field!(seen, 5, r.dry_run, c.opt(Cursor::bool)?),
        "object" => field!(seen, 6, r.object, c.opt(object)?),
        _ => c.skip(),
    })?;
    Ok(r)
}

/// The envelope alone, its object checked and dropped: how a review whose pod is over the limits
/// is still answered with its uid.
fn scan_envelope(text: &str) -> Option<ReviewIn<'_, ()>> {
    scan_review(text, 0, Cursor::skip).ok()
}

fn scan_gvr<'a>(c: &mut Cursor<'a>) -> Scan<Gvr<'a>> {
    let mut g = Gvr {
        group: None,
        version: None,
        resource: None,
    };
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "group" => field!(seen, 0, g.group, c.opt(Cursor::str)?),
        "version" => field!(seen, 1, g.version, c.opt(Cursor::str)?),
        "resource" => field!(seen, 2, g.resource, c.opt(Cursor::str)?),
        _ => c.skip(),
    })?;
    Ok(g)
}

fn not_review(msg: impl Into<String>) -> ReviewError {
    ReviewError::NotAReview(msg.into())
}

fn or_empty(s: Option<Cow<'_, str>>) -> Cow<'_, str> {
    s.unwrap_or(Cow::Borrowed(""))
}

impl<'a> Review<'a> {
    /// Decode a request body. Fast path: one pass of [`crate::json_scan`] reads the envelope and
    /// the pod together. When it is unsure, the serde model reads it (also in one pass when it
    /// fits); when that fails too (a malformed pod, or not a review), a last pass only delimits the
    /// object, so a review with a bad pod is still answered with its uid and the offending field's
    /// path.
    pub fn parse(body: &'a [u8]) -> Result<Review<'a>, ReviewError> {
        Self::parse_with(body, &PodLimits::DEFAULT)
    }

    /// [`Review::parse`] within `limits`: a pod over them is read no further and answered, with
    /// the review's uid, as [`Decoded::OverLimit`]; a body too large for the serde fallback and
    /// without a readable envelope is an error.
    pub fn parse_with(body: &'a [u8], limits: &PodLimits) -> Result<Review<'a>, ReviewError> {
        // Checking UTF-8 once up front is cheaper than serde_json checking each string it reads.
        let Ok(text) = std::str::from_utf8(body) else {
            return Err(explain(body));
        };
        let over = match scan_review(text, limits.entries, pod_scan::pod) {
            Ok(doc) => return Self::from_doc(doc, Decoded::Pod),
            Err(true) => Some(engine::over_entries(limits)),
            Err(false) => engine::over_values(text, limits),
        };
        if let Some(why) = over {
            let Some(doc) = scan_envelope(text) else {
                return Err(ReviewError::TooLarge(why));
            };
            return Self::from_doc(doc, |()| Decoded::OverLimit(why));
        }
        let review = Self::parse_serde(body, text)?;
        Ok(match review.object {
            Decoded::Pod(pod) => Review {
                object: engine::checked_entries(pod, limits),
                ..review
            },
            _ => review,
        })
    }

    /// The serde readers alone: the definition the one-pass reader is held to (by the tests and
    /// the fuzz target); `text` is `body` checked as UTF-8.
    pub fn parse_serde(body: &'a [u8], text: &'a str) -> Result<Review<'a>, ReviewError> {
        if let Ok(doc) = serde_json::from_str::<ReviewIn<'a, Pod<'a>>>(text) {
            return Self::from_doc(doc, Decoded::Pod);
        }
        let Ok(doc) = serde_json::from_str::<ReviewIn<'a, &'a RawValue>>(text) else {
            return Err(explain(body));
        };
        Self::from_doc(doc, |raw| {
            if raw.get() == "null" {
                Decoded::Missing
            } else {
                engine::decode(raw.get())
            }
        })
    }

    fn from_doc<O>(
        doc: ReviewIn<'a, O>,
        object: impl FnOnce(O) -> Decoded<'a>,
    ) -> Result<Review<'a>, ReviewError> {
        let api_version = match doc.api_version.as_deref() {
            Some("admission.k8s.io/v1") => ApiVersion::V1,
            Some("admission.k8s.io/v1beta1") => ApiVersion::V1Beta1,
            other => {
                return Err(not_review(format!(
                    "apiVersion must be admission.k8s.io/v1 or admission.k8s.io/v1beta1, got {}",
                    other.map_or("nothing".to_string(), |v| format!("{v:?}"))
                )))
            }
        };
        if doc.kind.as_deref() != Some("AdmissionReview") {
            return Err(not_review("kind must be AdmissionReview"));
        }
        let Some(req) = doc.request else {
            return Err(not_review("request is missing or not an object"));
        };
        let uid = match req.uid {
            Some(u) if !u.is_empty() => u,
            _ => return Err(not_review("request.uid must be a non-empty string")),
        };
        let (group, version, resource) = match req.resource {
            Some(r) => (or_empty(r.group), or_empty(r.version), or_empty(r.resource)),
            None => Default::default(),
        };
        Ok(Review {
            api_version,
            uid,
            operation: or_empty(req.operation),
            namespace: or_empty(req.namespace),
            group,
            version,
            resource,
            sub_resource: or_empty(req.sub_resource),
            dry_run: req.dry_run.unwrap_or(false),
            object: req.object.map_or(Decoded::Missing, object),
        })
    }

    /// The request facts for the engine (the engine falls back to the pod's own namespace).
    pub fn facts(&self) -> Request<'_> {
        Request {
            operation: &self.operation,
            namespace: &self.namespace,
            group: &self.group,
            version: &self.version,
            resource: &self.resource,
            sub_resource: &self.sub_resource,
            report: false,
            references: None,
        }
    }

    /// Run the engine on this review.
    pub fn decide(&self, plan: &Plan) -> Outcome {
        self.decide_with(plan, None)
    }

    /// [`Review::decide`] knowing the cluster's objects (the fleet view).
    pub fn decide_with(&self, plan: &Plan, references: Option<&dyn References>) -> Outcome {
        let mut req = self.facts();
        req.references = references;
        engine::mutate(&self.object, plan, &req)
    }

    /// Run the engine as the enforcing (validating) webhook: never a patch.
    pub fn validate(&self, plan: &Plan) -> Outcome {
        engine::validate(&self.object, plan, &self.facts())
    }
}

/// Why a body is not a review, field by field (the slow path, for bad input only).
fn explain(body: &[u8]) -> ReviewError {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return ReviewError::NotJson(e),
    };
    let Some(top) = doc.as_object() else {
        return not_review("expected a JSON object");
    };
    let check = |o: &Map<String, Value>, key: &str, at: &str| match o.get(key) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(not_review(format!("{at}.{key} must be a string"))),
    };
    let result = (|| {
        check(top, "apiVersion", "")?;
        check(top, "kind", "")?;
        let req = match top.get("request") {
            Some(Value::Object(r)) => r,
            None | Some(Value::Null) => return Ok(()),
            Some(_) => return Err(not_review("request is missing or not an object")),
        };
        if !matches!(
            req.get("uid"),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            return Err(not_review("request.uid must be a non-empty string"));
        }
        for k in ["operation", "namespace", "subResource"] {
            check(req, k, "request")?;
        }
        match req.get("resource") {
            None | Some(Value::Null) => {}
            Some(Value::Object(r)) => {
                for k in ["group", "version", "resource"] {
                    check(r, k, "request.resource")?;
                }
            }
            Some(_) => return Err(not_review("request.resource must be an object")),
        }
        if !matches!(
            req.get("dryRun"),
            None | Some(Value::Null) | Some(Value::Bool(_))
        ) {
            return Err(not_review("request.dryRun must be a boolean"));
        }
        Ok(())
    })();
    result.err().unwrap_or_else(|| envelope_error(body))
}

/// The serde error of the envelope with its path, e.g. `request: duplicate field `uid``.
fn envelope_error(body: &[u8]) -> ReviewError {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, ReviewIn<'_, &RawValue>>(&mut de) {
        Ok(_) => not_review("unexpected field types"),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                not_review(inner.to_string())
            } else {
                not_review(format!("{path}: {inner}"))
            }
        }
    }
}

/// The audit annotations as a JSON object, keys sorted and the last of a repeated key kept (what
/// a `serde_json::Map` built from them would write), without copying them into one.
struct Audit<'a>(&'a [(&'static str, String)]);

impl Serialize for Audit<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut entries: Vec<&(&'static str, String)> = self.0.iter().collect();
        // Stable: among equal keys the last stays last, and only it is written.
        entries.sort_by_key(|(k, _)| *k);
        let mut map = s.serialize_map(None)?;
        for (i, (k, v)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|(next, _)| next == k) {
                continue;
            }
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
}

/// The answer could not be encoded (the HTTP layer turns it into a 500).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the AdmissionReview response: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// The response body for `outcome`, in the request's version, echoing its uid.
pub fn response_body(review: &Review<'_>, outcome: &Outcome) -> Result<Vec<u8>, EncodeError> {
    response_for(review.api_version, &review.uid, outcome)
}

/// The response body for `outcome` in `api_version`, echoing `uid`. Written field by field, as
/// serde would write the `AdmissionReview` (tests hold it to that), so the base64 patch goes in
/// as it is: no escape scan of it and no `RawValue` re-parsing it.
pub fn response_for(
    api_version: ApiVersion,
    uid: &str,
    outcome: &Outcome,
) -> Result<Vec<u8>, EncodeError> {
    let mut patch = Vec::new();
    if !outcome.patch.is_empty() {
        // Sized for a typical patch up front: growing from serde_json's default 128 bytes
        // reallocated and copied it four or five times per request.
        patch.reserve(PATCH_CAPACITY);
        serde_json::to_writer(&mut patch, &outcome.patch)?;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let extra: usize = outcome.warnings.iter().map(|w| w.len() + 18).sum();
    let mut body = Vec::with_capacity(patch.len() * 4 / 3 + extra + 512);
    body.extend_from_slice(b"{\"apiVersion\":\"");
    body.extend_from_slice(api_version.as_str().as_bytes());
    body.extend_from_slice(b"\",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
    serde_json::to_writer(&mut body, uid)?;
    body.extend_from_slice(if outcome.allowed() {
        b",\"allowed\":true"
    } else {
        b",\"allowed\":false"
    });
    if let Decision::Denied(message) = &outcome.decision {
        body.extend_from_slice(b",\"status\":");
        // The message as kubectl shows it, with its stable code (docs/codes.md).
        let message = &crate::codes::tagged(message);
        serde_json::to_writer(&mut body, &StatusOut { code: 403, message })?;
    }
    if !patch.is_empty() {
        // Base64 never needs JSON escaping.
        body.extend_from_slice(b",\"patchType\":\"JSONPatch\",\"patch\":\"");
        let start = body.len();
        body.resize(
            start + base64::encoded_len(patch.len(), true).unwrap_or(0),
            0,
        );
        let written = b64
            .encode_slice(&patch, &mut body[start..])
            .map_err(|e| EncodeError(serde::ser::Error::custom(e)))?;
        body.truncate(start + written);
        body.push(b'"');
    }
    if !outcome.warnings.is_empty() {
        body.extend_from_slice(b",\"warnings\":");
        let tagged: Vec<String> = outcome
            .warnings
            .iter()
            .map(|w| crate::codes::tagged_warning(w))
            .collect();
        serde_json::to_writer(&mut body, &tagged)?;
    }
    if !outcome.audit.is_empty() {
        body.extend_from_slice(b",\"auditAnnotations\":");
        serde_json::to_writer(&mut body, &Audit(&outcome.audit))?;
    }
    body.extend_from_slice(b"}}");
    Ok(body)
}

/// Room for the patch JSON of a typical run pod (≈ 1 KB) before it is base64-encoded.
const PATCH_CAPACITY: usize = 2048;

/// Body bytes in: the review, the engine's outcome and the response bytes (what `POST /mutate`
/// does). The outer error is a body that is no review (400); the inner one an answer that could
/// not be encoded (500).
#[allow(clippy::type_complexity)]
pub fn review<'a>(
    body: &'a [u8],
    plan: &Plan,
) -> Result<(Review<'a>, Outcome, Result<Vec<u8>, EncodeError>), ReviewError> {
    review_at(body, plan, Stage::Mutate)
}

/// Which webhook a review is for: the mutating one (`POST /mutate`) or the enforcing,
/// validating one (`POST /validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Mutate,
    Validate,
}

/// [`review`] for either webhook.
#[allow(clippy::type_complexity)]
pub fn review_at<'a>(
    body: &'a [u8],
    plan: &Plan,
    stage: Stage,
) -> Result<(Review<'a>, Outcome, Result<Vec<u8>, EncodeError>), ReviewError> {
    review_with(body, plan, stage, None)
}

/// [`review_at`] knowing the cluster's objects (the fleet view; only the mutating webhook
/// warns about missing ones).
#[allow(clippy::type_complexity)]
pub fn review_with<'a>(
    body: &'a [u8],
    plan: &Plan,
    stage: Stage,
    references: Option<&dyn References>,
) -> Result<(Review<'a>, Outcome, Result<Vec<u8>, EncodeError>), ReviewError> {
    let review = Review::parse_with(body, &plan.limits)?;
    let (outcome, bytes) = answer(&review, plan, stage, references);
    Ok((review, outcome, bytes))
}

/// Decide a parsed review for `stage` and encode the response.
pub fn answer(
    review: &Review<'_>,
    plan: &Plan,
    stage: Stage,
    references: Option<&dyn References>,
) -> (Outcome, Result<Vec<u8>, EncodeError>) {
    let outcome = match stage {
        Stage::Mutate => review.decide_with(plan, references),
        Stage::Validate => review.validate(plan),
    };
    let bytes = response_body(review, &outcome);
    (outcome, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_scan::mutants::{mutate, Rng};

    /// The captured review carrying each converter pod, compact as the apiserver sends it.
    fn reviews() -> Vec<String> {
        let review: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/apiserver/review-v1-generatename.json"
        ))
        .unwrap();
        let pods = [
            include_str!("../../tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json"),
            include_str!("../../tests/fixtures/polyaxon-pods/job.nostore.json"),
        ];
        let mut out = vec![review.to_string()];
        for pod in pods {
            let mut r = review.clone();
            r["request"]["object"] = serde_json::from_str(pod).unwrap();
            out.push(r.to_string());
        }
        out.push(include_str!("../../examples/review-run-pod.json").to_string());
        out
    }

    fn fast_and_serde(text: &str) -> (Option<String>, String) {
        let fast = scan_review(text, usize::MAX, pod_scan::pod)
            .ok()
            .map(|doc| format!("{:?}", Review::from_doc(doc, Decoded::Pod)));
        let serde = format!("{:?}", Review::parse_serde(text.as_bytes(), text));
        (fast, serde)
    }

    #[test]
    fn real_reviews_take_the_fast_path_and_read_as_serde_reads_them() {
        for text in reviews() {
            let (fast, serde) = fast_and_serde(&text);
            assert_eq!(fast.as_deref(), Some(serde.as_str()));
        }
    }

    /// Over mutants of real reviews, the one-pass reader gives serde's answer or steps aside.
    #[test]
    fn on_mutated_reviews_the_fast_reader_agrees_with_serde_or_steps_aside() {
        let mut rng = Rng::new(0xadd);
        let (mut agreed, mut aside, mut tried) = (0, 0, 0);
        for seed in reviews() {
            for _ in 0..500 {
                let Some(text) = mutate(&seed, &mut rng) else {
                    continue;
                };
                tried += 1;
                match fast_and_serde(&text) {
                    (Some(fast), serde) => {
                        assert_eq!(fast, serde, "{text}");
                        agreed += 1;
                    }
                    (None, _) => aside += 1,
                }
            }
        }
        assert!(
            agreed > tried / 10 && aside > tried / 10,
            "{agreed} agreed, {aside} aside of {tried}"
        );
    }

    /// The hand-written response is the JSON the `AdmissionReview` response stands for, for
    /// every shape of outcome: allowed with a patch, denied with a message to escape, warnings,
    /// audit annotations, a uid that needs escaping, both API versions.
    #[test]
    fn the_written_response_is_the_review_it_stands_for() {
        use json_patch::{AddOperation, PatchOperation};
        let mut allowed = Outcome::denied(crate::engine::DenyReason::Malformed, String::new());
        allowed.decision = Decision::Mutated;
        allowed.patch = vec![PatchOperation::Add(AddOperation {
            path: crate::engine::patch::pointer(["spec", "volumes"]),
            value: serde_json::json!([{"name": "v\"é", "secret": {"secretName": "s"}}]),
        })];
        allowed.warnings = vec!["w \"1\"".into(), "w2".into()].into();
        allowed.audit = vec![("store", "gcs".into()), ("rule", "team \"a\"".into())];
        let denied = Outcome::denied(
            crate::engine::DenyReason::Malformed,
            "no: \"quoted\" \\ path".into(),
        );
        let mut quiet = Outcome::denied(crate::engine::DenyReason::Malformed, String::new());
        quiet.decision = Decision::Ignored(engine::IgnoreReason::NotARun);
        for (version, uid, outcome) in [
            (ApiVersion::V1, "uid-1", &allowed),
            (ApiVersion::V1Beta1, "uid \"2\"\n", &denied),
            (ApiVersion::V1, "u", &quiet),
        ] {
            let body = response_for(version, uid, outcome).unwrap();
            let got: Value = serde_json::from_slice(&body).unwrap();
            let mut want = serde_json::json!({"apiVersion": version.as_str(), "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": outcome.allowed()}});
            let r = &mut want["response"];
            if let Decision::Denied(m) = &outcome.decision {
                r["status"] = serde_json::json!({"code": 403, "message": crate::codes::tagged(m)});
            }
            if !outcome.patch.is_empty() {
                let patch = serde_json::to_vec(&outcome.patch).unwrap();
                r["patchType"] = "JSONPatch".into();
                r["patch"] = base64::engine::general_purpose::STANDARD
                    .encode(patch)
                    .into();
            }
            if !outcome.warnings.is_empty() {
                let tagged: Vec<String> = outcome
                    .warnings
                    .iter()
                    .map(|w| crate::codes::tagged_warning(w))
                    .collect();
                r["warnings"] = serde_json::json!(tagged);
            }
            if !outcome.audit.is_empty() {
                let audit: Map<String, Value> = outcome
                    .audit
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone().into()))
                    .collect();
                r["auditAnnotations"] = Value::Object(audit);
            }
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn audit_annotations_serialize_as_the_map_they_stand_for() {
        let audit = vec![
            ("rule", "team-a".to_string()),
            ("identity", "sa \"x\"".to_string()),
            ("rule", "team-b".to_string()),
            ("conflicts", String::new()),
        ];
        let map: Map<String, Value> = audit
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect();
        assert_eq!(
            serde_json::to_string(&Audit(&audit)).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }
}
