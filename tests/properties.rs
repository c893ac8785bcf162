//! Property tests over generated pods: absent/null arrays, existing same-name and same-path
//! entries, label and annotation keys with `/` and `~`, many containers. For every pod: a clear
//! denial, or a patch that applies (Rust json-patch, and kubectl for a sample), leaves a valid pod
//! whose key really is at GC_KEY_PATH, and is empty on a second pass — for the three GCS layouts
//! and every other store kind. A second property routes runs through random rule lists.

mod common;

use common::*;
use plx_store_webhook::engine::Would;
use plx_store_webhook::{load_str, Decision, Plan, Request};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

static KUBECTL_SAMPLES: AtomicUsize = AtomicUsize::new(0);

const VOL_NAMES: &[&str] = &["gcs-secret", "gcs-secret-2", "data", "ctx"];
const PATHS: &[&str] = &[
    "/plx-context/.gc",
    "/plx-context",
    "/plx-context/.gc/sub",
    "/data",
    "/plx-context/.gc/gc-secret.json",
    "/etc/gcs",
];
const ENV_NAMES: &[&str] = &[
    "GC_KEY_PATH",
    "GOOGLE_KEY_PATH",
    "FOO",
    "POLYAXON_ARTIFACTS_STORE_NAME",
];
const CONTAINER_NAMES: &[&str] = &[
    "polyaxon-main",
    "polyaxon-sidecar",
    "pytorch",
    "user-tool",
    "sidecar-1a2b",
];
const INIT_NAMES: &[&str] = &[
    "polyaxon-init-artifacts-default",
    "polyaxon-init-tb-0a1b2c3d4e",
    "polyaxon-init-auth",
    "init-9f",
];

fn configs() -> Vec<(String, Plan)> {
    let mut out = Vec::new();
    for (name, path) in LAYOUTS {
        out.push((name.to_string(), plan_for(path)));
        let text =
            std::fs::read_to_string(root().join(path)).unwrap() + "injection: {onConflict: skip}\n";
        out.push((
            format!("{name}+skip"),
            Plan::from_config(&load_str(&text, name).unwrap()),
        ));
    }
    // Every other kind, one of them mounted where generated pods often mount something else.
    for path in [
        "examples/store-s3.yaml",
        "examples/store-wasb.yaml",
        "examples/store-host-path.yaml",
    ] {
        out.push((path.to_string(), plan_for(path)));
    }
    out.push((
        "pvc at /data".to_string(),
        Plan::from_config(
            &load_str(
                "name: data\nkind: volume_claim\nschema: {volumeClaim: data, mountPath: /data}\n",
                "pvc",
            )
            .unwrap(),
        ),
    ));
    out
}

fn array_state() -> impl Strategy<Value = u8> {
    0u8..3 // 0 absent, 1 null, 2 present
}

fn volume() -> impl Strategy<Value = Value> {
    (prop::sample::select(VOL_NAMES), 0u8..4).prop_map(|(n, kind)| match kind {
        0 => json!({"name": n, "emptyDir": {}}),
        1 => json!({"name": n, "secret": {"secretName": "gcs-secret"}}),
        2 => json!({"name": n, "secret": {"secretName": "other"}}),
        _ => json!({"name": n, "configMap": {"name": "gc-key-path"}}),
    })
}

fn container(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(names),
        array_state(),
        prop::collection::vec(
            (
                prop::sample::select(VOL_NAMES),
                prop::sample::select(PATHS),
                any::<bool>(),
            ),
            0..4,
        ),
        array_state(),
        prop::collection::vec(
            (
                prop::sample::select(ENV_NAMES),
                prop::sample::select(&["/plx-context/.gc/gc-secret.json", "/x.json"][..]),
            ),
            0..3,
        ),
        array_state(),
        any::<bool>(),
    )
        .prop_map(|(name, ms, mounts, es, env, efs, ef)| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            c.insert("image".into(), json!("busybox"));
            let put = |c: &mut Map<String, Value>, k: &str, st: u8, items: Vec<Value>| match st {
                0 => {}
                1 => {
                    c.insert(k.into(), Value::Null);
                }
                _ => {
                    c.insert(k.into(), Value::Array(items));
                }
            };
            put(
                &mut c,
                "volumeMounts",
                ms,
                mounts
                    .into_iter()
                    .map(|(n, p, ro)| json!({"name": n, "mountPath": p, "readOnly": ro}))
                    .collect(),
            );
            put(
                &mut c,
                "env",
                es,
                env.into_iter()
                    .map(|(n, v)| json!({"name": n, "value": v}))
                    .collect(),
            );
            put(
                &mut c,
                "envFrom",
                efs,
                if ef {
                    vec![json!({"configMapRef": {"name": "gc-key-path"}})]
                } else {
                    vec![]
                },
            );
            Value::Object(c)
        })
}

fn pod() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(container(CONTAINER_NAMES), 1..12),
        prop::collection::vec(container(INIT_NAMES), 0..4),
        array_state(),
        prop::collection::vec(volume(), 0..4),
        prop::collection::btree_map("[a-z~/.]{1,12}", "[a-z]{0,5}", 0..3),
        any::<bool>(),
    )
        .prop_map(|(cs, ics, vs, vols, extra, annotate)| {
            let uniq = |list: Vec<Value>| {
                let mut seen = std::collections::HashSet::new();
                list.into_iter()
                    .enumerate()
                    .map(|(i, mut c)| {
                        let n = c["name"].as_str().unwrap().to_string();
                        if !seen.insert(n.clone()) {
                            c["name"] = json!(format!("{n}-{i}"));
                        }
                        c
                    })
                    .collect::<Vec<_>>()
            };
            let mut labels = Map::new();
            labels.insert("app.kubernetes.io/managed-by".into(), json!("polyaxon"));
            labels.insert("app.kubernetes.io/part-of".into(), json!("polyaxon-runs"));
            for (k, v) in &extra {
                labels.insert(format!("x.io/{k}"), json!(v));
            }
            let mut meta = json!({"generateName": "plx-operation-x-", "labels": labels});
            if annotate {
                meta["annotations"] = Value::Object(
                    extra
                        .iter()
                        .map(|(k, v)| (format!("a~b/{k}"), json!(v)))
                        .collect(),
                );
            }
            let mut spec = json!({"containers": uniq(cs)});
            if !ics.is_empty() {
                spec["initContainers"] = json!(uniq(ics));
            }
            match vs {
                0 => {}
                1 => spec["volumes"] = Value::Null,
                _ => spec["volumes"] = json!(vols),
            }
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
        })
}

/// What the apiserver rejects before us — duplicate volume names, mounts of missing volumes —
/// is fixed so the generated input is a valid pod (`None` only if the pod is still invalid,
/// which `generated_pods_are_valid` shows is rare).
fn make_valid(mut pod: Value) -> Option<Value> {
    let mut names: Vec<String> = Vec::new();
    for (i, v) in pod["spec"]["volumes"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut n = v["name"].as_str().unwrap_or("v").to_string();
        if names.contains(&n) {
            n = format!("{n}-{i}");
            v["name"] = json!(n);
        }
        names.push(n);
    }
    let read_only: Vec<String> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.get("secret").is_some() || v.get("configMap").is_some())
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    let under = |a: &str, b: &str| {
        let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
        a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'/'
    };
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            if let Some(ms) = c["volumeMounts"].as_array_mut() {
                ms.retain(|m| names.iter().any(|n| m["name"] == n.as_str()));
                // One mount per path, none nested in a read-only one (the apiserver and the
                // kubelet refuse those before any webhook matters).
                let mut kept: Vec<Value> = Vec::new();
                for m in ms.drain(..) {
                    let p = m["mountPath"].as_str().unwrap_or("").to_string();
                    let clash = kept.iter().any(|k| {
                        let kp = k["mountPath"].as_str().unwrap_or("");
                        let ro = |x: &Value| {
                            x["readOnly"] == true
                                || read_only.iter().any(|r| x["name"] == r.as_str())
                        };
                        kp.trim_end_matches('/') == p.trim_end_matches('/')
                            || (ro(k) && under(&p, kp))
                            || (ro(&m) && under(kp, &p))
                    });
                    if !clash {
                        kept.push(m);
                    }
                }
                *ms = kept;
            }
            if let Some(env) = c["env"].as_array_mut() {
                let mut seen = std::collections::HashSet::new();
                env.retain(|e| seen.insert(e["name"].to_string()));
            }
            if let Some(ef) = c["envFrom"].as_array_mut() {
                let mut seen = std::collections::HashSet::new();
                ef.retain(|e| seen.insert(e.to_string()));
            }
        }
    }
    validate_pod(&pod).ok().map(|_| pod)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn patch_applies_is_valid_and_idempotent(raw in pod(), which in 0usize..10) {
        let pod = make_valid(raw);
        prop_assume!(pod.is_some());
        let pod = pod.unwrap();
        let configs = configs();
        let (cname, plan) = &configs[which];
        let req = Request::pod_create("polyaxon");
        let out = mutate(&pod, plan, &req);
        // The server reads the pod in one pass with the review's envelope: it must decide the same.
        let fast = mutate_via_review(&pod, plan, &req);
        prop_assert_eq!(&fast.decision, &out.decision);
        prop_assert_eq!(&fast.patch, &out.patch);
        prop_assert_eq!(&fast.warnings, &out.warnings);
        // Every denial (or audit mode's would-deny), and only those, names its reason: the
        // reason the denial-ratio alert reports.
        let denies = matches!(out.decision, Decision::Denied(_) | Decision::Audited(Would::Deny));
        prop_assert_eq!(denies, out.deny_reason.is_some());
        prop_assert_eq!(fast.deny_reason, out.deny_reason);
        if let Decision::Denied(m) = &out.decision {
            prop_assert!(m.contains("container") && m.len() > 40, "{}", m);
            prop_assert!(out.patch.is_empty());
            return Ok(());
        }
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &out.patch).map_err(|e| TestCaseError::fail(format!("{cname}: {e}")))?;
        validate_pod(&patched).map_err(|e| TestCaseError::fail(format!("{cname}: {e}\n{pod}")))?;
        let again = mutate(&patched, plan, &req);
        prop_assert!(again.patch.is_empty(), "{}: second pass {:?}", cname, again.patch);
        prop_assert!(!matches!(again.decision, Decision::Denied(_)));
        // Every container we gave a GC_KEY_PATH really has the key file there.
        for (list, i, c) in containers(&patched) {
            let before = env_value(&pod["spec"][list][i], "GC_KEY_PATH");
            if let (None, Some(path)) = (before, env_value(c, "GC_KEY_PATH")) {
                prop_assert_eq!(kubelet_file(&patched, c, path), Some(("gcs-secret".to_string(), "gc-secret.json".to_string())),
                    "{}: {} GC_KEY_PATH={}", cname, c["name"], path);
                // Standard clients get the same file, unless the container named its own.
                let gac_before = env_value(&pod["spec"][list][i], "GOOGLE_APPLICATION_CREDENTIALS");
                let gac = env_value(c, "GOOGLE_APPLICATION_CREDENTIALS");
                prop_assert_eq!(gac, gac_before.or(Some(path)), "{}: {}", cname, c["name"]);
            }
        }
        if !out.patch.is_empty() && KUBECTL_SAMPLES.fetch_add(1, Ordering::Relaxed) < 24 {
            if let Some(go) = kubectl_apply(&pod, &serde_json::to_value(&out.patch).unwrap()) {
                prop_assert_eq!(go, patched);
            }
        }
    }
}

const NAMESPACES: &[&str] = &["team-a", "team-b", "ops", "team-a-dev"];
const NS_GLOBS: &[&str] = &["team-a", "team-*", "ops", "*-dev", "team-?"];
const OWNERS: &[&str] = &["acme", "globex"];
const PROJECTS: &[&str] = &["mnist", "mnist-2", "bert"];
const PROJECT_GLOBS: &[&str] = &["mnist", "mnist*", "bert", "*"];
const COMPONENTS: &[&str] = &["polyaxon-jobs", "polyaxon-services"];
const STORES: &[&str] = &["gcs-artifacts", "s3-a", "s3-b", "pvc-c"];
const EXTRA: &[&str] = &["hostpath-d", "pvc-c", "s3-b"];

type RuleSpec = (
    Vec<&'static str>,
    Vec<&'static str>,
    Vec<&'static str>,
    Vec<&'static str>,
    &'static str,
    Vec<&'static str>,
);

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    let pick =
        |set: &'static [&'static str]| prop::collection::vec(prop::sample::select(set), 0..3);
    (
        pick(NS_GLOBS),
        pick(OWNERS),
        pick(PROJECT_GLOBS),
        pick(COMPONENTS),
        prop::sample::select(STORES),
        pick(EXTRA),
    )
}

/// The reference: a glob with `*` and `?` over short names, by brute force.
fn glob_ref(p: &str, s: &str) -> bool {
    match (p.chars().next(), s.chars().next()) {
        (None, None) => true,
        (Some('*'), _) => glob_ref(&p[1..], s) || (!s.is_empty() && glob_ref(p, &s[1..])),
        (Some('?'), Some(_)) => glob_ref(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob_ref(&p[a.len_utf8()..], &s[b.len_utf8()..]),
        _ => false,
    }
}

fn list_ref(globs: &[&str], v: Option<&str>) -> bool {
    globs.is_empty() || v.is_some_and(|v| globs.iter().any(|g| glob_ref(g, v)))
}

fn yaml_list(v: &[&str]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any rule list, any run: the engine routes exactly as a first-match reference model says,
    /// gives that store and its connections, and is idempotent; no match follows `noMatch`.
    #[test]
    fn rules_route_like_the_reference(
        rules in prop::collection::vec(rule_spec(), 0..5),
        ns in prop::sample::select(NAMESPACES),
        owner in prop::option::of(prop::sample::select(OWNERS)),
        project in prop::option::of(prop::sample::select(PROJECTS)),
        component in prop::option::of(prop::sample::select(COMPONENTS)),
        no_match in prop::sample::select(&["default", "warn", "deny"][..]),
    ) {
        let mut yaml = String::from(
            "artifactsStore: {name: gcs-artifacts, kind: gcs, schema: {bucket: gs://b}, secret: {name: gcs-secret, mountPath: /plx-context/.gc}}
connections:
  - {name: s3-a, kind: s3, schema: {bucket: s3://a}, secret: {name: aws-a}}
  - {name: s3-b, kind: s3, schema: {bucket: s3://b}, secret: {name: aws-b}}
  - {name: pvc-c, kind: volume_claim, schema: {volumeClaim: c, mountPath: /c}}
  - {name: hostpath-d, kind: host_path, schema: {hostPath: /d, mountPath: /d}}
injection:
");
        yaml += &format!("  noMatch: {no_match}\n  rules:\n");
        if rules.is_empty() {
            yaml += "    []\n";
        }
        for (i, (n, o, p, c, store, extra)) in rules.iter().enumerate() {
            yaml += &format!(
                "    - {{name: r{i}, store: {store}, connections: {}, match: {{namespaces: {}, owners: {}, projects: {}, components: {}}}}}\n",
                yaml_list(extra), yaml_list(n), yaml_list(o), yaml_list(p), yaml_list(c)
            );
        }
        let plan = Plan::from_config(&load_str(&yaml, "prop").map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?);
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "generateName": "plx-operation-x-",
            "labels": {"app.kubernetes.io/managed-by": "polyaxon", "app.kubernetes.io/part-of": "polyaxon-runs"},
            "annotations": {}},
            "spec": {"containers": [{"name": "polyaxon-main", "image": "x"}]}});
        if let Some(o) = owner { pod["metadata"]["annotations"]["operation.polyaxon.com/owner"] = json!(o); }
        if let Some(p) = project { pod["metadata"]["annotations"]["operation.polyaxon.com/project"] = json!(p); }
        if let Some(c) = component { pod["metadata"]["labels"]["app.kubernetes.io/component"] = json!(c); }

        let hit = rules.iter().position(|(n, o, p, c, _, _)| {
            list_ref(n, Some(ns)) && list_ref(o, owner) && list_ref(p, project) && list_ref(c, component)
        });
        let req = Request::pod_create(ns);
        let out = mutate(&pod, &plan, &req);
        let fast = mutate_via_review(&pod, &plan, &req);
        prop_assert_eq!(&fast.decision, &out.decision);
        prop_assert_eq!(&fast.patch, &out.patch);
        let (store, extra): (&str, Vec<&str>) = match (hit, no_match) {
            (Some(i), _) => (rules[i].4, rules[i].5.clone()),
            (None, "default") => ("gcs-artifacts", vec![]),
            (None, "warn") => {
                prop_assert_eq!(&out.decision, &Decision::Ignored(plx_store_webhook::engine::IgnoreReason::NoRuleMatched));
                prop_assert!(out.patch.is_empty() && out.warnings.len() == 1);
                return Ok(());
            }
            (None, _) => {
                prop_assert!(matches!(out.decision, Decision::Denied(_)));
                return Ok(());
            }
        };
        prop_assert_eq!(out.decision.clone(), Decision::Mutated);
        prop_assert_eq!(out.store.as_str(), store);
        prop_assert_eq!(out.rule, hit.map(|i| format!("r{i}")).unwrap_or_default());
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &out.patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        validate_pod(&patched).map_err(TestCaseError::fail)?;
        prop_assert!(mutate(&patched, &plan, &req).patch.is_empty());
        prop_assert_eq!(&patched["metadata"]["annotations"]["plx-store-webhook.dev/store"], store);
        let main = &patched["spec"]["containers"][0];
        let has_mount = |dir: &str| main["volumeMounts"].as_array().is_some_and(|m| m.iter().any(|m| m["mountPath"] == dir));
        let has_env_from = |secret: &str| main["envFrom"].as_array().is_some_and(|l| l.iter().any(|e| e["secretRef"]["name"] == secret));
        // The store and every connection the rule names, each once, nothing else.
        for (name, present) in [
            ("gcs-artifacts", has_mount("/plx-context/.gc")),
            ("s3-a", has_env_from("aws-a")),
            ("s3-b", has_env_from("aws-b")),
            ("pvc-c", has_mount("/c")),
            ("hostpath-d", has_mount("/d")),
        ] {
            let want = name == store || extra.contains(&name);
            prop_assert_eq!(present, want, "{} for store {} + {:?}\n{}", name, store, extra, yaml);
        }
        prop_assert_eq!(env_value(main, "GC_KEY_PATH").is_some(), store == "gcs-artifacts");
    }
}

/// Another spelling of the same directory, as the container runtime resolves it.
fn respell(path: &str, how: u8) -> String {
    match how % 5 {
        0 => format!("/{path}"),
        1 => format!("{path}/"),
        2 => path.replacen('/', "/./", 1),
        3 => format!("/x/..{path}"),
        _ => path.replace('/', "//"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The apiserver stores mountPaths as written; the runtime cleans them. So no spelling of a
    /// path may change what the webhook decides, or where it says the key is.
    #[test]
    fn respelled_paths_decide_the_same(raw in pod(), which in 0usize..10, hows in prop::collection::vec(0u8..5, 16)) {
        let pod = make_valid(raw);
        prop_assume!(pod.is_some());
        let pod = pod.unwrap();
        let configs = configs();
        let (cname, plan) = &configs[which];
        let mut respelled = pod.clone();
        let mut k = 0;
        for list in ["initContainers", "containers"] {
            for c in respelled["spec"][list].as_array_mut().into_iter().flatten() {
                for m in c["volumeMounts"].as_array_mut().into_iter().flatten() {
                    let p = m["mountPath"].as_str().unwrap().to_string();
                    m["mountPath"] = json!(respell(&p, hows[k % hows.len()]));
                    k += 1;
                }
            }
        }
        let req = Request::pod_create("polyaxon");
        let a = mutate(&pod, plan, &req);
        let b = mutate(&respelled, plan, &req);
        prop_assert_eq!(a.decision.label(), b.decision.label(), "{}: {:?} vs {:?}", cname, a.decision, b.decision);
        prop_assert_eq!(&a.conflicts, &b.conflicts, "{}", cname);
        // Same patch: same mounts added, same GC_KEY_PATH / GOOGLE_APPLICATION_CREDENTIALS values.
        prop_assert_eq!(&a.patch, &b.patch, "{}", cname);
    }
}

/// The generator's pods reach the assertions: nearly all are valid pods after `make_valid`
/// (prop_assume! discards the rest, and proptest fails a test that discards too many).
#[test]
fn generated_pods_are_valid() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let total = 384;
    let valid = (0..total)
        .filter(|_| make_valid(pod().new_tree(&mut runner).unwrap().current()).is_some())
        .count();
    println!(
        "generated pods: {valid} of {total} valid ({}%)",
        valid * 100 / total
    );
    assert!(
        valid * 100 >= total * 90,
        "only {valid} of {total} generated pods are valid"
    );
}

/// Every config in examples/, as written, with `onConflict: skip` and in audit mode (read once).
fn example_configs() -> &'static [(String, Plan)] {
    static CONFIGS: std::sync::OnceLock<Vec<(String, Plan)>> = std::sync::OnceLock::new();
    CONFIGS.get_or_init(read_example_configs)
}

fn read_example_configs() -> Vec<(String, Plan)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(config) = load_str(&text, &name) else {
            continue; // a pod or a review, not a config
        };
        out.push((name.clone(), Plan::from_config(&config)));
        for (variant, line) in [("skip", "onConflict: skip"), ("audit", "mode: audit")] {
            let varied = if text.contains("\ninjection:\n") {
                text.replacen("\ninjection:\n", &format!("\ninjection:\n  {line}\n"), 1)
            } else {
                format!("{text}\ninjection: {{{line}}}\n")
            };
            if let Ok(c) = load_str(&varied, &name) {
                out.push((format!("{name}+{variant}"), Plan::from_config(&c)));
            }
        }
    }
    assert!(out.len() >= 20, "{} configs", out.len());
    out
}

/// Every pod the repository holds: the converter's fixtures (as made and with the apiserver's
/// additions), the shared fixtures, examples/, and the pods of tests/cases.
fn repository_pods() -> Vec<(String, Value)> {
    let mut pods = Vec::new();
    for (name, pod) in fixture_pods() {
        pods.push((
            format!("{name}+apiserver"),
            with_apiserver_additions(pod.clone()),
        ));
        pods.push((name, pod));
    }
    let shared = std::path::Path::new("/work/shared/fixtures/polyaxon-pods");
    for e in std::fs::read_dir(shared).into_iter().flatten() {
        let p = e.unwrap().path();
        pods.push((p.display().to_string(), read_json(&p)));
    }
    pods.push(("run-pod".into(), read_json("examples/run-pod.json")));
    let review = read_json("examples/review-run-pod.json");
    pods.push(("review-run-pod".into(), review["request"]["object"].clone()));
    for file in ["keyless-bypasses", "enforce"] {
        let cases = read_json(format!("tests/cases/{file}.json"));
        for case in cases["cases"].as_array().unwrap() {
            let mut pod = with_apiserver_additions(bypass_pod(case));
            if case["no_bound_token"] == true {
                drop_bound_token(&mut pod);
            }
            pods.push((format!("{file}:{}", case["name"]), pod));
        }
    }
    pods
}

const ROUTED: &[&str] = &["polyaxon", "team-vision", "team-nlp-9", "team-research-9"];

/// One decision: what /mutate admits, /validate admits once patched; what /mutate refuses,
/// /validate does not admit as created.
fn one_decision(pod: &Value, plan: &Plan, ns: &str) -> Result<(), String> {
    let req = Request::pod_create(ns);
    let out = mutate(pod, plan, &req);
    let validate = |p: &Value| {
        let text = p.to_string();
        plx_store_webhook::engine::validate(&plx_store_webhook::engine::decode(&text), plan, &req)
    };
    if out.allowed() {
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &out.patch).map_err(|e| e.to_string())?;
        let v = validate(&patched);
        if let Decision::Denied(m) = &v.decision {
            return Err(format!(
                "mutate admitted, validate refused the patched pod: {m}"
            ));
        }
    } else if validate(pod).allowed() {
        return Err(format!(
            "mutate refused ({:?}), validate admitted",
            out.decision
        ));
    }
    Ok(())
}

#[test]
fn mutate_and_validate_are_one_decision_on_every_pod_the_repository_holds() {
    let configs = example_configs();
    let pods = repository_pods();
    let mut checked = 0;
    for (pname, pod) in &pods {
        for (cname, plan) in configs {
            for ns in ROUTED {
                one_decision(pod, plan, ns)
                    .unwrap_or_else(|e| panic!("{pname} under {cname} in {ns}: {e}"));
                checked += 1;
            }
        }
    }
    assert!(checked > 2000, "{checked}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The same over generated pods, for every example config.
    #[test]
    fn mutate_and_validate_are_one_decision_on_generated_pods(raw in pod(), which in 0usize..64, ns in 0usize..4) {
        let pod = make_valid(raw);
        prop_assume!(pod.is_some());
        let configs = example_configs();
        let (cname, plan) = &configs[which % configs.len()];
        one_decision(&pod.unwrap(), plan, ROUTED[ns]).map_err(|e| TestCaseError::fail(format!("{cname}: {e}")))?;
    }
}
