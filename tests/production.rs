//! Production serving over 127.0.0.1 with real certificates: rotation by symlink swap under load,
//! broken certificate and config keep the last good ones, mTLS, metrics, slowloris, and the
//! two-phase shutdown (library and the real binary under SIGTERM).

mod common;

use common::client::*;
use common::*;
use plx_store_webhook::certs::{Ca, Usage};
use plx_store_webhook::server::run::{self, CertSource, Options, Running};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A directory updated the way the kubelet updates a mounted Secret/ConfigMap: files are
/// symlinks into `..data`, which is swapped atomically to a new timestamped directory.
struct SecretDir {
    dir: PathBuf,
    n: usize,
}

impl SecretDir {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        SecretDir {
            dir: dir.to_path_buf(),
            n: 0,
        }
    }

    fn publish(&mut self, files: &[(&str, &[u8])]) {
        self.n += 1;
        let ts = format!("..2026_11_25_{:04}", self.n);
        std::fs::create_dir(self.dir.join(&ts)).unwrap();
        for (name, content) in files {
            std::fs::write(self.dir.join(&ts).join(name), content).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&ts, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (name, _) in files {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
            }
        }
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(self.dir.join(old));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    ca: Ca,
    certs: SecretDir,
    config: SecretDir,
}

fn sans() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA", 2).unwrap();
    let mut certs = SecretDir::new(&tmp.path().join("certs"));
    let b = ca.issue("webhook", &sans(), 2, Usage::Server).unwrap();
    certs.publish(&[
        ("tls.crt", b.cert_pem.as_bytes()),
        ("tls.key", b.key_pem.as_bytes()),
    ]);
    let mut config = SecretDir::new(&tmp.path().join("config"));
    let text = std::fs::read(root().join("examples/store-ctxdir.yaml")).unwrap();
    config.publish(&[("config.yaml", &text)]);
    Fixture {
        _tmp: tmp,
        ca,
        certs,
        config,
    }
}

fn options(f: &Fixture) -> Options {
    let mut o = Options::new(
        f.config.path("config.yaml"),
        "127.0.0.1:0".parse().unwrap(),
        CertSource::Files {
            cert: f.certs.path("tls.crt"),
            key: f.certs.path("tls.key"),
        },
    );
    o.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    o.reload_poll = Duration::from_millis(500);
    o.drain = Duration::from_millis(500);
    o
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn leaf_seen(r: &Running, ca_pem: &str) -> Vec<u8> {
    tls_connect(r.tls_addr, client_config(ca_pem, None))
        .await
        .map(|(_, l)| l)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_symlink_swap_under_load_loses_nothing() {
    let mut f = fixture();
    let r = run::start(options(&f)).await.unwrap();
    let cfg = client_config(&f.ca.pem, None);
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for fresh in [false, true] {
        let (cfg, pod, stop, ok, failed, addr) = (
            cfg.clone(),
            pod.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            r.tls_addr,
        );
        load.push(tokio::spawn(async move {
            let mut conn = None;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if fresh || conn.is_none() {
                    conn = Some(http1(addr, cfg.clone()).await.unwrap().0);
                }
                i += 1;
                let uid = format!("r{fresh}-{i}");
                match send(conn.as_mut().unwrap(), post("/mutate", review(&uid, &pod))).await {
                    Ok((200, _, v)) if v["response"]["uid"] == uid.as_str() => {
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    other => {
                        eprintln!("failed: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for _ in 0..8 {
        let b = f.ca.issue("webhook", &sans(), 2, Usage::Server).unwrap();
        f.certs.publish(&[
            ("tls.crt", b.cert_pem.as_bytes()),
            ("tls.key", b.key_pem.as_bytes()),
        ]);
        let want = der_of(&b.cert_pem);
        wait_until("new handshakes to see the new certificate", || async {
            leaf_seen(&r, &f.ca.pem).await == want
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "only {} requests",
        ok.load(Ordering::Relaxed)
    );
    let (_, m) = admin_get(r.admin_addr.unwrap(), "/metrics").await;
    assert!(
        metric(&m, r#"plx_webhook_cert_reloads_total{result="success"}"#) >= 9.0,
        "{m}"
    );
    r.begin_shutdown();
    r.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_cert_and_config_keep_the_last_good_ones() {
    let mut f = fixture();
    let r = run::start(options(&f)).await.unwrap();
    let admin = r.admin_addr.unwrap();
    let good = leaf_seen(&r, &f.ca.pem).await;
    assert!(!good.is_empty());

    // A certificate whose key does not match, then garbage.
    let other = f.ca.issue("webhook", &sans(), 2, Usage::Server).unwrap();
    let current = f.ca.issue("webhook", &sans(), 2, Usage::Server).unwrap();
    f.certs.publish(&[
        ("tls.crt", current.cert_pem.as_bytes()),
        ("tls.key", other.key_pem.as_bytes()),
    ]);
    wait_until("a failed cert reload", || async {
        metric(
            &admin_get(admin, "/metrics").await.1,
            r#"plx_webhook_cert_reloads_total{result="failure"}"#,
        ) >= 1.0
    })
    .await;
    f.certs
        .publish(&[("tls.crt", b"not a cert"), ("tls.key", b"nor a key")]);
    wait_until("a second failed cert reload", || async {
        metric(
            &admin_get(admin, "/metrics").await.1,
            r#"plx_webhook_cert_reloads_total{result="failure"}"#,
        ) >= 2.0
    })
    .await;
    assert_eq!(
        leaf_seen(&r, &f.ca.pem).await,
        good,
        "the last good certificate keeps serving"
    );
    let (status, ready) = admin_get(admin, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready.contains("lastError") && ready.contains("certificate"),
        "{ready}"
    );

    // A broken config.
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let cfg = client_config(&f.ca.pem, None);
    let (mut s, _) = http1(r.tls_addr, cfg.clone()).await.unwrap();
    let before = send(&mut s, post("/mutate", review("a", &pod)))
        .await
        .unwrap()
        .2;
    f.config
        .publish(&[("config.yaml", b"artifactsStore:\n  name: x\n  kind: nope\n")]);
    wait_until("a failed config reload", || async {
        metric(
            &admin_get(admin, "/metrics").await.1,
            r#"plx_webhook_config_reloads_total{result="failure"}"#,
        ) >= 1.0
    })
    .await;
    let during = send(&mut s, post("/mutate", review("a", &pod)))
        .await
        .unwrap()
        .2;
    assert_eq!(
        before["response"]["patch"], during["response"]["patch"],
        "old config still in force"
    );
    let (status, ready) = admin_get(admin, "/readyz").await;
    assert_eq!(status, 200);
    assert!(ready.contains("unknown store kind"), "{ready}");

    // A good new config is picked up, whole.
    f.config.publish(&[("config.yaml", b"name: other-store\nkind: gcs\nschema: {bucket: gs://o}\nsecret: {name: other-secret, mountPath: /etc/other}\n")]);
    wait_until("the new config", || {
        let (cfg, pod) = (cfg.clone(), pod.clone());
        async move {
            let (mut s, _) = http1(r.tls_addr, cfg).await.unwrap();
            let v = send(&mut s, post("/mutate", review("b", &pod)))
                .await
                .unwrap()
                .2;
            v["response"]["auditAnnotations"]["store"] == "other-store"
        }
    })
    .await;
    let m = admin_get(admin, "/metrics").await.1;
    assert!(m.contains(r#"store="other-store""#), "{m}");
    r.begin_shutdown();
    r.wait().await.unwrap();
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_ca_with_an_allowed_name() {
    let f = fixture();
    let clients = Ca::new("apiserver clients", 2).unwrap();
    let ca_file = f._tmp.path().join("client-ca.crt");
    std::fs::write(&ca_file, &clients.pem).unwrap();
    let mut o = options(&f);
    o.client_ca = Some(ca_file);
    o.allowed_client_names = vec!["kube-apiserver".into()];
    let r = run::start(o).await.unwrap();
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-etc.json");

    async fn attempt(
        r: &Running,
        cfg: Arc<rustls::ClientConfig>,
        pod: &serde_json::Value,
    ) -> Result<u16, String> {
        let (mut s, _) = http1(r.tls_addr, cfg).await.map_err(|e| e.to_string())?;
        send(&mut s, post("/mutate", review("m", pod)))
            .await
            .map(|(st, _, _)| st)
    }
    let good = clients
        .issue(
            "kube-apiserver",
            &["kube-apiserver".into()],
            2,
            Usage::Client,
        )
        .unwrap();
    let wrong_name = clients
        .issue("someone-else", &["someone-else".into()], 2, Usage::Client)
        .unwrap();
    let stranger = Ca::new("other", 2)
        .unwrap()
        .issue(
            "kube-apiserver",
            &["kube-apiserver".into()],
            2,
            Usage::Client,
        )
        .unwrap();

    assert!(
        attempt(&r, client_config(&f.ca.pem, None), &pod)
            .await
            .is_err(),
        "no client cert must fail"
    );
    assert!(
        attempt(
            &r,
            client_config(&f.ca.pem, Some((&stranger.cert_pem, &stranger.key_pem))),
            &pod
        )
        .await
        .is_err(),
        "another CA must fail"
    );
    assert!(
        attempt(
            &r,
            client_config(&f.ca.pem, Some((&wrong_name.cert_pem, &wrong_name.key_pem))),
            &pod
        )
        .await
        .is_err(),
        "a name not allowed must fail"
    );
    assert_eq!(
        attempt(
            &r,
            client_config(&f.ca.pem, Some((&good.cert_pem, &good.key_pem))),
            &pod
        )
        .await,
        Ok(200)
    );
}

#[tokio::test]
async fn metrics_count_what_was_sent() {
    let f = fixture();
    let r = run::start(options(&f)).await.unwrap();
    let (mut s, _) = http1(r.tls_addr, client_config(&f.ca.pem, None))
        .await
        .unwrap();
    let run_pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-filepath.json");
    let plain = read_json("tests/fixtures/apiserver/review-v1-generatename.json")["request"]
        ["object"]
        .clone();
    let conflict = serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "polyaxon", "app.kubernetes.io/part-of": "polyaxon-runs"}},
        "spec": {"containers": [{"name": "polyaxon-main", "volumeMounts": [{"name": "o", "mountPath": "/plx-context/.gc"}]}], "volumes": [{"name": "o", "emptyDir": {}}]}});
    for i in 0..3 {
        assert_eq!(
            send(&mut s, post("/mutate", review(&format!("m{i}"), &run_pod)))
                .await
                .unwrap()
                .0,
            200
        );
    }
    for i in 0..2 {
        assert_eq!(
            send(&mut s, post("/mutate", review(&format!("i{i}"), &plain)))
                .await
                .unwrap()
                .0,
            200
        );
    }
    assert_eq!(
        send(&mut s, post("/mutate", review("d", &conflict)))
            .await
            .unwrap()
            .0,
        200
    );
    for _ in 0..2 {
        assert_eq!(
            send(&mut s, post("/mutate", b"nope".to_vec()))
                .await
                .unwrap()
                .0,
            400
        );
    }
    let (status, m) = admin_get(r.admin_addr.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    let v = |k: &str| metric(&m, k);
    assert_eq!(
        v(r#"plx_webhook_admission_requests_total{result="mutated",api_version="v1"}"#),
        3.0,
        "{m}"
    );
    assert_eq!(
        v(r#"plx_webhook_admission_requests_total{result="ignored",api_version="v1"}"#),
        2.0
    );
    assert_eq!(
        v(r#"plx_webhook_admission_requests_total{result="denied",api_version="v1"}"#),
        1.0
    );
    assert_eq!(
        v(r#"plx_webhook_admission_requests_total{result="error",api_version="unknown"}"#),
        2.0
    );
    assert_eq!(v("plx_webhook_admission_duration_seconds_count"), 8.0);
    assert_eq!(v(r#"plx_webhook_skips_total{reason="not_a_run"}"#), 2.0);
    assert_eq!(
        v(r#"plx_webhook_conflicts_total{kind="mount_path_taken"}"#),
        1.0
    );
    assert_eq!(
        v("plx_webhook_injected_containers_total"),
        9.0,
        "3 pods × main, sidecar, init-artifacts"
    );
    let not_after = v("plx_webhook_serving_cert_not_after_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        not_after > now + 86_400.0 && not_after < now + 3.0 * 86_400.0,
        "{not_after}"
    );
    assert!(
        m.contains(r#"plx_webhook_config_info{hash=""#) || m.contains("plx_webhook_config{hash=\""),
        "{m}"
    );
    assert!(m.contains("plx_webhook_build_info{version="), "{m}");
    assert!(!m.contains("plx-operation"), "no per-pod labels");
}

#[tokio::test]
async fn slowloris_is_cut_while_others_are_served() {
    let f = fixture();
    let mut o = options(&f);
    o.limits.header_read = Duration::from_secs(1);
    let r = run::start(o).await.unwrap();
    let cfg = client_config(&f.ca.pem, None);
    let (mut slow, _) = tls_connect(r.tls_addr, cfg.clone()).await.unwrap();
    slow.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        for _ in 0..40 {
            if slow.write_all(b"X").await.is_err() || slow.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
        (
            started.elapsed(),
            n.map(|r| r.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())),
        )
    });
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let (mut s, _) = http1(r.tls_addr, cfg).await.unwrap();
    assert_eq!(
        send(&mut s, post("/mutate", review("fast", &pod)))
            .await
            .unwrap()
            .0,
        200
    );
    let (elapsed, read) = dribble.await.unwrap();
    assert!(
        elapsed < Duration::from_secs(7),
        "the dribbling connection was not cut: {elapsed:?} {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_shutdown_under_keep_alive_load_loses_no_request() {
    let f = fixture();
    let mut o = options(&f);
    o.drain = Duration::from_millis(800);
    let r = run::start(o).await.unwrap();
    let (addr, admin) = (r.tls_addr, r.admin_addr.unwrap());
    let cfg = client_config(&f.ca.pem, None);
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let (ok, lost, closes) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for c in 0..4 {
        let (cfg, pod, ok, lost, closes) = (
            cfg.clone(),
            pod.clone(),
            ok.clone(),
            lost.clone(),
            closes.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut conn: Option<Sender> = None;
            for i in 0..100_000 {
                if conn.is_none() {
                    match http1(addr, cfg.clone()).await {
                        Ok((s, _)) => conn = Some(s),
                        Err(_) => return, // listener closed: the endpoint is gone, nothing was sent
                    }
                }
                let uid = format!("c{c}-{i}");
                match send(conn.as_mut().unwrap(), post("/mutate", review(&uid, &pod))).await {
                    Ok((200, close, v)) if v["response"]["uid"] == uid.as_str() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if close {
                            closes.fetch_add(1, Ordering::Relaxed);
                            conn = None;
                        }
                    }
                    other => {
                        eprintln!("lost {uid}: {other:?}");
                        lost.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = admin_get(admin, "/readyz").await;
    assert_eq!(status, 503, "not ready while draining: {body}");
    tokio::time::timeout(Duration::from_secs(15), r.wait())
        .await
        .unwrap()
        .unwrap();
    for c in clients {
        tokio::time::timeout(Duration::from_secs(15), c)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(lost.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 50);
    assert!(
        closes.load(Ordering::Relaxed) >= 4,
        "keep-alive clients were asked to close"
    );
}

#[test]
fn the_binary_drains_and_exits_0_on_sigterm() {
    let f = fixture();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--drain-seconds",
            "1",
            "--log-format",
            "json",
        ])
        .arg("--config")
        .arg(f.config.path("config.yaml"))
        .arg("--tls-cert")
        .arg(f.certs.path("tls.crt"))
        .arg("--tls-key")
        .arg(f.certs.path("tls.key"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let started = Instant::now();
    while !line.contains("\"serving\"") && started.elapsed() < Duration::from_secs(10) {
        line.clear();
        std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    }
    assert!(line.contains("\"serving\""), "{line}");
    let logged: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(logged["message"], "serving", "{line}");
    assert_eq!(logged["level"], "INFO", "{line}");
    assert!(logged["config_hash"].is_string(), "{line}");
    // One review just before SIGTERM: its decision line (written straight into the log buffer)
    // must still come out, whole, before the process exits.
    let listen: std::net::SocketAddr = logged["listen"].as_str().unwrap().parse().unwrap();
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (mut s, _) = http1(listen, client_config(&f.ca.pem, None)).await.unwrap();
        send(&mut s, post("/mutate", review("last-words", &pod)))
            .await
            .unwrap()
    });
    assert_eq!(answer.0, 200);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest}");
    assert!(rest.contains("shutdown complete"), "{rest}");
    let mut decisions = Vec::new();
    for line in rest.lines() {
        let v = serde_json::from_str::<serde_json::Value>(line).expect("every log line is JSON");
        if v["message"] == "admission decision" {
            decisions.push(v);
        }
    }
    let [d] = decisions.as_slice() else {
        panic!("one decision line: {rest}")
    };
    assert_eq!(d["uid"], "last-words");
    assert_eq!(d["level"], "INFO");
    assert_eq!(d["target"], "plx_store_webhook::server");
    assert_eq!(d["decision"], "mutated");
    for key in [
        "timestamp",
        "namespace",
        "pod",
        "operation",
        "dry_run",
        "api_version",
        "store",
        "rule",
        "identity",
        "config_hash",
        "fingerprint",
        "reason",
        "warnings",
        "patch_ops",
        "duration_us",
    ] {
        assert!(d.get(key).is_some(), "{key} missing: {d}");
    }
}

#[tokio::test]
async fn unready_until_a_certificate_appears_and_min_tls_version_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("late CA", 2).unwrap();
    let mut certs = SecretDir::new(&tmp.path().join("certs"));
    let mut config = SecretDir::new(&tmp.path().join("config"));
    config.publish(&[(
        "config.yaml",
        &std::fs::read(root().join("examples/store-ctxdir.yaml")).unwrap(),
    )]);
    let mut o = Options::new(
        config.path("config.yaml"),
        "127.0.0.1:0".parse().unwrap(),
        CertSource::Files {
            cert: certs.path("tls.crt"),
            key: certs.path("tls.key"),
        },
    );
    o.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    o.reload_poll = Duration::from_millis(300);
    o.min_tls = plx_store_webhook::server::tls::MinVersion::Tls13;
    let r = run::start(o).await.unwrap();
    let admin = r.admin_addr.unwrap();
    let (status, body) = admin_get(admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(tls_connect(r.tls_addr, client_config(&ca.pem, None))
        .await
        .is_err());

    let b = ca.issue("webhook", &sans(), 2, Usage::Server).unwrap();
    certs.publish(&[
        ("tls.crt", b.cert_pem.as_bytes()),
        ("tls.key", b.key_pem.as_bytes()),
    ]);
    wait_until("readiness", || async {
        admin_get(admin, "/readyz").await.0 == 200
    })
    .await;
    assert!(tls_connect(r.tls_addr, client_config(&ca.pem, None))
        .await
        .is_ok());

    // A TLS 1.2-only client is refused by --tls-min-version 1.3.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(der_of(&ca.pem)))
        .unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    assert!(tls_connect(r.tls_addr, Arc::new(tls12)).await.is_err());
}

/// `--config` on a mounted agent ConfigMap directory plus `--settings`: both are reloaded when
/// the kubelet swaps either, and rules route by the request's namespace.
#[tokio::test]
async fn agent_configmap_directory_and_settings_reload() {
    let mut f = fixture();
    let mut agent = SecretDir::new(&f._tmp.path().join("agent"));
    let store = |bucket: &str, secret: &str| {
        format!(
            r#"{{"name":"gcs-artifacts","kind":"gcs","schema":{{"bucket":"{bucket}"}},"secret":{{"name":"{secret}","mountPath":"/plx-context/.gc"}}}}"#
        )
    };
    let conns = r#"[{"name":"team-s3","kind":"s3","schema":{"bucket":"s3://t"},"secret":{"name":"team-aws"}}]"#;
    agent.publish(&[
        (
            "POLYAXON_AGENT_ARTIFACTS_STORE",
            store("gs://a", "gcs-secret").as_bytes(),
        ),
        ("POLYAXON_AGENT_CONNECTIONS", conns.as_bytes()),
    ]);
    let rule = |ns: &str| {
        format!("injection:\n  rules:\n    - {{name: team, match: {{namespaces: [{ns}]}}, store: team-s3}}\n")
    };
    f.config
        .publish(&[("settings.yaml", rule("default").as_bytes())]);
    let mut o = options(&f);
    o.config = agent.dir.clone();
    o.settings = Some(f.config.path("settings.yaml"));
    let r = run::start(o).await.unwrap();
    let cfg = client_config(&f.ca.pem, None);
    let pod = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
    let ask = |uid: &'static str| {
        let (cfg, pod) = (cfg.clone(), pod.clone());
        async move {
            let (mut s, _) = http1(r.tls_addr, cfg).await.unwrap();
            send(&mut s, post("/mutate", review(uid, &pod)))
                .await
                .unwrap()
                .2["response"]
                .clone()
        }
    };
    let first = ask("a").await;
    assert_eq!(first["auditAnnotations"]["rule"], "team", "{first}");
    assert_eq!(first["auditAnnotations"]["store"], "team-s3");

    // The settings change: the rule no longer matches, so the artifactsStore is the default.
    f.config
        .publish(&[("settings.yaml", rule("elsewhere").as_bytes())]);
    wait_until("the new settings", || async {
        ask("b").await["auditAnnotations"]["rule"] == "(default)"
    })
    .await;
    // The agent ConfigMap changes the store's secret: the new one is injected.
    agent.publish(&[
        (
            "POLYAXON_AGENT_ARTIFACTS_STORE",
            store("gs://a", "gcs-secret-v2").as_bytes(),
        ),
        ("POLYAXON_AGENT_CONNECTIONS", conns.as_bytes()),
    ]);
    wait_until("the new agent store", || async {
        let resp = ask("c").await;
        let patch = base64_patch(&resp);
        patch.contains("gcs-secret-v2")
    })
    .await;
    r.begin_shutdown();
    r.wait().await.unwrap();
}
