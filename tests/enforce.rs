//! Enforce (`POST /validate`): the engine asked, on the final pod, whether it would still add
//! anything. A run whose store was removed after the mutating webhook, or that never saw it, is
//! refused naming what is missing and where; a run carrying another rule's store is refused;
//! the webhook's own output, non-runs and audit-mode routes pass. Never a patch.

mod common;

use common::*;
use plx_store_webhook::engine::validate;
use plx_store_webhook::{engine, load_str, Decision, Outcome, Plan, Request};
use serde_json::{json, Value};

fn plan(yaml: &str) -> Plan {
    Plan::from_config(&load_str(yaml, "test").unwrap())
}

fn check(pod: &Value, plan: &Plan, ns: &str) -> Outcome {
    let text = pod.to_string();
    let out = validate(&engine::decode(&text), plan, &Request::pod_create(ns));
    assert!(out.patch.is_empty(), "a validating answer never patches");
    out
}

fn denial(out: &Outcome) -> &str {
    match &out.decision {
        Decision::Denied(m) => m,
        d => panic!("not denied: {d:?}"),
    }
}

fn mutated(pod: &Value, plan: &Plan, ns: &str) -> Value {
    check_applied(plan, pod, ns).1
}

#[test]
fn the_mutating_webhooks_output_passes_and_a_bypassed_run_is_refused() {
    let p = plan_for("examples/helm-values.yaml");
    for (name, pod) in fixture_pods() {
        let pod = with_apiserver_additions(pod);
        let done = mutated(&pod, &p, "polyaxon");
        let ok = check(&done, &p, "polyaxon");
        assert_eq!(
            ok.decision,
            Decision::Unchanged,
            "{name}: {:?}",
            ok.decision
        );
        let bypassed = check(&pod, &p, "polyaxon");
        let m = denial(&bypassed);
        assert!(m.contains("plx-store-webhook (enforce)"), "{m}");
        assert!(
            m.contains("container \"polyaxon-main\" lacks"),
            "{name}: {m}"
        );
    }
}

#[test]
fn a_later_webhook_that_strips_the_volume_makes_the_run_refused() {
    let p = plan_for("examples/helm-values.yaml");
    let pod = with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    let mut done = mutated(&pod, &p, "polyaxon");
    // Another webhook drops our mount from the main container.
    for c in done["spec"]["containers"].as_array_mut().unwrap() {
        if c["name"] == "polyaxon-main" {
            let mounts = c["volumeMounts"].as_array_mut().unwrap();
            mounts.retain(|m| m["name"] != "gcs-secret");
        }
    }
    let m = denial(&check(&done, &p, "polyaxon")).to_string();
    assert!(
        m.contains("container \"polyaxon-main\" lacks mount of secret gcs-secret"),
        "{m}"
    );
    // Losing only the marker annotations loses no credentials: allowed.
    let mut unmarked = mutated(&pod, &p, "polyaxon");
    unmarked["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("plx-store-webhook.dev/"));
    assert_eq!(
        check(&unmarked, &p, "polyaxon").decision,
        Decision::Unchanged
    );
}

#[test]
fn non_runs_and_audit_routes_pass() {
    let p = plan_for("examples/helm-values.yaml");
    let mut other = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
    other["metadata"]["labels"] = json!({"app": "web"});
    assert!(matches!(
        check(&other, &p, "polyaxon").decision,
        Decision::Ignored(_)
    ));
    let yaml = std::fs::read_to_string(root().join("examples/helm-values.yaml"))
        .unwrap()
        .replace("  onConflict: deny", "  mode: audit\n  onConflict: deny");
    let audit = plan(&yaml);
    let pod = with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    let out = check(&pod, &audit, "polyaxon");
    assert!(out.allowed(), "{:?}", out.decision);
    assert!(out.warnings[0].contains("audit mode"), "{:?}", out.warnings);
}

#[test]
fn a_run_carrying_another_rules_store_is_refused() {
    let p = plan_for("examples/teams.yaml");
    let pod = with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    // Given its own store (team-vision's rule), then another team's GCS secret as a volume.
    let mut done = mutated(&pod, &p, "team-vision");
    assert_eq!(
        check(&done, &p, "team-vision").decision,
        Decision::Unchanged
    );
    done["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "borrowed", "secret": {"secretName": "nlp-gcs-secret"}}));
    let m = denial(&check(&done, &p, "team-vision")).to_string();
    assert!(
        m.contains("store \"nlp-gcs\"'s secret \"nlp-gcs-secret\""),
        "{m}"
    );
}

#[test]
fn a_keyless_run_not_switched_to_its_account_is_refused() {
    let p = plan_for("examples/keyless.yaml");
    let pod = with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    let done = mutated(&pod, &p, "team-vision");
    assert_eq!(
        check(&done, &p, "team-vision").decision,
        Decision::Unchanged
    );
    let m = denial(&check(&pod, &p, "team-vision")).to_string();
    assert!(m.contains("service account \"team-vision-runs\""), "{m}");
}

/// Through the router: `/validate` answers without a patch and counts in
/// `plx_webhook_validations_total`.
#[tokio::test]
async fn the_server_validates_and_counts() {
    let state = plx_store_webhook::server::AppState::new(plan_for("examples/helm-values.yaml"));
    let metrics = state.metrics.clone();
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let body = common::client::review("v-1", &pod);
    let (status, v) = common::client::via_router(state, "/validate", body).await;
    assert_eq!(status, 200);
    let r = &v["response"];
    assert_eq!(r["uid"], "v-1");
    assert_eq!(r["allowed"], false);
    assert!(
        r.get("patch").is_none() && r.get("patchType").is_none(),
        "{r}"
    );
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .contains("plx-store-webhook (enforce)"));
    let text = metrics.encode();
    assert!(
        text.contains("plx_webhook_validations_total{result=\"denied\"} 1"),
        "{text}"
    );
    // The mutation counters are there from the start, at 0: none counted.
    assert!(
        text.lines()
            .filter(|l| l.starts_with("plx_webhook_admission_requests_total{"))
            .all(|l| l.ends_with(" 0")),
        "not counted as a mutation: {text}"
    );
}
