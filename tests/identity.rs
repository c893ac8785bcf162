//! Keyless stores: a rule's runs get its ServiceAccount (the cloud identity) instead of a key.
//! Engine cases on hand-made pods (each allowed patch applied with both patchers, validated and
//! run again to prove idempotence) and the config's load-time refusals.

mod common;

use common::*;
use plx_store_webhook::engine::ConflictKind;
use plx_store_webhook::{load_file, load_str, Decision, Outcome, Plan};
use serde_json::{json, Value};

fn plan() -> Plan {
    Plan::from_config(&load_file(&root().join("examples/keyless.yaml")).unwrap())
}

/// A run pod as Polyaxon makes it, after the apiserver's ServiceAccount plugin (bound tokens).
fn run_pod(account: Option<&str>) -> Value {
    let mut pod = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
    match account {
        Some(a) => pod["spec"]["serviceAccountName"] = json!(a),
        None => {
            pod["spec"]
                .as_object_mut()
                .unwrap()
                .remove("serviceAccountName");
        }
    }
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "kube-api-access-x1y2z", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}));
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            c["volumeMounts"].as_array_mut().unwrap().push(json!({"name": "kube-api-access-x1y2z", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}));
        }
    }
    pod
}

fn check(plan: &Plan, pod: &Value, namespace: &str) -> (Outcome, Value) {
    check_applied(plan, pod, namespace)
}

#[test]
fn default_or_runs_account_becomes_the_teams_account() {
    let p = plan();
    for account in [
        None,
        Some("default"),
        Some("polyaxon-polyaxon-runs-sa"),
        Some("team-vision-runs"),
    ] {
        let (out, pod) = check(&p, &run_pod(account), "team-vision-3");
        assert_eq!(
            pod["spec"]["serviceAccountName"], "team-vision-runs",
            "{account:?}"
        );
        assert_eq!(out.identity, "team-vision-runs");
        assert_eq!(out.identity_result(), Some("assigned"));
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert!(out
            .audit
            .contains(&("identity", "team-vision-runs".to_string())));
        // No key anywhere: no key volume, no key variable.
        let text = pod.to_string();
        for key in [
            "GC_KEY_PATH",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "gcs-secret",
        ] {
            assert!(!text.contains(key), "{account:?}: {key} in the keyless pod");
        }
        assert_eq!(
            pod["metadata"]["annotations"]["plx-store-webhook.dev/store"],
            "vision-gcs"
        );
    }
    // The deprecated field follows.
    let mut pod = run_pod(Some("default"));
    pod["spec"]["serviceAccount"] = json!("default");
    let (_, pod) = check(&p, &pod, "team-vision-3");
    assert_eq!(pod["spec"]["serviceAccount"], "team-vision-runs");
    // Runs no rule matches get the default store's identity.
    let (_, pod) = check(&p, &run_pod(Some("polyaxon-polyaxon-runs-sa")), "polyaxon");
    assert_eq!(pod["spec"]["serviceAccountName"], "plx-shared-runs");
}

#[test]
fn azure_runs_are_labelled_for_the_workload_identity_webhook() {
    let (_, pod) = check(&plan(), &run_pod(None), "team-research-1");
    assert_eq!(pod["spec"]["serviceAccountName"], "team-research-runs");
    assert_eq!(
        pod["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    // Only Azure runs.
    let (_, pod) = check(&plan(), &run_pod(None), "team-nlp-1");
    assert!(pod["metadata"]["labels"]
        .get("azure.workload.identity/use")
        .is_none());
}

#[test]
fn a_users_own_account_is_kept_with_a_warning() {
    let (out, pod) = check(&plan(), &run_pod(Some("my-own-sa")), "team-vision-3");
    assert_eq!(pod["spec"]["serviceAccountName"], "my-own-sa");
    assert_eq!(out.identity_result(), Some("user_account"));
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("my-own-sa") && w.contains("team-vision-runs")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn another_teams_identity_is_refused() {
    let (out, _) = check(&plan(), &run_pod(Some("team-nlp-runs")), "team-vision-3");
    match &out.decision {
        Decision::Denied(m) => assert!(
            m.contains("team-nlp-runs") && m.contains("rule nlp") && m.contains("another team"),
            "{m}"
        ),
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_legacy_token_secret_is_refused_with_the_version_floor() {
    let mut pod = run_pod(Some("default"));
    let vols = pod["spec"]["volumes"].as_array_mut().unwrap();
    vols.pop();
    vols.push(
        json!({"name": "default-token-abcde", "secret": {"secretName": "default-token-abcde"}}),
    );
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            let m = c["volumeMounts"].as_array_mut().unwrap();
            m.pop();
            m.push(json!({"name": "default-token-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}));
        }
    }
    let (out, _) = check(&plan(), &pod, "team-vision-3");
    match &out.decision {
        Decision::Denied(m) => assert!(
            m.contains("legacy") && m.contains("1.22") && m.contains("1.21"),
            "{m}"
        ),
        d => panic!("{d:?}"),
    }
    // Already the team's account: nothing to change, nothing to refuse.
    pod["spec"]["serviceAccountName"] = json!("team-vision-runs");
    assert!(check(&plan(), &pod, "team-vision-3").0.allowed());
}

#[test]
fn a_key_in_the_pod_would_win_over_the_identity() {
    let mut pod = run_pod(Some("default"));
    let main = pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "polyaxon-main")
        .unwrap();
    main["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/k/key.json"}));
    let (out, _) = check(&plan(), &pod, "team-vision-3");
    match &out.decision {
        Decision::Denied(m) => assert!(
            m.contains("\"polyaxon-main\"")
                && m.contains("GOOGLE_APPLICATION_CREDENTIALS")
                && m.contains("before"),
            "{m}"
        ),
        d => panic!("{d:?}"),
    }
    assert_eq!(out.conflicts, [ConflictKind::KeyOverIdentity]);
    // With onConflict: skip, a warning and the identity still applies.
    let text = std::fs::read_to_string(root().join("examples/keyless.yaml")).unwrap();
    let skip = Plan::from_config(
        &load_str(
            &text.replace("  rules:\n", "  onConflict: skip\n  rules:\n"),
            "keyless",
        )
        .unwrap(),
    );
    let (out, patched) = check(&skip, &pod, "team-vision-3");
    assert_eq!(patched["spec"]["serviceAccountName"], "team-vision-runs");
    assert!(
        out.warnings.iter().any(|w| w.contains("carries a key")),
        "{:?}",
        out.warnings
    );
    // Polyaxon's own mount of a key at the SDK's default place counts too.
    let mut pod = run_pod(Some("default"));
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "gcs-secret", "secret": {"secretName": "gcs-secret"}}));
    pod["spec"]["containers"][1]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "gcs-secret", "mountPath": "/plx-context/.gc", "readOnly": true}));
    let (out, _) = check(&plan(), &pod, "team-vision-3");
    assert!(
        matches!(&out.decision, Decision::Denied(m) if m.contains("/plx-context/.gc")),
        "{:?}",
        out.decision
    );
}

#[test]
fn identities_are_checked_when_the_config_loads() {
    let base = std::fs::read_to_string(root().join("examples/keyless.yaml")).unwrap();
    let err = |text: String| load_str(&text, "k").unwrap_err().to_string();
    // A keyless store must carry no key.
    let e = err(base.replace(
        "schema: {bucket: \"gs://vision-artifacts\"}",
        "schema: {bucket: \"gs://vision-artifacts\"}\n    secret: {name: vision-key, mountPath: /plx-context/.gc}",
    ));
    assert!(
        e.contains("injection.rules[0].identity")
            && e.contains("vision-key")
            && e.contains("keyless"),
        "{e}"
    );
    // Two stores sharing one account: one team would borrow the other's bucket.
    let e = err(base.replace("team-nlp-runs", "team-vision-runs"));
    assert!(
        e.contains("team-vision-runs") && e.contains("other's bucket"),
        "{e}"
    );
    // Polyaxon's shared runs account is no team identity.
    let e = err(base.replace("team-nlp-runs", "polyaxon-polyaxon-runs-sa"));
    assert!(e.contains("shared runs accounts"), "{e}");
    // Identities only for cloud stores; the Azure label only for Azure.
    let e = err(base.replace(
        "connections:\n",
        "connections:\n  - {name: pvc, kind: volume_claim, schema: {volumeClaim: d, mountPath: /d}}\n",
    ).replace("store: vision-gcs", "store: pvc"));
    assert!(
        e.contains("volume_claim") && e.contains("only means something"),
        "{e}"
    );
    let e = err(base.replace(
        "{serviceAccountName: team-nlp-runs}",
        "{serviceAccountName: team-nlp-runs, azureWorkloadIdentity: true}",
    ));
    assert!(
        e.contains("azureWorkloadIdentity") && e.contains("wasb"),
        "{e}"
    );
    let e = err(base.replace("team-nlp-runs", "Not_A_Name"));
    assert!(
        e.contains("serviceAccountName") && e.contains("Not_A_Name"),
        "{e}"
    );
    // The same account for the same store (two rules for one team) is fine.
    let same = base.replace(
        "    - name: nlp\n",
        "    - name: vision-services\n      match: {components: [polyaxon-services]}\n      store: vision-gcs\n      identity: {serviceAccountName: team-vision-runs}\n    - name: nlp\n",
    );
    assert!(load_str(&same, "k").is_ok());
}

/// Issue #23's keyless bypasses that this build closes (the others are listed in its note).
mod bypasses {
    use super::*;

    fn add_env(pod: &mut Value, container: &str, env: Value) {
        for list in ["initContainers", "containers"] {
            for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
                if c["name"] == container {
                    match c["env"].as_array_mut() {
                        Some(e) => e.push(env.clone()),
                        None => c["env"] = json!([env.clone()]),
                    }
                }
            }
        }
    }

    #[test]
    fn a_key_in_a_container_the_pod_skips_still_counts() {
        let p = plan();
        let mut pod = run_pod(None);
        add_env(
            &mut pod,
            "polyaxon-sidecar",
            json!({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/keys/k.json"}),
        );
        pod["metadata"]["annotations"]["plx-store-webhook.dev/skip-containers"] =
            json!("polyaxon-sidecar");
        let (out, _) = check(&p, &pod, "team-vision");
        let Decision::Denied(m) = &out.decision else {
            panic!("{:?}", out.decision)
        };
        assert!(
            m.contains("\"polyaxon-sidecar\" (listed in plx-store-webhook.dev/skip-containers) carries a key"),
            "{m}"
        );
        assert!(out.conflicts.contains(&ConflictKind::KeyOverIdentity));
    }

    #[test]
    fn env_from_a_secret_is_warned_about() {
        let p = plan();
        let mut pod = run_pod(None);
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == "polyaxon-main" {
                c["envFrom"] = json!([{"secretRef": {"name": "my-creds"}}]);
            }
        }
        let (out, stored) = check(&p, &pod, "team-vision");
        assert_eq!(stored["spec"]["serviceAccountName"], "team-vision-runs");
        assert!(
            out.warnings
                .iter()
                .any(|w| w
                    .contains("\"polyaxon-main\": takes its environment from secret \"my-creds\"")),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn a_key_store_run_asking_for_a_teams_identity_is_refused() {
        let teams = "artifactsStore: {name: shared, kind: gcs, schema: {bucket: gs://s}, \
                     secret: {name: shared-key, mountPath: /plx-context/.gc}}\n\
                     connections:\n  - {name: vision-gcs, kind: gcs, schema: {bucket: gs://v}}\n\
                     injection:\n  rules:\n    - name: vision\n      match: {namespaces: [team-vision]}\n      \
                     store: vision-gcs\n      identity: {serviceAccountName: team-vision-runs}\n";
        let p = Plan::from_config(&load_str(teams, "t").unwrap());
        // In another namespace the run is routed to the shared store, which has a key.
        let (out, _) = check(&p, &run_pod(Some("team-vision-runs")), "team-nlp");
        let Decision::Denied(m) = &out.decision else {
            panic!("{:?}", out.decision)
        };
        assert!(m.contains("the cloud identity of rule vision"), "{m}");
        assert!(m.contains("which has a key"), "{m}");
        // Its own account, or the default, is fine.
        let (ok, _) = check(&p, &run_pod(None), "team-nlp");
        assert_eq!(ok.decision, Decision::Mutated);
    }

    #[test]
    fn the_default_account_is_not_an_identity() {
        let yaml = std::fs::read_to_string(root().join("examples/keyless.yaml"))
            .unwrap()
            .replace(
                "serviceAccountName: team-vision-runs",
                "serviceAccountName: default",
            );
        let err = load_str(&yaml, "t").unwrap_err().to_string();
        assert!(
            err.contains("\"default\" is every namespace's default account"),
            "{err}"
        );
    }

    /// A Secret that puts a file at the SDK's default key path, however it gets there.
    #[test]
    fn every_way_a_secret_reaches_the_sdk_key_path_is_a_key() {
        let p = plan();
        let cases: [(&str, Value, Value); 4] = [
            (
                "subPath file",
                json!({"name": "k", "secret": {"secretName": "s"}}),
                json!({"name": "k", "mountPath": "/plx-context/.gc/gc-secret.json", "subPath": "gc-secret.json"}),
            ),
            (
                "file-like directory",
                json!({"name": "k", "secret": {"secretName": "s"}}),
                json!({"name": "k", "mountPath": "/plx-context/.gc/gc-secret.json"}),
            ),
            (
                "items into place",
                json!({"name": "k", "secret": {"secretName": "s", "items": [{"key": "x", "path": ".gc/gc-secret.json"}]}}),
                json!({"name": "k", "mountPath": "/plx-context"}),
            ),
            (
                "directory",
                json!({"name": "k", "secret": {"secretName": "s"}}),
                json!({"name": "k", "mountPath": "/plx-context/.gc/"}),
            ),
        ];
        for (what, volume, mount) in cases {
            let mut pod = run_pod(None);
            pod["spec"]["volumes"].as_array_mut().unwrap().push(volume);
            for c in pod["spec"]["containers"].as_array_mut().unwrap() {
                if c["name"] == "polyaxon-main" {
                    c["volumeMounts"]
                        .as_array_mut()
                        .unwrap()
                        .push(mount.clone());
                }
            }
            let (out, _) = check(&p, &pod, "team-vision");
            let Decision::Denied(m) = &out.decision else {
                panic!("{what}: {:?}", out.decision)
            };
            assert!(
                m.contains("puts a file at /plx-context/.gc/gc-secret.json"),
                "{what}: {m}"
            );
        }
        // A Secret at the context directory whose items land elsewhere is no key there.
        let mut pod = run_pod(None);
        pod["spec"]["volumes"].as_array_mut().unwrap().push(
            json!({"name": "k", "secret": {"secretName": "s", "items": [{"key": "x", "path": "other.json"}]}}),
        );
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == "polyaxon-main" {
                c["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "k", "mountPath": "/plx-context/.gc"}));
            }
        }
        let (out, _) = check(&p, &pod, "team-vision");
        assert!(out.allowed(), "{:?}", out.decision);
    }

    /// Polyaxon's own pod for a store with a key (the seed's file-like mounts on the init and
    /// sidecar containers), created in a keyless team's namespace, keeps its key: refused.
    #[test]
    fn polyaxons_own_key_mounts_are_keys() {
        let pod = read_json("examples/run-pod.json");
        let (out, _) = check(&plan(), &pod, "team-vision");
        let Decision::Denied(m) = &out.decision else {
            panic!("{:?}", out.decision)
        };
        assert!(m.contains("gc-secret.json"), "{m}");
    }

    #[test]
    fn a_legacy_token_through_a_sub_path_is_refused() {
        let mut pod = run_pod(None);
        pod["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "old-token", "secret": {"secretName": "default-token-abcde"}}));
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            c["volumeMounts"].as_array_mut().unwrap().push(json!({"name": "old-token",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/token", "subPath": "token"}));
        }
        let (out, _) = check(&plan(), &pod, "team-vision");
        let Decision::Denied(m) = &out.decision else {
            panic!("{:?}", out.decision)
        };
        assert!(m.contains("legacy tokens"), "{m}");
    }

    /// Projected volumes: a Secret source reaching the SDK's key path is a key, one reaching the
    /// token file is a legacy token; the apiserver's own bound-token volume is neither.
    #[test]
    fn projected_secrets_are_seen_too() {
        let p = plan();
        let mut pod = run_pod(None);
        pod["spec"]["volumes"].as_array_mut().unwrap().push(
            json!({"name": "proj", "projected": {"sources": [
            {"secret": {"name": "s", "items": [{"key": "k", "path": "gc-secret.json"}]}},
            {"configMap": {"name": "c"}}]}}),
        );
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == "polyaxon-main" {
                c["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "proj", "mountPath": "/plx-context/.gc"}));
            }
        }
        let (out, _) = check(&p, &pod, "team-vision");
        let Decision::Denied(m) = &out.decision else {
            panic!("{:?}", out.decision)
        };
        assert!(
            m.contains("puts a file at /plx-context/.gc/gc-secret.json"),
            "{m}"
        );

        let mut pod = run_pod(None);
        pod["spec"]["volumes"].as_array_mut().unwrap().push(
            json!({"name": "tok", "projected": {"sources": [{"secret": {"name": "default-token-abcde"}}]}}),
        );
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            c["volumeMounts"].as_array_mut().unwrap().push(json!({"name": "tok",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/token", "subPath": "token"}));
        }
        let (out, _) = check(&p, &pod, "team-vision");
        let Decision::Denied(m) = &out.decision else {
            panic!("{:?}", out.decision)
        };
        assert!(m.contains("legacy tokens"), "{m}");
    }

    /// With `onConflict: skip` each of these refusals is a warning naming the container (the
    /// run then keeps what it had); another team's identity stays refused.
    #[test]
    fn on_conflict_skip_turns_the_refusals_into_warnings() {
        let yaml = std::fs::read_to_string(root().join("examples/keyless.yaml"))
            .unwrap()
            .replace("injection:\n", "injection:\n  onConflict: skip\n");
        assert!(yaml.contains("onConflict: skip"));
        let p = Plan::from_config(&load_str(&yaml, "t").unwrap());
        // A legacy token: the account is kept, with a warning naming the container.
        let mut pod = run_pod(None);
        pod["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "old-token", "secret": {"secretName": "default-token-abcde"}}));
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == "polyaxon-main" {
                // A legacy pod: the token file from the Secret, no bound-token mount around it.
                let mounts = c["volumeMounts"].as_array_mut().unwrap();
                mounts.retain(|m| m["name"] != "kube-api-access-x1y2z");
                mounts.push(json!({"name": "old-token",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/token", "subPath": "token"}));
            }
        }
        let (out, stored) = check(&p, &pod, "team-vision");
        assert!(out.allowed(), "{:?}", out.decision);
        assert_eq!(
            stored["spec"]["serviceAccountName"],
            pod["spec"]["serviceAccountName"]
        );
        assert!(
            out.warnings
                .iter()
                .any(|w| w
                    .starts_with("container \"polyaxon-main\" mounts its service account token")),
            "{:?}",
            out.warnings
        );
        // A key file by subPath: warned, naming the container.
        let mut pod = run_pod(None);
        pod["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "k", "secret": {"secretName": "s"}}));
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == "polyaxon-main" {
                c["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "k",
                    "mountPath": "/plx-context/.gc/gc-secret.json", "subPath": "gc-secret.json"}));
            }
        }
        let (out, _) = check(&p, &pod, "team-vision");
        assert!(out.allowed(), "{:?}", out.decision);
        assert!(
            out.warnings
                .iter()
                .any(|w| w.starts_with("container \"polyaxon-main\" carries a key")),
            "{:?}",
            out.warnings
        );
        // Another team's identity: still refused.
        let (out, _) = check(&p, &run_pod(Some("team-nlp-runs")), "team-vision");
        assert!(!out.allowed());
    }
}

/// Findings 10, 11, 13, 14: lookalikes of what the identity webhooks add are refused (or, for
/// envFrom, warned about) — asked of the engine directly, since some of these pods would not
/// start (a file mounted inside a read-only projected volume).
#[test]
fn lookalikes_of_the_identity_additions_are_not_accepted() {
    let plan = plan_for("examples/keyless.yaml");
    let ask = |ns: &str, edit: &dyn Fn(&mut Value)| {
        let mut pod =
            with_apiserver_additions(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
        edit(&mut pod);
        mutate(&pod, &plan, &plx_store_webhook::Request::pod_create(ns))
    };
    let main = |pod: &mut Value| pod["spec"]["containers"][0].clone();
    let set = |pod: &mut Value, c: Value| pod["spec"]["containers"][0] = c;
    let denied = |out: &Outcome, phrase: &str| {
        assert!(
            matches!(&out.decision, Decision::Denied(m) if m.contains(phrase)),
            "{phrase}: {:?}",
            out.decision
        )
    };
    let irsa_token = json!({"name": "aws-iam-token", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]}});
    // 10: a Secret file mounted at the IRSA token path itself.
    let out = ask("team-nlp-9", &|pod| {
        pod["spec"]["serviceAccountName"] = json!("team-nlp-runs");
        let vols = pod["spec"]["volumes"].as_array_mut().unwrap();
        vols.push(irsa_token.clone());
        vols.push(json!({"name": "k", "secret": {"secretName": "foreign-oidc-token"}}));
        let mut c = main(pod);
        c["env"].as_array_mut().unwrap().extend([
            json!({"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/team-nlp"}),
            json!({"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}),
        ]);
        c["volumeMounts"].as_array_mut().unwrap().extend([
            json!({"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}),
            json!({"name": "k", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "subPath": "token"}),
        ]);
        set(pod, c);
    });
    denied(&out, "carries a key (env AWS_");
    // 11: a projected volume at the token directory whose `token` is not the pod's token.
    for source in [
        json!({"downwardAPI": {"items": [{"path": "token", "fieldRef": {"fieldPath": "metadata.annotations['t']"}}]}}),
        json!({"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "token"}]}}),
    ] {
        let out = ask("team-vision", &|pod| {
            pod["spec"]["volumes"].as_array_mut().unwrap().push(json!({"name": "lookalike",
                "projected": {"sources": [{"serviceAccountToken": {"path": "real-token"}}, source.clone()]}}));
            let mut c = main(pod);
            c["volumeMounts"].as_array_mut().unwrap().push(json!(
                {"name": "lookalike", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/", "readOnly": true}));
            set(pod, c);
        });
        denied(&out, "service account token directory");
    }
    // 13: a Secret named like the route's ConfigMap is the tenant's: warned about.
    let out = ask("team-nlp-1", &|pod| {
        let mut c = main(pod);
        c["envFrom"] = json!([{"secretRef": {"name": "nlp-s3-settings"}}]);
        set(pod, c);
    });
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("takes its environment from secret \"nlp-s3-settings\"")),
        "{:?}",
        out.warnings
    );
    // 13: the route's ConfigMap under a prefix makes other variables (AWS_ + a key): warned about.
    let out = ask("team-nlp-1", &|pod| {
        let mut c = main(pod);
        c["envFrom"] = json!([{"prefix": "AWS_", "configMapRef": {"name": "nlp-s3-settings"}}]);
        set(pod, c);
    });
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("takes its environment from configMap \"nlp-s3-settings\"")),
        "{:?}",
        out.warnings
    );
    // 14: where the identity is exchanged cannot be moved.
    for (ns, account, var, value) in [
        (
            "team-research-1",
            None,
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "http://imds.attacker.example",
        ),
        (
            "team-nlp-1",
            None,
            "AWS_ENDPOINT_URL_STS",
            "https://sts.attacker.example",
        ),
        (
            "team-research-9",
            Some("team-research-runs"),
            "AZURE_AUTHORITY_HOST",
            "https://login.attacker.example/",
        ),
    ] {
        let out = ask(ns, &|pod| {
            if let Some(a) = account {
                pod["spec"]["serviceAccountName"] = json!(a);
            }
            let mut c = main(pod);
            c["env"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": var, "value": value}));
            set(pod, c);
        });
        denied(&out, &format!("carries a key (env {var}"));
    }
}
