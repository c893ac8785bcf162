//! Output is bounded by input (issue #29 item 1): for generated hostile pods — many `envFrom`,
//! `env`, volumes and mounts, long and odd names, in keyless, keyed, audit and skip routes —
//! what a review produces (the response, warnings, denial message, patch and audit annotations
//! inside it, and the decision log line) stays within [`produced_bound`] of its body, on
//! `/mutate` and on `/validate`. The server's memory budget charges the same bound
//! (`server::budget::work_reserve`), so this property is what makes that charge sufficient.

mod common;

use common::*;
use plx_store_webhook::admission::{review_at, Stage};
use plx_store_webhook::decision_log::Decision;
use plx_store_webhook::engine::warnings::{MAX_CHARS, MAX_WARNINGS};
use plx_store_webhook::server::budget::produced_bound;
use plx_store_webhook::{load_str, Plan};
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY_PATHS: &[&str] = &[
    "/plx-context/.gc",
    "/plx-context/.gc/gc-secret.json",
    "/root/.aws",
    "/root/.config/gcloud",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/data",
];
const ENV_NAMES: &[&str] = &[
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GC_KEY_PATH",
    "AWS_ACCESS_KEY_ID",
    "AZURE_CLIENT_SECRET",
    "FOO",
];

fn configs() -> Vec<Plan> {
    let mut out = Vec::new();
    for path in [
        "examples/keyless.yaml",
        "examples/teams.yaml",
        "examples/helm-values.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(path)).unwrap();
        for extra in ["", "  onConflict: skip\n", "  mode: audit\n"] {
            let key = extra.trim_start().split(':').next().unwrap();
            let yaml = if extra.is_empty() {
                text.clone()
            } else if let Some(at) = text.find(&format!("\n  {key}:")) {
                let end = text[at + 1..].find('\n').map_or(text.len(), |e| at + 1 + e);
                format!("{}\n{}{}", &text[..at], extra.trim_end(), &text[end..])
            } else if text.contains("\ninjection:\n") {
                text.replace("\ninjection:\n", &format!("\ninjection:\n{extra}"))
            } else {
                format!("{text}\ninjection:\n{extra}")
            };
            out.push(Plan::from_config(&load_str(&yaml, path).unwrap()));
        }
    }
    out
}

/// A name: short, Kubernetes-long, or far past any limit; some with quotes and non-ASCII.
fn name() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(1usize), Just(20), Just(300), Just(8200)],
        prop_oneof![Just("x"), Just("polyaxon-init-artifacts-"), Just("é\"\\")],
        0u8..4,
    )
        .prop_map(|(n, base, tag)| format!("{base}{}{tag}", "x".repeat(n)))
}

fn container() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("polyaxon-main".to_string()),
            Just("polyaxon-sidecar".to_string()),
            name().prop_map(|n| format!("polyaxon-init-artifacts-{n}")),
            name(),
        ],
        0usize..1500,
        prop::collection::vec(name(), 1..4),
        0usize..300,
        0usize..100,
    )
        .prop_map(|(cname, env_from, secrets, env, mounts)| {
            let env_from: Vec<Value> = (0..env_from)
                .map(|i| {
                    let n = &secrets[i % secrets.len()];
                    if i % 3 == 2 {
                        json!({"configMapRef": {"name": n}})
                    } else {
                        json!({"secretRef": {"name": n}})
                    }
                })
                .collect();
            let env: Vec<Value> = (0..env)
                .map(|i| match i % 3 {
                    0 => json!({"name": ENV_NAMES[i % ENV_NAMES.len()], "value": "/dev/null"}),
                    1 => json!({"name": ENV_NAMES[i % ENV_NAMES.len()],
                        "valueFrom": {"secretKeyRef": {"name": secrets[0], "key": "k"}}}),
                    _ => json!({"name": format!("V{i}"), "value": "v"}),
                })
                .collect();
            let mounts: Vec<Value> = (0..mounts)
                .map(|i| {
                    json!({"name": format!("v{}", i % 7), "mountPath": KEY_PATHS[i % KEY_PATHS.len()],
                        "subPath": if i % 4 == 0 { "gc-secret.json" } else { "" }})
                })
                .collect();
            json!({"name": cname, "image": "i", "envFrom": env_from, "env": env,
                "volumeMounts": mounts})
        })
}

fn volume(i: usize, secret: String) -> Value {
    let name = format!("v{}", i % 7);
    match i % 4 {
        0 => json!({"name": name, "secret": {"secretName": secret,
            "items": [{"key": "k", "path": "gc-secret.json"}]}}),
        1 => json!({"name": name, "projected": {"sources": [{"secret": {"name": secret}},
            {"configMap": {"name": secret}}]}}),
        2 => json!({"name": name, "configMap": {"name": secret}}),
        _ => json!({"name": name, "emptyDir": {}}),
    }
}

fn review() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(container(), 1..4),
        prop::collection::vec(container(), 0..3),
        prop::collection::vec(name(), 0..40),
        prop_oneof![
            Just("team-vision"),
            Just("team-nlp-1"),
            Just("team-research"),
            Just("polyaxon")
        ],
        name(),
    )
        .prop_map(|(containers, init, volumes, ns, pod_name)| {
            let mut r = read_json("examples/review-run-pod.json");
            r["request"]["namespace"] = ns.into();
            let pod = &mut r["request"]["object"];
            pod["metadata"]["name"] = pod_name.into();
            pod["metadata"]["namespace"] = ns.into();
            pod["spec"]["containers"] = containers.into();
            pod["spec"]["initContainers"] = init.into();
            pod["spec"]["volumes"] = volumes
                .into_iter()
                .enumerate()
                .map(|(i, s)| volume(i, s))
                .collect::<Vec<_>>()
                .into();
            serde_json::to_vec(&r).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn what_a_review_produces_is_bounded_by_its_body(body in review()) {
        for plan in configs() {
            for stage in [Stage::Mutate, Stage::Validate] {
                let (review, outcome, bytes) = review_at(&body, &plan, stage).unwrap();
                let response = bytes.unwrap();
                let mut line = Vec::new();
                Decision::of(&review, &outcome, &plan.config_hash, 1)
                    .write_json(&mut line, std::time::SystemTime::now());
                let produced = response.len() + line.len();
                prop_assert!(
                    produced <= produced_bound(body.len(), review.object.containers()),
                    "{stage:?}: {produced} bytes produced from a {}-byte body ({:?})",
                    body.len(),
                    outcome.decision.label()
                );
                prop_assert!(outcome.warnings.len() <= MAX_WARNINGS + 1);
                for w in outcome.warnings.iter() {
                    prop_assert!(w.chars().count() <= MAX_CHARS, "{w}");
                }
                let v: Value = serde_json::from_slice(&response).unwrap();
                if let Some(m) = v["response"]["status"]["message"].as_str() {
                    prop_assert!(m.chars().count() <= 2048);
                }
            }
        }
    }
}

/// The patch grows with the containers: the most of them, each as small as a container can be
/// written, is the ratio's worst case.
#[test]
fn the_most_containers_with_the_least_text_stay_within_the_bound() {
    for plan in configs() {
        for n in [1, 16, 64, 127] {
            let mut r = read_json("examples/review-run-pod.json");
            let pod = &mut r["request"]["object"];
            pod["spec"]["volumes"] = json!([]);
            pod["spec"]["containers"] = json!([{"name": "polyaxon-main"}]);
            pod["spec"]["initContainers"] = (1..n)
                .map(|i| json!({"name": format!("polyaxon-init-tb-{i}")}))
                .collect::<Vec<_>>()
                .into();
            let body = serde_json::to_vec(&r).unwrap();
            for stage in [Stage::Mutate, Stage::Validate] {
                let (review, outcome, bytes) = review_at(&body, &plan, stage).unwrap();
                let mut line = Vec::new();
                Decision::of(&review, &outcome, &plan.config_hash, 1)
                    .write_json(&mut line, std::time::SystemTime::now());
                let produced = bytes.unwrap().len() + line.len();
                eprintln!("{n} containers {stage:?}: {produced} from {}", body.len());
                assert!(
                    produced <= produced_bound(body.len(), review.object.containers()),
                    "{n}: {produced} from {}",
                    body.len()
                );
            }
        }
    }
}
