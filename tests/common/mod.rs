//! Shared test helpers: fixtures, what the apiserver adds to a pod, a pod validity check, an
//! independent model of where the kubelet puts secret files, and a kubectl cross-check.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read_json(p: impl AsRef<Path>) -> Value {
    let p = root().join(p);
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The Polyaxon-generated pods.
pub fn fixture_pods() -> Vec<(String, Value)> {
    let dir = root().join("tests/fixtures/polyaxon-pods");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            (name, read_json(&p))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The three GCS layouts of the facts, as example configs.
pub const LAYOUTS: &[(&str, &str)] = &[
    ("filepath", "examples/store-seed-filepath.yaml"),
    ("ctxdir", "examples/store-ctxdir.yaml"),
    ("etc", "examples/store-etc-gcs.yaml"),
];

pub fn plan_for(config: &str) -> plx_store_webhook::Plan {
    let cfg = plx_store_webhook::load_file(&root().join(config)).unwrap();
    plx_store_webhook::Plan::from_config(&cfg)
}

/// What Kubernetes adds before a webhook sees a Job's pod: Job controller labels, the
/// service-account token volume mounted in every container, and field defaults.
pub fn with_apiserver_additions(mut pod: Value) -> Value {
    let labels = pod["metadata"]["labels"].as_object_mut().unwrap();
    for (k, v) in [
        (
            "batch.kubernetes.io/controller-uid",
            "0d6f4f37-8b8e-4a51-9d4c-1a2b3c4d5e6f",
        ),
        ("batch.kubernetes.io/job-name", "plx-operation-8aac02e3"),
        ("controller-uid", "0d6f4f37-8b8e-4a51-9d4c-1a2b3c4d5e6f"),
        ("job-name", "plx-operation-8aac02e3"),
    ] {
        labels.insert(k.into(), json!(v));
    }
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "plx-operation-8aac02e3",
        "uid": "0d6f4f37-8b8e-4a51-9d4c-1a2b3c4d5e6f", "controller": true, "blockOwnerDeletion": true}]);
    let spec = pod["spec"].as_object_mut().unwrap();
    spec.entry("volumes").or_insert(json!([])).as_array_mut().unwrap().push(json!({
        "name": "kube-api-access-7x2kq",
        "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}
    }));
    spec.insert("dnsPolicy".into(), json!("ClusterFirst"));
    spec.insert("schedulerName".into(), json!("default-scheduler"));
    spec.insert("enableServiceLinks".into(), json!(true));
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            c.as_object_mut().unwrap().entry("volumeMounts").or_insert(json!([])).as_array_mut().unwrap().push(json!({
                "name": "kube-api-access-7x2kq", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true
            }));
            c["terminationMessagePath"] = json!("/dev/termination-log");
            c["terminationMessagePolicy"] = json!("File");
        }
    }
    pod
}

/// All containers of a pod (init first), as (list, index, container).
pub fn containers(pod: &Value) -> Vec<(&'static str, usize, &Value)> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            out.push((list, i, c));
        }
    }
    out
}

fn under(child: &str, parent: &str) -> bool {
    let p = parent.trim_end_matches('/');
    let c = child.trim_end_matches('/');
    c.len() > p.len() && c.starts_with(p) && c.as_bytes()[p.len()] == b'/'
}

fn always_ro(vol: &Value) -> bool {
    ["secret", "configMap", "downwardAPI", "projected"]
        .iter()
        .any(|k| vol.get(k).is_some())
}

/// The checks that would make the apiserver reject the pod or the kubelet fail to start it.
pub fn validate_pod(pod: &Value) -> Result<(), String> {
    serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(pod.clone())
        .map_err(|e| format!("not a typed Pod: {e}"))?;
    let vols = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut names = std::collections::HashSet::new();
    for v in &vols {
        let n = v["name"].as_str().ok_or("volume without name")?;
        if !names.insert(n.to_string()) {
            return Err(format!("duplicate volume name {n}"));
        }
    }
    let vol = |n: &str| vols.iter().find(|v| v["name"] == n);
    for (_, _, c) in containers(pod) {
        let cname = c["name"].as_str().unwrap_or("?");
        let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        let mut paths = std::collections::HashSet::new();
        for m in &mounts {
            let n = m["name"].as_str().ok_or("mount without name")?;
            let p = m["mountPath"].as_str().ok_or("mount without path")?;
            if vol(n).is_none() {
                return Err(format!("{cname}: mount of missing volume {n}"));
            }
            if !paths.insert(p.trim_end_matches('/').to_string()) {
                return Err(format!("{cname}: duplicate mountPath {p}"));
            }
        }
        for a in &mounts {
            for b in &mounts {
                let ro = b["readOnly"] == true
                    || vol(b["name"].as_str().unwrap()).is_some_and(always_ro);
                if ro
                    && under(
                        a["mountPath"].as_str().unwrap(),
                        b["mountPath"].as_str().unwrap(),
                    )
                {
                    return Err(format!(
                        "{cname}: {} is nested in read-only mount {}",
                        a["mountPath"], b["mountPath"]
                    ));
                }
            }
        }
        let mut env_names = std::collections::HashSet::new();
        for e in c["env"].as_array().into_iter().flatten() {
            let n = e["name"].as_str().ok_or("env without name")?;
            if !env_names.insert(n) {
                return Err(format!("{cname}: duplicate env {n}"));
            }
        }
        let ef: Vec<&Value> = c["envFrom"].as_array().into_iter().flatten().collect();
        for (i, a) in ef.iter().enumerate() {
            if ef[i + 1..].contains(a) {
                return Err(format!("{cname}: duplicate envFrom {a}"));
            }
        }
    }
    Ok(())
}

/// Independent model of the kubelet: which (secretName, key) is the file at `path` in container
/// `c`, following the deepest mount and `items`/`subPath`.
pub fn kubelet_file(pod: &Value, c: &Value, path: &str) -> Option<(String, String)> {
    let vols = pod["spec"]["volumes"].as_array()?;
    let m = c["volumeMounts"]
        .as_array()?
        .iter()
        .filter(|m| {
            under(path, m["mountPath"].as_str().unwrap_or(""))
                || m["mountPath"].as_str() == Some(path)
        })
        .max_by_key(|m| {
            m["mountPath"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('/')
                .len()
        })?;
    let mp = m["mountPath"].as_str()?.trim_end_matches('/');
    let mut rel = path.strip_prefix(mp)?.trim_start_matches('/').to_string();
    if let Some(sp) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
        rel = if rel.is_empty() {
            sp.to_string()
        } else {
            format!("{sp}/{rel}")
        };
    }
    if rel.is_empty() {
        return None; // the mount point itself is a directory
    }
    let v = vols.iter().find(|v| v["name"] == m["name"])?;
    let s = v.get("secret")?;
    let key = match s["items"].as_array().filter(|i| !i.is_empty()) {
        Some(items) => items.iter().find(|i| i["path"] == rel.as_str())?["key"]
            .as_str()?
            .to_string(),
        None if !rel.contains('/') => rel,
        None => return None,
    };
    Some((s["secretName"].as_str()?.to_string(), key))
}

pub fn env_value<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

/// Apply a patch with Go's evanphx/json-patch via `kubectl patch --local`. `None` when kubectl is
/// missing outside CI; in CI a missing kubectl fails the test.
pub fn kubectl_apply(pod: &Value, patch: &Value) -> Option<Value> {
    let dir = tempfile::tempdir().unwrap();
    let pod_file = dir.path().join("pod.json");
    let patch_file = dir.path().join("patch.json");
    std::fs::write(&pod_file, serde_json::to_vec(pod).unwrap()).unwrap();
    std::fs::write(&patch_file, serde_json::to_vec(patch).unwrap()).unwrap();
    let out = Command::new("kubectl")
        .args(["patch", "--local", "--type=json", "-o", "json", "-f"])
        .arg(&pod_file)
        .arg("--patch-file")
        .arg(&patch_file)
        .env("KUBECONFIG", dir.path().join("none"))
        .output();
    match out {
        Err(e) if std::env::var("CI").is_err() => {
            eprintln!(
                "SKIP: kubectl not runnable ({e}); the Go json-patch cross-check is skipped outside CI"
            );
            None
        }
        Err(e) => panic!("kubectl is required in CI: {e}"),
        Ok(o) => {
            assert!(
                o.status.success(),
                "kubectl patch failed: {}\npatch: {patch}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(serde_json::from_slice(&o.stdout).unwrap())
        }
    }
}
pub mod client;

/// The engine on a pod given as a JSON value: decoded from its text, the one way in.
pub fn mutate(
    pod: &Value,
    plan: &plx_store_webhook::Plan,
    req: &plx_store_webhook::Request<'_>,
) -> plx_store_webhook::Outcome {
    let text = pod.to_string();
    plx_store_webhook::engine::mutate(&plx_store_webhook::engine::decode(&text), plan, req)
}

/// The same pod through a whole AdmissionReview body, read in one pass with its envelope as the
/// server reads it: both ways must decide alike.
pub fn mutate_via_review(
    pod: &Value,
    plan: &plx_store_webhook::Plan,
    req: &plx_store_webhook::Request<'_>,
) -> plx_store_webhook::Outcome {
    let body = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": req.operation, "namespace": req.namespace,
            "resource": {"group": req.group, "version": req.version, "resource": req.resource},
            "subResource": req.sub_resource, "object": pod}
    }))
    .unwrap();
    let review = plx_store_webhook::admission::Review::parse(&body).unwrap();
    review.decide(plan)
}

/// Mutate; for an allowed outcome, apply the patch with both patchers (Rust json-patch and
/// kubectl's Go one), validate the pod and run the engine again: the second pass must allow it
/// with an empty patch.
pub fn check_applied(
    plan: &plx_store_webhook::Plan,
    pod: &Value,
    namespace: &str,
) -> (plx_store_webhook::Outcome, Value) {
    let req = plx_store_webhook::Request::pod_create(namespace);
    let out = mutate(pod, plan, &req);
    let mut patched = pod.clone();
    if !out.allowed() {
        assert!(out.patch.is_empty());
        return (out, patched);
    }
    json_patch::patch(&mut patched, &out.patch).unwrap();
    // Valid, or only what the pod as created already had (duplicate env: the apiserver warns).
    if let Err(e) = validate_pod(&patched) {
        assert_eq!(validate_pod(pod), Err(e.clone()), "the patch made: {e}");
        assert!(e.contains("duplicate env "), "{e}");
    }
    let again = mutate(&patched, plan, &req);
    assert!(again.allowed(), "second pass: {:?}", again.decision);
    assert!(
        again.patch.is_empty(),
        "second pass not empty: {:?}",
        again.patch
    );
    if !out.patch.is_empty() {
        if let Some(go) = kubectl_apply(pod, &serde_json::to_value(&out.patch).unwrap()) {
            assert_eq!(go, patched);
        }
    }
    (out, patched)
}

/// A case's pod: its base (the converter's pod without a store unless named), in the case's
/// account (none: the ServiceAccount plugin's `default`), with its volumes, mounts, env and
/// annotations added (`"*"`: every container) and `drop_mounts` removed.
pub fn bypass_pod(case: &Value) -> Value {
    let base = case["base"]
        .as_str()
        .unwrap_or("tests/fixtures/polyaxon-pods/job.nostore.json");
    let mut pod = read_json(base);
    match case["account"].as_str() {
        Some(a) => pod["spec"]["serviceAccountName"] = json!(a),
        None if case.get("base").is_none() => {
            pod["spec"]
                .as_object_mut()
                .unwrap()
                .remove("serviceAccountName");
        }
        None => {}
    }
    if let Some(v) = case["volumes"].as_array() {
        pod["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .extend(v.iter().cloned());
    }
    for (a, v) in case["annotations"].as_object().into_iter().flatten() {
        pod["metadata"]["annotations"][a] = v.clone();
    }
    for (a, v) in case["labels"].as_object().into_iter().flatten() {
        pod["metadata"]["labels"][a] = v.clone();
    }
    // Mounts the case replaces (a read-only Secret cannot have mounts nested in it).
    for (who, paths) in case["drop_mounts"].as_object().into_iter().flatten() {
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            if c["name"] == who.as_str() {
                c["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| !paths.as_array().unwrap().contains(&m["mountPath"]));
            }
        }
    }
    for field in ["mounts", "env", "env_from"] {
        let key = match field {
            "mounts" => "volumeMounts",
            "env_from" => "envFrom",
            _ => "env",
        };
        for (who, items) in case[field].as_object().into_iter().flatten() {
            for list in ["initContainers", "containers"] {
                for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
                    if who == "*" || c["name"] == who.as_str() {
                        let obj = c.as_object_mut().unwrap();
                        let l = obj.entry(key).or_insert(json!([])).as_array_mut().unwrap();
                        l.extend(items.as_array().unwrap().iter().cloned());
                    }
                }
            }
        }
    }
    // Fields set on the pod spec and on a container as given (`shareProcessNamespace`,
    // `workingDir`, `securityContext`).
    for (k, v) in case["spec_fields"].as_object().into_iter().flatten() {
        pod["spec"][k] = v.clone();
    }

    for (who, fields) in case["container_fields"].as_object().into_iter().flatten() {
        for list in ["initContainers", "containers"] {
            for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
                if c["name"] == who.as_str() {
                    for (k, v) in fields.as_object().unwrap() {
                        c[k] = v.clone();
                    }
                }
            }
        }
    }
    pod
}

/// A legacy pod: without the bound-token volume the apiserver adds (the token comes from a Secret).
pub fn drop_bound_token(pod: &mut Value) {
    let bound = |v: &Value| {
        v["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("kube-api-access-")
    };
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .retain(|v| !bound(v));
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            if let Some(m) = c["volumeMounts"].as_array_mut() {
                m.retain(|m| !bound(m));
            }
        }
    }
}

/// What a later webhook does to a mutated pod in tests/cases/enforce.json (`after`): narrow a
/// volume's `items`, give a container's mount a `subPath`, set a variable.
pub fn apply_after(pod: &mut Value, after: &Value) {
    for (vol, items) in after["volume_items"].as_object().into_iter().flatten() {
        for v in pod["spec"]["volumes"].as_array_mut().unwrap() {
            if v["name"] == vol.as_str() {
                v["secret"]["items"] = items.clone();
            }
        }
    }
    let base_volumes = pod["spec"]["volumes"].as_array().map_or(0, Vec::len);
    let mut pod_volumes: Option<Vec<Value>> = None;
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("").to_string();
            for (vol, sub) in after["mount_sub_path"][&name]
                .as_object()
                .into_iter()
                .flatten()
            {
                for m in c["volumeMounts"].as_array_mut().into_iter().flatten() {
                    if m["name"] == vol.as_str() {
                        m["subPath"] = sub.clone();
                    }
                }
            }
            for (var, value) in after["set_env"][&name].as_object().into_iter().flatten() {
                let env = c
                    .as_object_mut()
                    .unwrap()
                    .entry("env")
                    .or_insert(json!([]))
                    .as_array_mut()
                    .unwrap();
                env.retain(|e| e["name"] != var.as_str());
                env.push(json!({"name": var, "value": value}));
            }
            // A duplicate after ours: the kubelet keeps the last.
            for (var, value) in after["append_env"][&name].as_object().into_iter().flatten() {
                c.as_object_mut()
                    .unwrap()
                    .entry("env")
                    .or_insert(json!([]))
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": var, "value": value}));
            }
            for path in after["add_empty_dir"][&name]
                .as_array()
                .into_iter()
                .flatten()
            {
                let vols = pod_volumes.get_or_insert_with(Vec::new);
                let v = format!("blank-{}", base_volumes + vols.len());
                vols.push(json!({"name": v, "emptyDir": {}}));
                c.as_object_mut()
                    .unwrap()
                    .entry("volumeMounts")
                    .or_insert(json!([]))
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": v, "mountPath": path}));
            }
        }
    }
    if let Some(vols) = pod_volumes {
        pod["spec"]["volumes"].as_array_mut().unwrap().extend(vols);
    }
}
