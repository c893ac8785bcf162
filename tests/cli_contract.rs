//! The command line as a contract a CI pipeline relies on (docs/cli.md): one exit-code table,
//! stable JSON shapes (one test per shape), errors said once with the file, line and section,
//! every input form `mutate`/`validate` read, `test` on the repository's own examples.

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin(args: &[&str], stdin: Option<&str>) -> Output {
    bin_env(args, stdin, &[])
}

fn bin_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("PLX_WEBHOOK_CONFIG")
        .env_remove("PLX_WEBHOOK_SETTINGS")
        .env_remove("PLX_WEBHOOK_LOG_FORMAT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(s) = stdin {
        let _ = child.stdin.take().unwrap().write_all(s.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&o.stdout), text(&o.stderr)))
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

const TEAMS: &str = "examples/teams.yaml";

#[test]
fn usage_errors_exit_64_help_exits_0() {
    for args in [
        &["mutate"][..],
        &["check-config"],
        &["mutate", "--config", TEAMS, "--output", "nope"],
        &["no-such-command"],
        &[],
    ] {
        let o = bin(args, Some(""));
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", text(&o.stderr));
    }
    assert_eq!(bin(&["--help"], None).status.code(), Some(0));
    assert_eq!(bin(&["validate", "--help"], None).status.code(), Some(0));
}

/// `… | head -1`: the reader closed the pipe; the command ends quietly, no panic.
#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args(["check-config", "--config", TEAMS])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

/// One typo: the error said once, headed by the real file with line and column, under the
/// section it is in, `error:` first; as one JSON line when logs are JSON.
#[test]
fn a_config_error_is_said_once_with_file_line_and_section() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("values.yaml");
    std::fs::write(
        &f,
        "artifactsStore:\n  name: s3\n  kind: s3\n  schema: {bucket: \"s3://x\"}\n  secret:\n    name: aws\n    mountpath: /x\ninjection:\n  onConflct: deny\n",
    )
    .unwrap();
    let name = f.to_str().unwrap();
    let o = bin(&["check-config", "--config", name], None);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: config "), "{err}");
    assert_eq!(
        err.matches("unknown field `mountpath`").count(),
        2,
        "message and caret only: {err}"
    );
    assert!(err.contains(&format!("--> {name}:7:5")), "{err}");
    assert!(err.contains("artifactsStore.secret: "), "{err}");
    assert!(!err.contains("<input>"), "{err}");

    std::fs::write(
        &f,
        "artifactsStore:\n  name: s3\n  kind: s3\n  schema: {bucket: \"s3://x\"}\n  secret: {name: aws}\ninjection:\n  onConflct: deny\n",
    )
    .unwrap();
    let o = bin_env(
        &["check-config", "--config", name],
        None,
        &[("PLX_WEBHOOK_LOG_FORMAT", "json")],
    );
    let line: Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["path"], "injection");
    assert_eq!(
        (line["line"].as_u64(), line["column"].as_u64()),
        (Some(7), Some(3))
    );
    assert_eq!(line["file"], name);
    assert!(!line["message"].as_str().unwrap().contains('\n'), "{line}");
    assert!(
        line["snippet"]
            .as_str()
            .unwrap()
            .contains("onConflct: deny"),
        "{line}"
    );

    let o = bin(
        &["check-config", "--config", "-"],
        Some("artifactsStore: {name: a, kind: gcp}\n"),
    );
    let err = text(&o.stderr);
    assert_eq!(err.matches("unknown store kind").count(), 1, "{err}");
    assert!(err.contains("config <stdin>: artifactsStore.kind"), "{err}");
}

/// `serve`'s startup errors in JSON when its logs are JSON (the default).
#[test]
fn serve_startup_errors_are_json_lines() {
    let o = bin(
        &[
            "serve",
            "--config",
            "/no/such/config.yaml",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    let last: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR", "{err}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/config.yaml"),
        "{err}"
    );
}

#[test]
fn check_config_json_shape_configmaps_lints_and_strict() {
    let o = bin(
        &[
            "check-config",
            "--config",
            TEAMS,
            "-o",
            "json",
            "--namespace",
            "team-vision",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert_eq!(
        keys(&v),
        ["config", "errors", "findings", "hash", "notes", "resolved", "route"]
    );
    assert_eq!(
        v["route"],
        serde_json::json!({"store": "vision-s3", "rule": "vision"})
    );
    // PLX_WEBHOOK_CONFIG, and the config as kubectl prints the agent ConfigMap, with the
    // shipped settings ConfigMap.
    let agent = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: polyaxon-polyaxon-agent-config, namespace: polyaxon}
data:
  POLYAXON_AGENT_ARTIFACTS_STORE: '{"name": "gcs-artifacts", "kind": "gcs", "schema": {"bucket": "gs://gcs-artifacts"}, "secret": {"name": "gcs-secret", "mountPath": "/plx-context/.gc"}}'
"#;
    let o = bin_env(
        &["check-config", "-o", "yaml"],
        Some(agent),
        &[
            ("PLX_WEBHOOK_CONFIG", "-"),
            (
                "PLX_WEBHOOK_SETTINGS",
                "manifests/overlays/polyaxon-agent-config/settings.yaml",
            ),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_saphyr::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["resolved"]["store"]["name"], "gcs-artifacts");
    assert_eq!(v["resolved"]["injection"]["on_conflict"], "deny", "{v}");

    let lint = "artifactsStore: {name: main, kind: s3, schema: {bucket: \"gs://oops\"}, secret: {name: aws}}\n\
        connections: [{name: v, kind: gcs, schema: {bucket: \"gs://v\"}, secret: {name: v}}]\n\
        injection:\n  rules:\n    - {name: all, match: {namespaces: []}, store: main}\n    - {name: later, match: {namespaces: [team-a]}, store: v}\n";
    let o = bin(&["check-config", "--config", "-", "-o", "json"], Some(lint));
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    let got: Vec<(String, String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(keys(f), ["code", "message", "path", "severity"]);
            (
                f["severity"].as_str().unwrap().into(),
                f["code"].as_str().unwrap().into(),
                f["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("error", "PSW4001", "artifactsStore.schema.bucket"),
        ("error", "PSW4002", "injection.rules[0].match.namespaces"),
        ("note", "PSW4003", "injection.rules[1]"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str()), w);
    }
    // A shadowed rule alone is a note: exit 0, and 2 with --strict.
    let note = "artifactsStore: {name: main, kind: s3, schema: {bucket: \"s3://x\"}, secret: {name: aws}}\n\
        injection:\n  rules:\n    - {name: all, store: main}\n    - {name: later, match: {namespaces: [team-a]}, store: main}\n";
    assert_eq!(
        bin(&["check-config", "--config", "-"], Some(note))
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        bin(&["check-config", "--config", "-", "--strict"], Some(note))
            .status
            .code(),
        Some(2)
    );
}

/// Every input form, answered per object with its kind and name.
#[test]
fn mutate_and_validate_read_every_form_and_answer_per_object() {
    let o = bin(
        &[
            "mutate",
            "--config",
            TEAMS,
            "-o",
            "results",
            "examples/tests",
        ],
        None,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a denial among them: {}",
        text(&o.stderr)
    );
    let v = json(&o);
    let rows = v.as_array().unwrap();
    for r in rows {
        assert_eq!(
            keys(r),
            [
                "code",
                "decision",
                "identity",
                "kind",
                "message",
                "name",
                "namespace",
                "patch",
                "replica",
                "rule",
                "source",
                "store",
                "warnings"
            ]
        );
    }
    let seen: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}/{} {} {}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["replica"].as_str().unwrap(),
                r["decision"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            "Job/vision-train  mutated",
            "PyTorchJob/nlp-dist Master mutated",
            "PyTorchJob/nlp-dist Worker mutated",
            "Pod/mnist-run  mutated",
            "Pod/taken-mount  denied",
            "Deployment/dashboard  not-served",
            "Service/dashboard  skipped",
        ]
    );
    assert!(text(&o.stderr)
        .contains("skipped: Service/dashboard: [PSW5001] not a Pod or pod template: kind Service"));

    // The mutated objects as YAML, read back by validate: allowed (the denied one left out).
    let o = bin(
        &[
            "mutate",
            "--config",
            TEAMS,
            "-o",
            "yaml",
            "examples/tests/runs.yaml",
        ],
        None,
    );
    let yaml = text(&o.stdout);
    assert_eq!(yaml.matches("\n---\n").count(), 3, "{yaml}");
    let o = bin(
        &["validate", "--config", TEAMS, "-o", "json", "-"],
        Some(&yaml),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let v = json(&o);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r.get("patch").is_none()));
    let decisions: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        ["allowed", "allowed", "allowed", "allowed", "not-served"]
    );

    // A List in JSON; kind CronJob; a non-pod alone is an error.
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "team-vision"},
         "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {
            "app.kubernetes.io/managed-by": "polyaxon", "app.kubernetes.io/part-of": "polyaxon-runs"}},
            "spec": {"containers": [{"name": "polyaxon-main", "image": "x"}]}}}}}}]});
    let o = bin(
        &["validate", "--config", TEAMS, "-"],
        Some(&list.to_string()),
    );
    assert_eq!(o.status.code(), Some(2));
    let out = text(&o.stdout);
    assert!(
        out.starts_with("OBJECT") && out.contains("CronJob/nightly") && out.contains("denied"),
        "{out}"
    );
    let o = bin(
        &["mutate", "--config", TEAMS, "-"],
        Some("kind: ConfigMap\nmetadata: {name: x}\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not a Pod or pod template: kind ConfigMap"));
}

/// The repository's own test file passes; a wrong expectation exits 2 and says what differs,
/// in a table, JSON and JUnit XML.
#[test]
fn the_examples_test_file_passes_and_a_mismatch_exits_2() {
    let o = bin(&["test", "examples"], None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let o = bin(&["test", "examples", "-o", "json"], None);
    let v = json(&o);
    assert_eq!(keys(&v), ["failed", "passed", "tests"]);
    assert_eq!(v["failed"], 0);
    assert_eq!(
        keys(&v["tests"][0]),
        [
            "actual",
            "file",
            "mismatches",
            "mode",
            "object",
            "result",
            "test"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let examples = root().join("examples");
    std::fs::write(
        dir.path().join("plx-store-test.yaml"),
        format!(
            "config: {}/teams.yaml\nresources: [{}/tests/runs.yaml]\nresults:\n  - {{object: Job/vision-train, store: nlp-gcs, warnings: [nothing-like-this]}}\n",
            examples.display(),
            examples.display()
        ),
    )
    .unwrap();
    let o = bin(&["test", dir.path().to_str().unwrap(), "-o", "junit"], None);
    assert_eq!(o.status.code(), Some(2));
    let xml = text(&o.stdout);
    assert!(
        xml.contains("<testsuites") && xml.contains("failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("store &quot;vision-s3&quot; (expected &quot;nlp-gcs&quot;)"),
        "{xml}"
    );
}

#[test]
fn rbac_json_is_a_list() {
    let o = bin(&["rbac", "--config", TEAMS, "-o", "json"], None);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert_eq!(v["kind"], "List");
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding"]);
}

/// `fleet`: an unreachable API server is named, with the cause, and exits 1 (an error, not a
/// finding); `--kubeconfig` and `--context` are used.
#[test]
fn fleet_names_the_unreachable_server() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\n\
             users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: other\n  context: {{cluster: c, user: u}}\ncurrent-context: missing\n"
        ),
    )
    .unwrap();
    let kc = kc.to_str().unwrap();
    let o = bin(
        &[
            "fleet",
            "--config",
            TEAMS,
            "--kubeconfig",
            kc,
            "--context",
            "other",
            "--timeout-seconds",
            "2",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("https://127.0.0.1:{port}"))
            && err.to_lowercase().contains("refused"),
        "{err}"
    );
    let o = bin(
        &[
            "fleet",
            "--config",
            TEAMS,
            "--kubeconfig",
            kc,
            "--context",
            "nope",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("nope"), "{}", text(&o.stderr));
}

/// Every denial, warning and not-served reason the engine gives, over the example configs and
/// the converter's pods bent in the ways that make it talk (a volume at the store's directory,
/// a key variable set, an envFrom Secret, another ServiceAccount, a read-only mount), in
/// inject, audit and enforce: each has a registered code.
#[test]
fn every_engine_message_has_a_code() {
    use plx_store_webhook::codes::{code_of, ignore_code, UNKNOWN};
    use plx_store_webhook::engine::{self, Decision, Request};
    let mut configs: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("helm-values.yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    configs.push(std::fs::read_to_string(root().join("examples/helm-values.yaml")).unwrap());
    let variants: Vec<String> = configs
        .iter()
        .flat_map(|c| {
            let mut v = vec![c.clone()];
            for (from, to) in [
                ("onConflict: deny", "onConflict: skip"),
                ("injection:\n", "injection:\n  mode: audit\n"),
                ("noMatch: default", "noMatch: warn"),
                ("noMatch: default", "noMatch: deny"),
            ] {
                if c.contains(from) {
                    v.push(c.replacen(from, to, 1));
                }
            }
            v
        })
        .collect();
    let mut seen = 0;
    let mut unknown = Vec::new();
    for text in &variants {
        let Ok(cfg) = plx_store_webhook::load_str(text, "example") else {
            continue;
        };
        let plan = plx_store_webhook::Plan::from_config(&cfg);
        let dirs: Vec<String> = plan.default.mounts.iter().map(|m| m.dir.clone()).collect();
        for (_, pod) in fixture_pods() {
            let mut bent = vec![pod.clone()];
            for d in &dirs {
                let mut p = pod.clone();
                p["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({"name": "mine", "emptyDir": {}}));
                p["spec"]["containers"][0]["volumeMounts"] =
                    serde_json::json!([{"name": "mine", "mountPath": d}]);
                bent.push(p);
                let mut p = pod.clone();
                p["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({"name": "ro", "emptyDir": {}}));
                p["spec"]["containers"][0]["volumeMounts"] =
                    serde_json::json!([{"name": "ro", "mountPath": "/", "readOnly": true}]);
                bent.push(p);
            }
            let mut p = pod.clone();
            p["spec"]["containers"][0]["env"] = serde_json::json!([
                {"name": "GC_KEY_PATH", "value": "/elsewhere.json"},
                {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/other.json"},
                {"name": "AWS_SECRET_ACCESS_KEY", "value": "k"}]);
            p["spec"]["containers"][0]["envFrom"] =
                serde_json::json!([{"secretRef": {"name": "keys"}}]);
            p["spec"]["serviceAccountName"] = "someone".into();
            bent.push(p);
            for pod in bent {
                for ns in [
                    "default",
                    "team-vision",
                    "team-nlp-1",
                    "team-research",
                    "kube-system",
                ] {
                    let text = pod.to_string();
                    let decoded = engine::decode(&text);
                    for out in [
                        engine::mutate(&decoded, &plan, &Request::pod_create(ns)),
                        engine::validate(&decoded, &plan, &Request::pod_create(ns)),
                    ] {
                        let mut msgs: Vec<String> =
                            out.warnings.iter().map(|w| w.to_string()).collect();
                        match &out.decision {
                            Decision::Denied(m) => msgs.push(m.clone()),
                            Decision::Ignored(r) => assert_ne!(ignore_code(*r), UNKNOWN),
                            _ => {}
                        }
                        for m in msgs {
                            seen += 1;
                            if code_of(&m) == UNKNOWN {
                                unknown.push(m);
                            }
                        }
                    }
                }
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(seen > 100, "only {seen} messages");
    assert!(
        unknown.is_empty(),
        "messages without a code:\n{}",
        unknown.join("\n")
    );
}

/// The counters a dashboard divides by exist at 0 before the first request.
#[test]
fn dashboard_counters_start_at_zero() {
    let text = plx_store_webhook::metrics::Metrics::new().encode();
    for line in [
        "plx_webhook_admission_requests_total{result=\"denied\",api_version=\"v1\"} 0",
        "plx_webhook_admission_requests_total{result=\"mutated\",api_version=\"v1\"} 0",
        "plx_webhook_skips_total{reason=\"not_a_run\"} 0",
        "plx_webhook_conflicts_total{kind=\"mount_path_taken\"} 0",
        "plx_webhook_config_reloads_total{result=\"failure\"} 0",
        "plx_webhook_cert_reloads_total{result=\"failure\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
}

/// `fleet -o json`'s document: every key present, `pods` too when there are none.
#[test]
fn fleet_json_shape_keeps_empty_lists() {
    let plan = plan_for(TEAMS);
    let view = plx_store_webhook::fleet::view::View::default();
    let r = plx_store_webhook::fleet::report::build(&view, &plan, true);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        keys(&v),
        [
            "config_hash",
            "counts",
            "missing_references",
            "pods",
            "synced",
            "watches"
        ]
    );
    assert_eq!(v["pods"], serde_json::json!([]));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// A misspelt key anywhere in a block-style config (any indentation, sequences indented or
    /// not, any rule) is reported under the section it is in, at its own line.
    #[test]
    fn a_typo_is_reported_under_its_own_section(
        unit in 2usize..5,
        indent_items in proptest::bool::ANY,
        rules in 1usize..4,
        target in 0usize..5,
        which in 0usize..4,
    ) {
        let which = which % rules;
        let i = |n: usize| " ".repeat(n * unit);
        let d = if indent_items { i(2) } else { i(1) };
        let bogus = |at: &str, lines: &mut Vec<String>| lines.push(format!("{at}bogusField: 1"));
        let mut l: Vec<String> = vec!["artifactsStore:".into(), format!("{}name: s", i(1)),
            format!("{}kind: s3", i(1)), format!("{}schema:", i(1)), format!("{}bucket: \"s3://x\"", i(2)),
            format!("{}secret:", i(1)), format!("{}name: aws", i(2))];
        let mut want = (String::new(), 0);
        if target == 0 { bogus(&i(2), &mut l); want = ("artifactsStore.secret".into(), l.len()); }
        if target == 1 { bogus(&i(1), &mut l); want = ("artifactsStore".into(), l.len()); }
        l.push("injection:".into());
        l.push(format!("{}rules:", i(1)));
        for r in 0..rules {
            let k = format!("{d}  ");
            l.push(format!("{d}- name: r{r}"));
            l.push(format!("{k}store: s"));
            l.push(format!("{k}match:"));
            l.push(format!("{k}{}namespaces: [a{r}]", i(1)));
            if r == which && target == 2 { bogus(&format!("{k}{}", i(1)), &mut l); want = (format!("injection.rules[{r}].match"), l.len()); }
            if r == which && target == 3 { bogus(&k, &mut l); want = (format!("injection.rules[{r}]"), l.len()); }
        }
        if target == 4 { bogus(&i(1), &mut l); want = ("injection".into(), l.len()); }
        let text = l.join("\n") + "\n";
        let err = plx_store_webhook::load_str(&text, "c.yaml").expect_err(&text);
        let plx_store_webhook::config::ConfigProblem::Syntax(s) = &err.problem else {
            panic!("{err}\n{text}")
        };
        proptest::prop_assert_eq!(&s.path, &want.0, "{}\n{}", err, text);
        proptest::prop_assert_eq!(s.line, Some(want.1 as u64), "{}", text);
    }
}
