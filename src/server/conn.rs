//! One connection's bounds in time, and what happens when it ends.
//!
//! hyper alone cannot tell "idle between requests" from "slow request headers" (its HTTP/1
//! header timer also runs while a keep-alive connection waits), and hyper-util's auto builder
//! waits for the protocol preface with no timer at all. So each connection carries an
//! [`Activity`] record, fed by the socket ([`TrackedIo`]) and by the service ([`Tracked`]), and a
//! watchdog closes it when:
//! - no request has arrived within the header timeout of the connection's start (a TLS client
//!   that sends nothing, an HTTP/2 client without a preface);
//! - an HTTP/1.1 request's first bytes arrived but it was not dispatched within the header
//!   timeout (slow headers);
//! - no request has been in flight for the idle timeout, which is longer than the apiserver's
//!   own idle timeout (90 s), so the client, not us, closes a pooled connection: a request sent
//!   on a connection the server is closing at that moment would fail.
//!
//! When a connection ends with bytes the client may still be sending (an early 413/503/408), the
//! socket is not just dropped — that makes the kernel answer with a reset, which can destroy the
//! response before the client reads it. [`TrackedIo`] shuts down the write side and reads and
//! discards what still arrives, bounded in bytes and time ("lingering close").

use hyper::body::Incoming;
use hyper::service::Service;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

const NONE: u64 = u64::MAX;

/// How long a connection may wait, and how much a closing one drains.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the connection's start (or a request's first byte) to its headers being complete.
    pub header: Duration,
    /// With no request in flight.
    pub idle: Duration,
    /// Lingering close: at most this long and this many bytes read and discarded.
    pub linger_time: Duration,
    pub linger_bytes: usize,
}

/// Why the watchdog closed a connection (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    HeaderTimeout,
    IdleTimeout,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
        }
    }
}

/// What one connection is doing, shared by its socket, its service and its watchdog. Times are
/// milliseconds since the connection started.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// When bytes of a request not yet dispatched first arrived (HTTP/1.1 only), or NONE.
    pending_since: AtomicU64,
    last_done: AtomicU64,
    /// HTTP/1.1: bytes arriving while nothing is in flight start a new request's header timer.
    /// Off for HTTP/2, whose pings and window updates arrive on idle connections.
    track_partial: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            pending_since: AtomicU64::new(NONE),
            last_done: AtomicU64::new(0),
            track_partial: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Set once the protocol is known (after ALPN, or for plain HTTP/1.1 listeners).
    pub fn set_http1(&self, http1: bool) {
        self.track_partial.store(http1, Ordering::Relaxed);
    }

    fn on_read(&self) {
        if self.track_partial.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.pending_since.load(Ordering::Relaxed) == NONE
        {
            self.pending_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.pending_since.store(NONE, Ordering::Relaxed);
    }

    fn end(&self) {
        self.last_done.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the watchdog must close the connection, and why; `None` while a request is in
    /// flight (the request timeout bounds it).
    pub fn deadline(&self, limits: &ConnLimits) -> Option<(Instant, CloseReason)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let at = |ms: u64, d: Duration| self.start + Duration::from_millis(ms) + d;
        let pending = self.pending_since.load(Ordering::Relaxed);
        if pending != NONE {
            return Some((at(pending, limits.header), CloseReason::HeaderTimeout));
        }
        if self.served.load(Ordering::Relaxed) == 0 {
            return Some((at(0, limits.header), CloseReason::HeaderTimeout));
        }
        let last = self.last_done.load(Ordering::Relaxed);
        Some((at(last, limits.idle), CloseReason::IdleTimeout))
    }
}

/// Resolves when the connection has outlived its deadline (the caller then drops it).
pub async fn watchdog(activity: Arc<Activity>, limits: ConnLimits) -> CloseReason {
    loop {
        match activity.deadline(&limits) {
            Some((at, why)) if at <= Instant::now() => return why,
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(limits.header).await,
        }
    }
}

/// The service of one connection: marks each request in flight until its response is ready.
#[derive(Clone)]
pub struct Tracked<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
}

/// Ends the request's in-flight mark however its future ends (completed or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        _mark: InFlight,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<S> Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: Service<hyper::Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.activity.begin();
        TrackedFuture {
            inner: self.inner.call(req),
            _mark: InFlight(self.activity.clone()),
        }
    }
}

/// The TCP socket under TLS and HTTP: records reads for the watchdog, and on drop closes the
/// lingering way unless the client already closed its side.
pub struct TrackedIo {
    tcp: Option<TcpStream>,
    activity: Arc<Activity>,
    limits: ConnLimits,
    peer_closed: bool,
}

impl TrackedIo {
    pub fn new(tcp: TcpStream, activity: Arc<Activity>, limits: ConnLimits) -> Self {
        TrackedIo {
            tcp: Some(tcp),
            activity,
            limits,
            peer_closed: false,
        }
    }

    fn tcp(&mut self) -> io::Result<&mut TcpStream> {
        self.tcp
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let tcp = match self.tcp() {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let r = Pin::new(tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            if buf.filled().len() > before {
                self.activity.on_read();
            } else {
                self.peer_closed = true;
            }
        }
        r
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.tcp() {
            Ok(t) => Pin::new(t).poll_write(cx, data),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.tcp() {
            Ok(t) => Pin::new(t).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(t) => Pin::new(t).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(t) => Pin::new(t).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for TrackedIo {
    fn drop(&mut self) {
        let Some(tcp) = self.tcp.take() else { return };
        if self.peer_closed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limits = self.limits;
        rt.spawn(linger(tcp, limits));
    }
}

/// Send FIN after whatever was written, then read and discard until the client closes or the
/// bounds are reached, so the client reads our response instead of a reset.
async fn linger(mut tcp: TcpStream, limits: ConnLimits) {
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 16 * 1024];
    let mut left = limits.linger_bytes;
    let _ = tokio::time::timeout(limits.linger_time, async {
        while left > 0 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
