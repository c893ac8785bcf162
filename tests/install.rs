//! What a team adopting a release relies on: the release files, `--version`, the Dockerfile's
//! named bases, consuming `manifests/` from its own overlay at a tag (no fork), and the
//! certificate steps that keep the caBundle valid (`certs --renew`, `--rotate-ca`).

mod common;

use common::root;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    ok(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args))
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = ok(bin().arg("--version"));
    let want = match Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root())
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap()[..12].to_string(),
        _ => "unknown".to_string(),
    };
    let want = std::env::var("GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .map(|c| c.chars().take(12).collect())
        .unwrap_or(want);
    assert_eq!(
        out.trim(),
        format!("plx-store-webhook {} ({want})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn release_files_are_there() {
    let read = |f: &str| std::fs::read_to_string(root().join(f)).unwrap();
    let license = read("LICENSE");
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
    assert!(license.contains("END OF TERMS AND CONDITIONS") && license.len() > 10_000);
    let changelog = read("CHANGELOG.md");
    assert!(changelog.contains(&format!("## {} ", env!("CARGO_PKG_VERSION"))));
    let security = read("SECURITY.md");
    for part in [
        "## Reporting",
        "## What the webhook can read and write",
        "## Threat model",
    ] {
        assert!(security.contains(part), "SECURITY.md lacks {part}");
    }
    assert!(read("docs/install.md").contains("## Upgrade notes"));
    // Every base named by a version, never a floating tag.
    let dockerfile = read("Dockerfile");
    for image in dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ARG ").and_then(|a| a.split_once("_IMAGE=")))
        .map(|(_, v)| v)
    {
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            tag.chars().next().is_some_and(|c| c.is_ascii_digit()) && tag.matches('.').count() >= 2
                || image.contains("-debian12:"),
            "{image} is not named by version"
        );
    }
    assert!(dockerfile.contains("--locked") && dockerfile.contains("GIT_COMMIT"));
}

/// docs/install.md's team overlay, unchanged but for the repository URL, in a directory outside
/// the tree, against a git repository of the shipped manifests tagged as the release: it renders,
/// takes the team's store config and image, and keeps everything else the release ships.
#[test]
fn a_team_overlay_outside_the_tree_consumes_a_released_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_tracked(&root().join("manifests"), &repo.join("manifests"));
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "release"]);
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    git(&repo, &["tag", &tag]);
    // Changes after the tag must not be picked up.
    std::fs::write(repo.join("manifests/base/namespace.yaml"), "broken: [").unwrap();
    git(&repo, &["commit", "-qam", "after the release"]);

    let docs = std::fs::read_to_string(root().join("docs/install.md")).unwrap();
    let block = docs
        .split("```yaml\n# team-overlay/kustomization.yaml")
        .nth(1)
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split("```").next())
        .expect("docs/install.md has the team overlay");
    let url = format!("file://{}", repo.display());
    let kustomization = block.replace("https://github.com/<org>/plx-store-webhook", &url);
    assert!(
        kustomization.contains(&format!("?ref={tag}")),
        "{kustomization}"
    );
    let team = tmp.path().join("team-overlay");
    std::fs::create_dir_all(&team).unwrap();
    std::fs::write(team.join("kustomization.yaml"), kustomization).unwrap();
    let store = "artifactsStore:\n  name: team-s3\n  kind: s3\n  schema: {bucket: \"s3://team-artifacts\"}\n  secret: {name: team-aws}\n";
    std::fs::write(team.join("polyaxon-values.yaml"), store).unwrap();

    let out = ok(Command::new("kubectl").arg("kustomize").arg(&team));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&out).unwrap();
    let of = |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
    let cms = of("ConfigMap");
    assert_eq!(cms.len(), 1);
    assert_eq!(cms[0]["metadata"]["name"], "plx-store-webhook-config");
    assert_eq!(cms[0]["data"]["config.yaml"], store);
    plx_store_webhook::load_str(store, "team").unwrap();
    let dep = of("Deployment")[0];
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/plx-store-webhook:0.1.0"
    );
    assert_eq!(of("MutatingWebhookConfiguration").len(), 1);
    assert_eq!(of("ValidatingWebhookConfiguration").len(), 1);
    assert_eq!(of("Certificate").len(), 2, "the CA chain");
}

fn copy_tracked(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type().unwrap().is_dir() {
            copy_tracked(&e.path(), &to.join(&name));
        } else if !(name.ends_with(".crt")
            || name.ends_with(".key")
            || name.starts_with("cabundle-patch"))
        {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// `certs --renew` keeps the CA (the caBundle patches do not change); `--rotate-ca` trusts both
/// CAs and keeps serving the old pair; `--renew` then issues from the new CA; `--drop-previous-ca`
/// leaves the new CA alone. At every step the served pair verifies against the caBundle.
#[test]
fn certificate_steps_keep_the_served_pair_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let step = |flag: Option<&str>| {
        let mut c = bin();
        c.args(["certs", "--ip", "127.0.0.1", "--out-dir"])
            .arg(&dir);
        if let Some(f) = flag {
            c.arg(f);
        }
        ok(&mut c);
    };
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let bundle = || -> String {
        use base64::Engine as _;
        let patch = read("cabundle-patch.yaml");
        let b64 = patch.split("caBundle: ").nth(1).unwrap().trim();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let verify = |what: &str| {
        std::fs::write(tmp.path().join("bundle.pem"), bundle()).unwrap();
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(tmp.path().join("bundle.pem"))
            .arg(dir.join("tls.crt"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // And it serves.
        plx_store_webhook::server::tls::server_config(
            read("tls.crt").as_bytes(),
            read("tls.key").as_bytes(),
        )
        .unwrap();
    };
    step(None);
    let first = bundle();
    verify("first");
    let pair = read("tls.crt");
    step(Some("--renew"));
    assert_eq!(bundle(), first, "--renew keeps the caBundle");
    assert_ne!(read("tls.crt"), pair);
    verify("renewed");
    let served = read("tls.crt");
    step(Some("--rotate-ca"));
    assert_eq!(bundle().matches("BEGIN CERTIFICATE").count(), 2);
    assert!(bundle().contains(first.trim()));
    assert_eq!(
        read("tls.crt"),
        served,
        "--rotate-ca leaves the served pair"
    );
    verify("old pair under both CAs");
    step(Some("--renew"));
    verify("new pair under both CAs");
    step(Some("--drop-previous-ca"));
    assert_eq!(bundle().matches("BEGIN CERTIFICATE").count(), 1);
    assert!(!bundle().contains(first.trim()));
    verify("new pair under the new CA");
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "tls.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
}
