//! The load benchmark's baseline: a "null webhook" on exactly the same stack as plx-store-webhook
//! (rustls, hyper via the same `serve` loop, axum, same guards) that reads the whole body and
//! answers a constant AdmissionReview. The gap between it and the real webhook is what the
//! webhook itself costs.
//!
//! cargo build --release --example bench-null-webhook
//! bench-null-webhook <listen addr> <tls.crt> <tls.key>

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use plx_store_webhook::server::serve::{self, Limits, TlsSide};
use plx_store_webhook::server::{tls, with_guards, Guards};

const ANSWER: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"null","allowed":true}}"#;

async fn answer(body: Bytes) -> ([(axum::http::HeaderName, &'static str); 1], &'static [u8]) {
    std::hint::black_box(body.len());
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        ANSWER,
    )
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, cert, key] = args.as_slice() else {
        anyhow::bail!("usage: bench-null-webhook <listen> <tls.crt> <tls.key>");
    };
    let config = tls::server_config(&std::fs::read(cert)?, &std::fs::read(key)?)?;
    let app = with_guards(
        Router::new().route("/mutate", post(answer)),
        Guards::default(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen.as_str()).await?;
        serve::serve(
            listener,
            Some(TlsSide::fixed(config)),
            app,
            Limits::default(),
            serve::shutdown_signal(),
        )
        .await?;
        anyhow::Ok(())
    })
}
