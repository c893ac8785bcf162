//! End-to-end test support: stand-ins for the cloud identity webhooks that key on the pod's
//! ServiceAccount (EKS pod-identity-webhook at `/eks`, Azure workload identity at `/azure`).
//! Each records the `serviceAccountName` it saw in an annotation
//! `e2e.plx-store-webhook.dev/<path>-saw`, so the test can tell which account a webhook that
//! runs after (or is reinvoked after) plx-store-webhook saw.
//!
//! cargo build --example e2e-observer
//! e2e-observer <listen addr> <tls.crt> <tls.key>

use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use plx_store_webhook::server::serve::{self, Limits, TlsSide};
use plx_store_webhook::server::tls;
use serde_json::{json, Value};

async fn observe(Path(name): Path<String>, body: Bytes) -> axum::Json<Value> {
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let req = &review["request"];
    let pod = &req["object"];
    let saw = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("(unset)")
        .to_string();
    let key = format!("e2e.plx-store-webhook.dev/{name}-saw");
    let mut response = json!({"uid": req["uid"], "allowed": true});
    if pod["metadata"]["annotations"][&key].as_str() != Some(saw.as_str()) {
        let pointer_key = key.replace('~', "~0").replace('/', "~1");
        let op = if pod["metadata"]["annotations"].is_object() {
            json!({"op": "add", "path": format!("/metadata/annotations/{pointer_key}"), "value": saw})
        } else {
            json!({"op": "add", "path": "/metadata/annotations", "value": {key: saw}})
        };
        let patch = serde_json::to_vec(&json!([op])).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    axum::Json(
        json!({"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, cert, key] = args.as_slice() else {
        anyhow::bail!("usage: e2e-observer <listen> <tls.crt> <tls.key>");
    };
    let config = tls::server_config(&std::fs::read(cert)?, &std::fs::read(key)?)?;
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await?;
    let app = Router::new().route("/{name}", post(observe));
    serve::serve(
        listener,
        Some(TlsSide::fixed(config)),
        app,
        Limits::default(),
        None,
        serve::shutdown_signal(),
    )
    .await?;
    Ok(())
}
