//! The fleet view's shell without a cluster (the cluster is tests/e2e's): the view's answers
//! (no claim until a watch has listed, none while it fails), admission reading it, `/fleet` and
//! the gauges, the `rbac` document.

mod common;

use common::client::via_router;
use common::*;
use plx_store_webhook::fleet::view::{Failure, NamedWatch, WatchState};
use plx_store_webhook::fleet::{judge, rbac, report, Fleet};
use plx_store_webhook::references::{ObjectKind, Presence, References};
use plx_store_webhook::server::AppState;
use plx_store_webhook::Plan;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

fn review(ns: &str) -> Vec<u8> {
    let mut pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    pod["metadata"]["namespace"] = json!(ns);
    serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "f", "operation": "CREATE", "namespace": ns,
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "object": pod}}),
    )
    .unwrap()
}

/// A fleet whose `gcs-secret` watch is in `state`, knowing `namespaces`.
fn fleet(state: WatchState, namespaces: &[&str]) -> Arc<Fleet> {
    let f = Arc::new(Fleet::default());
    {
        let mut v = f.write();
        v.pods_watches.insert(
            String::new(),
            WatchState {
                synced: true,
                failure: None,
            },
        );
        v.named.entry(ObjectKind::Secret).or_default().insert(
            ("gcs-secret".into(), String::new()),
            NamedWatch {
                state,
                namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
    f
}

fn synced() -> WatchState {
    WatchState {
        synced: true,
        failure: None,
    }
}

fn state_with(f: Arc<Fleet>) -> AppState {
    let mut s = AppState::new(plan_for("examples/store-ctxdir.yaml"));
    s.fleet = Some(f);
    s
}

fn warnings(resp: &Value) -> Vec<String> {
    resp["response"]["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn no_claim_before_a_list_or_while_failing() {
    let listing = WatchState::default();
    let failing = WatchState {
        synced: true,
        failure: Some(Failure {
            message: "connection refused".into(),
            forbidden: false,
            rule: String::new(),
        }),
    };
    for (st, want) in [
        (synced(), Presence::Missing),
        (listing, Presence::Unknown),
        (failing, Presence::Unknown),
    ] {
        let f = fleet(st, &["team-b"]);
        assert_eq!(f.presence(ObjectKind::Secret, "gcs-secret", "team-a"), want);
    }
    let f = fleet(synced(), &["team-a"]);
    assert_eq!(
        f.presence(ObjectKind::Secret, "gcs-secret", "team-a"),
        Presence::Present
    );
    // A name nobody watches: unknown, never missing.
    assert_eq!(
        f.presence(ObjectKind::Secret, "other", "team-a"),
        Presence::Unknown
    );
}

#[tokio::test]
async fn admission_warns_from_the_view_and_keeps_admitting_without_it() {
    let (code, resp) = via_router(
        state_with(fleet(synced(), &[])),
        "/mutate",
        review("team-a"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(resp["response"]["allowed"], true);
    assert!(resp["response"]["patch"].is_string());
    assert_eq!(
        warnings(&resp),
        ["[PSW2014] secret gcs-secret not found in namespace team-a: the pod will not start"]
    );
    // The API unreachable (the watch failing): admitted, nothing claimed.
    let down = fleet(
        WatchState {
            synced: false,
            failure: Some(Failure {
                message: "connection refused".into(),
                forbidden: false,
                rule: String::new(),
            }),
        },
        &[],
    );
    let (code, resp) = via_router(state_with(down), "/mutate", review("team-a")).await;
    assert_eq!(code, 200);
    assert_eq!(resp["response"]["allowed"], true);
    assert!(warnings(&resp).is_empty(), "{resp}");
}

#[tokio::test]
async fn fleet_endpoint_and_gauges() {
    let plan = plan_for("examples/store-ctxdir.yaml");
    let f = fleet(synced(), &["team-b"]);
    {
        let mut v = f.write();
        v.pods_config.clone_from(&plan.config_hash);
        let raw = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
        let injected = check_applied(&plan, &raw, "team-b").1;
        for (ns, name, pod) in [("team-a", "never", &raw), ("team-b", "ok", &injected)] {
            let p = judge(ns, name, &pod.to_string(), &plan).unwrap();
            v.pods.insert((ns.into(), name.into()), p);
        }
    }
    let mut state = AppState::new(plan.clone());
    state.metrics = Arc::new(plx_store_webhook::metrics::Metrics::with_fleet());
    state.fleet = Some(f.clone());
    let admin = plx_store_webhook::server::admin_router(state.clone());
    let (status, body) = get(&admin, "/fleet").await;
    assert_eq!(status, 200);
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["synced"], true);
    assert_eq!(r["counts"]["missing"], 1);
    assert_eq!(r["counts"]["current"], 1);
    assert_eq!(
        r["missing_references"],
        json!([{"kind": "secret", "name": "gcs-secret", "namespace": "team-a", "runs": 1}])
    );
    let rows: Vec<(&str, &str)> = r["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pod"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [("never", "missing"), ("ok", "current")]);
    let (_, text) = get(&admin, "/metrics").await;
    for line in [
        "plx_webhook_run_pods{state=\"missing\"} 1",
        "plx_webhook_run_pods{state=\"stale\"} 0",
        "plx_webhook_missing_references{kind=\"secret\",name=\"gcs-secret\",namespace=\"team-a\"} 1",
        "plx_webhook_fleet_synced 1",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    // The table says the same.
    let t = report::table(&report::build(&f.read(), &plan, true));
    assert!(t.contains("1 current, 1 missing"), "{t}");
    assert!(t.contains("secret gcs-secret team-a: 1"), "{t}");
    // Without --fleet: no /fleet, and no fleet series (no alert reads a view that is not there).
    let off = plx_store_webhook::server::admin_router(AppState::new(plan));
    assert_eq!(get(&off, "/fleet").await.0, 404);
    let (_, text) = get(&off, "/metrics").await;
    assert!(
        !text.contains("fleet") && !text.contains("run_pods"),
        "{text}"
    );
}

/// GET `path` on the admin router: status and body text.
async fn get(router: &axum::Router, path: &str) -> (u16, String) {
    let req = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn rbac_names_every_object_and_nothing_else() {
    let plan = |f: &str| Plan::from_config(&plx_store_webhook::load_file(&root().join(f)).unwrap());
    let teams = rbac::render(&plan("examples/teams.yaml"), "wh", "ns");
    assert!(teams.contains("resources: [\"secrets\"]\n    resourceNames: [\"gcs-secret\", \"nlp-gcs-secret\", \"vision-aws\"]"), "{teams}");
    assert!(
        teams
            .contains("resources: [\"persistentvolumeclaims\"]\n    resourceNames: [\"datasets\"]"),
        "{teams}"
    );
    assert!(teams.contains("name: wh\n    namespace: ns"), "{teams}");
    let keyless = rbac::render(&plan("examples/keyless.yaml"), "wh", "ns");
    assert!(
        !keyless.contains("\"secrets\""),
        "a keyless config needs no Secret access: {keyless}"
    );
    assert!(keyless.contains("resourceNames: [\"plx-shared-runs\", \"team-nlp-runs\", \"team-research-runs\", \"team-vision-runs\"]"), "{keyless}");
    // Every rule but the pods one is restricted by name; verbs are read-only.
    for doc in [&teams, &keyless] {
        let rules = doc
            .split("rules:")
            .nth(1)
            .unwrap()
            .split("---")
            .next()
            .unwrap();
        assert_eq!(
            rules.matches("- apiGroups").count(),
            1 + rules.matches("resourceNames").count()
        );
        assert!(
            !rules.contains("create") && !rules.contains("update") && !rules.contains("delete")
        );
        // No watch calls `get`: the verb is not granted.
        assert!(!rules.contains("\"get\""), "{rules}");
    }
}

/// Routes that name their namespaces get Roles there, not a ClusterRole: the store Secret of a
/// rule for `team-a` and `team-b` is readable in those two namespaces only.
#[test]
fn rbac_is_namespaced_where_the_routes_are() {
    let yaml = std::fs::read_to_string(root().join("examples/teams.yaml"))
        .unwrap()
        .replace(
            "namespaces: [\"team-vision\", \"team-vision-*\"]",
            "namespaces: [team-a, team-b]",
        );
    let plan = Plan::from_config(&plx_store_webhook::load_str(&yaml, "t").unwrap());
    let doc = rbac::render(&plan, "wh", "ns");
    let docs: Vec<&str> = doc.split("---\n").collect();
    let cluster = docs
        .iter()
        .find(|d| d.contains("kind: ClusterRole\n"))
        .unwrap();
    // vision-aws is still needed cluster-wide by the owner-matched acme-mnist rule.
    assert!(cluster.contains("resources: [\"pods\"]"), "{cluster}");
    // Only the two namespaces' Roles otherwise.
    let only_a = yaml.replace(
        "    - name: acme-mnist\n      match:\n        owners: [acme]\n        projects: [\"mnist*\"]\n      store: vision-s3\n      connections: [scratch]\n",
        "",
    );
    assert_ne!(only_a, yaml);
    let plan = Plan::from_config(&plx_store_webhook::load_str(&only_a, "t").unwrap());
    let doc = rbac::render(&plan, "wh", "ns");
    for ns in ["team-a", "team-b"] {
        let role = doc
            .split("---\n")
            .find(|d| d.contains("kind: Role\n") && d.contains(&format!("namespace: {ns}\n")))
            .unwrap_or_else(|| panic!("no Role in {ns}: {doc}"));
        assert!(
            role.contains("resources: [\"secrets\"]\n    resourceNames: [\"vision-aws\"]\n    verbs: [\"list\", \"watch\"]"),
            "{role}"
        );
        assert!(doc.contains(&format!("kind: RoleBinding\nmetadata:\n  name: plx-store-webhook-fleet\n  namespace: {ns}\n")), "{doc}");
    }
    let cluster = doc
        .split("---\n")
        .find(|d| d.contains("kind: ClusterRole\n"))
        .unwrap();
    assert!(!cluster.contains("vision-aws"), "{cluster}");
    // The watches are the same rules: one per namespace for vision-aws.
    let t = plx_store_webhook::fleet::watch::targets(&plan);
    let vision: Vec<_> = t
        .iter()
        .filter_map(|t| match t {
            plx_store_webhook::fleet::watch::Target::Named { object, namespace }
                if object.name == "vision-aws" =>
            {
                namespace.clone()
            }
            _ => None,
        })
        .collect();
    assert_eq!(vision, ["team-a", "team-b"]);
}
