//! End-to-end test support: a second mutating webhook that adds a Polyaxon artifacts init
//! container after plx-store-webhook has run, so the apiserver must reinvoke plx-store-webhook
//! (`reinvocationPolicy: IfNeeded`) for that container to get the store too.
//!
//! cargo build --example e2e-add-init
//! e2e-add-init <listen addr> <tls.crt> <tls.key>

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use plx_store_webhook::server::serve::{self, Limits, TlsSide};
use plx_store_webhook::server::tls;
use serde_json::{json, Value};

async fn mutate(body: Bytes) -> axum::Json<Value> {
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let req = &review["request"];
    let pod = &req["object"];
    let has = pod["spec"]["initContainers"].as_array().is_some_and(|a| {
        a.iter()
            .any(|c| c["name"] == "polyaxon-init-artifacts-e2e0000001")
    });
    let mut response = json!({"uid": req["uid"], "allowed": true});
    if !has {
        let init = json!({"name": "polyaxon-init-artifacts-e2e0000001", "image": "busybox", "command": ["true"]});
        let op = if pod["spec"]["initContainers"].is_array() {
            json!({"op": "add", "path": "/spec/initContainers/-", "value": init})
        } else {
            json!({"op": "add", "path": "/spec/initContainers", "value": [init]})
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
        anyhow::bail!("usage: e2e-add-init <listen> <tls.crt> <tls.key>");
    };
    let config = tls::server_config(&std::fs::read(cert)?, &std::fs::read(key)?)?;
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await?;
    let app = Router::new().route("/mutate", post(mutate));
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
