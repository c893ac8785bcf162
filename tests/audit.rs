//! Audit mode (`injection.mode` / `rules[].mode`): a routed run is admitted with annotations only;
//! the warnings say what inject mode would add or why it would deny; the audit annotations carry
//! `mode` and `would`; running on its own output changes nothing; one team can be audited while
//! the others are injected.

mod common;

use common::*;
use plx_store_webhook::engine::{warnings, Would, ANNOTATION_MODE};
use plx_store_webhook::{load_str, Decision, Outcome, Plan, Request};
use serde_json::json;

const GCS: &str = "name: gcs-artifacts\nkind: gcs\nschema: {bucket: gs://b}\nsecret: {name: gcs-secret, mountPath: /plx-context/.gc}\n";

fn plan(yaml: &str) -> Plan {
    Plan::from_config(&load_str(yaml, "test").unwrap())
}

fn audit_annotation(out: &Outcome, key: &str) -> Option<String> {
    out.audit
        .iter()
        .rev()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
}

/// Only annotations, applied by both json-patch implementations, idempotent (`check_applied`).
fn only_annotations(out: &Outcome) {
    for op in serde_json::to_value(&out.patch)
        .unwrap()
        .as_array()
        .unwrap()
    {
        assert!(
            op["path"]
                .as_str()
                .unwrap()
                .starts_with("/metadata/annotations"),
            "{op}"
        );
    }
}

#[test]
fn audit_mode_admits_with_annotations_and_says_what_it_would_add() {
    let p = plan(&format!("{GCS}injection: {{mode: audit}}\n"));
    for (name, pod) in fixture_pods() {
        let pod = with_apiserver_additions(pod);
        let (out, patched) = check_applied(&p, &pod, "polyaxon");
        assert_eq!(out.decision, Decision::Audited(Would::Inject), "{name}");
        only_annotations(&out);
        assert_eq!(
            patched["metadata"]["annotations"][ANNOTATION_MODE], "audit",
            "{name}"
        );
        assert_eq!(
            patched["metadata"]["annotations"]["plx-store-webhook.dev/store"],
            "gcs-artifacts"
        );
        // The containers are exactly as they were.
        assert_eq!(patched["spec"], pod["spec"], "{name}");
        let would: Vec<&String> = out
            .warnings
            .iter()
            .filter(|w| w.starts_with("audit: would add to container \"polyaxon-main\""))
            .collect();
        assert_eq!(would.len(), 1, "{name}: {:?}", out.warnings);
        assert!(would[0].contains("env GC_KEY_PATH"), "{}", would[0]);
        assert_eq!(audit_annotation(&out, "mode").as_deref(), Some("audit"));
        assert_eq!(audit_annotation(&out, "would").as_deref(), Some("inject"));
        assert_eq!(out.injected_containers, 0);
    }
}

#[test]
fn audit_mode_says_it_would_deny_and_admits() {
    let p = plan(&format!("{GCS}injection: {{mode: audit}}\n"));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "plx-operation-x-", "labels": {
            "app.kubernetes.io/managed-by": "polyaxon", "app.kubernetes.io/part-of": "polyaxon-runs"}},
        "spec": {"volumes": [{"name": "mine", "emptyDir": {}}],
            "containers": [{"name": "polyaxon-main", "image": "x",
                "volumeMounts": [{"name": "mine", "mountPath": "/plx-context/.gc"}]}]}});
    let inject = mutate(&pod, &plan(GCS), &Request::pod_create("polyaxon"));
    let Decision::Denied(message) = &inject.decision else {
        panic!("inject mode should deny: {:?}", inject.decision)
    };
    let (out, _) = check_applied(&p, &pod, "polyaxon");
    assert_eq!(out.decision, Decision::Audited(Would::Deny));
    assert!(out.allowed());
    only_annotations(&out);
    // The warning says it within the length the apiserver keeps.
    let said = format!("audit: would deny: {message}");
    assert_eq!(out.warnings[0], warnings::cut(said, warnings::MAX_CHARS));
    assert_eq!(audit_annotation(&out, "would").as_deref(), Some("deny"));
}

#[test]
fn a_rule_in_audit_mode_audits_its_team_only() {
    let yaml = std::fs::read_to_string(root().join("examples/teams.yaml"))
        .unwrap()
        .replace(
            "      store: vision-s3\n    - name: acme-mnist",
            "      store: vision-s3\n      mode: audit\n    - name: acme-mnist",
        );
    assert!(yaml.contains("mode: audit"));
    let p = plan(&yaml);
    let pod = with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    let (vision, _) = check_applied(&p, &pod, "team-vision");
    assert_eq!(vision.decision, Decision::Audited(Would::Inject));
    assert_eq!(vision.rule, "vision");
    only_annotations(&vision);
    let (other, _) = check_applied(&p, &pod, "polyaxon");
    assert_eq!(
        other.decision,
        Decision::Mutated,
        "other teams are injected"
    );
    assert!(audit_annotation(&other, "mode").is_none());
}

#[test]
fn a_keyless_run_in_audit_mode_keeps_its_account() {
    let yaml = std::fs::read_to_string(root().join("examples/keyless.yaml")).unwrap();
    let audited = format!("{yaml}\n").replace("injection:\n", "injection:\n  mode: audit\n");
    assert!(audited.contains("mode: audit"), "{audited}");
    let p = plan(&audited);
    let pod = with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    let keyed = |ns: &str| {
        let (out, patched) = check_applied(&p, &pod, ns);
        (out, patched["spec"]["serviceAccountName"].clone())
    };
    let inject = mutate(&pod, &plan(&yaml), &Request::pod_create("team-vision"));
    assert_eq!(
        inject.identity, "team-vision-runs",
        "inject mode switches the account"
    );
    let (out, account) = keyed("team-vision");
    assert_eq!(
        account, pod["spec"]["serviceAccountName"],
        "account unchanged"
    );
    assert!(
        out.warnings
            .iter()
            .any(|w| w.starts_with("audit: would set serviceAccountName")),
        "{:?}",
        out.warnings
    );
    assert!(out.identity.is_empty());
    // The audit annotations say what would happen, never claim the account was given.
    assert_eq!(
        audit_annotation(&out, "would-identity").as_deref(),
        Some("team-vision-runs")
    );
    assert_eq!(audit_annotation(&out, "identity"), None);
}

/// Audit mode lifts no boundary between routes: another team's identity or another route's
/// Secret is refused in audit mode too, at /mutate and /validate.
#[test]
fn audit_mode_keeps_the_refusals_between_routes() {
    let yaml = std::fs::read_to_string(root().join("examples/keyless.yaml")).unwrap();
    let p = plan(&yaml.replace("injection:\n", "injection:\n  mode: audit\n"));
    let mut pod =
        with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    pod["spec"]["serviceAccountName"] = json!("team-nlp-runs");
    let req = Request::pod_create("team-vision");
    let out = mutate(&pod, &p, &req);
    let Decision::Denied(m) = &out.decision else {
        panic!("{:?}", out.decision)
    };
    assert!(m.contains("another team's identity"), "{m}");
    let text = pod.to_string();
    let v =
        plx_store_webhook::engine::validate(&plx_store_webhook::engine::decode(&text), &p, &req);
    assert!(!v.allowed(), "{:?}", v.decision);

    let teams = std::fs::read_to_string(root().join("examples/teams.yaml")).unwrap();
    let p = plan(&teams.replace("injection:\n", "injection:\n  mode: audit\n"));
    let mut pod =
        with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    pod["spec"]["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "nlp-gcs-secret"}}]);
    let out = mutate(&pod, &p, &Request::pod_create("team-vision"));
    assert!(
        matches!(&out.decision, Decision::Denied(m) if m.contains("nlp-gcs-secret")),
        "{:?}",
        out.decision
    );
}

/// Finding 08: another team's identity is refused in audit mode whatever else the run earned —
/// a key variable (keyless route) or a mount conflict (keyed route) refused first used to hide it,
/// and audit mode admits non-security refusals.
#[test]
fn audit_mode_refuses_another_teams_identity_beside_another_refusal() {
    let denied_for_identity = |out: &Outcome| matches!(&out.decision, Decision::Denied(m) if m.contains("another team's identity"));
    let yaml = std::fs::read_to_string(root().join("examples/keyless.yaml")).unwrap();
    let p = plan(&yaml.replace("injection:\n", "injection:\n  mode: audit\n"));
    let mut pod =
        with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    pod["spec"]["serviceAccountName"] = json!("team-nlp-runs");
    pod["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "GC_KEY_PATH", "value": "/tmp/nothing.json"}));
    let req = Request::pod_create("team-vision");
    let out = mutate(&pod, &p, &req);
    assert!(denied_for_identity(&out), "{:?}", out.decision);
    let text = pod.to_string();
    let v =
        plx_store_webhook::engine::validate(&plx_store_webhook::engine::decode(&text), &p, &req);
    assert!(!v.allowed(), "{:?}", v.decision);

    // A keyed team in audit mode beside a keyless team, both in Polyaxon's namespace.
    let keyed = "artifactsStore: {name: shared-gcs, kind: gcs, schema: {bucket: gs://shared}}
connections:
  - {name: vision-gcs, kind: gcs, schema: {bucket: gs://vision}, secret: {name: vision-gcs-key, mountPath: /plx-context/.gc}}
  - {name: nlp-gcs, kind: gcs, schema: {bucket: gs://nlp}}
injection:
  rules:
    - {name: vision, mode: audit, match: {projects: [\"vision*\"]}, store: vision-gcs}
    - {name: nlp, match: {projects: [\"nlp*\"]}, store: nlp-gcs, identity: {serviceAccountName: team-nlp-runs}}
";
    let p = plan(keyed);
    let mut pod =
        with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    pod["metadata"]["annotations"]["operation.polyaxon.com/project"] = json!("vision-seg");
    pod["spec"]["serviceAccountName"] = json!("team-nlp-runs");
    let req = Request::pod_create("polyaxon");
    let out = mutate(&pod, &p, &req);
    assert!(denied_for_identity(&out), "alone: {:?}", out.decision);
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "scratch", "emptyDir": {}}));
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "scratch", "mountPath": "/plx-context/.gc"}));
    let out = mutate(&pod, &p, &req);
    assert!(
        denied_for_identity(&out),
        "with a conflict: {:?}",
        out.decision
    );
}

/// In inject mode a tenant's own `mode` marker is removed like the other markers are
/// overwritten: the fleet view must not file an injected run as audited.
#[test]
fn inject_mode_removes_a_tenant_set_mode_marker() {
    let mut pod =
        with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    pod["metadata"]["annotations"][ANNOTATION_MODE] = json!("audit");
    let (out, patched) = check_applied(&plan_for("examples/helm-values.yaml"), &pod, "polyaxon");
    assert!(out.allowed());
    assert!(
        patched["metadata"]["annotations"]
            .get(ANNOTATION_MODE)
            .is_none(),
        "{}",
        patched["metadata"]["annotations"]
    );
}

#[test]
fn modes_are_checked_and_inject_keeps_the_config_hash() {
    let err = load_str(&format!("{GCS}injection: {{mode: enforce}}\n"), "t").unwrap_err();
    assert!(
        err.to_string()
            .contains("injection.mode: \"enforce\"; expected `inject` or `audit`"),
        "{err}"
    );
    let rule = "artifactsStore: {name: gcs-artifacts, kind: gcs, schema: {bucket: gs://b}, \
                secret: {name: gcs-secret, mountPath: /plx-context/.gc}}\n\
                injection:\n  rules:\n    - {name: a, store: gcs-artifacts, mode: loud}\n";
    let err = load_str(rule, "t").unwrap_err();
    assert!(err.to_string().contains("injection.rules[0].mode"), "{err}");
    let plain = load_str(GCS, "t").unwrap().hash;
    let inject = load_str(&format!("{GCS}injection: {{mode: inject}}\n"), "t")
        .unwrap()
        .hash;
    let audit = load_str(&format!("{GCS}injection: {{mode: audit}}\n"), "t")
        .unwrap()
        .hash;
    assert_eq!(plain, inject);
    assert_ne!(plain, audit);
}

/// Through the server's router: the answer carries the warnings and audit annotations, and the
/// metrics count `result="audit"`.
#[tokio::test]
async fn the_server_answers_and_counts_audit() {
    let state = plx_store_webhook::server::AppState::new(plan(&format!(
        "{GCS}injection: {{mode: audit}}\n"
    )));
    let metrics = state.metrics.clone();
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let body = common::client::review("audit-1", &pod);
    let (status, v) = common::client::via_router(state, "/mutate", body).await;
    assert_eq!(status, 200);
    let r = &v["response"];
    assert_eq!(r["allowed"], true);
    assert_eq!(r["auditAnnotations"]["mode"], "audit");
    assert_eq!(r["auditAnnotations"]["would"], "inject");
    assert!(r["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("[PSW2102] audit: would add"));
    assert!(common::client::base64_patch(r).contains("plx-store-webhook.dev~1mode"));
    let text = metrics.encode();
    assert!(
        text.contains(
            "plx_webhook_admission_requests_total{result=\"audit\",api_version=\"v1\"} 1"
        ),
        "{text}"
    );
}
