//! The shipped manifests: every overlay renders with `kubectl kustomize`, every object validates
//! against the Kubernetes OpenAPI schemas in strict mode, the Deployment only uses flags the
//! binary accepts, the shipped config passes `check-config`, and the webhook configuration
//! selects exactly what the handler checks.

mod common;

use clap::Parser;
use common::*;
use plx_store_webhook::certs;
use plx_store_webhook::cli::Cli;
use plx_store_webhook::config::DEFAULT_SELECTOR;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Kinds whose schemas are not in Kubernetes' own OpenAPI (cert-manager CRDs).
const CRD_KINDS: &[&str] = &["Issuer", "Certificate", "PodMonitor", "PrometheusRule"];

fn in_ci() -> bool {
    std::env::var("CI").is_ok()
}

fn render(dir: &Path) -> (String, Vec<Value>) {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is needed to render manifests: {e}"));
    assert!(
        out.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    (text, docs)
}

/// The static-certs overlay needs `plx-store-webhook certs` output: render a copy that has it.
fn render_static_certs(tmp: &Path) -> (String, Vec<Value>) {
    render_static_certs_from(&root().join("manifests"), tmp)
}

fn render_static_certs_from(from: &Path, tmp: &Path) -> (String, Vec<Value>) {
    let manifests = tmp.join("manifests");
    copy_dir(from, &manifests);
    let overlay = manifests.join("overlays/static-certs");
    let out = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args(["certs", "--out-dir"])
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    render(&overlay)
}

/// The files `certs --out-dir manifests/overlays/static-certs` writes (git-ignored): a scratch
/// copy must not take them, or the test would trip on an operator's real certificates.
const GENERATED: &[&str] = &[
    "tls.crt",
    "tls.key",
    "ca.crt",
    "cabundle-patch.yaml",
    "cabundle-patch-enforce.yaml",
    "ca.key",
    "ca-previous.crt",
];

/// Copy the tracked manifests only (never the generated certificate files a user may have made
/// by following the README), so the tests work on a scratch copy of what the repository ships.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if !GENERATED.iter().any(|g| e.file_name() == *g) {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn all_rendered(tmp: &Path) -> Vec<(&'static str, String, Vec<Value>)> {
    let mut out = Vec::new();
    for name in [
        "base",
        "overlays/cert-manager",
        "overlays/polyaxon-agent-config",
        "overlays/keyless",
    ] {
        let (text, docs) = render(&root().join("manifests").join(name));
        out.push((name, text, docs));
    }
    let (text, docs) = render_static_certs(tmp);
    out.push(("overlays/static-certs", text, docs));
    // The monitoring component, added to an overlay as the README says.
    out.push(with_additions(
        tmp,
        "overlays/cert-manager + monitoring",
        "overlays/cert-manager",
        "components:\n  - ../../monitoring\n",
    ));
    // With the optional apiserver-side alerts (docs/observability.md).
    out.push(with_additions(
        tmp,
        "overlays/cert-manager + monitoring + monitoring-apiserver",
        "overlays/cert-manager",
        "components:\n  - ../../monitoring\n  - ../../monitoring-apiserver\n",
    ));
    // The fleet view's component (README "Fleet view").
    out.push(with_additions(
        tmp,
        "overlays/cert-manager + fleet",
        "overlays/cert-manager",
        "components:\n  - ../../fleet\n",
    ));
    // The enforce component, with each way of getting a caBundle (README "Enforce").
    out.push(with_additions(
        tmp,
        "overlays/cert-manager + enforce",
        "overlays/cert-manager",
        "components:\n  - ../../enforce\n",
    ));
    out.push(with_additions(
        tmp,
        "overlays/static-certs + enforce",
        "overlays/static-certs",
        "  - path: cabundle-patch-enforce.yaml\ncomponents:\n  - ../../enforce\n",
    ));
    out
}

/// `overlay` in a scratch copy of the manifests, with `text` appended to its kustomization (and
/// certificates made first for the static-certs overlay), rendered.
fn with_additions(
    tmp: &Path,
    label: &'static str,
    overlay: &str,
    text: &str,
) -> (&'static str, String, Vec<Value>) {
    let manifests = tmp.join(label.replace([' ', '+', '/'], "_"));
    copy_dir(&root().join("manifests"), &manifests);
    let dir = manifests.join(overlay);
    if overlay.ends_with("static-certs") {
        let out = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
            .args(["certs", "--out-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let k = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap() + text;
    std::fs::write(&k, text).unwrap();
    let (text, docs) = render(&dir);
    (label, text, docs)
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn every_overlay_renders_and_validates_strictly() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, _, docs) in all_rendered(tmp.path()) {
        assert!(docs.len() >= 8, "{name}: {} objects", docs.len());
        let core: Vec<&Value> = docs
            .iter()
            .filter(|d| !CRD_KINDS.contains(&d["kind"].as_str().unwrap()))
            .collect();
        let file = tmp.path().join(format!("{}.yaml", name.replace('/', "-")));
        let text: String = core
            .iter()
            .map(|d| format!("---\n{}", serde_json::to_string(d).unwrap()))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&file, text).unwrap();
        match Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", "1.30.0"])
            .arg(&file)
            .output()
        {
            Err(e) if !in_ci() => eprintln!(
                "SKIP: kubernetes-validate not runnable ({e}); schema validation is skipped outside CI"
            ),
            Err(e) => panic!("kubernetes-validate is required in CI: {e}"),
            Ok(o) => assert!(
                o.status.success(),
                "{name} does not validate:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        }
        for d in &docs {
            let what = format!("{name}: {} {}", d["kind"], d["metadata"]["name"]);
            // Common labels on every object, generated ones included.
            assert_eq!(
                d["metadata"]["labels"]["app.kubernetes.io/part-of"], "plx-store-webhook",
                "{what}"
            );
            if d["kind"] == "Deployment" {
                let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap();
                if name != "base" {
                    // A clearly fake registry the README tells you to replace.
                    assert_eq!(
                        image, "registry.example.invalid/plx-store-webhook:0.1.0",
                        "{what}"
                    );
                }
                let ann = &d["spec"]["template"]["metadata"]["annotations"];
                assert_eq!(ann["prometheus.io/scrape"], "true", "{what}");
                assert_eq!(ann["prometheus.io/port"], "8080", "{what}");
            }
            // Namespaced objects land in one namespace (components included).
            if ![
                "Namespace",
                "PriorityClass",
                "MutatingWebhookConfiguration",
                "ValidatingWebhookConfiguration",
                "ClusterRole",
                "ClusterRoleBinding",
            ]
            .contains(&d["kind"].as_str().unwrap())
            {
                assert!(
                    d["metadata"]["namespace"].is_string(),
                    "{what}: no namespace"
                );
            }
        }
        let np = find(&docs, "NetworkPolicy");
        let rules = np["spec"]["ingress"].as_array().unwrap();
        for r in rules {
            let ports: Vec<u64> = r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_u64().unwrap())
                .collect();
            if ports.contains(&8080) {
                // The admin port only from labelled monitoring namespaces, never from anywhere.
                assert_eq!(ports, [8080], "{name}");
                assert_eq!(
                    r["from"][0]["namespaceSelector"]["matchLabels"]
                        ["plx-store-webhook.dev/scrape"],
                    "true",
                    "{name}"
                );
            } else {
                assert_eq!(ports, [8443], "{name}");
            }
        }
        // The CRD objects at least name the right fields.
        for d in docs
            .iter()
            .filter(|d| d["kind"] == "Certificate" && d["spec"]["isCA"] != true)
        {
            assert_eq!(d["spec"]["secretName"], "plx-store-webhook-tls");
            let ns = d["metadata"]["namespace"].as_str().unwrap();
            assert_eq!(
                d["spec"]["dnsNames"],
                json!(certs::service_sans("plx-store-webhook", ns)),
                "{name}"
            );
        }
    }
}

#[test]
fn deployment_uses_only_real_flags_and_mounts_what_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli::command_for_tests();
    let serve = cli.find_subcommand("serve").unwrap();
    let envs: Vec<String> = serve
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for (name, _, docs) in all_rendered(tmp.path()) {
        let dep = find(&docs, "Deployment");
        let c = &dep["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let mut argv = vec!["plx-store-webhook".to_string()];
        argv.extend(args.clone());
        Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{name}: the binary rejects {args:?}: {e}"));
        for e in c["env"].as_array().unwrap() {
            let n = e["name"].as_str().unwrap();
            assert!(
                envs.iter().any(|x| x == n) || n == "RUST_LOG",
                "{name}: env {n} is not a flag's env var"
            );
        }
        // Every file the args name lies in a mounted volume.
        let mounts = c["volumeMounts"].as_array().unwrap();
        for a in &args {
            if let Some((flag, path)) = a.split_once('=') {
                if ["--config", "--settings", "--tls-cert", "--tls-key"].contains(&flag) {
                    assert!(
                        mounts.iter().any(|m| {
                            let mp = m["mountPath"].as_str().unwrap();
                            path.starts_with(&format!("{mp}/")) || path == mp
                        }),
                        "{name}: {path} is not in a mounted volume"
                    );
                }
            }
        }
        let pod = &dep["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        // No API token, unless the fleet view is on (it then watches through the API).
        let fleet = name.ends_with("+ fleet");
        assert_eq!(pod["automountServiceAccountToken"], fleet, "{name}");
        assert_eq!(args.iter().any(|a| a == "--fleet"), fleet, "{name}");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
        assert!(dep["spec"]["replicas"].as_u64().unwrap() >= 2);
    }
}

#[test]
fn shipped_config_passes_check_config() {
    let (_, docs) = render(&root().join("manifests/base"));
    let cm = find(&docs, "ConfigMap");
    let text = cm["data"]["config.yaml"].as_str().unwrap();
    let cfg = plx_store_webhook::load_str(text, "configmap").unwrap();
    assert_eq!(cfg.store.name, "gcs-artifacts");
    // The agent-config overlay mounts both keys of Polyaxon's agent ConfigMap as a directory and
    // its own settings file; a directory laid out like that mount loads with those settings.
    let (_, docs) = render(&root().join("manifests/overlays/polyaxon-agent-config"));
    let dep = find(&docs, "Deployment");
    let spec = &dep["spec"]["template"]["spec"];
    let vol = &spec["volumes"][0]["configMap"];
    assert_eq!(vol["name"], "polyaxon-polyaxon-agent-config");
    assert_eq!(
        vol["items"],
        json!([
            {"key": "POLYAXON_AGENT_ARTIFACTS_STORE", "path": "POLYAXON_AGENT_ARTIFACTS_STORE"},
            {"key": "POLYAXON_AGENT_CONNECTIONS", "path": "POLYAXON_AGENT_CONNECTIONS"}
        ])
    );
    let args = spec["containers"][0]["args"].to_string();
    assert!(
        args.contains("--config=/etc/plx-store-webhook/config\"")
            && args.contains("--settings=/etc/plx-store-webhook/settings/settings.yaml"),
        "{args}"
    );
    let settings = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "plx-store-webhook-settings")
        .expect("settings ConfigMap");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("POLYAXON_AGENT_ARTIFACTS_STORE"),
        r#"{"name": "gcs-artifacts", "kind": "gcs", "schema": {"bucket": "gs://b"}, "secret": {"name": "gcs-secret", "mountPath": "/plx-context/.gc"}}"#,
    )
    .unwrap();
    let settings_file = tmp.path().join("settings.yaml");
    std::fs::write(
        &settings_file,
        settings["data"]["settings.yaml"].as_str().unwrap(),
    )
    .unwrap();
    plx_store_webhook::config::Source::new(tmp.path(), Some(settings_file))
        .load()
        .unwrap();
}

#[test]
fn webhook_configuration_selects_what_the_handler_checks() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, _, docs) in all_rendered(tmp.path()) {
        let mwc = find(&docs, "MutatingWebhookConfiguration");
        let w = &mwc["webhooks"][0];
        let want_name = if name == "overlays/keyless" {
            "00-plx-store-webhook"
        } else {
            certs::MWC_NAME
        };
        assert_eq!(mwc["metadata"]["name"], want_name, "{name}");
        // The break-glass selector (docs/install.md) finds every webhook configuration.
        for whc in docs.iter().filter(|d| {
            d["kind"]
                .as_str()
                .is_some_and(|k| k.ends_with("WebhookConfiguration"))
        }) {
            assert_eq!(
                whc["metadata"]["labels"]["app.kubernetes.io/part-of"], "plx-store-webhook",
                "{name}"
            );
        }
        assert_eq!(w["name"], certs::WEBHOOK_NAME);
        let selector: Vec<(String, String)> = w["objectSelector"]["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let mut want: Vec<(String, String)> = DEFAULT_SELECTOR
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        assert_eq!(selector, want, "{name}");
        assert_eq!(
            w["rules"],
            json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Namespaced"}])
        );
        assert_eq!(w["failurePolicy"], "Fail");
        assert_eq!(w["sideEffects"], "None");
        assert_eq!(w["admissionReviewVersions"], json!(["v1", "v1beta1"]));
        assert_eq!(w["reinvocationPolicy"], "IfNeeded");
        assert_eq!(w["matchPolicy"], "Equivalent");
        assert!(w["timeoutSeconds"].as_u64().unwrap() <= 10);
        assert_eq!(w["clientConfig"]["service"]["path"], "/mutate");
        let svc_ns = w["clientConfig"]["service"]["namespace"].as_str().unwrap();
        let dep_ns = find(&docs, "Deployment")["metadata"]["namespace"]
            .as_str()
            .unwrap();
        assert_eq!(
            svc_ns, dep_ns,
            "{name}: the webhook points at the namespace it runs in"
        );
        let excluded = &w["namespaceSelector"]["matchExpressions"][0]["values"];
        assert!(excluded.as_array().unwrap().contains(&json!("kube-system")));
        if name != "overlays/polyaxon-agent-config" {
            assert!(
                excluded.as_array().unwrap().contains(&json!(dep_ns)),
                "{name}: own namespace excluded"
            );
        }
        match name {
            "overlays/static-certs" => {
                let ca = w["clientConfig"]["caBundle"].as_str().unwrap();
                assert!(!ca.is_empty());
                let secret = find(&docs, "Secret");
                assert_eq!(secret["type"], "kubernetes.io/tls");
                assert_eq!(secret["metadata"]["name"], "plx-store-webhook-tls");
            }
            "overlays/cert-manager" | "overlays/polyaxon-agent-config" => {
                assert_eq!(
                    mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                    format!("{dep_ns}/plx-store-webhook")
                );
            }
            _ => {}
        }
    }
}

/// The enforce component: a validating webhook on the same pods, calling `/validate`, failing
/// closed, with its caBundle from cert-manager or from `certs`' second patch.
#[test]
fn the_enforce_component_validates_the_pods_the_mutating_webhook_mutates() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for (name, _, docs) in all_rendered(tmp.path()) {
        let vwcs: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ValidatingWebhookConfiguration")
            .collect();
        if !name.ends_with("+ enforce") {
            assert!(vwcs.is_empty(), "{name}: enforce is opt-in");
            continue;
        }
        seen += 1;
        let vwc = vwcs[0];
        assert_eq!(vwc["metadata"]["name"], certs::VWC_NAME);
        let (w, m) = (
            &vwc["webhooks"][0],
            &find(&docs, "MutatingWebhookConfiguration")["webhooks"][0],
        );
        assert_eq!(w["name"], certs::ENFORCE_WEBHOOK_NAME);
        assert_eq!(w["clientConfig"]["service"]["path"], "/validate");
        for field in [
            "objectSelector",
            "namespaceSelector",
            "rules",
            "failurePolicy",
            "sideEffects",
            "admissionReviewVersions",
        ] {
            assert_eq!(
                w[field], m[field],
                "{name}: {field} as the mutating webhook's"
            );
        }
        assert_eq!(
            w["clientConfig"]["service"]["namespace"],
            m["clientConfig"]["service"]["namespace"]
        );
        if name.starts_with("overlays/static-certs") {
            assert_eq!(
                w["clientConfig"]["caBundle"], m["clientConfig"]["caBundle"],
                "{name}"
            );
            assert!(w["clientConfig"]["caBundle"]
                .as_str()
                .is_some_and(|c| !c.is_empty()));
        } else {
            assert_eq!(
                vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                "plx-store-webhook/plx-store-webhook"
            );
        }
    }
    assert_eq!(seen, 2);
}

#[test]
fn certs_command_writes_files_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("out");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
            .args([
                "certs",
                "--service",
                "hook",
                "--namespace",
                "ns",
                "--dns",
                "hook.example",
                "--ip",
                "127.0.0.1",
                "--days",
                "3",
                "--print",
                "--out-dir",
            ])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("kubectl -n ns create secret tls hook-tls"),
        "{stdout}"
    );
    assert!(stdout.contains("caBundle: LS0t"), "{stdout}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("tls.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The pair serves, and its SANs are what the apiserver will ask for.
    let cert = std::fs::read(dir.join("tls.crt")).unwrap();
    let key = std::fs::read(dir.join("tls.key")).unwrap();
    plx_store_webhook::server::tls::server_config(&cert, &key).unwrap();
    let text = String::from_utf8(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.join("tls.crt"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for san in [
        "DNS:hook,",
        "DNS:hook.ns,",
        "DNS:hook.ns.svc,",
        "DNS:hook.ns.svc.cluster.local",
        "DNS:hook.example",
        "IP Address:127.0.0.1",
    ] {
        assert!(text.contains(san), "{san} missing: {text}");
    }
    let before = std::fs::read(dir.join("tls.key")).unwrap();
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(dir.join("tls.key")).unwrap(),
        before,
        "key untouched"
    );
    assert!(run(&["--force"]).status.success());
    assert_ne!(std::fs::read(dir.join("tls.key")).unwrap(), before);
}

/// README step 3b writes certificates into the repository's static-certs overlay; the tests
/// (which work on scratch copies) must still pass afterwards.
#[test]
fn tests_still_pass_after_the_readme_wrote_certificates_into_the_overlay() {
    let user = tempfile::tempdir().unwrap();
    let repo = user.path().join("manifests");
    copy_dir(&root().join("manifests"), &repo);
    let out = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args(["certs", "--out-dir"])
        .arg(repo.join("overlays/static-certs"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let scratch = tempfile::tempdir().unwrap();
    let (_, docs) = render_static_certs_from(&repo, scratch.path());
    let secret = find(&docs, "Secret");
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/name"],
        "plx-store-webhook"
    );
}

/// Keyless stores: the configuration sorts before the cloud identity webhooks' (EKS
/// `pod-identity-webhook` is never reinvoked; Azure's only sees a label we add if it runs after).
#[test]
fn the_keyless_overlay_sorts_before_the_cloud_identity_webhooks() {
    let (_, docs) = render(&root().join("manifests/overlays/keyless"));
    let mwc = find(&docs, "MutatingWebhookConfiguration");
    let name = mwc["metadata"]["name"].as_str().unwrap();
    for cloud in [
        "pod-identity-webhook",
        "azure-wi-webhook-mutating-webhook-configuration",
    ] {
        assert!(name < cloud, "{name} does not sort before {cloud}");
    }
    assert_eq!(mwc["webhooks"][0]["reinvocationPolicy"], "IfNeeded");
}

/// The fleet component's RBAC is what `rbac` prints for the shipped config, and least
/// privilege: pods list/watch, every other resource only by name, list/watch only; nothing else
/// in any overlay asks for API access.
#[test]
fn the_fleet_component_grants_only_what_rbac_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args(["rbac", "--config"])
        .arg(root().join("manifests/base/store-config.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(root().join("manifests/fleet/rbac.yaml")).unwrap(),
        "manifests/fleet/rbac.yaml is stale: regenerate it with `plx-store-webhook rbac --config manifests/base/store-config.yaml`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for (name, _, docs) in all_rendered(tmp.path()) {
        let roles: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"].as_str().unwrap().contains("Role"))
            .collect();
        if !name.ends_with("+ fleet") {
            assert!(
                roles.is_empty(),
                "{name}: no API access without the fleet view"
            );
            continue;
        }
        seen += 1;
        let role = find(&docs, "ClusterRole");
        for rule in role["rules"].as_array().unwrap() {
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(verbs, plx_store_webhook::fleet::rbac::VERBS, "{rule}");
            if rule["resources"] != json!(["pods"]) {
                assert!(
                    !rule["resourceNames"].as_array().unwrap().is_empty(),
                    "{name}: {rule} is not restricted by name"
                );
            }
        }
        let binding = find(&docs, "ClusterRoleBinding");
        let dep = find(&docs, "Deployment");
        assert_eq!(
            binding["subjects"][0]["name"],
            dep["spec"]["template"]["spec"]["serviceAccountName"]
        );
        assert_eq!(
            binding["subjects"][0]["namespace"],
            dep["metadata"]["namespace"]
        );
    }
    assert_eq!(seen, 1);
}
