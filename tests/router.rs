//! The public router driven with `oneshot`: every status the webhook can answer, and review
//! bodies as the apiserver sends them, in both API versions.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use common::*;
use http_body_util::BodyExt;
use plx_store_webhook::server::{admin_router, router, with_guards, AppState, Guards};
use serde_json::{json, Value};
use tower::ServiceExt;

fn app() -> Router {
    router(AppState::new(plan_for("examples/store-ctxdir.yaml")))
}

async fn call(app: Router, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// A review as the apiserver would send it, wrapping `pod`.
pub fn review(api_version: &str, uid: &str, pod: &Value, dry_run: bool) -> Value {
    let mut r = read_json("tests/fixtures/apiserver/review-v1-generatename.json");
    r["apiVersion"] = json!(api_version);
    r["request"]["uid"] = json!(uid);
    r["request"]["namespace"] = json!("polyaxon");
    r["request"]["object"] = pod.clone();
    r["request"]["dryRun"] = json!(dry_run);
    r
}

fn decode_patch(resp: &Value) -> Value {
    let b64 = resp["response"]["patch"]
        .as_str()
        .expect("patch is a base64 string");
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn captured_apiserver_review_is_allowed_unchanged() {
    let body =
        std::fs::read(root().join("tests/fixtures/apiserver/review-v1-generatename.json")).unwrap();
    let (s, v) = call(app(), Method::POST, "/mutate?timeout=5s", body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "ce37c38c-3ede-43ee-ac74-624a033a051a");
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("patch").is_none() && v["response"].get("patchType").is_none());
}

#[tokio::test]
async fn run_pod_gets_a_base64_patch_in_the_requests_version() {
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-filepath.json");
    for (version, dry_run) in [
        ("admission.k8s.io/v1", false),
        ("admission.k8s.io/v1beta1", false),
        ("admission.k8s.io/v1", true),
    ] {
        let body = serde_json::to_vec(&review(version, "u-1", &pod, dry_run)).unwrap();
        let (s, v) = call(app(), Method::POST, "/mutate", body).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["apiVersion"], version);
        assert_eq!(v["response"]["uid"], "u-1");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        assert_eq!(v["response"]["auditAnnotations"]["store"], "gcs-artifacts");
        let patch = decode_patch(&v);
        let mut p = pod.clone();
        json_patch::patch(
            &mut p,
            &serde_json::from_value::<json_patch::Patch>(patch).unwrap(),
        )
        .unwrap();
        validate_pod(&p).unwrap();
    }
}

#[tokio::test]
async fn conflicts_and_unreadable_pods_are_denied_with_the_uid() {
    let pod = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "polyaxon", "app.kubernetes.io/part-of": "polyaxon-runs"}},
        "spec": {"containers": [{"name": "polyaxon-main", "volumeMounts": [{"name": "o", "mountPath": "/plx-context/.gc"}]}], "volumes": [{"name": "o", "emptyDir": {}}]}});
    let (s, v) = call(
        app(),
        Method::POST,
        "/mutate",
        serde_json::to_vec(&review("admission.k8s.io/v1", "u-2", &pod, false)).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["response"]["uid"], "u-2");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 403);
    assert!(v["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("/plx-context/.gc"));

    for object in [
        json!("not a pod"),
        json!({"metadata": {"labels": "x"}}),
        Value::Null,
    ] {
        let (s, v) = call(
            app(),
            Method::POST,
            "/mutate",
            serde_json::to_vec(&review("admission.k8s.io/v1", "u-3", &object, false)).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{object}");
        assert_eq!(v["response"]["uid"], "u-3");
        assert_eq!(v["response"]["allowed"], false, "{object}");
        assert!(
            v["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("Pod"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn malformed_bodies_get_clear_400s() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not JSON"),
        (b"[]".to_vec(), "JSON object"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), "request"),
        (br#"{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"a"}}"#.to_vec(), "apiVersion"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#.to_vec(), "uid"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a","dryRun":"yes"}}"#.to_vec(), "dryRun"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a","operation":5}}"#.to_vec(), "operation"),
        // Which uid would we echo? A duplicate key is refused, naming it and where it is.
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a","uid":"b"}}"#.to_vec(), "request: duplicate field `uid`"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","kind":"AdmissionReview","request":{"uid":"a"}}"#.to_vec(), "duplicate field `kind`"),
    ];
    for (body, want) in cases {
        let (s, v) = call(app(), Method::POST, "/mutate", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{want}");
        assert_eq!(v["code"], 400);
        assert!(v["error"].as_str().unwrap().contains(want), "{v} / {want}");
    }
}

#[tokio::test]
async fn limits_routes_and_methods() {
    let big = vec![b' '; plx_store_webhook::server::DEFAULT_BODY_LIMIT + 1];
    let (s, v) = call(app(), Method::POST, "/mutate", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["code"], 413);
    // A 3 MiB review body (the apiserver's maximum) is still accepted.
    let mut pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    pod["metadata"]["annotations"]["filler"] = json!("x".repeat(3 * 1024 * 1024 - 20_000));
    let body = serde_json::to_vec(&review("admission.k8s.io/v1", "big", &pod, false)).unwrap();
    assert!(body.len() <= 3 * 1024 * 1024);
    let (s, v) = call(app(), Method::POST, "/mutate", body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["response"]["uid"], "big");

    let (s, v) = call(app(), Method::GET, "/mutate", vec![]).await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!(405))
    );
    let (s, v) = call(app(), Method::POST, "/nope", vec![]).await;
    assert_eq!((s, v["code"].clone()), (StatusCode::NOT_FOUND, json!(404)));
    assert_eq!(
        call(app(), Method::GET, "/healthz", vec![]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(app(), Method::GET, "/readyz", vec![]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_errors_are_json_too() {
    let admin = admin_router(AppState::new(plan_for("examples/store-ctxdir.yaml")));
    let (s, v) = call(admin.clone(), Method::POST, "/metrics", vec![]).await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!(405))
    );
    let (s, v) = call(admin, Method::GET, "/nope", vec![]).await;
    assert_eq!((s, v["code"].clone()), (StatusCode::NOT_FOUND, json!(404)));
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500() {
    let boom = with_guards(
        Router::new().route("/boom", get(|| async { panic!("boom") as &'static str })),
        Guards::default(),
    );
    let (s, v) = call(boom, Method::GET, "/boom", vec![]).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["code"], 500);
}

#[tokio::test]
async fn concurrency_bound_answers_503_and_slow_bodies_time_out() {
    let mut state = AppState::new(plan_for("examples/store-ctxdir.yaml"));
    state.guards = Guards {
        max_concurrent: 1,
        request_timeout: std::time::Duration::from_millis(500),
        ..Guards::default()
    };
    let app = router(state);
    // A request whose body never finishes holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(axum::body::Bytes::from_static(b"{")).await.unwrap();
    let slow = Request::post("/mutate")
        .body(Body::new(common::client::ChanBody(rx)))
        .unwrap();
    let held = tokio::spawn(app.clone().oneshot(slow));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (s, v) = call(app.clone(), Method::POST, "/mutate", b"{}".to_vec()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["code"], 503);
    // The slow one is cut by the whole-request timeout, freeing the slot.
    let resp = held.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    // Every error body is JSON, the 408 included, and HTTP/1.1 is told the connection closes.
    assert_eq!(resp.headers()["connection"], "close");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 408);
    drop(tx);
    let (s, _) = call(app, Method::POST, "/mutate", b"{}".to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
