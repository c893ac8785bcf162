//! What one pod may carry (`PodLimits`), through the engine API, a whole review and the offline
//! `mutate` command: a pod over a limit is denied with a message naming it (its review still
//! answered with its uid), a pod at the limit is served, and the patch stays valid.

mod common;

use common::*;
use plx_store_webhook::admission::{self, Review};
use plx_store_webhook::engine::{self, Decoded};
use plx_store_webhook::{Decision, PodLimits, Request};
use serde_json::{json, Value};
use std::process::Command;

fn run_pod() -> Value {
    read_json("examples/review-run-pod.json")["request"]["object"].clone()
}

fn with_containers(n: usize, distinct_init: bool) -> Value {
    let mut pod = run_pod();
    if distinct_init {
        pod["spec"]["initContainers"] = (0..n)
            .map(|i| json!({"name": format!("polyaxon-init-artifacts-{i}")}))
            .collect();
    } else {
        pod["spec"]["containers"] = vec![json!({"name": "polyaxon-main"}); n].into();
    }
    pod
}

fn review_body(uid: &str, pod: &Value) -> Vec<u8> {
    let mut r = read_json("examples/review-run-pod.json");
    r["request"]["uid"] = uid.into();
    r["request"]["object"] = pod.clone();
    serde_json::to_vec(&r).unwrap()
}

fn denial(outcome: &plx_store_webhook::Outcome) -> &str {
    match &outcome.decision {
        Decision::Denied(m) => m,
        d => panic!("not denied: {d:?}"),
    }
}

#[test]
fn a_pod_over_the_container_limit_is_denied_naming_the_limit() {
    let plan = plan_for("examples/helm-values.yaml");
    let req = Request::pod_create("team-a");
    for pod in [with_containers(129, false), with_containers(20_000, true)] {
        for outcome in [
            mutate(&pod, &plan, &req),
            mutate_via_review(&pod, &plan, &req),
        ] {
            let m = denial(&outcome);
            assert!(
                m.contains("more than the 128") || m.contains("more than 16384 entries"),
                "{m}"
            );
            assert!(outcome.patch.is_empty());
        }
    }
}

#[test]
fn a_pod_at_the_limit_is_served_and_its_patch_applies() {
    let plan = plan_for("examples/helm-values.yaml");
    let req = Request::pod_create("team-a");
    let mut pod = with_containers(126, false);
    pod["spec"]["initContainers"] = json!([{"name": "polyaxon-init-artifacts-a"}, {"name": "x"}]);
    let outcome = mutate(&pod, &plan, &req);
    assert_eq!(
        outcome.decision,
        Decision::Mutated,
        "{:?}",
        outcome.decision
    );
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &outcome.patch).unwrap();
    for c in patched["spec"]["containers"].as_array().unwrap() {
        assert!(
            c["volumeMounts"].as_array().is_some_and(|m| !m.is_empty()),
            "{c}"
        );
    }
    // And the same result as the apiserver's json-patch gives.
    if let Some(by_go) = kubectl_apply(&pod, &serde_json::to_value(&outcome.patch).unwrap()) {
        assert_eq!(by_go, patched);
    }
}

#[test]
fn a_non_run_pod_over_the_container_limit_is_let_through() {
    let plan = plan_for("examples/helm-values.yaml");
    let mut pod = with_containers(500, false);
    pod["metadata"]["labels"] = json!({"app": "other"});
    let outcome = mutate(&pod, &plan, &Request::pod_create("team-a"));
    assert!(matches!(outcome.decision, Decision::Ignored(_)));
}

/// The reader builds at most `entries` list and map entries: 100,000 containers (a 2.5 MB body,
/// under the 3 MiB limit) are never built, and the review is still answered with its uid.
#[test]
fn the_reader_stops_at_the_entry_budget_and_the_review_keeps_its_uid() {
    let plan = plan_for("examples/helm-values.yaml");
    let body = review_body("uid-100k", &with_containers(100_000, false));
    assert!(body.len() < 3 * 1024 * 1024);
    let (review, outcome, bytes) = admission::review(&body, &plan).unwrap();
    assert!(matches!(review.object, Decoded::OverLimit(_)));
    let m = denial(&outcome);
    assert!(m.contains("more than 16384 entries"), "{m}");
    let answer: Value = serde_json::from_slice(&bytes.unwrap()).unwrap();
    assert_eq!(answer["response"]["uid"], "uid-100k");
    assert_eq!(answer["response"]["allowed"], false);
}

/// A body the one-pass reader steps aside from (a repeated field) goes to serde only when it is
/// small enough; both readers refuse the same over-budget pods.
#[test]
fn the_serde_fallback_is_bounded_too_and_agrees() {
    let limits = PodLimits::DEFAULT;
    // Over the entry budget, read by serde (a surrogate escape in the name, before the spec,
    // makes the fast path step aside; serde reads it).
    let mut pod = with_containers(20_000, false);
    pod["metadata"]["name"] = "SURROGATE".into();
    let text = pod
        .to_string()
        .replacen("\"SURROGATE\"", r#""\ud83d\ude00""#, 1);
    assert!(text.contains(r#"\ud83d"#));
    assert_eq!(
        engine::pod_scan::pod_text(&text, usize::MAX).err(),
        Some(false)
    );
    assert!(matches!(engine::decode(&text), Decoded::OverLimit(_)));
    assert!(matches!(
        engine::decode_with(&text, &limits),
        Decoded::OverLimit(m) if m.contains("16384")
    ));
    // Over the value count: refused before serde builds anything, uid kept.
    pod["spec"]["containers"] = vec![json!(0); 70_000].into();
    let body = review_body("uid-values", &pod);
    let review = Review::parse(&body).unwrap();
    assert_eq!(review.uid, "uid-values");
    assert!(matches!(&review.object, Decoded::OverLimit(m) if m.contains("65536")));
    // An envelope that cannot be read either: a clear error, no panic.
    let junk = format!("{{\"kind\": [{}]}}", vec!["1"; 70_000].join(","));
    let err = Review::parse(junk.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
}

/// The offline command answers the many-container pod at once with the denial (exit 2).
#[test]
fn offline_mutate_denies_the_many_container_pod() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.json");
    std::fs::write(&path, with_containers(100_000, false).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args(["mutate", "--config", "examples/helm-values.yaml"])
        .arg(&path)
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("too large to check"), "{stderr}");
}
