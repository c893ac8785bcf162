//! End-to-end test support: stand-ins for the cloud identity webhooks that key on the pod's
//! ServiceAccount (EKS pod-identity-webhook at `/eks`, Azure workload identity at `/azure`).
//! Each records the `serviceAccountName` it saw in an annotation
//! `e2e.plx-store-webhook.dev/<path>-saw`, so the test can tell which account a webhook that
//! runs after (or is reinvoked after) plx-store-webhook saw.
//!
//! cargo build --example e2e-observer
//! e2e-observer <listen addr> <tls.crt> <tls.key>

#[path = "webhook_support.rs"]
mod support;

use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

async fn observe(Path(name): Path<String>, body: Bytes) -> axum::Json<Value> {
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let pod = &review["request"]["object"];
    let saw = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("(unset)")
        .to_string();
    let key = format!("e2e.plx-store-webhook.dev/{name}-saw");
    let op = (pod["metadata"]["annotations"][&key].as_str() != Some(saw.as_str())).then(|| {
        if pod["metadata"]["annotations"].is_object() {
            let escaped = key.replace('~', "~0").replace('/', "~1");
            json!({"op": "add", "path": format!("/metadata/annotations/{escaped}"), "value": saw})
        } else {
            json!({"op": "add", "path": "/metadata/annotations", "value": {key: saw}})
        }
    });
    support::answer(&review, op)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::serve_from_args(Router::new().route("/{name}", post(observe))).await
}
