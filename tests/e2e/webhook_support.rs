//! What the e2e stand-in webhooks share: answering a review with an optional one-op patch, and
//! serving a router over TLS until SIGTERM.

use axum::Router;
use base64::Engine as _;
use plx_store_webhook::server::serve::{self, Limits, TlsSide};
use plx_store_webhook::server::tls;
use serde_json::{json, Value};

/// The AdmissionReview answer to `review`: allowed, with `op` as a JSON patch when given.
pub fn answer(review: &Value, op: Option<Value>) -> axum::Json<Value> {
    let mut response = json!({"uid": review["request"]["uid"], "allowed": true});
    if let Some(op) = op {
        let patch = serde_json::to_vec(&json!([op])).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    axum::Json(
        json!({"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}),
    )
}

/// `<program> <listen addr> <tls.crt> <tls.key>`: serve `app` over TLS until SIGTERM.
pub async fn serve_from_args(app: Router) -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [program, listen, cert, key] = args.as_slice() else {
        anyhow::bail!("usage: <program> <listen> <tls.crt> <tls.key>");
    };
    let _ = program;
    let config = tls::server_config(&std::fs::read(cert)?, &std::fs::read(key)?)?;
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await?;
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
