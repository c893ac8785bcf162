//! End-to-end test support: a second mutating webhook that adds a Polyaxon artifacts init
//! container after plx-store-webhook has run, so the apiserver must reinvoke plx-store-webhook
//! (`reinvocationPolicy: IfNeeded`) for that container to get the store too.
//!
//! cargo build --example e2e-add-init
//! e2e-add-init <listen addr> <tls.crt> <tls.key>

#[path = "webhook_support.rs"]
mod support;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

async fn mutate(body: Bytes) -> axum::Json<Value> {
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let pod = &review["request"]["object"];
    let has = pod["spec"]["initContainers"].as_array().is_some_and(|a| {
        a.iter()
            .any(|c| c["name"] == "polyaxon-init-artifacts-e2e0000001")
    });
    let op = (!has).then(|| {
        let init = json!({"name": "polyaxon-init-artifacts-e2e0000001", "image": "busybox", "command": ["true"]});
        if pod["spec"]["initContainers"].is_array() {
            json!({"op": "add", "path": "/spec/initContainers/-", "value": init})
        } else {
            json!({"op": "add", "path": "/spec/initContainers", "value": [init]})
        }
    });
    support::answer(&review, op)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::serve_from_args(Router::new().route("/mutate", post(mutate))).await
}
