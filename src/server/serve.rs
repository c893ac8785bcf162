//! Listeners: accept (at most `max_connections` at once; at the cap one waiting on its client
//! makes room, [`conn::Slots`]), TLS handshake (bounded in time, with
//! the config in force at that moment), optional client-name check, then HTTP/1.1 or HTTP/2 as
//! ALPN says, each connection under a watchdog ([`super::conn`]). Shutdown stops accepting and
//! lets in-flight requests finish within a grace period.

use super::conn::{self, Activity, ConnLimits, Tracked, TrackedIo};
use crate::metrics::Metrics;
use arc_swap::ArcSwapOption;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Connection-level timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub handshake: Duration,
    /// Time allowed to send the request headers (slowloris), and for the first request to start
    /// after the handshake.
    pub header_read: Duration,
    /// A connection with no request in flight is closed after this long. Longer than the
    /// apiserver's own idle timeout (90 s), so the client closes pooled connections first.
    pub idle: Duration,
    /// Open connections at most, lingering ones included; at it a new one takes the place of
    /// one waiting on its client ([`conn::Slots`]), or is closed at once if the server is
    /// working on a request of every one. The default's share of the Deployment's 128 MiB: docs/operations.md.
    pub max_connections: usize,
    /// The request timeout (the guards'), for the watchdog's send deadline.
    pub request: Duration,
    /// A response waiting for the peer with no piece of it taken this long closes its
    /// connection: a peer that stops reading (an HTTP/2 window kept at zero) cannot keep the
    /// request's memory (nor its slot: a waiting connection can be chosen to make room).
    pub send: Duration,
    /// HTTP/2 streams open at once on one connection.
    pub max_streams: u32,
    /// Time in-flight requests get after the listener stops.
    pub grace: Duration,
    /// After the listener stops, connections keep being served normally this long (within
    /// `grace`) before idle ones are closed: a client that connected just before the close
    /// still gets its request answered instead of a reset.
    pub linger: Duration,
}

impl Limits {
    /// The defaults, in one place (the CLI's flags take theirs from here). `grace` plus the
    /// drain and the preStop stay inside the Deployment's terminationGracePeriodSeconds (40).
    pub const DEFAULT: Limits = Limits {
        handshake: Duration::from_secs(10),
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(120),
        max_connections: 512,
        request: Duration::from_secs(10),
        send: Duration::from_secs(10),
        max_streams: 8,
        grace: Duration::from_secs(20),
        linger: Duration::from_secs(1),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// HTTP/2 keep-alive pings: interval, and how long an unanswered one may wait.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

impl Limits {
    fn conn(&self) -> ConnLimits {
        ConnLimits {
            header: self.header_read,
            idle: self.idle,
            in_flight: self.request + self.send,
            send: self.send,
            // A client still sending a body we refused (413 is past 3 MiB) gets it read and
            // discarded for this long, so it reads our answer instead of a reset.
            linger_time: Duration::from_secs(2),
            linger_bytes: 8 * 1024 * 1024,
            linger_buffer: 4 * 1024,
        }
    }
}

/// Connection metrics of one listener.
#[derive(Clone)]
pub struct ConnMetrics {
    pub metrics: Arc<Metrics>,
    pub listener: &'static str,
}

/// The TLS side of a listener: the current config (swapped on reload; `None` until a valid
/// certificate exists) and the client names allowed when client certificates are required.
#[derive(Clone)]
pub struct TlsSide {
    pub config: Arc<ArcSwapOption<ServerConfig>>,
    pub allowed_client_names: Arc<Vec<String>>,
}

impl TlsSide {
    pub fn fixed(config: Arc<ServerConfig>) -> Self {
        TlsSide {
            config: Arc::new(ArcSwapOption::from(Some(config))),
            allowed_client_names: Arc::new(Vec::new()),
        }
    }
}

/// Buffers per connection, small because every connection may fill them: HTTP/1.1's read
/// buffer holds the request head (the apiserver's is ≈ 300 B); HTTP/2 windows bound the body
/// bytes a peer may send ahead of the handler, and the send buffer what waits for its window.
const H1_MAX_BUF: usize = 16 * 1024;
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONN_WINDOW: u32 = 256 * 1024;
const H2_MAX_SEND_BUF: usize = 16 * 1024;
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// The HTTP side: HTTP/1.1 and HTTP/2 as `only` says (from ALPN), or both (sniffed, plain
/// listeners). Header and idle timeouts are the watchdog's, not hyper's: hyper's HTTP/1 header
/// timer would also cut idle keep-alive connections.
fn http_builder(only: Option<bool>, max_streams: u32) -> Arc<Builder<TokioExecutor>> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(H1_MAX_BUF)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_concurrent_streams(max_streams.max(1))
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    let builder = match only {
        Some(true) => builder.http1_only(),
        Some(false) => builder.http2_only(),
        None => builder,
    };
    Arc::new(builder)
}

/// The three builders a listener may need.
struct Builders {
    any: Arc<Builder<TokioExecutor>>,
    h1: Arc<Builder<TokioExecutor>>,
    h2: Arc<Builder<TokioExecutor>>,
}

/// Serve `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// drain in-flight work for at most `limits.grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsSide>,
    app: Router,
    limits: Limits,
    counters: Option<ConnMetrics>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builders = Arc::new(Builders {
        any: http_builder(None, limits.max_streams),
        h1: http_builder(Some(true), limits.max_streams),
        h2: http_builder(Some(false), limits.max_streams),
    });
    let slots = conn::Slots::new(limits.max_connections);
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = async {
                slots.room().await;
                listener.accept().await
            } => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let activity = Activity::new();
        let Some(slot) = slots.claim(&activity) else {
            // At the cap with the server working on a request of every connection: close at once
            // (the client sees the connection closed, not a hang).
            drop(tcp);
            if let Some(c) = &counters {
                c.metrics.connection_refused(c.listener);
            }
            let now = tokio::time::Instant::now();
            if last_refusal_log.is_none_or(|t| now - t > Duration::from_secs(10)) {
                last_refusal_log = Some(now);
                tracing::warn!(%peer, max_connections = limits.max_connections,
                    "connection limit reached (--max-connections): refusing new connections, the server is working on a request of every open one");
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let builders = builders.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let _open = counters
                .as_ref()
                .map(|c| c.metrics.connection_opened(c.listener));
            let evicted = activity.clone();
            // The socket keeps the connection's slot, through its lingering close if it has one.
            let io = TrackedIo::new(tcp, activity.clone(), limits.conn(), slot);
            let served = async move {
                match tls {
                    None => {
                        activity.set_http1(true);
                        let conn = serve_conn(&builders.any, io, app, watcher, activity.clone());
                        bounded(conn, activity, limits).await
                    }
                    Some(tls) => {
                        let Some(config) = tls.config.load_full() else {
                            tracing::warn!(%peer, "no valid serving certificate loaded yet; closing connection");
                            return None;
                        };
                        let accept = TlsAcceptor::from(config).accept(io);
                        let stream = match tokio::time::timeout(limits.handshake, accept).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return None;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return Some(conn::CloseReason::HandshakeTimeout);
                            }
                        };
                        if !tls.allowed_client_names.is_empty()
                            && !client_allowed(&stream, &tls.allowed_client_names)
                        {
                            tracing::warn!(%peer, "client certificate name not in --client-allowed-names; closing connection");
                            return None;
                        }
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        activity.set_http1(!h2);
                        let builder = if h2 { &builders.h2 } else { &builders.h1 };
                        let conn = serve_conn(builder, stream, app, watcher, activity.clone());
                        bounded(conn, activity, limits).await
                    }
                }
            };
            // Chosen to make room at the cap: closed wherever it is (handshake included), at
            // once — it was waiting on its client.
            let served = tokio::select! {
                biased;
                () = evicted.evicted() => {
                    tracing::debug!(%peer, "closing a connection to make room at the cap");
                    Some(conn::CloseReason::Evicted)
                }
                served = served => served,
                () = evicted.evicted() => Some(conn::CloseReason::Evicted),
            };
            if let (Some(why), Some(c)) = (served, &counters) {
                c.metrics.connection_closed(c.listener, why.as_str());
            }
        });
    }
    drop(listener);
    tracing::info!("listener closed: letting in-flight requests finish");
    let linger = limits.linger.min(limits.grace);
    tokio::time::sleep(linger).await;
    if tokio::time::timeout(limits.grace - linger, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
    Ok(())
}

/// Run a connection until it ends or its watchdog fires (then it is dropped: nothing is in
/// flight at that point). Returns why the watchdog closed it, if it did.
async fn bounded(
    conn: impl Future<Output = ()>,
    activity: Arc<Activity>,
    limits: Limits,
) -> Option<conn::CloseReason> {
    tokio::select! {
        _ = conn => None,
        why = conn::watchdog(activity, limits.conn()) => {
            tracing::debug!(reason = why.as_str(), "closing a connection");
            Some(why)
        }
    }
}

async fn serve_conn<I>(
    builder: &Builder<TokioExecutor>,
    io: I,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
    activity: Arc<Activity>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = Tracked {
        inner: TowerToHyperService::new(app),
        activity,
    };
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn client_allowed(stream: &tokio_rustls::server::TlsStream<TrackedIo>, allowed: &[String]) -> bool {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(super::tls::client_names)
        .is_some_and(|names| names.iter().any(|n| allowed.contains(n)))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
