//! The binary's offline commands: `mutate` in its three outputs and `check-config`, with exit codes.

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn mutate_prints_patch_pod_and_review() {
    let pod = "examples/run-pod.json";
    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/store-seed-filepath.yaml",
            pod,
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let patch: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(patch.as_array().unwrap().len() >= 4);

    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/store-seed-filepath.yaml",
            "--output",
            "pod",
            pod,
        ],
        None,
    );
    let patched: Value = serde_json::from_slice(&o.stdout).unwrap();
    validate_pod(&patched).unwrap();
    // Running on its own output: an empty patch.
    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/store-seed-filepath.yaml",
            "-",
        ],
        Some(&serde_json::to_string(&patched).unwrap()),
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );

    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/store-ctxdir.yaml",
            "--output",
            "review",
            "tests/fixtures/apiserver/review-v1-generatename.json",
        ],
        None,
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["response"]["uid"], "ce37c38c-3ede-43ee-ac74-624a033a051a");
    assert_eq!(r["response"]["allowed"], true);
}

#[test]
fn yaml_in_yaml_out() {
    let pod = read_json("examples/run-pod.json");
    let yaml = serde_saphyr::to_string(&pod).unwrap();
    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/store-ctxdir.yaml",
            "--output",
            "pod",
            "-",
        ],
        Some(&yaml),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(!out.trim_start().starts_with('{'), "expected YAML: {out}");
    let back: Value = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(
        env_value(&back["spec"]["containers"][0], "GC_KEY_PATH"),
        Some("/plx-context/.gc/gc-secret.json")
    );
}

#[test]
fn bad_input_exits_1_and_denials_exit_2() {
    let o = bin(
        &["mutate", "--config", "examples/store-ctxdir.yaml", "-"],
        Some("{ not: [valid"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("error"), "{}", text(&o.stderr));
    let o = bin(
        &["mutate", "--config", "examples/store-ctxdir.yaml", "-"],
        Some("just: a map\n"),
    );
    assert_eq!(o.status.code(), Some(1));

    let conflict = r#"{"metadata": {"labels": {"app.kubernetes.io/managed-by": "polyaxon", "app.kubernetes.io/part-of": "polyaxon-runs"}},
      "spec": {"containers": [{"name": "polyaxon-main", "volumeMounts": [{"name": "o", "mountPath": "/plx-context/.gc"}]}], "volumes": [{"name": "o", "emptyDir": {}}]}}"#;
    let o = bin(
        &["mutate", "--config", "examples/store-ctxdir.yaml", "-"],
        Some(conflict),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("denied"), "{}", text(&o.stderr));
}

#[test]
fn check_config_prints_the_plan_or_the_error() {
    for example in [
        "examples/store-seed-filepath.yaml",
        "examples/store-ctxdir.yaml",
        "examples/store-etc-gcs.yaml",
        "examples/helm-values.yaml",
        "examples/agent-configmap-store.json",
    ] {
        let o = bin(&["check-config", example], None);
        assert!(o.status.success(), "{example}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(
            out.contains("main (polyaxon-main): adds mount"),
            "{example}: {out}"
        );
        assert!(out.contains("sidecar (polyaxon-sidecar)"), "{out}");
    }
    let o = bin(&["check-config", "examples/store-seed-filepath.yaml"], None);
    assert!(text(&o.stdout).contains("GC_KEY_PATH=/plx-context/.gc/gc-secret.json/gc-secret.json"));

    // What clients will see: the standard name, and a mode only root can read.
    let out = text(&bin(&["check-config", "examples/helm-values.yaml"], None).stdout);
    assert!(
        out.contains("env GOOGLE_APPLICATION_CREDENTIALS = the same file"),
        "{out}"
    );
    assert!(
        out.contains(
            "NOTE: secret gcs-secret: key gc-secret.json gets mode 0400, which only root can read"
        ) && out.contains("fsGroup"),
        "{out}"
    );
    let out = text(&bin(&["check-config", "examples/store-s3.yaml"], None).stdout);
    assert!(
        out.contains(
            "env AWS_DEFAULT_REGION from configMap aws-settings key AWS_REGION (optional)"
        ),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    // The keyfile-dict form: said plainly, with the config that works for every client.
    let dict = dir.path().join("dict.yaml");
    std::fs::write(&dict, "artifactsStore:\n  name: s\n  kind: gcs\n  schema: {bucket: gs://b}\n  secret: {name: gcs-dict}\n").unwrap();
    let o = bin(&["check-config", dict.to_str().unwrap()], None);
    assert!(o.status.success());
    let out = text(&o.stdout);
    assert!(
        out.contains("GC_KEYFILE_DICT form")
            && out.contains("google-auth")
            && out.contains("secret: {name: gcs-dict, mountPath: /plx-context/.gc}"),
        "{out}"
    );
    let o = bin(
        &[
            "mutate",
            "--explain",
            "--config",
            dict.to_str().unwrap(),
            "examples/run-pod.json",
        ],
        None,
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("note: secret gcs-dict has no mountPath"),
        "{err}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "artifactsStore:\n  name: s\n  kind: gcs\n  schema: {bucket: b}\n  secret: {name: k, mountPath: relative/dir}\n").unwrap();
    let o = bin(&["check-config", bad.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("artifactsStore.secret.mountPath"),
        "{err}"
    );
}

#[test]
fn check_config_prints_the_rule_table_and_where_a_run_goes() {
    let o = bin(&["check-config", "examples/teams.yaml"], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for want in [
        "rules (first match wins):",
        "acme-mnist",
        "owners=[acme] projects=[mnist*]",
        "no match: the artifactsStore gcs-artifacts",
        "== store vision-s3 — rule vision",
        "== store gcs-artifacts — runs no rule matches (the default)",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let o = bin(
        &[
            "check-config",
            "examples/teams.yaml",
            "--namespace",
            "team-nlp-2",
            "--owner",
            "globex",
            "--component",
            "polyaxon-services",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("rule acme-mnist: no match (owner \"globex\" in [acme]: no; project (none) in [mnist*]: no)"),
        "{out}"
    );
    assert!(
        out.contains("rule nlp-services: MATCHES")
            && out.contains("→ rule nlp-services: store nlp-gcs, connections datasets"),
        "{out}"
    );
    assert!(
        !out.contains("rule nlp:"),
        "rules after the match are not evaluated:\n{out}"
    );
    let o = bin(
        &["check-config", "examples/teams.yaml", "--namespace", "ops"],
        None,
    );
    assert!(
        text(&o.stdout).contains("→ no rule matched, injection.noMatch: default: store gcs-artifacts, connections datasets"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn mutate_explain_says_which_rule_and_why_each_piece() {
    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/teams.yaml",
            "--explain",
            "tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    // stdout stays the patch; the explanation goes to stderr.
    let _: Value = serde_json::from_slice(&o.stdout).unwrap();
    let err = text(&o.stderr);
    for want in [
        "rule acme-mnist: MATCHES (owner \"acme\" in [acme]: yes; project \"mnist\" in [mnist*]: yes)",
        "→ rule acme-mnist: store vision-s3, connections datasets, scratch",
        "container polyaxon-init-auth: not a target",
        "container polyaxon-main:",
        "envFrom secretRef vision-aws: added",
        "mount of connection datasets: added (volume datasets at /datasets)",
        "annotation plx-store-webhook.dev/store=vision-s3: added",
        "decision: mutated",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    // On its own output every piece is already there.
    let pod = bin(
        &[
            "mutate",
            "--config",
            "examples/teams.yaml",
            "--output",
            "pod",
            "tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json",
        ],
        None,
    );
    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/teams.yaml",
            "--explain",
            "-",
        ],
        Some(&text(&pod.stdout)),
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("envFrom secretRef vision-aws: already there")
            && !err.contains(": added")
            && err.contains("decision: unchanged"),
        "{err}"
    );
    // A conflict: the piece is not added and the denial says why.
    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/teams.yaml",
            "--explain",
            "--namespace",
            "team-nlp-1",
            "-",
        ],
        Some(
            &text(&std::fs::read("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json").unwrap())
                .replace("\"acme\"", "\"globex\""),
        ),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("→ rule nlp: store nlp-gcs")
            && err.contains("denied:")
            && err.contains("/plx-context/.gc"),
        "{err}"
    );
}

#[test]
fn agent_configmap_directory_and_settings_file() {
    let dir = std::env::temp_dir().join(format!("plx-cli-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("POLYAXON_AGENT_ARTIFACTS_STORE"),
        std::fs::read_to_string(root().join("examples/agent-configmap-store.json")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("POLYAXON_AGENT_CONNECTIONS"),
        r#"[{"name":"datasets","kind":"volume_claim","schema":{"volumeClaim":"datasets","mountPath":"/datasets","readOnly":true}}]"#,
    )
    .unwrap();
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, "injection:\n  connections: [datasets]\n").unwrap();
    let (d, s) = (dir.to_str().unwrap(), settings.to_str().unwrap());
    let o = bin(&["check-config", d, "--settings", s], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("connections: datasets"),
        "{}",
        text(&o.stdout)
    );
    let o = bin(
        &[
            "mutate",
            "--config",
            d,
            "--settings",
            s,
            "examples/run-pod.json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("\"claimName\": \"datasets\""));
    let o = bin(
        &["check-config", d, "--settings", "/nonexistent.yaml"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("/nonexistent.yaml"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_defaults_the_admin_port_to_the_listen_host_in_dev_mode() {
    use clap::Parser;
    use plx_store_webhook::cli::{Cli, Command};
    let admin = |args: &[&str]| {
        let mut argv = vec!["plx-store-webhook", "serve", "--config", "c.yaml"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Serve(s) => Ok::<_, String>(s.admin_addr().map(|a| a.to_string())),
            _ => unreachable!(),
        }
    };
    assert_eq!(
        admin(&["--listen", "127.0.0.1:8443"]),
        Ok(Some("127.0.0.1:8080".into()))
    );
    assert_eq!(
        admin(&[
            "--listen",
            "127.0.0.1:8443",
            "--tls-cert",
            "c",
            "--tls-key",
            "k"
        ]),
        Ok(Some("0.0.0.0:8080".into()))
    );
    assert_eq!(admin(&["--admin-listen", "off"]), Ok(None));
    assert_eq!(
        admin(&["--admin-listen", "10.0.0.1:9090"]),
        Ok(Some("10.0.0.1:9090".into()))
    );
    assert!(admin(&["--admin-listen", "nope"])
        .unwrap_err()
        .contains("--admin-listen"));
}

#[test]
fn serve_on_a_busy_port_names_the_flag_and_writes_no_dev_ca() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("dev/ca.crt");
    let o = bin(
        &[
            "serve",
            "--config",
            "examples/store-ctxdir.yaml",
            "--listen",
            &addr,
            "--admin-listen",
            "off",
            "--dev-ca-out",
            ca.to_str().unwrap(),
            "--log-format",
            "text",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("--listen") && err.contains(&addr), "{err}");
    assert!(
        !ca.exists(),
        "the dev CA was written before the listener bound"
    );
}

#[test]
fn serve_without_a_certificate_says_it_is_unready_until_one_appears() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args([
            "serve",
            "--config",
            "examples/store-ctxdir.yaml",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--tls-cert",
            missing.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .current_dir(root())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("\"serving\"") || line.contains("serving\"");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = seen.join("\n");
    assert!(all.contains("no valid serving certificate yet"), "{all}");
    assert!(!all.contains("last good one keeps serving"), "{all}");
}

#[test]
fn printed_values_are_as_written_and_exit_codes_documented() {
    let out = text(&bin(&["check-config", "examples/store-ctxdir.yaml"], None).stdout);
    assert!(out.contains("on conflict: deny"), "{out}");
    let help = text(&bin(&["mutate", "--help"], None).stdout);
    assert!(
        help.contains("Exit codes: 0") && help.contains("2 the policy said no"),
        "{help}"
    );
    let dir = tempfile::tempdir().unwrap();
    let o = bin(&["certs", "--out-dir", dir.path().to_str().unwrap()], None);
    let out = text(&o.stdout);
    let until = out.split("valid until ").nth(1).unwrap().trim();
    assert!(
        time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339).is_ok(),
        "not RFC 3339: {until}"
    );
}

/// The README's curl example posts this review: a labelled run pod, so the answer shows a patch.
#[test]
fn the_shipped_review_of_a_run_pod_gets_a_patch() {
    let o = bin(
        &[
            "mutate",
            "--config",
            "examples/helm-values.yaml",
            "--output",
            "review",
            "examples/review-run-pod.json",
        ],
        None,
    );
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["patchType"], "JSONPatch");
}

#[test]
fn check_config_and_explain_show_each_rules_identity() {
    let out = text(&bin(&["check-config", "examples/keyless.yaml"], None).stdout);
    assert!(out.contains("serviceAccount team-vision-runs"), "{out}");
    assert!(
        out.contains("identity (keyless): serviceAccountName team-research-runs"),
        "{out}"
    );
    assert!(out.contains("azure.workload.identity/use"), "{out}");
    let o = bin(
        &[
            "mutate",
            "--explain",
            "--config",
            "examples/keyless.yaml",
            "--namespace",
            "team-vision-2",
            "tests/fixtures/polyaxon-pods/job.nostore.json",
        ],
        None,
    );
    let err = text(&o.stderr);
    assert!(err.contains("identity (keyless): serviceAccountName team-vision-runs → the run runs as team-vision-runs"), "{err}");
}

/// docs/cli.md's `serve` flag table and the binary's flags agree: every flag, its environment
/// variable and its default (defaults come from the library's constants, so a change there that
/// the README misses fails here).
#[test]
fn readme_flag_table_matches_the_binary() {
    let readme = std::fs::read_to_string(root().join("docs/cli.md")).unwrap();
    let section = readme
        .split("`plx-store-webhook serve`")
        .nth(1)
        .and_then(|s| s.split("\n\n").nth(1))
        .expect("the serve flag table");
    let cmd = plx_store_webhook::cli::Cli::command_for_tests();
    let serve = cmd.find_subcommand("serve").unwrap();
    let mut documented = Vec::new();
    let tick = |cell: &str, prefix: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| t.starts_with(prefix))
            .map(String::from)
            .collect()
    };
    for row in section.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let flags = tick(cells[1], "--");
        let envs = tick(cells[2], "PLX_");
        assert_eq!(flags.len(), envs.len(), "{row}");
        for (flag, env) in flags.iter().zip(&envs) {
            let long = flag.trim_start_matches("--");
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("README documents {flag}, which serve does not have"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env.as_str()),
                "{flag}"
            );
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            if let [default] = defaults.as_slice() {
                let readme_default = cells[3].split('`').nth(1).unwrap_or("");
                assert_eq!(readme_default, default, "README default of {flag}");
            }
            documented.push(long.to_string());
        }
    }
    for a in serve.get_arguments() {
        let Some(long) = a.get_long() else { continue };
        assert!(
            long == "help" || documented.iter().any(|d| d == long),
            "--{long} is missing from README's flag table"
        );
    }
}
