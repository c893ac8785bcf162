//! Engine benchmarks: the pure engine and the whole request path (body bytes → response bytes)
//! on the Polyaxon fixture pods, a pod with 1,500 env vars, a pod with 100 target containers, a
//! size sweep, and a container-count sweep (10 → 10,000) that shows the work linear. Baseline measured in the same run: parsing the same body into JSON, which any
//! webhook must do at least.
//!
//! cargo bench --bench engine

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use plx_store_webhook::engine::{decode, mutate};
use plx_store_webhook::{admission, load_str, Plan, Request};
use serde_json::{json, Value};
use std::hint::black_box;
use std::path::Path;

// The server binary's allocator (src/main.rs), so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn plan(extra: &str) -> Plan {
    let text = std::fs::read_to_string(root().join("examples/store-ctxdir.yaml")).unwrap() + extra;
    Plan::from_config(&load_str(&text, "bench").unwrap())
}

fn review_bytes(pod: &Value) -> Vec<u8> {
    let mut r: Value = serde_json::from_slice(
        &std::fs::read(root().join("tests/fixtures/apiserver/review-v1-generatename.json"))
            .unwrap(),
    )
    .unwrap();
    r["request"]["namespace"] = json!("polyaxon");
    r["request"]["object"] = pod.clone();
    serde_json::to_vec(&r).unwrap()
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(
        &std::fs::read(root().join("tests/fixtures/polyaxon-pods").join(name)).unwrap(),
    )
    .unwrap()
}

fn with_env(n: usize) -> Value {
    let mut pod = fixture("job.gcs-ctxdir.json");
    let env = pod["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    for i in 0..n {
        env.push(json!({"name": format!("USER_VAR_{i}"), "value": format!("value-{i}-{}", "x".repeat(16))}));
    }
    pod
}

fn with_containers(n: usize) -> Value {
    let mut pod = fixture("job.gcs-ctxdir.json");
    let template = pod["spec"]["containers"][0].clone();
    let list = pod["spec"]["containers"].as_array_mut().unwrap();
    list.clear();
    for i in 0..n {
        let mut c = template.clone();
        c["name"] = json!(format!("worker-{i}"));
        list.push(c);
    }
    pod
}

fn bench(c: &mut Criterion) {
    let default = plan("");
    let all = plan("injection: {containers: [\"*\"]}\n");
    let req = Request::pod_create("polyaxon");
    let mut cases: Vec<(String, Value, &Plan)> = [
        "job.gcs-filepath.json",
        "job.gcs-ctxdir.json",
        "job.gcs-etc.json",
        "job.nostore.json",
    ]
    .iter()
    .map(|f| {
        (
            f.trim_end_matches(".json").to_string(),
            fixture(f),
            &default,
        )
    })
    .collect();
    cases.push(("env-1500".into(), with_env(1500), &default));
    cases.push(("containers-100".into(), with_containers(100), &all));

    let mut g = c.benchmark_group("engine");
    for (name, pod, plan) in &cases {
        // From a pod already decoded: the engine's decisions alone.
        let text = pod.to_string();
        let decoded = decode(&text);
        g.bench_with_input(BenchmarkId::new("mutate", name), &decoded, |b, d| {
            b.iter(|| mutate(black_box(d), plan, &req))
        });
        // From the pod's JSON text: reading it is part of the engine's cost here.
        g.bench_with_input(BenchmarkId::new("mutate-json", name), &text, |b, text| {
            b.iter(|| mutate(&decode(black_box(text)), plan, &req))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("request");
    for (name, pod, plan) in &cases {
        let body = review_bytes(pod);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("baseline-json-parse", name),
            &body,
            |b, body| b.iter(|| serde_json::from_slice::<Value>(black_box(body)).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("baseline-json-validate", name),
            &body,
            |b, body| {
                b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(body)).unwrap())
            },
        );
        g.bench_with_input(BenchmarkId::new("review", name), &body, |b, body| {
            b.iter(|| admission::review(black_box(body), plan).unwrap().2)
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sweep");
    for n in [0usize, 250, 500, 1000, 2000, 4000] {
        let body = review_bytes(&with_env(n));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("review-env", n), &body, |b, body| {
            b.iter(|| admission::review(black_box(body), &default).unwrap().2)
        });
    }
    g.finish();

    // Issue #22's shape: N bare `polyaxon-main` containers, the limits raised out of the way, so
    // the engine's own work is measured: time per container must stay flat from 10 to 10,000
    // (it was quadratic: 0.65 s at 10,000).
    let mut unbounded = plan("injection: {containers: [\"*\"]}\n");
    unbounded.limits = plx_store_webhook::PodLimits {
        containers: usize::MAX,
        entries: usize::MAX,
        values: usize::MAX,
    };
    let mut g = c.benchmark_group("containers");
    for n in [10usize, 100, 1000, 10_000] {
        let mut pod = fixture("job.gcs-ctxdir.json");
        pod["spec"]["containers"] = json!(vec![json!({"name": "polyaxon-main"}); n]);
        let body = review_bytes(&pod);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("review", n), &body, |b, body| {
            b.iter(|| admission::review(black_box(body), &unbounded).unwrap().2)
        });
    }
    g.finish();

    // A keyless run whose `polyaxon-main` mounts one Secret volume of N items N times above the
    // SDK's key path: each mount's question must be one lookup (it was N × N: 9 s at 8,000).
    let keyless = Plan::from_config(
        &plx_store_webhook::load_file(&root().join("examples/keyless.yaml")).unwrap(),
    );
    let mut g = c.benchmark_group("keyless-mounts");
    for n in [100usize, 1000, 8000] {
        let mut pod = fixture("job.nostore.json");
        pod["spec"]["volumes"].as_array_mut().unwrap().push(json!({"name": "many", "secret": {
            "secretName": "s",
            "items": (0..n).map(|i| json!({"key": format!("k{i}"), "path": format!("d{i}/f.json")})).collect::<Vec<_>>()}}));
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == "polyaxon-main" {
                let m = c["volumeMounts"].as_array_mut().unwrap();
                m.extend((0..n).map(|i| json!({"name": "many", "mountPath": "/plx-context/.gc", "subPath": format!("x{i}")})));
            }
        }
        let mut body: Value = serde_json::from_slice(&review_bytes(&pod)).unwrap();
        body["request"]["namespace"] = json!("team-vision-1");
        let body = serde_json::to_vec(&body).unwrap();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("review", n), &body, |b, body| {
            b.iter(|| admission::review(black_box(body), &keyless).unwrap().2)
        });
    }
    g.finish();
}

/// The fleet view's own work per watch event: a run pod's event decoded as the watch reads it
/// (`RawPod`) and judged (`fleet::judge`: `/validate`'s check, plus the engine's report when
/// the pod fails it), beside the `/validate` review of the same pod (`cargo bench --bench engine
/// -- fleet/`).
fn fleet(c: &mut Criterion) {
    use plx_store_webhook::admission::Stage;
    use plx_store_webhook::fleet::{judge, watch::RawPod};
    let plan = plan("");
    let raw = fixture("job.gcs-ctxdir.json");
    let out = mutate(
        &decode(&raw.to_string()),
        &plan,
        &Request::pod_create("polyaxon"),
    );
    let mut injected = raw.clone();
    json_patch::patch(&mut injected, &out.patch).unwrap();
    let mut g = c.benchmark_group("fleet");
    for (name, pod) in [("current", &injected), ("missing", &raw)] {
        let mut pod = pod.clone();
        pod["metadata"]["namespace"] = json!("polyaxon");
        pod["metadata"]["name"] = json!("p");
        // As the apiserver writes a watch event: `type` first.
        let event = format!(r#"{{"type":"MODIFIED","object":{pod}}}"#).into_bytes();
        g.bench_with_input(BenchmarkId::new("watch-event", name), &event, |b, e| {
            b.iter(|| {
                let ev: kube::core::WatchEvent<RawPod> =
                    serde_json::from_slice(black_box(e)).unwrap();
                match ev {
                    kube::core::WatchEvent::Modified(p) => judge("polyaxon", "p", p.text(), &plan),
                    _ => None,
                }
            })
        });
        let body = review_bytes(&pod);
        g.bench_with_input(
            BenchmarkId::new("validate-review", name),
            &body,
            |b, body| {
                b.iter(|| {
                    admission::review_at(black_box(body), &plan, Stage::Validate)
                        .unwrap()
                        .2
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = fleet_benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = fleet
}
criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches, fleet_benches);
