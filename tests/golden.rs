//! Golden tests: every Polyaxon fixture pod × the three GCS layouts, as Polyaxon made it and with
//! what the apiserver adds. Checked semantically (the key really lands at GC_KEY_PATH, nothing
//! else changed, pod still valid, second pass empty) and against golden patch files
//! (`UPDATE_GOLDEN=1 cargo test --test golden` rewrites them).

mod common;

use common::*;
use plx_store_webhook::{mutate, Decision, Request};
use serde_json::{json, Value};

const TARGETS: &[&str] = &[
    "polyaxon-main",
    "polyaxon-sidecar",
    "polyaxon-init-artifacts-default",
];

fn check_case(name: &str, pod: &Value, config: &str) -> Value {
    let plan = plan_for(config);
    let out = mutate(pod, &plan, &Request::pod_create("polyaxon"));
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

    // The key really lands at GC_KEY_PATH in every target container.
    for (_, _, c) in containers(&patched) {
        if !TARGETS.contains(&c["name"].as_str().unwrap()) {
            continue;
        }
        let path = env_value(c, "GC_KEY_PATH")
            .unwrap_or_else(|| panic!("{name}: {} has no GC_KEY_PATH", c["name"]));
        assert_eq!(
            kubelet_file(&patched, c, path),
            Some(("gcs-secret".to_string(), "gc-secret.json".to_string())),
            "{name}: {} GC_KEY_PATH={path} is not the key file",
            c["name"]
        );
        assert!(path.ends_with(".json"), "the SDK requires a .json key path");
    }
    assert_eq!(
        patched["metadata"]["annotations"]["plx-store-webhook.dev/store"],
        "gcs-artifacts"
    );

    // Idempotent.
    let again = mutate(&patched, &plan, &Request::pod_create("polyaxon"));
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
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
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
                    let plan = plan_for(config);
                    let patch = serde_json::to_value(
                        mutate(&p, &plan, &Request::pod_create("polyaxon")).patch,
                    )
                    .unwrap();
                    let file = root().join(format!("tests/golden/{fname}.{layout}.patch.json"));
                    let text = serde_json::to_string_pretty(&patch).unwrap() + "\n";
                    if update {
                        std::fs::write(&file, &text).unwrap();
                    } else {
                        let want = std::fs::read_to_string(&file).unwrap_or_else(|_| {
                            panic!("missing {}; run with UPDATE_GOLDEN=1", file.display())
                        });
                        assert_eq!(text, want, "{name}: patch differs from {}", file.display());
                    }
                }
            }
        }
    }
    assert_eq!(cases, 24);
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
