//! Engine behaviour on hand-made pods: selection, absent arrays, reuse, conflicts, key paths,
//! warnings, other store kinds, malformed objects. Each allowed case is also applied with
//! kubectl (Go's json-patch), validated, and run a second time to prove idempotence.

mod common;

use common::*;
use plx_store_webhook::engine::IgnoreReason;
use plx_store_webhook::{load_str, Decision, Outcome, Plan, Request};
use serde_json::{json, Value};

const GCS: &str = "name: gcs-artifacts\nkind: gcs\nschema: {bucket: gs://b}\nsecret: {name: gcs-secret, mountPath: /plx-context/.gc}\n";
const RUN_LABELS: &str =
    r#"{"app.kubernetes.io/managed-by": "polyaxon", "app.kubernetes.io/part-of": "polyaxon-runs"}"#;

fn plan(yaml: &str) -> Plan {
    Plan::from_config(&load_str(yaml, "test").unwrap())
}

fn run_pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "plx-operation-x-", "labels": serde_json::from_str::<Value>(RUN_LABELS).unwrap()},
        "spec": {"containers": containers}})
}

/// Mutate under `yaml` in namespace `polyaxon`, apply, validate and re-run (`check_applied`).
fn check(yaml: &str, pod: &Value) -> (Outcome, Value) {
    check_applied(&plan(yaml), pod, "polyaxon")
}

fn c<'a>(pod: &'a Value, name: &str) -> &'a Value {
    containers(pod)
        .into_iter()
        .find(|(_, _, c)| c["name"] == name)
        .unwrap()
        .2
}

#[test]
fn only_run_pod_creates_are_touched() {
    let p = plan(GCS);
    let mut pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    let req = Request::pod_create("polyaxon");
    let others = [
        Request {
            operation: "UPDATE",
            ..req
        },
        Request {
            sub_resource: "ephemeralcontainers",
            ..req
        },
        Request {
            resource: "deployments",
            group: "apps",
            ..req
        },
    ];
    for other in others {
        assert_eq!(
            mutate(&pod, &p, &other).decision,
            Decision::Ignored(IgnoreReason::NotPodCreate)
        );
    }
    pod["metadata"]["labels"]["app.kubernetes.io/part-of"] = json!("polyaxon-core");
    assert_eq!(
        mutate(&pod, &p, &req).decision,
        Decision::Ignored(IgnoreReason::NotARun)
    );
    pod["metadata"].as_object_mut().unwrap().remove("labels");
    assert_eq!(
        mutate(&pod, &p, &req).decision,
        Decision::Ignored(IgnoreReason::NotARun)
    );
    let user_only = run_pod(json!([{"name": "my-tool", "image": "x"}]));
    assert_eq!(
        mutate(&user_only, &p, &req).decision,
        Decision::Ignored(IgnoreReason::NoTargetContainer)
    );
}

#[test]
fn namespace_lists_and_custom_selector() {
    let yaml = format!("{GCS}injection:\n  namespaces: {{include: [\"team-*\"], exclude: [team-secret]}}\n  selector: {{plx: run}}\n");
    let p = plan(&yaml);
    let mut pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    pod["metadata"]["labels"] = json!({"plx": "run"});
    assert_eq!(
        mutate(&pod, &p, &Request::pod_create("team-a")).decision,
        Decision::Mutated
    );
    assert_eq!(
        mutate(&pod, &p, &Request::pod_create("team-secret")).decision,
        Decision::Ignored(IgnoreReason::NamespaceExcluded)
    );
    assert_eq!(
        mutate(&pod, &p, &Request::pod_create("polyaxon")).decision,
        Decision::Ignored(IgnoreReason::NamespaceExcluded)
    );
}

#[test]
fn absent_and_null_arrays_are_created_once() {
    let mut pod = run_pod(json!([
        {"name": "polyaxon-main", "image": "x"},
        {"name": "polyaxon-sidecar", "image": "x", "env": null, "volumeMounts": null, "envFrom": null}
    ]));
    pod["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let yaml = format!("{GCS}configMap: {{name: extra-env}}\n");
    let (out, p) = check(&yaml, &pod);
    assert_eq!(out.decision, Decision::Mutated);
    let text = serde_json::to_string(&out.patch).unwrap();
    assert!(
        text.contains(r#""path":"/spec/volumes","value":[{"#),
        "{text}"
    );
    assert!(
        text.contains(r#""path":"/metadata/annotations","value":{"#),
        "{text}"
    );
    for name in ["polyaxon-main", "polyaxon-sidecar"] {
        assert_eq!(
            env_value(c(&p, name), "GC_KEY_PATH"),
            Some("/plx-context/.gc/gc-secret.json")
        );
        assert_eq!(
            c(&p, name)["envFrom"],
            json!([{"configMapRef": {"name": "extra-env"}}])
        );
        assert_eq!(c(&p, name)["volumeMounts"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn volume_name_taken_by_other_storage_gets_a_unique_name() {
    let mut pod = run_pod(
        json!([{"name": "polyaxon-main", "image": "x", "volumeMounts": [{"name": "gcs-secret", "mountPath": "/scratch"}]}]),
    );
    pod["spec"]["volumes"] = json!([{"name": "gcs-secret", "emptyDir": {}}]);
    let (out, p) = check(GCS, &pod);
    assert_eq!(out.decision, Decision::Mutated);
    let vols = p["spec"]["volumes"].as_array().unwrap();
    assert!(vols.contains(&json!({"name": "gcs-secret-2", "secret": {"secretName": "gcs-secret"}})));
    let main = c(&p, "polyaxon-main");
    assert_eq!(
        kubelet_file(&p, main, env_value(main, "GC_KEY_PATH").unwrap()),
        Some(("gcs-secret".into(), "gc-secret.json".into()))
    );
}

#[test]
fn conflicts_deny_with_an_actionable_message_or_skip() {
    let pod = {
        let mut p = run_pod(json!([
            {"name": "polyaxon-main", "image": "x", "volumeMounts": [{"name": "other", "mountPath": "/plx-context/.gc"}]},
            {"name": "polyaxon-sidecar", "image": "x"}
        ]));
        p["spec"]["volumes"] = json!([{"name": "other", "emptyDir": {}}]);
        p
    };
    let (out, _) = check(GCS, &pod);
    let Decision::Denied(msg) = &out.decision else {
        panic!("{:?}", out.decision)
    };
    assert!(
        msg.contains("polyaxon-main")
            && msg.contains("/plx-context/.gc")
            && msg.contains("\"other\""),
        "{msg}"
    );
    assert!(
        msg.contains("onConflict") && msg.contains("skip-containers"),
        "{msg}"
    );

    let (out, p) = check(&format!("{GCS}injection: {{onConflict: skip}}\n"), &pod);
    assert_eq!(out.decision, Decision::Mutated);
    assert_eq!(c(&p, "polyaxon-main"), c(&pod, "polyaxon-main"));
    assert!(env_value(c(&p, "polyaxon-sidecar"), "GC_KEY_PATH").is_some());
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("polyaxon-main") && w.contains("skipped")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn nesting_in_read_only_mounts_is_a_conflict_but_writable_parents_are_fine() {
    let pod_with = |mount: Value, vol: Value| {
        let mut p =
            run_pod(json!([{"name": "polyaxon-main", "image": "x", "volumeMounts": [mount]}]));
        p["spec"]["volumes"] = json!([vol]);
        p
    };
    // Our mount would sit inside a read-only mount.
    let ro_parent = pod_with(
        json!({"name": "ctx", "mountPath": "/plx-context", "readOnly": true}),
        json!({"name": "ctx", "emptyDir": {}}),
    );
    assert!(
        matches!(check(GCS, &ro_parent).0.decision, Decision::Denied(m) if m.contains("inside the read-only mount"))
    );
    // A config-map volume is read-only even without readOnly: true.
    let cm_parent = pod_with(
        json!({"name": "ctx", "mountPath": "/plx-context"}),
        json!({"name": "ctx", "configMap": {"name": "c"}}),
    );
    assert!(matches!(
        check(GCS, &cm_parent).0.decision,
        Decision::Denied(_)
    ));
    // Another mount would sit inside our read-only secret mount.
    let child = pod_with(
        json!({"name": "ctx", "mountPath": "/plx-context/.gc/sub"}),
        json!({"name": "ctx", "emptyDir": {}}),
    );
    assert!(
        matches!(check(GCS, &child).0.decision, Decision::Denied(m) if m.contains("mounted inside it"))
    );
    // A writable parent is fine: the kubelet creates the mount point in it.
    let rw_parent = pod_with(
        json!({"name": "ctx", "mountPath": "/plx-context"}),
        json!({"name": "ctx", "emptyDir": {}}),
    );
    assert_eq!(check(GCS, &rw_parent).0.decision, Decision::Mutated);
}

#[test]
fn a_key_variable_naming_another_file_is_a_conflict_naming_container_and_variable() {
    let pod = run_pod(json!([
        {"name": "polyaxon-main", "image": "x", "env": [{"name": "GC_KEY_PATH", "value": "/wrong/key.json"}]},
        {"name": "polyaxon-sidecar", "image": "x", "env": [{"name": "GC_KEY_PATH", "value": "/plx-context/.gc/gc-secret.json"},
            {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/dev/null"}]}
    ]));
    // Refused as written (the run would have no usable key), naming each container and variable.
    let out = mutate(&pod, &plan(GCS), &Request::pod_create("polyaxon"));
    let Decision::Denied(m) = &out.decision else {
        panic!("{:?}", out.decision)
    };
    assert!(
        m.contains("container \"polyaxon-main\": GC_KEY_PATH is set to \"/wrong/key.json\""),
        "{m}"
    );
    assert!(
        m.contains(
            "container \"polyaxon-sidecar\": GOOGLE_APPLICATION_CREDENTIALS is set to \"/dev/null\""
        ),
        "{m}"
    );
    // With onConflict: skip those containers are left as they are, said in a warning.
    let skip = format!("{GCS}injection: {{onConflict: skip}}\n");
    let (out, p) = check(&skip, &pod);
    assert_eq!(c(&p, "polyaxon-main"), c(&pod, "polyaxon-main"));
    assert_eq!(c(&p, "polyaxon-sidecar"), c(&pod, "polyaxon-sidecar"));
    assert!(out.allowed());
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("polyaxon-main") && w.contains("/wrong/key.json")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn skip_annotation_and_container_globs() {
    let mut pod = run_pod(json!([
        {"name": "polyaxon-main", "image": "x"}, {"name": "polyaxon-sidecar", "image": "x"}, {"name": "my-helper", "image": "x"}
    ]));
    pod["metadata"]["annotations"] =
        json!({"plx-store-webhook.dev/skip-containers": "polyaxon-main, other"});
    let (_, p) = check(GCS, &pod);
    assert_eq!(c(&p, "polyaxon-main"), c(&pod, "polyaxon-main"));
    assert_eq!(c(&p, "my-helper"), c(&pod, "my-helper"));
    assert!(env_value(c(&p, "polyaxon-sidecar"), "GC_KEY_PATH").is_some());

    let (_, p) = check(
        &format!("{GCS}injection: {{containers: [\"my-*\"]}}\n"),
        &pod,
    );
    assert!(env_value(c(&p, "my-helper"), "GC_KEY_PATH").is_some());
    assert_eq!(c(&p, "polyaxon-sidecar"), c(&pod, "polyaxon-sidecar"));
}

#[test]
fn items_and_file_paths_decide_where_the_key_lands() {
    let pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    let cases = [
        ("secret: {name: gcs-secret, mountPath: /etc/gcs, items: [{key: sa.json, path: k/key.json}]}", "/etc/gcs/k/key.json", "sa.json"),
        ("secret: {name: gcs-secret, mountPath: /etc/gcs/sa.json}", "/etc/gcs/sa.json", "gc-secret.json"),
        ("secret: {name: gcs-secret, mountPath: /etc/gcs/gc-secret.json}", "/etc/gcs/gc-secret.json", "gc-secret.json"),
    ];
    for (secret, want, key) in cases {
        let yaml = format!("name: gcs-artifacts\nkind: gcs\nschema: {{bucket: b}}\n{secret}\n");
        let (_, p) = check(&yaml, &pod);
        let main = c(&p, "polyaxon-main");
        assert_eq!(env_value(main, "GC_KEY_PATH"), Some(want), "{secret}");
        assert_eq!(
            kubelet_file(&p, main, want),
            Some(("gcs-secret".into(), key.into())),
            "{secret}"
        );
    }
}

#[test]
fn sub_path_mount_of_the_key_is_understood() {
    let mut pod = run_pod(json!([{"name": "polyaxon-main", "image": "x",
        "volumeMounts": [{"name": "k", "mountPath": "/var/key.json", "subPath": "gc-secret.json"}]}]));
    pod["spec"]["volumes"] = json!([{"name": "k", "secret": {"secretName": "gcs-secret"}}]);
    let (_, p) = check(GCS, &pod);
    let main = c(&p, "polyaxon-main");
    assert_eq!(env_value(main, "GC_KEY_PATH"), Some("/var/key.json"));
    assert_eq!(main["volumeMounts"].as_array().unwrap().len(), 1);
    assert_eq!(
        kubelet_file(&p, main, "/var/key.json"),
        Some(("gcs-secret".into(), "gc-secret.json".into()))
    );
}

#[test]
fn s3_and_wasb_follow_polyaxons_secret_table() {
    let pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    let (_, p) = check(
        "name: s3-store\nkind: s3\nschema: {bucket: s3://b}\nsecret: {name: aws-creds}\n",
        &pod,
    );
    let main = c(&p, "polyaxon-main");
    assert_eq!(
        main["envFrom"],
        json!([{"secretRef": {"name": "aws-creds"}}])
    );
    // boto3 reads the region and session token under other names: same Secret, optional keys.
    assert_eq!(
        main["env"],
        json!([
            {"name": "AWS_DEFAULT_REGION", "valueFrom": {"secretKeyRef": {"name": "aws-creds", "key": "AWS_REGION", "optional": true}}},
            {"name": "AWS_SESSION_TOKEN", "valueFrom": {"secretKeyRef": {"name": "aws-creds", "key": "AWS_SECURITY_TOKEN", "optional": true}}}
        ])
    );
    assert!(env_value(main, "GC_KEY_PATH").is_none());
    assert!(p["spec"].get("volumes").is_none());

    let (_, p) = check("name: az\nkind: wasb\nschema: {bucket: wasbs://c@a.blob.core.windows.net}\nsecret: {name: az, items: [AZURE_ACCOUNT_NAME, AZURE_ACCOUNT_KEY]}\n", &pod);
    assert_eq!(
        c(&p, "polyaxon-main")["env"],
        json!([
            {"name": "AZURE_ACCOUNT_NAME", "valueFrom": {"secretKeyRef": {"name": "az", "key": "AZURE_ACCOUNT_NAME"}}},
            {"name": "AZURE_ACCOUNT_KEY", "valueFrom": {"secretKeyRef": {"name": "az", "key": "AZURE_ACCOUNT_KEY"}}},
            // With `items`, only the listed keys are exposed under the standard names too.
            {"name": "AZURE_STORAGE_ACCOUNT_NAME", "valueFrom": {"secretKeyRef": {"name": "az", "key": "AZURE_ACCOUNT_NAME", "optional": true}}},
            {"name": "AZURE_STORAGE_ACCOUNT_KEY", "valueFrom": {"secretKeyRef": {"name": "az", "key": "AZURE_ACCOUNT_KEY", "optional": true}}}
        ])
    );
}

const S3: &str = "name: s3-store\nkind: s3\nschema: {bucket: s3://b}\nsecret: {name: aws-creds}\n";
const WASB: &str = "name: az\nkind: wasb\nschema: {bucket: wasbs://c@a.blob.core.windows.net}\nsecret: {name: az}\n";

fn env_names(c: &Value) -> Vec<&str> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

#[test]
fn gcs_gives_google_application_credentials_the_key_file() {
    let pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    for (cfg, key) in [
        (GCS, "/plx-context/.gc/gc-secret.json"),
        // The seed's file-like mountPath: the key lands at exactly that path.
        ("name: g\nkind: gcs\nschema: {bucket: gs://b}\nsecret: {name: gcs-secret, mountPath: /etc/gcs/gc-secret.json}\n", "/etc/gcs/gc-secret.json"),
    ] {
        let (out, p) = check(cfg, &pod);
        let main = c(&p, "polyaxon-main");
        assert_eq!(env_value(main, "GC_KEY_PATH"), Some(key));
        assert_eq!(env_value(main, "GOOGLE_APPLICATION_CREDENTIALS"), Some(key));
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }
    // The keyfile-dict form (secret by envFrom): no file exists, so no file variable is invented.
    let (_, p) = check(
        "name: g\nkind: gcs\nschema: {bucket: gs://b}\nsecret: {name: gcs-dict}\n",
        &pod,
    );
    assert!(env_names(c(&p, "polyaxon-main")).is_empty());
}

#[test]
fn standard_names_never_override_the_containers_own() {
    let pod = run_pod(json!([
        {"name": "polyaxon-main", "image": "x", "env": [
            {"name": "AWS_DEFAULT_REGION", "value": "eu-west-3"},
            {"name": "AZURE_STORAGE_ACCOUNT_KEY", "valueFrom": {"secretKeyRef": {"name": "mine", "key": "k"}}}]},
    ]));
    let (out, p) = check(S3, &pod);
    let main = c(&p, "polyaxon-main");
    assert_eq!(env_value(main, "AWS_DEFAULT_REGION"), Some("eu-west-3"));
    assert_eq!(
        env_names(main),
        [
            "AWS_DEFAULT_REGION",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AWS_SESSION_TOKEN"
        ]
    );
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let (_, p) = check(WASB, &pod);
    let names = env_names(c(&p, "polyaxon-main"));
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "AZURE_STORAGE_ACCOUNT_KEY")
            .count(),
        1
    );
    assert_eq!(names.len(), 2 + 6, "{names:?}");
}

#[test]
fn a_pod_that_already_has_every_name_gets_an_empty_patch() {
    let have = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| json!({"name": n, "value": "x"}))
            .collect()
    };
    let pod = run_pod(json!([{"name": "polyaxon-main", "image": "x",
        "envFrom": [{"secretRef": {"name": "aws-creds"}}],
        "env": have(&["AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"])}]));
    let mut pod = pod;
    pod["metadata"]["annotations"] = json!({
        "plx-store-webhook.dev/store": "s3-store",
        "plx-store-webhook.dev/config-hash": plan(S3).config_hash,
        "plx-store-webhook.dev/decision": plan(S3).default.fingerprint});
    let (out, _) = check(S3, &pod);
    assert_eq!(out.decision, Decision::Unchanged);
    assert!(out.patch.is_empty());
}

#[test]
fn the_switch_turns_the_standard_names_off() {
    let off = "\ninjection: {standardClientEnv: false}\n";
    let pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    let (_, p) = check(&format!("{GCS}{off}"), &pod);
    assert_eq!(env_names(c(&p, "polyaxon-main")), ["GC_KEY_PATH"]);
    let (_, p) = check(&format!("{S3}{off}"), &pod);
    assert!(env_names(c(&p, "polyaxon-main")).is_empty());
    // Off changes the config hash (it changes what pods get); on (the default) does not.
    assert_ne!(
        plan(&format!("{S3}{off}")).config_hash,
        plan(S3).config_hash
    );
    assert_eq!(
        plan(&format!("{S3}\ninjection: {{standardClientEnv: true}}\n")).config_hash,
        plan(S3).config_hash
    );
}

#[test]
fn a_key_a_non_root_user_cannot_read_is_warned_about() {
    let mode_0400 = "name: gcs-artifacts\nkind: gcs\nschema: {bucket: gs://b}\nsecret: {name: gcs-secret, mountPath: /plx-context/.gc, defaultMode: \"0400\"}\n";
    let with = |pod_sc: Value, c_sc: Value| {
        let mut pod =
            run_pod(json!([{"name": "polyaxon-main", "image": "x", "securityContext": c_sc}]));
        pod["spec"]["securityContext"] = pod_sc;
        pod
    };
    let warned = |cfg: &str, pod: &Value| {
        let (out, p) = check(cfg, pod);
        assert_eq!(out.decision, Decision::Mutated);
        // The webhook never touches a securityContext.
        assert_eq!(p["spec"]["securityContext"], pod["spec"]["securityContext"]);
        out.warnings
            .iter()
            .find(|w| w.contains("cannot read"))
            .cloned()
    };
    let w = warned(mode_0400, &with(json!({"runAsUser": 1000}), json!({}))).unwrap();
    for part in [
        "\"polyaxon-main\"",
        "user 1000",
        "/plx-context/.gc/gc-secret.json",
        "0400",
        "fsGroup",
        "0444",
    ] {
        assert!(w.contains(part), "{part} not in {w}");
    }
    let w = warned(mode_0400, &with(json!({"runAsNonRoot": true}), json!({}))).unwrap();
    assert!(w.contains("non-root user"), "{w}");
    // The container's own user wins over the pod's.
    assert!(warned(
        mode_0400,
        &with(json!({"runAsUser": 1000}), json!({"runAsUser": 0}))
    )
    .is_none());
    assert!(warned(mode_0400, &with(json!({}), json!({"runAsUser": 1000}))).is_some());
    // fsGroup, a readable mode, or root: nothing to say.
    assert!(warned(
        mode_0400,
        &with(json!({"runAsUser": 1000, "fsGroup": 1000}), json!({}))
    )
    .is_none());
    assert!(warned(GCS, &with(json!({"runAsUser": 1000}), json!({}))).is_none());
    assert!(warned(mode_0400, &with(json!({}), json!({}))).is_none());
    // The mode of a volume Polyaxon already put in the pod is the one that counts.
    let mut pod = with(json!({"runAsUser": 1000}), json!({}));
    pod["spec"]["volumes"] = json!([{"name": "gcs-secret", "secret": {"secretName": "gcs-secret", "defaultMode": 0o440,
        "items": [{"key": "gc-secret.json", "path": "gc-secret.json", "mode": 0o600}]}}]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "gcs-secret", "mountPath": "/plx-context/.gc", "readOnly": true}]);
    let w = warned(GCS, &pod).unwrap();
    assert!(w.contains("0600"), "{w}");
    pod["spec"]["volumes"][0]["secret"]["items"][0]["mode"] = json!(0o444);
    assert!(warned(GCS, &pod).is_none());
}

#[test]
fn volume_stores_mount_the_claim_or_host_path() {
    let pod = run_pod(
        json!([{"name": "polyaxon-main", "image": "x"}, {"name": "polyaxon-sidecar", "image": "x"}]),
    );
    let (_, p) = check(
        "name: data\nkind: volume_claim\nschema: {volumeClaim: plx-pvc, mountPath: /plx-data}\n",
        &pod,
    );
    assert_eq!(
        p["spec"]["volumes"],
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": "plx-pvc"}}])
    );
    assert_eq!(
        c(&p, "polyaxon-main")["volumeMounts"],
        json!([{"name": "data", "mountPath": "/plx-data"}])
    );
    // A pod Polyaxon already gave the host path store to is recognised by source.
    let nostore = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
    let (_, p) = check("name: default-artifacts-store\nkind: host_path\nschema: {hostPath: /tmp/artifactsStore, mountPath: /artifactsStore}\n", &nostore);
    assert_eq!(
        p["spec"]["volumes"].as_array().unwrap().len(),
        nostore["spec"]["volumes"].as_array().unwrap().len()
    );
    assert_eq!(
        c(&p, "polyaxon-main")["volumeMounts"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        &json!({"name": "default-artifacts-store", "mountPath": "/artifactsStore"})
    );
}

#[test]
fn malformed_objects_are_denied_with_the_field() {
    let p = plan(GCS);
    let req = Request::pod_create("polyaxon");
    let cases = [
        (json!("a string"), "expected a Pod object"),
        (
            json!({"metadata": {"labels": ["x"]}, "spec": {}}),
            "metadata.labels: invalid type",
        ),
        (run_pod(json!("nope")), "spec.containers: invalid type"),
        (run_pod(json!([])), "at least one container"),
        (
            run_pod(json!([{"image": "x"}])),
            "spec.containers[0]: missing field `name`",
        ),
        (
            run_pod(json!([{"name": "polyaxon-main", "env": [{"value": 1}]}])),
            "spec.containers[0].env[0]",
        ),
        (
            {
                let mut p = run_pod(json!([{"name": "polyaxon-main"}]));
                p["spec"]["volumes"] = json!({});
                p
            },
            "spec.volumes: invalid type",
        ),
    ];
    for (pod, want) in cases {
        // The same answer whether the pod is decoded alone or with a review's envelope.
        for decision in [
            mutate(&pod, &p, &req).decision,
            mutate_via_review(&pod, &p, &req).decision,
        ] {
            match decision {
                Decision::Denied(m) => assert!(m.contains(want), "{m} / {want}"),
                other => panic!("{want}: {other:?}"),
            }
        }
    }
    // A malformed pod that is not a run is not ours to refuse.
    let other = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": "nope"}});
    assert_eq!(
        mutate(&other, &p, &req).decision,
        Decision::Ignored(IgnoreReason::NotARun)
    );
    assert_eq!(
        mutate_via_review(&other, &p, &req).decision,
        Decision::Ignored(IgnoreReason::NotARun)
    );
}

#[test]
fn marker_and_audit_annotations() {
    let pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    let (out, p) = check(GCS, &pod);
    let hash = load_str(GCS, "t").unwrap().hash;
    let fp = plan(GCS).default.fingerprint;
    assert_eq!(fp.len(), 12);
    assert_eq!(
        p["metadata"]["annotations"],
        json!({"plx-store-webhook.dev/store": "gcs-artifacts",
               "plx-store-webhook.dev/config-hash": hash,
               "plx-store-webhook.dev/decision": fp})
    );
    assert_eq!(
        out.audit,
        vec![
            ("store", "gcs-artifacts".to_string()),
            ("config-hash", hash),
            ("decision", fp)
        ]
    );
    // A changed config updates the markers (reinvocation after a reload), and only them: here
    // the option shapes the patch, so the decision changes with the config hash.
    let other = format!("{GCS}injection: {{onConflict: skip}}\n");
    let (out2, _) = check(&other, &p);
    assert_eq!(out2.patch.len(), 2, "{:?}", out2.patch);
}

#[test]
fn mandated_connections_reach_every_target_container() {
    let yaml = "artifactsStore:\n  name: gcs-artifacts\n  kind: gcs\n  schema: {bucket: gs://b}\n  secret: {name: gcs-secret, mountPath: /plx-context/.gc}\nconnections:\n  - {name: datasets, kind: volume_claim, schema: {volumeClaim: datasets-pvc, mountPath: /data, readOnly: true}}\n  - {name: s3-shared, kind: s3, schema: {bucket: s3://shared}, secret: {name: aws-shared}}\ninjection: {connections: [datasets, s3-shared]}\n";
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let (out, p) = check(yaml, &pod);
    assert_eq!(out.decision, Decision::Mutated);
    assert!(p["spec"]["volumes"].as_array().unwrap().contains(
        &json!({"name": "datasets", "persistentVolumeClaim": {"claimName": "datasets-pvc", "readOnly": true}})
    ));
    for name in [
        "polyaxon-main",
        "polyaxon-sidecar",
        "polyaxon-init-artifacts-default",
    ] {
        let ct = c(&p, name);
        assert!(
            ct["volumeMounts"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": "datasets", "mountPath": "/data", "readOnly": true})),
            "{name}"
        );
        assert!(
            ct["envFrom"]
                .as_array()
                .unwrap()
                .contains(&json!({"secretRef": {"name": "aws-shared"}})),
            "{name}"
        );
        // The store still decides GC_KEY_PATH; connections add none.
        assert_eq!(
            env_value(ct, "GC_KEY_PATH"),
            Some("/plx-context/.gc/gc-secret.json")
        );
    }
    // The marker names the store, not the connections.
    assert_eq!(
        p["metadata"]["annotations"]["plx-store-webhook.dev/store"],
        "gcs-artifacts"
    );
}

const TEAMS: &str = "artifactsStore: {name: gcs-artifacts, kind: gcs, schema: {bucket: gs://b}, secret: {name: gcs-secret, mountPath: /plx-context/.gc}}
connections:
  - {name: team-s3, kind: s3, schema: {bucket: s3://t}, secret: {name: team-aws}}
  - {name: other-s3, kind: s3, schema: {bucket: s3://o}, secret: {name: other-aws}}
  - {name: data, kind: volume_claim, schema: {volumeClaim: data, mountPath: /data}}
injection:
  rules:
    - {name: broad, match: {namespaces: [\"team-*\"]}, store: team-s3}
    - {name: narrow, match: {namespaces: [team-a], owners: [acme]}, store: other-s3}
    - {name: services, match: {components: [polyaxon-services]}, store: other-s3, connections: [data]}
";

fn run_pod_with(owner: Option<&str>, component: Option<&str>) -> Value {
    let mut pod = run_pod(json!([{"name": "polyaxon-main", "image": "x"}]));
    if let Some(o) = owner {
        pod["metadata"]["annotations"] =
            json!({"operation.polyaxon.com/owner": o, "operation.polyaxon.com/project": "p"});
    }
    if let Some(c) = component {
        pod["metadata"]["labels"]["app.kubernetes.io/component"] = json!(c);
    }
    pod
}

fn routed(yaml: &str, pod: &Value, ns: &str) -> Outcome {
    let p = plan(yaml);
    let req = Request::pod_create(ns);
    let out = mutate(pod, &p, &req);
    let fast = mutate_via_review(pod, &p, &req);
    assert_eq!(fast.decision, out.decision);
    assert_eq!(fast.patch, out.patch);
    assert_eq!(fast.warnings, out.warnings);
    if out.allowed() && !out.patch.is_empty() {
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &out.patch).unwrap();
        validate_pod(&patched).unwrap();
        assert!(mutate(&patched, &p, &req).patch.is_empty(), "idempotent");
    }
    out
}

fn audit<'a>(o: &'a Outcome, key: &str) -> Option<&'a str> {
    o.audit
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn overlapping_rules_first_match_wins() {
    // `narrow` also matches, but `broad` comes first.
    let out = routed(TEAMS, &run_pod_with(Some("acme"), None), "team-a");
    assert_eq!(out.store, "team-s3");
    assert_eq!(out.rule, "broad");
    assert_eq!(audit(&out, "rule"), Some("broad"));
    assert_eq!(audit(&out, "store"), Some("team-s3"));
    // Reordered, the narrower rule wins for acme and the broad one still takes the rest.
    let broad = "    - {name: broad, match: {namespaces: [\"team-*\"]}, store: team-s3}\n";
    let narrow =
        "    - {name: narrow, match: {namespaces: [team-a], owners: [acme]}, store: other-s3}\n";
    let narrow_first = TEAMS.replace(&format!("{broad}{narrow}"), &format!("{narrow}{broad}"));
    assert_ne!(narrow_first, TEAMS);
    let out = routed(&narrow_first, &run_pod_with(Some("acme"), None), "team-a");
    assert_eq!(
        (out.rule.as_str(), out.store.as_str()),
        ("narrow", "other-s3")
    );
    let out = routed(&narrow_first, &run_pod_with(Some("globex"), None), "team-a");
    assert_eq!(
        (out.rule.as_str(), out.store.as_str()),
        ("broad", "team-s3")
    );
}

#[test]
fn rules_match_component_and_fall_back_to_the_default() {
    let out = routed(TEAMS, &run_pod_with(None, Some("polyaxon-services")), "ops");
    assert_eq!(out.rule, "services");
    let ops = serde_json::to_value(&out.patch).unwrap().to_string();
    assert!(
        ops.contains("other-aws") && ops.contains("\"claimName\":\"data\""),
        "{ops}"
    );
    assert!(!ops.contains("GC_KEY_PATH"), "no GCS env for an s3 store");
    // No rule: the artifactsStore, recorded as the default.
    let out = routed(TEAMS, &run_pod_with(None, Some("polyaxon-jobs")), "ops");
    assert_eq!(out.store, "gcs-artifacts");
    assert_eq!(out.rule, "");
    assert_eq!(audit(&out, "rule"), Some("(default)"));
    // Without rules there is no rule audit annotation at all.
    let out = routed(GCS, &run_pod_with(None, None), "ops");
    assert_eq!(audit(&out, "rule"), None);
}

#[test]
fn no_match_warns_or_denies_as_configured() {
    let warn = format!("{TEAMS}  noMatch: warn\n");
    let out = routed(&warn, &run_pod_with(None, None), "ops");
    assert_eq!(out.decision, Decision::Ignored(IgnoreReason::NoRuleMatched));
    assert!(out.patch.is_empty());
    assert!(
        out.warnings.len() == 1
            && out.warnings[0].contains("\"ops\"")
            && out.warnings[0].contains("injection.rules"),
        "{:?}",
        out.warnings
    );
    let deny = format!("{TEAMS}  noMatch: deny\n");
    let out = routed(&deny, &run_pod_with(Some("globex"), None), "ops");
    // The reason the denial-ratio alert names (plx_webhook_denials_total{reason}).
    assert_eq!(
        out.deny_reason,
        Some(plx_store_webhook::engine::DenyReason::NoRuleMatched)
    );
    match out.decision {
        Decision::Denied(m) => assert!(m.contains("globex") && m.contains("noMatch"), "{m}"),
        d => panic!("{d:?}"),
    }
    // A matching rule still applies; pods that are not runs are never routed.
    assert_eq!(
        routed(&deny, &run_pod_with(None, None), "team-b").rule,
        "broad"
    );
    let mut not_a_run = run_pod_with(None, None);
    not_a_run["metadata"]["labels"] = json!({"app": "x"});
    assert_eq!(
        routed(&deny, &not_a_run, "ops").decision,
        Decision::Ignored(IgnoreReason::NotARun)
    );
}

#[test]
fn mount_paths_are_compared_as_the_runtime_sees_them() {
    let pod_with = |mount: Value, vol: Value| {
        let mut p =
            run_pod(json!([{"name": "polyaxon-main", "image": "x", "volumeMounts": [mount]}]));
        p["spec"]["volumes"] = json!([vol]);
        p
    };
    // Another volume at our directory, spelled differently: the same directory to the runtime
    // (`..` is resolved lexically and never above `/`, as runc's SecureJoin does; the apiserver
    // does not reject it).
    for spelled in [
        "/plx-context/.gc/",
        "//plx-context//.gc",
        "/plx-context/./.gc",
        "/plx-context/x/../.gc",
        "/../plx-context/.gc",
    ] {
        let pod = pod_with(
            json!({"name": "ctx", "mountPath": spelled}),
            json!({"name": "ctx", "emptyDir": {}}),
        );
        let (out, _) = check(GCS, &pod);
        assert!(
            matches!(&out.decision, Decision::Denied(m) if m.contains("already the mountPath")),
            "{spelled}: {:?}",
            out.decision
        );
    }
    // A read-only mount above ours, spelled with `//`.
    let pod = pod_with(
        json!({"name": "ctx", "mountPath": "//plx-context", "readOnly": true}),
        json!({"name": "ctx", "emptyDir": {}}),
    );
    assert!(
        matches!(check(GCS, &pod).0.decision, Decision::Denied(m) if m.contains("inside the read-only mount"))
    );
    // Polyaxon's own mount of the key, spelled oddly: reused, and GC_KEY_PATH is the clean path.
    let pod = pod_with(
        json!({"name": "gcs-secret", "mountPath": "/plx-context//.gc/./", "readOnly": true}),
        json!({"name": "gcs-secret", "secret": {"secretName": "gcs-secret"}}),
    );
    let (out, p) = check(GCS, &pod);
    assert_eq!(out.decision, Decision::Mutated);
    let main = c(&p, "polyaxon-main");
    assert_eq!(main["volumeMounts"].as_array().unwrap().len(), 1);
    assert_eq!(
        env_value(main, "GC_KEY_PATH"),
        Some("/plx-context/.gc/gc-secret.json")
    );
}

/// The decision fingerprint follows what a route gives, not the whole config: the fleet view
/// marks a run stale only when its own decision changed.
#[test]
fn the_decision_fingerprint_is_per_route() {
    let teams = std::fs::read_to_string("examples/teams.yaml").unwrap();
    let fp = |yaml: &str| -> Vec<(String, String)> {
        let p = plx_store_core::plan::Plan::from_config(&load_str(yaml, "t").unwrap());
        std::iter::once(("default".to_string(), p.default.fingerprint.clone()))
            .chain(
                p.rules
                    .iter()
                    .map(|r| (r.name.clone(), r.plan.fingerprint.clone())),
            )
            .collect()
    };
    let base = fp(&teams);
    // Routes that give different things differ (same store, another connection included).
    let of = |v: &[(String, String)], n: &str| v.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_ne!(of(&base, "vision"), of(&base, "acme-mnist"));
    assert_ne!(of(&base, "nlp-services"), of(&base, "nlp"));
    assert_ne!(of(&base, "vision"), of(&base, "default"));
    // Two rules giving the same thing share one (the decision, not the rule, is fingerprinted).
    let twin = teams.replace(
        "  noMatch: default",
        "    - name: vision-twin\n      match: {owners: [twin]}\n      store: vision-s3\n  noMatch: default",
    );
    assert_eq!(of(&fp(&twin), "vision-twin"), of(&base, "vision"));
    // Team vision's matcher edited, moved to audit: nobody's decision changes.
    let edited = teams
        .replace("[\"team-vision\", \"team-vision-*\"]", "[\"team-vision*\"]")
        .replace(
            "      store: vision-s3\n    - name: acme",
            "      store: vision-s3\n      mode: audit\n    - name: acme",
        );
    assert_ne!(edited, teams);
    assert_ne!(
        load_str(&edited, "t").unwrap().hash,
        load_str(&teams, "t").unwrap().hash
    );
    assert_eq!(fp(&edited), base);
    // Team nlp gets another connection: only the nlp rules change.
    let edited = teams.replace(
        "      store: nlp-gcs\n      connections: [scratch]",
        "      store: nlp-gcs\n      connections: [scratch, vision-s3]",
    );
    let after = fp(&edited);
    for ((name, a), (_, b)) in base.iter().zip(&after) {
        assert_eq!(a == b, name != "nlp", "{name}");
        assert_eq!(of(&after, "nlp-services"), of(&base, "nlp-services"));
    }
    // A store's Secret renamed: every route to that store changes, the others do not.
    let edited = teams.replace("secret: {name: vision-aws}", "secret: {name: vision-aws-2}");
    let after = fp(&edited);
    for ((name, a), (_, b)) in base.iter().zip(&after) {
        assert_eq!(
            a == b,
            !["vision", "acme-mnist"].contains(&name.as_str()),
            "{name}"
        );
    }
    // An option that shapes every patch changes every decision.
    let after = fp(&teams.replace("injection:\n", "injection:\n  onConflict: skip\n"));
    assert!(base.iter().zip(&after).all(|(a, b)| a.1 != b.1));
}
