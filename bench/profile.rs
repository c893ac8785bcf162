//! Instruction-count profile target (repeatable, unlike wall time on a shared VM):
//!   cargo build --release --example bench-profile
//!   valgrind --tool=callgrind target/release/examples/bench-profile review 200
//! Modes: `validate` (IgnoredAny: the floor any JSON webhook pays), `value` (full serde_json::Value
//! parse), `envelope` (Review::parse only), `engine` (pod text in → outcome), `review` (bytes in
//! → response bytes out). A third argument adds that many env vars to the main container.

use plx_store_webhook::{admission, load_str, Plan};
use serde_json::{json, Value};
use std::hint::black_box;

// The server binary's allocator (src/main.rs), so counts match what the server does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("review");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = Plan::from_config(
        &load_str(
            &std::fs::read_to_string(root.join("examples/store-ctxdir.yaml")).unwrap(),
            "p",
        )
        .unwrap(),
    );
    let mut review: Value = serde_json::from_slice(
        &std::fs::read(root.join("tests/fixtures/apiserver/review-v1-generatename.json")).unwrap(),
    )
    .unwrap();
    review["request"]["object"] = serde_json::from_slice(
        &std::fs::read(root.join("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json")).unwrap(),
    )
    .unwrap();
    review["request"]["namespace"] = json!("polyaxon");
    // `engine-env N`: the engine alone (pod text in, outcome out) on the fixture with N extra env vars.
    let extra: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    if extra > 0 {
        let env = review["request"]["object"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        for i in 0..extra {
            env.push(json!({"name": format!("USER_VAR_{i}"), "value": format!("value-{i}-xxxxxxxxxxxxxxxx")}));
        }
    }
    let pod_text = review["request"]["object"].to_string();
    let req = plx_store_webhook::Request::pod_create("polyaxon");
    let body = serde_json::to_vec(&review).unwrap();
    let mut sink = 0usize;
    for _ in 0..n {
        sink += match mode {
            "validate" => {
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).unwrap();
                1
            }
            "skip" => {
                let text = std::str::from_utf8(black_box(&body)).unwrap();
                let mut c = plx_store_webhook::json_scan::Cursor::new(text);
                c.skip().unwrap();
                c.finish().unwrap();
                1
            }
            "value" => serde_json::from_slice::<Value>(black_box(&body))
                .unwrap()
                .as_object()
                .map_or(0, |o| o.len()),
            "envelope" => admission::Review::parse(black_box(&body))
                .unwrap()
                .uid
                .len(),
            "engine" => plx_store_webhook::engine::mutate(
                &plx_store_webhook::engine::decode(black_box(&pod_text)),
                &plan,
                &req,
            )
            .patch
            .len(),
            _ => admission::review(black_box(&body), &plan)
                .unwrap()
                .2
                .unwrap()
                .len(),
        };
    }
    println!(
        "{mode}: {n} iterations, body {} bytes, sink {sink}",
        body.len()
    );
}
