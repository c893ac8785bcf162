//! Golden tests: every Polyaxon fixture pod × the three GCS layouts, as Polyaxon made it and with
//! what the apiserver adds. Checked semantically (the key really lands at GC_KEY_PATH, nothing
//! else changed, pod still valid, second pass empty) and against golden patch files
//! (`UPDATE_GOLDEN=1 cargo test --test golden` rewrites them).

mod common;

use common::*;
use plx_store_webhook::admission::{review_at, Stage};
use plx_store_webhook::{Decision, Request};
use serde_json::{json, Value};

const TARGETS: &[&str] = &[
    "polyaxon-main",
    "polyaxon-sidecar",
    "polyaxon-init-artifacts-default",
];

/// What a config must give every target container, written out by hand (never read from the
/// plan, so a planning bug cannot hide itself).
#[derive(Clone, Copy)]
struct Expect {
    store: &'static str,
    /// (mountPath, the volume's source without its name, mount read-only)
    mounts: &'static [(&'static str, &'static str, bool)],
    env_from: &'static [&'static str],
    /// (env name, valueFrom)
    env: &'static [(&'static str, &'static str)],
    /// The Secret whose `gc-secret.json` key GC_KEY_PATH must reach (GCS stores only).
    gcs_secret: Option<&'static str>,
}

const GCS: Expect = Expect {
    store: "gcs-artifacts",
    mounts: &[],
    env_from: &[],
    env: &[],
    gcs_secret: Some("gcs-secret"),
};

fn check_case(name: &str, pod: &Value, config: &str) -> Value {
    check_expect(name, pod, &plan_for(config), "polyaxon", GCS)
}

fn check_expect(
    name: &str,
    pod: &Value,
    plan: &plx_store_webhook::Plan,
    namespace: &str,
    want: Expect,
) -> Value {
    let out = mutate(pod, plan, &Request::pod_create(namespace));
    assert_eq!(
        out.decision,
        Decision::Mutated,
        "{name}: {:?}",
        out.decision
    );
    let patch = serde_json::to_value(&out.patch).unwrap();

    // Only minimal adds, at the places we own, never replacing an existing array.
    for op in patch.as_array().unwrap() {
        assert_eq!(op["op"], "add", "{name}: {op}");
        let path = op["path"].as_str().unwrap();
        let ok = path == "/spec/volumes/-"
            || path.starts_with("/metadata/annotations/plx-store-webhook.dev~1")
            || ["volumeMounts", "env", "envFrom"].iter().any(|f| {
                (path.starts_with("/spec/containers/") || path.starts_with("/spec/initContainers/"))
                    && (path.ends_with(&format!("/{f}/-")) || path.ends_with(&format!("/{f}")))
            });
        assert!(ok, "{name}: unexpected path {path}");
        if !path.ends_with("/-") && !path.starts_with("/metadata/annotations/") {
            let existing = pod.pointer(path);
            assert!(
                existing.is_none() || existing == Some(&Value::Null),
                "{name}: {path} would replace an existing array"
            );
        }
    }

    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &out.patch).unwrap();
    validate_pod(&patched).unwrap_or_else(|e| panic!("{name}: {e}"));

    // Nothing else changed: removing what we added gives back the original.
    for (list, i, c) in containers(&patched) {
        let orig = &pod["spec"][list][i];
        if !TARGETS.contains(&c["name"].as_str().unwrap()) {
            assert_eq!(c, orig, "{name}: non-target container changed");
            continue;
        }
        for (k, v) in c.as_object().unwrap() {
            if !["volumeMounts", "env", "envFrom"].contains(&k.as_str()) {
                assert_eq!(v, &orig[k], "{name}: {k} changed");
            } else if let Some(o) = orig[k].as_array() {
                assert_eq!(
                    &v.as_array().unwrap()[..o.len()],
                    &o[..],
                    "{name}: existing {k} entries changed"
                );
            }
        }
    }
    assert_eq!(patched["metadata"]["labels"], pod["metadata"]["labels"]);

    for (list, i, c) in containers(&patched) {
        if !TARGETS.contains(&c["name"].as_str().unwrap()) {
            continue;
        }
        let cname = &c["name"];
        let orig = &pod["spec"][list][i];
        match want.gcs_secret {
            // The key really lands at GC_KEY_PATH.
            Some(secret) => {
                let path = env_value(c, "GC_KEY_PATH")
                    .unwrap_or_else(|| panic!("{name}: {cname} has no GC_KEY_PATH"));
                assert_eq!(
                    kubelet_file(&patched, c, path),
                    Some((secret.to_string(), "gc-secret.json".to_string())),
                    "{name}: {cname} GC_KEY_PATH={path} is not the key file"
                );
                assert!(path.ends_with(".json"), "the SDK requires a .json key path");
                // Standard Google clients read the same file.
                assert_eq!(
                    env_value(c, "GOOGLE_APPLICATION_CREDENTIALS"),
                    Some(path),
                    "{name}: {cname} GOOGLE_APPLICATION_CREDENTIALS"
                );
            }
            // Other kinds get no GCS env from us.
            None => assert_eq!(
                env_value(c, "GC_KEY_PATH"),
                env_value(orig, "GC_KEY_PATH"),
                "{name}: {cname} got a GC_KEY_PATH"
            ),
        }
        for (dir, source, ro) in want.mounts {
            let m = c["volumeMounts"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| m["mountPath"] == *dir))
                .unwrap_or_else(|| panic!("{name}: {cname} has nothing at {dir}"));
            let mut vol = volume_named(&patched, m["name"].as_str().unwrap()).clone();
            vol.as_object_mut().unwrap().remove("name");
            let want_source: Value = serde_json::from_str(source).unwrap();
            assert_eq!(
                vol, want_source,
                "{name}: {cname} mounts other storage at {dir}"
            );
            assert_eq!(m["readOnly"] == true, *ro, "{name}: {cname} {dir} readOnly");
            assert!(m.get("subPath").is_none());
        }
        for ef in want.env_from {
            let ef: Value = serde_json::from_str(ef).unwrap();
            let list = c["envFrom"].as_array().cloned().unwrap_or_default();
            assert_eq!(
                list.iter().filter(|x| **x == ef).count(),
                1,
                "{name}: {cname} envFrom {ef} once"
            );
        }
        for (env, value_from) in want.env {
            let vf: Value = serde_json::from_str(value_from).unwrap();
            let found: Vec<&Value> = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["name"] == *env)
                .collect();
            assert_eq!(found.len(), 1, "{name}: {cname} env {env} once");
            assert_eq!(found[0]["valueFrom"], vf, "{name}: {cname} env {env}");
        }
    }
    assert_eq!(
        patched["metadata"]["annotations"]["plx-store-webhook.dev/store"],
        want.store
    );

    // Idempotent.
    let again = mutate(&patched, plan, &Request::pod_create(namespace));
    assert_eq!(
        again.decision,
        Decision::Unchanged,
        "{name}: second pass {:?}",
        again.patch
    );
    assert!(again.patch.is_empty());

    // Go's json-patch (kubectl) agrees with the Rust crate.
    if let Some(go) = kubectl_apply(pod, &patch) {
        assert_eq!(go, patched, "{name}: kubectl and json-patch disagree");
    }
    patched
}

#[test]
fn fixtures_times_layouts() {
    let mut cases = 0;
    for (fname, pod) in fixture_pods() {
        for (layout, config) in LAYOUTS {
            for (variant, p) in [
                ("plain", pod.clone()),
                ("apiserver", with_apiserver_additions(pod.clone())),
            ] {
                let name = format!("{fname}.{layout}.{variant}");
                check_case(&name, &p, config);
                cases += 1;
                if variant == "plain" {
                    let out = mutate(&p, &plan_for(config), &Request::pod_create("polyaxon"));
                    golden(&format!("{fname}.{layout}"), &out.patch);
                }
            }
        }
    }
    assert_eq!(cases, 24);
}

/// Compare a patch with its golden file (`UPDATE_GOLDEN=1` rewrites it).
fn golden(stem: &str, patch: &[json_patch::PatchOperation]) {
    golden_json(&format!("{stem}.patch.json"), patch);
}

/// Compare `value` as pretty JSON with `tests/golden/<name>` (`UPDATE_GOLDEN=1` rewrites it).
fn golden_json(name: &str, value: &(impl serde::Serialize + ?Sized)) {
    let file = root().join(format!("tests/golden/{name}"));
    let text = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&file, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&file)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", file.display()));
    assert_eq!(text, want, "{name} differs from {}", file.display());
}

const S3: Expect = Expect {
    store: "s3-artifacts",
    mounts: &[],
    env_from: &[r#"{"secretRef": {"name": "aws-credentials"}}"#],
    env: &[
        (
            "AWS_REGION",
            r#"{"configMapKeyRef": {"name": "aws-settings", "key": "AWS_REGION"}}"#,
        ),
        (
            "AWS_ENDPOINT_URL",
            r#"{"configMapKeyRef": {"name": "aws-settings", "key": "AWS_ENDPOINT_URL"}}"#,
        ),
        // Standard client names: the region from where the store says AWS_REGION is, the
        // session token from the Secret that comes whole by envFrom.
        (
            "AWS_DEFAULT_REGION",
            r#"{"configMapKeyRef": {"name": "aws-settings", "key": "AWS_REGION", "optional": true}}"#,
        ),
        (
            "AWS_SESSION_TOKEN",
            r#"{"secretKeyRef": {"name": "aws-credentials", "key": "AWS_SECURITY_TOKEN", "optional": true}}"#,
        ),
    ],
    gcs_secret: None,
};

const WASB: Expect = Expect {
    store: "azure-artifacts",
    mounts: &[(
        "/plx-context/.azure",
        r#"{"configMap": {"name": "az-settings"}}"#,
        true,
    )],
    env_from: &[],
    env: &[
        (
            "AZURE_ACCOUNT_NAME",
            r#"{"secretKeyRef": {"name": "az-secret", "key": "AZURE_ACCOUNT_NAME"}}"#,
        ),
        (
            "AZURE_ACCOUNT_KEY",
            r#"{"secretKeyRef": {"name": "az-secret", "key": "AZURE_ACCOUNT_KEY"}}"#,
        ),
        (
            "AZURE_STORAGE_ACCOUNT_NAME",
            r#"{"secretKeyRef": {"name": "az-secret", "key": "AZURE_ACCOUNT_NAME", "optional": true}}"#,
        ),
        (
            "AZURE_STORAGE_ACCOUNT_KEY",
            r#"{"secretKeyRef": {"name": "az-secret", "key": "AZURE_ACCOUNT_KEY", "optional": true}}"#,
        ),
    ],
    gcs_secret: None,
};

const PVC: Expect = Expect {
    store: "plx-artifacts-pvc",
    mounts: &[(
        "/plx-artifacts",
        r#"{"persistentVolumeClaim": {"claimName": "plx-artifacts"}}"#,
        false,
    )],
    env_from: &[],
    env: &[],
    gcs_secret: None,
};

const HOST_PATH: Expect = Expect {
    store: "default-artifacts-store",
    mounts: &[(
        "/artifactsStore",
        r#"{"hostPath": {"path": "/tmp/artifactsStore"}}"#,
        false,
    )],
    env_from: &[],
    env: &[],
    gcs_secret: None,
};

const DATASETS: (&str, &str, bool) = (
    "/datasets",
    r#"{"persistentVolumeClaim": {"claimName": "datasets", "readOnly": true}}"#,
    true,
);
const SCRATCH: (&str, &str, bool) = (
    "/scratch",
    r#"{"hostPath": {"path": "/mnt/scratch"}}"#,
    false,
);

/// examples/teams.yaml, routed by namespace (`vision`).
const TEAM_VISION: Expect = Expect {
    store: "vision-s3",
    mounts: &[DATASETS],
    env_from: &[r#"{"secretRef": {"name": "vision-aws"}}"#],
    env: &[
        (
            "AWS_DEFAULT_REGION",
            r#"{"secretKeyRef": {"name": "vision-aws", "key": "AWS_REGION", "optional": true}}"#,
        ),
        (
            "AWS_SESSION_TOKEN",
            r#"{"secretKeyRef": {"name": "vision-aws", "key": "AWS_SECURITY_TOKEN", "optional": true}}"#,
        ),
    ],
    gcs_secret: None,
};

/// examples/teams.yaml, routed by the fixtures' owner/project annotations (`acme-mnist`).
const TEAM_ACME_MNIST: Expect = Expect {
    mounts: &[DATASETS, SCRATCH],
    ..TEAM_VISION
};

/// examples/teams.yaml, no rule matches: the artifactsStore plus the mandated connection.
const TEAM_DEFAULT: Expect = Expect {
    mounts: &[DATASETS],
    ..GCS
};

/// Every other store kind and the rule examples on every fixture, with and without what the
/// apiserver adds: the same semantic checks as the GCS layouts, plus golden patches.
#[test]
fn other_kinds_and_rules_times_fixtures() {
    let cases: &[(&str, &str, &str, bool, Expect)] = &[
        ("s3", "examples/store-s3.yaml", "polyaxon", true, S3),
        ("wasb", "examples/store-wasb.yaml", "polyaxon", true, WASB),
        (
            "pvc",
            "examples/store-volume-claim.yaml",
            "polyaxon",
            true,
            PVC,
        ),
        (
            "hostpath",
            "examples/store-host-path.yaml",
            "polyaxon",
            true,
            HOST_PATH,
        ),
        (
            "team-vision",
            "examples/teams.yaml",
            "team-vision-3",
            true,
            TEAM_VISION,
        ),
        (
            "team-acme",
            "examples/teams.yaml",
            "polyaxon",
            true,
            TEAM_ACME_MNIST,
        ),
        (
            "team-default",
            "examples/teams.yaml",
            "polyaxon",
            false,
            TEAM_DEFAULT,
        ),
    ];
    let mut n = 0;
    for (fname, pod) in fixture_pods() {
        for (case, config, ns, owned_by_acme, want) in cases {
            let mut pod = pod.clone();
            if !owned_by_acme {
                pod["metadata"]["annotations"]["operation.polyaxon.com/owner"] = json!("globex");
            }
            let plan = plan_for(config);
            for (variant, p) in [
                ("plain", pod.clone()),
                ("apiserver", with_apiserver_additions(pod.clone())),
            ] {
                let name = format!("{fname}.{case}.{variant}");
                let patched = check_expect(&name, &p, &plan, ns, *want);
                if variant == "plain" {
                    golden(
                        &format!("{fname}.{case}"),
                        &mutate(&p, &plan, &Request::pod_create(ns)).patch,
                    );
                }
                // Volume stores reuse the volume Polyaxon already added (never a second one).
                let vols = |v: &Value| v["spec"]["volumes"].as_array().map_or(0, Vec::len);
                if *case == "hostpath" && fname.ends_with("nostore") {
                    assert_eq!(vols(&patched), vols(&p), "{name}: volume duplicated");
                }
                n += 1;
            }
        }
    }
    assert_eq!(n, 56);
}

/// A rule that gives a GCS store at the directory where Polyaxon already mounted another
/// store's secret is refused with the path and the fix, never patched into an invalid pod.
#[test]
fn rule_store_clashing_with_polyaxons_own_mount_is_denied() {
    let plan = plan_for("examples/teams.yaml");
    let not_acme = |mut p: Value| {
        p["metadata"]["annotations"]["operation.polyaxon.com/owner"] = json!("globex");
        p
    };
    let pod = not_acme(read_json(
        "tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json",
    ));
    let out = mutate(&pod, &plan, &Request::pod_create("team-nlp-1"));
    match &out.decision {
        Decision::Denied(m) => assert!(
            m.contains("nlp-gcs") && m.contains("/plx-context/.gc") && m.contains("onConflict"),
            "{m}"
        ),
        d => panic!("{d:?}"),
    }
    // On a pod where Polyaxon mounted no secret there, the rule's store is given.
    let pod = not_acme(read_json("tests/fixtures/polyaxon-pods/job.nostore.json"));
    let p = check_expect(
        "nlp.nostore",
        &pod,
        &plan,
        "team-nlp-1",
        Expect {
            store: "nlp-gcs",
            mounts: &[DATASETS, SCRATCH],
            gcs_secret: Some("nlp-gcs-secret"),
            ..GCS
        },
    );
    assert_eq!(
        env_value(container(&p, "polyaxon-main"), "GC_KEY_PATH"),
        Some("/plx-context/.gc/gc-secret.json")
    );
}

fn volume_named<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no volume {name}"))
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    containers(pod)
        .into_iter()
        .find(|(_, _, c)| c["name"] == name)
        .unwrap()
        .2
}

#[test]
fn legacy_file_mount_path_keeps_polyaxons_mount_and_points_at_the_real_file() {
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-filepath.json");
    let p = check_case("filepath", &pod, "examples/store-seed-filepath.yaml");
    // Polyaxon mounted the secret as a directory at the file path: the key is one level deeper.
    assert_eq!(
        env_value(container(&p, "polyaxon-sidecar"), "GC_KEY_PATH"),
        Some("/plx-context/.gc/gc-secret.json/gc-secret.json")
    );
    // Where the webhook adds the mount, it goes on the directory so the key is at the path written.
    assert_eq!(
        env_value(container(&p, "polyaxon-main"), "GC_KEY_PATH"),
        Some("/plx-context/.gc/gc-secret.json")
    );
    let main_mounts = container(&p, "polyaxon-main")["volumeMounts"]
        .as_array()
        .unwrap();
    assert!(main_mounts.contains(
        &json!({"name": "gcs-secret", "mountPath": "/plx-context/.gc", "readOnly": true})
    ));
    assert!(main_mounts.iter().all(|m| m.get("subPath").is_none()));
    // Polyaxon's volume is reused, not duplicated.
    assert_eq!(
        p["spec"]["volumes"].as_array().unwrap().len(),
        pod["spec"]["volumes"].as_array().unwrap().len()
    );
}

#[test]
fn etc_layout_adds_config_map_env_from_and_matching_key_path() {
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-etc.json");
    let p = check_case("etc", &pod, "examples/store-etc-gcs.yaml");
    let main = container(&p, "polyaxon-main");
    assert_eq!(
        main["envFrom"],
        json!([{"configMapRef": {"name": "gc-key-path"}}])
    );
    assert_eq!(
        env_value(main, "GC_KEY_PATH"),
        Some("/etc/gcs/gc-secret.json")
    );
    // The sidecar already had the envFrom: not added twice.
    assert_eq!(
        container(&p, "polyaxon-sidecar")["envFrom"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn store_not_yet_in_pod_gets_volume_created() {
    let pod = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
    let p = check_case("nostore", &pod, "examples/store-ctxdir.yaml");
    let vols = p["spec"]["volumes"].as_array().unwrap();
    assert!(vols.contains(&json!({"name": "gcs-secret", "secret": {"secretName": "gcs-secret"}})));
    for name in TARGETS {
        assert_eq!(
            env_value(container(&p, name), "GC_KEY_PATH"),
            Some("/plx-context/.gc/gc-secret.json")
        );
    }
    // The user/auth init container is not a target and is untouched.
    assert_eq!(
        container(&p, "polyaxon-init-auth"),
        container(&pod, "polyaxon-init-auth")
    );
}

/// Audit mode on the converter's pods: the patch (annotations only) and the warnings that say
/// what inject mode would add, as golden files.
#[test]
fn audit_mode_times_fixtures() {
    let yaml = std::fs::read_to_string(root().join("examples/helm-values.yaml"))
        .unwrap()
        .replace("  onConflict: deny", "  mode: audit\n  onConflict: deny");
    assert!(yaml.contains("mode: audit"));
    let plan =
        plx_store_webhook::Plan::from_config(&plx_store_webhook::load_str(&yaml, "audit").unwrap());
    let mut n = 0;
    for (fname, pod) in fixture_pods() {
        let out = mutate(&pod, &plan, &Request::pod_create("polyaxon"));
        golden(&format!("{fname}.audit"), &out.patch);
        golden_json(&format!("{fname}.audit.warnings.json"), &out.warnings);
        n += 1;
    }
    assert_eq!(n, 4);
}

/// The whole AdmissionReview response the server sends for `pod` at `stage`, as JSON (what the
/// apiserver reads: allowed, status message, warnings, audit annotations, patch).
fn answer(pod: &Value, namespace: &str, plan: &plx_store_webhook::Plan, stage: Stage) -> Value {
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "golden", "operation": "CREATE", "namespace": namespace,
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "object": pod}
    }))
    .unwrap();
    let (_, _, bytes) = review_at(&body, plan, stage).unwrap();
    serde_json::from_slice(&bytes.unwrap()).unwrap()
}

/// Enforce's answers on the converter's pods: refused as Polyaxon made them (the mutating
/// webhook bypassed), allowed as the mutating webhook left them, refused again when a later
/// webhook strips the store's mount from `polyaxon-main`.
#[test]
fn enforce_answers_times_fixtures() {
    let plan = plan_for("examples/helm-values.yaml");
    let mut n = 0;
    for (fname, pod) in fixture_pods() {
        let pod = with_apiserver_additions(pod);
        let done = check_applied(&plan, &pod, "polyaxon").1;
        let mut stripped = done.clone();
        for c in stripped["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == "polyaxon-main" {
                c["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| m["name"] != "gcs-secret");
            }
        }
        assert_ne!(stripped, done, "{fname}: nothing to strip");
        let answers = json!({
            "bypassed": answer(&pod, "polyaxon", &plan, Stage::Validate),
            "mutated": answer(&done, "polyaxon", &plan, Stage::Validate),
            "stripped": answer(&stripped, "polyaxon", &plan, Stage::Validate),
        });
        for (case, allowed) in [("bypassed", false), ("mutated", true), ("stripped", false)] {
            let r = &answers[case]["response"];
            assert_eq!(r["allowed"], allowed, "{fname} {case}: {r}");
            assert!(
                r.get("patch").is_none(),
                "{fname} {case}: a validating answer patched"
            );
        }
        golden_json(&format!("{fname}.enforce.json"), &answers);
        n += 1;
    }
    assert_eq!(n, 4);
}

/// Every way a key could beat a keyless identity (tests/cases/keyless-bypasses.json, shared
/// with the e2e): refused (or warned about) with the config as written, and with
/// `onConflict: skip`; answers kept as golden files.
#[test]
fn keyless_bypasses_answers() {
    let cases = read_json("tests/cases/keyless-bypasses.json");
    let mut n = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let config = case["config"].as_str().unwrap_or("examples/keyless.yaml");
        let yaml = std::fs::read_to_string(root().join(config)).unwrap();
        let skip_yaml = yaml.replacen("injection:\n", "injection:\n  onConflict: skip\n", 1);
        assert_ne!(skip_yaml, yaml, "{name}");
        let ns = case["namespace"].as_str().unwrap_or("team-vision-9");
        let mut pod = with_apiserver_additions(bypass_pod(case));
        if case["no_bound_token"] == true {
            drop_bound_token(&mut pod);
        }
        let mut answers = serde_json::Map::new();
        let team = case["team_account"].as_str().unwrap_or("team-vision-runs");
        for (variant, yaml) in [("as-written", &yaml), ("on-conflict-skip", &skip_yaml)] {
            let plan = plx_store_webhook::Plan::from_config(
                &plx_store_webhook::load_str(yaml, config).unwrap(),
            );
            let (out, stored) = check_applied(&plan, &pod, ns);
            if case["pass"] == true {
                // The identity webhooks' own additions for the team's account: admitted, no
                // warning, nothing to change on reinvocation, and admitted by enforce.
                assert!(out.allowed(), "{name} {variant}: {:?}", out.decision);
                assert!(
                    out.warnings.is_empty(),
                    "{name} {variant}: {:?}",
                    out.warnings
                );
                assert_eq!(stored["spec"]["serviceAccountName"], team, "{name}");
                let v = answer(&stored, ns, &plan, Stage::Validate);
                assert_eq!(v["response"]["allowed"], true, "{name} {variant}: {v}");
                answers.insert(variant.into(), answer(&pod, ns, &plan, Stage::Mutate));
                continue;
            }
            let (want, key) = match variant {
                "as-written" if case.get("warn").is_some() => (&case["warn"], "warn"),
                "as-written" => (&case["deny"], "deny"),
                _ => (&case["skip"], "skip"),
            };
            let want = want.as_str().unwrap();
            let text = match &out.decision {
                Decision::Denied(m) => m.clone(),
                _ => out.warnings.join("\n"),
            };
            assert!(text.contains(want), "{name} {variant}: {text}");
            // Refused as written unless only warned about; with skip only another team's
            // identity stays refused.
            let always = want.contains("another team") || want.contains("cloud identity of rule");
            let refused = matches!(out.decision, Decision::Denied(_));
            assert_eq!(
                refused,
                key == "deny" || always,
                "{name} {variant}: {:?}",
                out.decision
            );
            if !refused {
                // Admitted: the account is either the team's (no key stayed) or the run's own
                // (skip kept it, and said so).
                let account = stored["spec"]["serviceAccountName"].as_str().unwrap_or("");
                assert!(
                    account == team || key == "skip",
                    "{name} {variant}: {account}"
                );
            }
            answers.insert(variant.into(), answer(&pod, ns, &plan, Stage::Mutate));
        }
        golden_json(&format!("keyless-bypass.{name}.json"), &answers);
        n += 1;
    }
    assert_eq!(n, 97);
}

/// One decision (tests/cases/enforce.json, shared with the e2e and the property test): what
/// /mutate answers, and what /validate answers on the pod the mutating webhook left (after a
/// later webhook's edits), or on the pod as created when /mutate refused it.
#[test]
fn enforce_cases_answers() {
    let cases = read_json("tests/cases/enforce.json");
    let mut n = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let plan = plan_for(case["config"].as_str().unwrap_or("examples/teams.yaml"));
        let ns = case["namespace"].as_str().unwrap();
        let pod = with_apiserver_additions(bypass_pod(case));
        let (out, mut stored) = check_applied(&plan, &pod, ns);
        let mutated = answer(&pod, ns, &plan, Stage::Mutate);
        let text = |r: &Value| {
            r["response"]["status"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        match case["mutate"].as_str().unwrap() {
            "admit" => assert!(out.allowed(), "{name}: {:?}", out.decision),
            phrase => assert!(
                text(&mutated).contains(phrase),
                "{name}: {}",
                text(&mutated)
            ),
        }
        if out.allowed() {
            apply_after(&mut stored, &case["after"]);
        }
        let validated = answer(&stored, ns, &plan, Stage::Validate);
        match case["validate"].as_str().unwrap() {
            "admit" => assert_eq!(
                validated["response"]["allowed"], true,
                "{name}: {validated}"
            ),
            phrase => {
                assert_eq!(
                    validated["response"]["allowed"], false,
                    "{name}: {validated}"
                );
                assert!(
                    text(&validated).contains(phrase),
                    "{name}: {}",
                    text(&validated)
                );
            }
        }
        golden_json(
            &format!("enforce-case.{name}.json"),
            &json!({"mutate": mutated, "validate": validated}),
        );
        n += 1;
    }
    assert_eq!(n, 22);
}

/// Every warning a golden answer carries, its `[PSWnnnn]` tag included, is within the 256
/// characters the kube-apiserver keeps of one warning.
#[test]
fn every_golden_warning_fits_what_the_apiserver_keeps() {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "warnings" {
                        if let Value::Array(ws) = v {
                            out.extend(ws.iter().filter_map(|w| w.as_str().map(String::from)));
                        }
                    }
                    walk(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut warnings = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/golden")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            walk(&v, &mut warnings);
        }
    }
    assert!(warnings.len() > 20, "the goldens carry warnings");
    for w in &warnings {
        assert!(
            w.chars().count() <= 256,
            "{} characters: {w}",
            w.chars().count()
        );
    }
}
