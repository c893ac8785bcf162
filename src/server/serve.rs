//! Listeners: accept, TLS handshake (bounded in time, with the config in force at that moment),
//! optional client-name check, then HTTP/1.1 or HTTP/2 by ALPN. Shutdown stops accepting and lets
//! in-flight requests finish within a grace period.

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
    /// Time allowed to send the request headers (slowloris).
    pub header_read: Duration,
    /// Time in-flight requests get after the listener stops.
    pub grace: Duration,
    /// After the listener stops, connections keep being served normally this long (within
    /// `grace`) before idle ones are closed: a client that connected just before the close
    /// still gets its request answered instead of a reset.
    pub linger: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            grace: Duration::from_secs(25),
            linger: Duration::from_secs(1),
        }
    }
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

fn http_builder(limits: Limits) -> Arc<Builder<TokioExecutor>> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    Arc::new(builder)
}

/// Serve `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// drain in-flight work for at most `limits.grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsSide>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = http_builder(limits);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
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
        let _ = tcp.set_nodelay(true);
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                serve_conn(&builder, tcp, app, watcher).await;
                return;
            };
            let Some(config) = tls.config.load_full() else {
                tracing::warn!(%peer, "no valid serving certificate loaded yet; closing connection");
                return;
            };
            let stream =
                match tokio::time::timeout(limits.handshake, TlsAcceptor::from(config).accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            if !tls.allowed_client_names.is_empty()
                && !client_allowed(&stream, &tls.allowed_client_names)
            {
                tracing::warn!(%peer, "client certificate name not in --client-allowed-names; closing connection");
                return;
            }
            serve_conn(&builder, stream, app, watcher).await;
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

async fn serve_conn<I>(
    builder: &Builder<TokioExecutor>,
    io: I,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn client_allowed(
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    allowed: &[String],
) -> bool {
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
