//! The real server on 127.0.0.1 with generated certificates and a real HTTPS client, over
//! HTTP/1.1 (keep-alive, what the apiserver speaks) and HTTP/2 (ALPN).

mod common;

use base64::Engine as _;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use plx_store_webhook::certs;
use plx_store_webhook::server::{router, serve, tls, AppState};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

struct Server {
    addr: SocketAddr,
    ca_pem: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let bundle = certs::generate(
        "plx-store-webhook",
        &["localhost".into(), "127.0.0.1".into()],
        1,
    )
    .unwrap();
    let tls_config =
        tls::server_config(bundle.cert_pem.as_bytes(), bundle.key_pem.as_bytes()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AppState::new(plan_for("examples/store-ctxdir.yaml")));
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(serve::serve(
        listener,
        Some(serve::TlsSide::fixed(tls_config)),
        app,
        serve::Limits::default(),
        None,
        async {
            let _ = rx.await;
        },
    ));
    Server {
        addr,
        ca_pem: bundle.ca_pem,
        stop: Some(tx),
        task,
    }
}

async fn connect(s: &Server, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(s.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

fn post(path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn review(uid: &str, pod: &Value, version: &str) -> Vec<u8> {
    let mut r = read_json("tests/fixtures/apiserver/review-v1-generatename.json");
    r["apiVersion"] = json!(version);
    r["request"]["uid"] = json!(uid);
    r["request"]["object"] = pod.clone();
    serde_json::to_vec(&r).unwrap()
}

async fn body_json(resp: hyper::Response<hyper::body::Incoming>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn check_mutated(v: &Value, uid: &str, version: &str) {
    assert_eq!(v["apiVersion"], version);
    assert_eq!(v["response"]["uid"], uid);
    assert_eq!(v["response"]["allowed"], true);
    let patch = base64::engine::general_purpose::STANDARD
        .decode(v["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert!(patch
        .as_array()
        .unwrap()
        .iter()
        .any(|op| op["value"]["name"] == "GC_KEY_PATH"));
}

#[tokio::test]
async fn http1_keep_alive_serves_many_reviews_and_every_bad_input() {
    let server = start().await;
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-filepath.json");
    let io = TokioIo::new(connect(&server, b"http/1.1").await);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    for i in 0..20 {
        let version = if i % 2 == 0 {
            "admission.k8s.io/v1"
        } else {
            "admission.k8s.io/v1beta1"
        };
        let uid = format!("uid-{i}");
        let resp = send
            .send_request(post("/mutate?timeout=5s", review(&uid, &pod, version)))
            .await
            .unwrap();
        let (status, v) = body_json(resp).await;
        assert_eq!(status, 200);
        check_mutated(&v, &uid, version);
    }
    let bad: Vec<(Request<Full<Bytes>>, u16)> = vec![
        (post("/mutate", b"{".to_vec()), 400),
        (
            post(
                "/mutate",
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            ),
            400,
        ),
        (post("/other", vec![]), 404),
        (
            Request::get("/mutate")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
            405,
        ),
    ];
    for (req, want) in bad {
        let resp = send.send_request(req).await.unwrap();
        let (status, v) = body_json(resp).await;
        assert_eq!(status, want);
        assert_eq!(v["code"], want);
    }
    // The connection survived all of it.
    let resp = send
        .send_request(post("/mutate", review("last", &pod, "admission.k8s.io/v1")))
        .await
        .unwrap();
    let (status, v) = body_json(resp).await;
    assert_eq!(status, 200);
    check_mutated(&v, "last", "admission.k8s.io/v1");
    // Too large: a JSON 413 that says the connection closes, and it does.
    let resp = send
        .send_request(post("/mutate", vec![b'x'; 3 * 1024 * 1024 + 1]))
        .await
        .unwrap();
    assert_eq!(resp.headers()["connection"], "close");
    let (status, v) = body_json(resp).await;
    assert_eq!((status, v["code"].as_u64()), (413, Some(413)));
    let closed = send
        .send_request(post(
            "/mutate",
            review("after", &pod, "admission.k8s.io/v1"),
        ))
        .await;
    assert!(closed.is_err(), "the connection was kept after a 413");
}

#[tokio::test]
async fn http2_multiplexes_concurrent_reviews() {
    let server = start().await;
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-etc.json");
    let io = TokioIo::new(connect(&server, b"h2").await);
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    // One exchange first, so the client knows the server's stream limit (8) before it opens
    // 32 streams: it then queues what is over the limit instead of having it refused.
    let mut first = post("/mutate", review("h2-first", &pod, "admission.k8s.io/v1"));
    *first.uri_mut() = "https://localhost/mutate".parse().unwrap();
    let (status, _) = body_json(send.clone().send_request(first).await.unwrap()).await;
    assert_eq!(status, 200);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let mut send = send.clone();
        let body = review(&format!("h2-{i}"), &pod, "admission.k8s.io/v1");
        tasks.push(tokio::spawn(async move {
            let mut req = post("/mutate", body);
            *req.uri_mut() = "https://localhost/mutate".parse().unwrap();
            body_json(send.send_request(req).await.unwrap()).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200);
        check_mutated(&v, &format!("h2-{i}"), "admission.k8s.io/v1");
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let mut server = start().await;
    let pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    let io = TokioIo::new(connect(&server, b"http/1.1").await);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    // Start a request whose body arrives slowly, then ask the server to stop.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let body = common::client::ChanBody(rx);
    let req = Request::post("/mutate")
        .header("host", "localhost")
        .body(body)
        .unwrap();
    let in_flight =
        tokio::spawn(async move { body_json(send.send_request(req).await.unwrap()).await });
    let bytes = review("in-flight", &pod, "admission.k8s.io/v1");
    let (a, b) = bytes.split_at(bytes.len() / 2);
    tx.send(Bytes::copy_from_slice(a)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(Bytes::copy_from_slice(b)).await.unwrap();
    drop(tx);
    let (status, v) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    check_mutated(&v, "in-flight", "admission.k8s.io/v1");
    // The server task ends, and new connections are refused.
    tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}
