//! Connection-level hardening, tried the way an attacker or an overloaded apiserver would, with
//! raw TCP/TLS sockets on 127.0.0.1 and bounded waits: silent and idle connections are closed on
//! time, at the connection cap the quietest idle connection makes room (and with a request
//! in flight on every one the cap refuses fast), every refused request still gets its HTTP answer (no
//! reset), and dev-mode starts are safe to repeat.

mod common;

use common::client::*;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use plx_store_webhook::certs::{Ca, Usage};
use plx_store_webhook::server::run::{self, CertSource, Options, Running};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Fixture {
    tmp: tempfile::TempDir,
    ca: Ca,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA", 2).unwrap();
    let b = ca
        .issue(
            "webhook",
            &["localhost".into(), "127.0.0.1".into()],
            2,
            Usage::Server,
        )
        .unwrap();
    std::fs::write(tmp.path().join("tls.crt"), &b.cert_pem).unwrap();
    std::fs::write(tmp.path().join("tls.key"), &b.key_pem).unwrap();
    Fixture { tmp, ca }
}

fn options(f: &Fixture) -> Options {
    let mut o = Options::new(
        root().join("examples/store-ctxdir.yaml"),
        "127.0.0.1:0".parse().unwrap(),
        CertSource::Files {
            cert: f.tmp.path().join("tls.crt"),
            key: f.tmp.path().join("tls.key"),
        },
    );
    o.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    o.limits.header_read = Duration::from_secs(1);
    o.limits.handshake = Duration::from_secs(1);
    o.limits.idle = Duration::from_secs(3);
    o.drain = Duration::from_millis(200);
    o
}

fn pod() -> Value {
    read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json")
}

/// How long until the peer closes `read` (EOF or error), at most `bound`.
async fn time_to_close<R: AsyncReadExt + Unpin>(read: &mut R, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(bound.saturating_sub(start.elapsed()), read.read(&mut buf)).await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn metric_value(r: &Running, name_and_labels: &str) -> f64 {
    let (_, text) = admin_get(r.admin_addr.unwrap(), "/metrics").await;
    metric(&text, name_and_labels)
}

fn h2_config(ca_pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    let mut cfg = (*client_config(ca_pem, None)).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    std::sync::Arc::new(cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_header_timeout() {
    let f = fixture();
    let r = run::start(options(&f)).await.unwrap();
    // TLS handshake, then nothing (HTTP/1.1 by ALPN).
    let (mut h1, _) = tls_connect(r.tls_addr, client_config(&f.ca.pem, None))
        .await
        .unwrap();
    // TLS with ALPN h2, then no HTTP/2 preface.
    let (mut h2, _) = tls_connect(r.tls_addr, h2_config(&f.ca.pem)).await.unwrap();
    // The admin port: TCP, no byte at all.
    let mut admin = TcpStream::connect(r.admin_addr.unwrap()).await.unwrap();
    let bound = Duration::from_secs(5);
    let (a, b, c) = tokio::join!(
        time_to_close(&mut h1, bound),
        time_to_close(&mut h2, bound),
        time_to_close(&mut admin, bound)
    );
    for (what, t) in [
        ("TLS HTTP/1.1", a),
        ("TLS h2 without preface", b),
        ("admin TCP", c),
    ] {
        let t = t.unwrap_or_else(|| panic!("{what}: still open after {bound:?}"));
        assert!(
            t >= Duration::from_millis(800),
            "{what}: closed too early ({t:?})"
        );
    }
    assert!(
        metric_value(
            &r,
            "plx_webhook_connections_closed_total{listener=\"webhook\",reason=\"header_timeout\"}"
        )
        .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_outlives_the_header_timeout_then_closes() {
    let f = fixture();
    let r = run::start(options(&f)).await.unwrap();
    // HTTP/1.1: a second request after 2 s of idleness (twice the header timeout) is served on
    // the same connection; after 3 s of idleness the server closes it.
    let (tls, _) = tls_connect(r.tls_addr, client_config(&f.ca.pem, None))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    for i in 0..2 {
        let (status, _, _) = common::client::send(
            &mut send,
            post("/mutate", review(&format!("idle-{i}"), &pod())),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        if i == 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let last = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), conn)
        .await
        .expect("idle HTTP/1.1 connection not closed")
        .unwrap()
        .ok();
    let idle = last.elapsed();
    assert!(
        idle >= Duration::from_millis(2500),
        "closed after {idle:?} idle"
    );

    // HTTP/2: the same.
    let (tls, _) = tls_connect(r.tls_addr, h2_config(&f.ca.pem)).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    for i in 0..2 {
        let mut req = post("/mutate", review(&format!("idle-h2-{i}"), &pod()));
        *req.uri_mut() = "https://localhost/mutate".parse().unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await.unwrap();
        if i == 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(6), conn)
        .await
        .expect("idle HTTP/2 connection not closed")
        .unwrap()
        .ok();
    assert!(
        metric_value(
            &r,
            "plx_webhook_connections_closed_total{listener=\"webhook\",reason=\"idle_timeout\"}"
        )
        .await
            >= 2.0
    );
}

/// A request head declaring a body that never comes: in flight until the body-rate 408.
async fn request_in_flight(tls: &mut Tls) {
    tls.write_all(
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_quietest_idle_connection_makes_room() {
    let f = fixture();
    let mut o = options(&f);
    o.limits.max_connections = 3;
    o.limits.header_read = Duration::from_secs(5);
    let r = run::start(o).await.unwrap();
    let cfg = client_config(&f.ca.pem, None);
    let body = review("cap", &pod());
    // a, b, c in that order; then a answers a review, so b is the quietest.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tls_connect(r.tls_addr, cfg.clone()).await.unwrap().0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, _) = exchange(&mut held[0], &body).await.unwrap();
    assert_eq!(status, 200);
    // At the cap, a fourth is admitted and served; b is closed for it, at once.
    let (mut d, _) = tls_connect(r.tls_addr, cfg.clone()).await.unwrap();
    let closed = time_to_close(&mut held[1], Duration::from_secs(2)).await;
    assert!(closed.is_some(), "the quietest was not closed");
    let (status, _, v) = exchange(&mut d, &body).await.unwrap();
    assert_eq!(status, 200, "{v}");
    // a (served before d) is the next quietest, and still open meanwhile: it answers again.
    let (status, _, _) = exchange(&mut held[0], &body).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(
            &r,
            "plx_webhook_connections_closed_total{listener=\"webhook\",reason=\"evicted\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric_value(&r, "plx_webhook_connections_open{listener=\"webhook\"}").await,
        3.0
    );

    // Requests whose bodies do not come wait on their clients: they keep no slot either (the
    // server works on nothing of them). The one that never completed a request (c) goes first,
    // unanswered; a and d keep theirs and get the body rate's 408. The refusal when the server
    // is working on a request of every connection: `conn::tests` (work lasts microseconds).
    let (mut c, _b, mut a) = (held.pop().unwrap(), held.pop(), held.pop().unwrap());
    for s in [&mut a, &mut c, &mut d] {
        request_in_flight(s).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut e, _) = tls_connect(r.tls_addr, cfg.clone()).await.unwrap();
    let mut buf = [0u8; 64];
    let cut = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
    assert!(
        matches!(cut, Ok(Ok(0)) | Ok(Err(_))),
        "the stalled body that never completed a request was not closed: {cut:?}"
    );
    for s in [&mut a, &mut d] {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                other => panic!("no answer: {other:?} after {got:?}"),
            }
        }
        assert!(
            got.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    let (status, _, _) = exchange(&mut e, &body).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(
            &r,
            "plx_webhook_connections_refused_total{listener=\"webhook\"}"
        )
        .await,
        0.0
    );
}

/// Write a request head and then `body_len` bytes in the background while reading the whole
/// answer: the status line, the headers and the body must all arrive, never a reset.
async fn refused_while_sending(
    r: &Running,
    ca_pem: &str,
    path: &str,
    body_len: usize,
    stall_after: Option<usize>,
) -> (String, Value) {
    let (tls, _) = tls_connect(r.tls_addr, client_config(ca_pem, None))
        .await
        .unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let path = path.to_string();
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
        );
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < body_len {
            if stall_after.is_some_and(|n| sent >= n) {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            let n = chunk.len().min(body_len - sent);
            wr.write_all(&chunk[..n]).await?;
            sent += n;
        }
        wr.flush().await?;
        std::io::Result::Ok(wr)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("no answer within 10 s");
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    // A reset before the answer was read would lose it; after the whole answer, EOF is fine.
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no full answer ({read:?}): {text:?}"));
    let json: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (head.to_ascii_lowercase(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_client_with_connection_close() {
    let f = fixture();
    let mut o = options(&f);
    o.guards.max_concurrent = 1;
    o.guards.request_timeout = Duration::from_secs(1);
    o.limits.header_read = Duration::from_secs(5);
    let r = run::start(o).await.unwrap();

    // 413: a 4 MiB body, still being sent while the answer comes back.
    let (head, body) = refused_while_sending(&r, &f.ca.pem, "/mutate", 4 * 1024 * 1024, None).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body["code"], 413);

    // 408: headers and part of the body, then nothing; a JSON 408 with Connection: close.
    let (head, body) = refused_while_sending(&r, &f.ca.pem, "/mutate", 100_000, Some(10)).await;
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body["code"], 408);

    // 503: one request holds the only slot (its body is slow); another, sending 1 MiB, gets a
    // 503 it can read in full while it is still sending.
    let (holder, _) = tls_connect(r.tls_addr, client_config(&f.ca.pem, None))
        .await
        .unwrap();
    let (_hr, mut hw) = tokio::io::split(holder);
    hw.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (head, body) = refused_while_sending(&r, &f.ca.pem, "/mutate", 1024 * 1024, None).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body["code"], 503);
    drop(hw);
}

/// Like curl: send the whole request first, then read. A server that closes with part of the
/// body unread makes the kernel reset the connection, the client's writes fail and it never
/// reads the answer; a lingering close reads and discards the rest, so the answer arrives.
async fn send_all_then_read(r: &Running, ca_pem: &str, body_len: usize) -> Result<String, String> {
    let (mut tls, _) = tls_connect(r.tls_addr, client_config(ca_pem, None))
        .await
        .unwrap();
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    );
    let chunk = vec![b' '; 64 * 1024];
    let io = |e: std::io::Error| format!("while sending: {e}");
    tls.write_all(head.as_bytes()).await.map_err(io)?;
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        tls.write_all(&chunk[..n]).await.map_err(io)?;
        sent += n;
        // Paced like a real network, so the server answers while the body is still coming.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tls.flush().await.map_err(io)?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    if text.is_empty() {
        return Err("no answer".into());
    }
    Ok(text.to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_everything_first_still_reads_the_refusal() {
    let f = fixture();
    let r = run::start(options(&f)).await.unwrap();
    let answer = send_all_then_read(&r, &f.ca.pem, 4 * 1024 * 1024)
        .await
        .unwrap();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(
        answer.contains("connection: close") && answer.contains("\"code\":413"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_only_the_stream_ends_with_its_status() {
    let f = fixture();
    let r = run::start(options(&f)).await.unwrap();
    let (tls, _) = tls_connect(r.tls_addr, h2_config(&f.ca.pem)).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = |body: Vec<u8>| {
        let mut req = hyper::Request::post("https://localhost/mutate")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        *req.uri_mut() = "https://localhost/mutate".parse().unwrap();
        req
    };
    let resp = send
        .send_request(req(vec![b' '; 4 * 1024 * 1024]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(resp.headers().get("connection").is_none());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 413);
    // The connection goes on.
    let resp = send
        .send_request(req(review("after-413", &pod())))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// One keep-alive HTTP/1.1 exchange by hand, the body sent in two writes 2 ms apart (as a real
/// client's body often arrives after its head): (status, Connection: close, JSON body).
async fn exchange(tls: &mut Tls, body: &[u8]) -> Result<(u16, bool, Value), String> {
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    let io = |e: std::io::Error| e.to_string();
    tls.write_all(head.as_bytes()).await.map_err(io)?;
    tls.write_all(&body[..half]).await.map_err(io)?;
    tls.flush().await.map_err(io)?;
    tokio::time::sleep(Duration::from_millis(2)).await;
    // The server may already have answered and closed: a failed write is not yet a lost answer.
    let _ = tls.write_all(&body[half..]).await;
    let _ = tls.flush().await;
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("no content-length: {head}"))?;
            if got.len() >= end + 4 + len {
                let status = head[9..12].parse().map_err(|_| head.clone())?;
                let close = head.contains("connection: close");
                let v = serde_json::from_slice(&got[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                return Ok((status, close, v));
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await {
            Err(_) => return Err("no answer within 10 s".into()),
            Ok(Ok(0)) => {
                return Err(format!(
                    "closed without an answer after {} bytes",
                    got.len()
                ))
            }
            Ok(Err(e)) => return Err(format!("{e} after {} bytes", got.len())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_far_over_the_limit_gets_only_200_or_503() {
    let f = fixture();
    let mut o = options(&f);
    o.guards.max_concurrent = 1;
    o.limits.header_read = Duration::from_secs(10);
    let r = run::start(o).await.unwrap();
    let body = review("burst", &pod());
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (addr, cfg, body) = (r.tls_addr, client_config(&f.ca.pem, None), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut counts = (0u32, 0u32, Vec::new());
            let mut conn: Option<Tls> = None;
            for _ in 0..20 {
                if conn.is_none() {
                    conn = Some(tls_connect(addr, cfg.clone()).await.unwrap().0);
                }
                let s = conn.as_mut().unwrap();
                match exchange(s, &body).await {
                    Ok((200, close, _)) => {
                        counts.0 += 1;
                        if close {
                            conn = None;
                        }
                    }
                    Ok((503, close, v)) => {
                        assert!(close, "503 without Connection: close");
                        assert_eq!(v["code"], 503);
                        counts.1 += 1;
                        conn = None;
                    }
                    other => {
                        counts.2.push(format!("{other:?}"));
                        conn = None;
                    }
                }
            }
            counts
        }));
    }
    let (mut ok, mut busy, mut lost) = (0, 0, Vec::new());
    for t in tasks {
        let (a, b, c) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a client hung")
            .unwrap();
        ok += a;
        busy += b;
        lost.extend(c);
    }
    println!(
        "burst: {ok} answered 200, {busy} answered 503, {} lost",
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of 1280 requests got no HTTP answer: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(ok + busy, 64 * 20);
    assert!(
        ok > 0 && busy > 0,
        "the burst did not go over the limit: {ok} ok, {busy} busy"
    );
}

#[tokio::test]
async fn a_dev_start_on_a_busy_port_leaves_the_running_one_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_out: PathBuf = tmp.path().join("dev/ca.crt");
    let mut o = Options::new(
        root().join("examples/store-ctxdir.yaml"),
        "127.0.0.1:0".parse().unwrap(),
        CertSource::Ephemeral {
            ca_out: ca_out.clone(),
        },
    );
    o.admin_listen = None;
    let first = run::start(o.clone()).await.unwrap();
    let ca = std::fs::read(&ca_out).unwrap();
    o.listen = first.tls_addr;
    let second = run::start(o).await;
    let err = format!(
        "{:#}",
        second
            .err()
            .expect("a second start on a busy port must fail")
    );
    assert!(
        err.contains("--listen") && err.contains(&first.tls_addr.to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&ca_out).unwrap(),
        ca,
        "the running server's CA was rewritten"
    );
    // The first one still serves clients that trust its CA.
    let (mut s, _) = http1(
        first.tls_addr,
        client_config(std::str::from_utf8(&ca).unwrap(), None),
    )
    .await
    .unwrap();
    assert_eq!(
        common::client::send(&mut s, post("/mutate", review("dev", &pod())))
            .await
            .unwrap()
            .0,
        200
    );
}
