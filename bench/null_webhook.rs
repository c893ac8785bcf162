//! The load benchmark's baseline: a "null webhook" on exactly the same stack as plx-store-webhook
//! (rustls, hyper via the same `serve` loop, axum, same guards) that reads the whole body and
//! answers a constant AdmissionReview. The gap between it and the real webhook is what the
//! webhook itself costs.
//!
//! cargo build --release --example bench-null-webhook
//! bench-null-webhook <listen addr> <tls.crt> <tls.key> [--validate-json] [--answer FILE]
//!
//! With `--validate-json --answer <the webhook's real answer>` it is the *JSON floor*: what any
//! webhook that reads this body as JSON and sends this answer must pay, whatever its logic.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use plx_store_webhook::server::serve::{self, Limits, TlsSide};
use plx_store_webhook::server::{tls, with_guards, Guards};
use serde::de::IgnoredAny;
use std::sync::Arc;

/// The webhook's own allocator, so that the baseline differs from it only in the handler.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ANSWER: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"null","allowed":true}}"#;

/// What the baseline does with each body besides reading it.
struct Mode {
    /// Check the body is JSON (serde_json, nothing built): the least any JSON webhook must do.
    validate: bool,
    /// The constant answer; `--answer FILE` gives one as large as the real webhook's.
    answer: Bytes,
}

async fn answer(
    State(mode): State<Arc<Mode>>,
    body: Bytes,
) -> ([(axum::http::HeaderName, &'static str); 1], Bytes) {
    if mode.validate {
        let valid = serde_json::from_slice::<IgnoredAny>(&body).is_ok();
        std::hint::black_box(valid);
    } else {
        std::hint::black_box(body.len());
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        mode.answer.clone(),
    )
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, cert, key, opts @ ..] = args.as_slice() else {
        anyhow::bail!("usage: bench-null-webhook <listen> <tls.crt> <tls.key> [--validate-json] [--answer FILE]");
    };
    let mut mode = Mode {
        validate: false,
        answer: Bytes::from_static(ANSWER),
    };
    let mut opts = opts.iter();
    while let Some(opt) = opts.next() {
        match opt.as_str() {
            "--validate-json" => mode.validate = true,
            "--answer" => {
                let Some(file) = opts.next() else {
                    anyhow::bail!("--answer needs a file");
                };
                mode.answer = Bytes::from(std::fs::read(file)?);
            }
            _ => anyhow::bail!("unknown option {opt:?}"),
        }
    }
    let config = tls::server_config(&std::fs::read(cert)?, &std::fs::read(key)?)?;
    let app = with_guards(
        Router::new()
            .route("/mutate", post(answer))
            .with_state(Arc::new(mode)),
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
            None,
            serve::shutdown_signal(),
        )
        .await?;
        anyhow::Ok(())
    })
}
