//! End-to-end test support: a mutating webhook that removes `polyaxon-main`'s mount of the
//! `gcs-secret` volume (what a careless webhook does). Registered after plx-store-webhook with
//! `reinvocationPolicy: IfNeeded`: in the apiserver's single reinvocation pass plx-store-webhook
//! re-adds the mount and this one removes it again, so the final pod lacks it and the enforcing
//! webhook (`/validate`) must refuse it.
//!
//! cargo build --example e2e-strip
//! e2e-strip <listen addr> <tls.crt> <tls.key>

#[path = "webhook_support.rs"]
mod support;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

async fn mutate(body: Bytes) -> axum::Json<Value> {
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let containers = review["request"]["object"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let op = containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c["name"] == "polyaxon-main")
        .find_map(|(i, c)| {
            let mounts = c["volumeMounts"].as_array()?;
            let j = mounts.iter().position(|m| m["name"] == "gcs-secret")?;
            Some(json!({"op": "remove", "path": format!("/spec/containers/{i}/volumeMounts/{j}")}))
        });
    support::answer(&review, op)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::serve_from_args(Router::new().route("/mutate", post(mutate))).await
}
