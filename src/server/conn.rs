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
//!   on a connection the server is closing at that moment would fail;
//! - a request is still in flight — its response not yet all handed to the socket — past the
//!   request timeout plus the send timeout (a peer that stops reading, e.g. an HTTP/2 window
//!   kept at zero, would otherwise keep the request's slot and memory).
//!
//! When a connection that answered a request ends with bytes the client may still be sending (an
//! early 413/503/408), the socket is not just dropped — that makes the kernel answer with a
//! reset, which can destroy the response before the client reads it. [`TrackedIo`] shuts down
//! the write side and reads and discards what still arrives, bounded in bytes and time
//! ("lingering close"), still holding the connection's slot under the connection cap.
//!
//! The cap ([`Slots`]) counts connections, not clients: at the cap a new connection takes the
//! slot of the open one that has been quiet longest with no request in flight, so connections
//! that do nothing cannot keep anyone else out.

use hyper::body::Incoming;
use hyper::service::Service;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

const NONE: u64 = u64::MAX;
/// The bit of [`Activity::in_flight`] that marks the connection chosen to make room at the cap.
const EVICTED: usize = 1 << (usize::BITS - 1);

/// How long a connection may wait, and how much a closing one drains.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the connection's start (or a request's first byte) to its headers being complete.
    pub header: Duration,
    /// With no request in flight.
    pub idle: Duration,
    /// From a request's start until its response is all handed to the socket.
    pub in_flight: Duration,
    /// Lingering close: at most this long and this many bytes read and discarded.
    pub linger_time: Duration,
    pub linger_bytes: usize,
    pub linger_buffer: usize,
}

/// Why the watchdog closed a connection (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    HeaderTimeout,
    IdleTimeout,
    SendTimeout,
    /// It had no request in flight and a new connection needed its slot.
    Evicted,
    /// The TLS handshake took longer than allowed.
    HandshakeTimeout,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::SendTimeout => "send_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// What one connection is doing, shared by its socket, its service and its watchdog. Times are
/// milliseconds since the connection started.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Requests in flight, and [`EVICTED`]: one word, so a request starting and the
    /// connection being chosen for eviction cannot both happen.
    in_flight: AtomicUsize,
    /// When each request in flight started (ms), for the send deadline of the oldest. At most
    /// the connection's stream limit long; one entry on HTTP/1.1.
    starts: Mutex<Vec<u64>>,
    served: AtomicU64,
    /// When bytes of a request not yet dispatched first arrived (HTTP/1.1 only), or NONE.
    pending_since: AtomicU64,
    last_done: AtomicU64,
    /// HTTP/1.1: bytes arriving while nothing is in flight start a new request's header timer.
    /// Off for HTTP/2, whose pings and window updates arrive on idle connections.
    track_partial: AtomicBool,
    /// Wakes whoever waits in [`Activity::evicted`] (the eviction, or a request ending after it).
    evict: tokio::sync::Notify,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            starts: Mutex::new(Vec::new()),
            served: AtomicU64::new(0),
            pending_since: AtomicU64::new(NONE),
            last_done: AtomicU64::new(0),
            track_partial: AtomicBool::new(false),
            evict: tokio::sync::Notify::new(),
        })
    }

    /// Resolves once the connection was chosen to make room at the cap and has no request in
    /// flight (one that began just before the choice is answered first).
    pub async fn evicted(&self) {
        while self.in_flight.load(Ordering::Acquire) != EVICTED {
            self.evict.notified().await;
        }
    }

    /// Chosen to make room (then it closes without lingering: nothing of it is in flight).
    fn was_evicted(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) & EVICTED != 0
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed) & !EVICTED
    }

    /// Choose this connection to make room, if no request is in flight on it.
    fn try_evict(&self) -> bool {
        let chosen = self
            .in_flight
            .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if chosen {
            self.evict.notify_one();
        }
        chosen
    }

    /// Since when it has done nothing for a client: its last request's end, else its start
    /// (bytes of headers that never complete do not count, so a trickler stays old).
    fn quiet_since(&self) -> Instant {
        self.start + Duration::from_millis(self.last_done.load(Ordering::Relaxed))
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
            && self.in_flight() == 0
            && self.pending_since.load(Ordering::Relaxed) == NONE
        {
            self.pending_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn starts(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        // A panic while holding it leaves a plain Vec behind: still usable.
        self.starts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self) -> u64 {
        let now = self.now_ms();
        self.starts().push(now);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.pending_since.store(NONE, Ordering::Relaxed);
        now
    }

    fn end(&self, started: u64) {
        {
            let mut starts = self.starts();
            if let Some(i) = starts.iter().position(|&s| s == started) {
                starts.swap_remove(i);
            }
        }
        self.last_done.store(self.now_ms(), Ordering::Relaxed);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == EVICTED | 1 {
            // The request that began as the connection was chosen is done: now it may close.
            self.evict.notify_one();
        }
    }

    /// Whether a request was answered on this connection (only then is a lingering close worth
    /// its cost: there is a response to protect).
    pub fn answered(&self) -> bool {
        self.served.load(Ordering::Relaxed) > 0
    }

    /// When the watchdog must close the connection, and why.
    pub fn deadline(&self, limits: &ConnLimits) -> Option<(Instant, CloseReason)> {
        let at = |ms: u64, d: Duration| self.start + Duration::from_millis(ms) + d;
        if self.in_flight() > 0 {
            let oldest = self.starts().iter().copied().min()?;
            return Some((at(oldest, limits.in_flight), CloseReason::SendTimeout));
        }
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
            // A send deadline can move earlier (the request ends, the next one's header timer
            // starts): look again at least every header timeout.
            Some((at, CloseReason::SendTimeout)) => {
                tokio::time::sleep_until(at.min(Instant::now() + limits.header)).await
            }
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(limits.header).await,
        }
    }
}

/// The service of one connection: marks each request in flight from its call until its response
/// body is finished or dropped (so a response waiting for a peer that does not read still
/// counts, and the watchdog's send deadline applies to it).
#[derive(Clone)]
pub struct Tracked<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
}

/// Ends the request's in-flight mark however it ends (sent, failed or dropped).
struct InFlight {
    activity: Arc<Activity>,
    started: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.end(self.started);
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        mark: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<hyper::Response<B>, E>>,
{
    type Output = Result<hyper::Response<Marked<B>>, E>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.project();
        let resp = std::task::ready!(me.inner.poll(cx));
        let mark = me.mark.take();
        Poll::Ready(resp.map(|r| r.map(|body| Marked { body, mark })))
    }
}

pin_project_lite::pin_project! {
    /// A response body carrying its request's in-flight mark until it ends.
    pub struct Marked<B> {
        #[pin]
        body: B,
        mark: Option<InFlight>,
    }
}

impl<B: hyper::body::Body> hyper::body::Body for Marked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        let me = self.project();
        let frame = std::task::ready!(me.body.poll_frame(cx));
        if frame.is_none() {
            me.mark.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl<S, B> Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>>,
{
    type Response = hyper::Response<Marked<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let started = self.activity.begin();
        TrackedFuture {
            inner: self.inner.call(req),
            mark: Some(InFlight {
                activity: self.activity.clone(),
                started,
            }),
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
    /// The connection's place under the cap, given back only when the socket is closed.
    slot: Option<Slot>,
}

impl TrackedIo {
    pub fn new(tcp: TcpStream, activity: Arc<Activity>, limits: ConnLimits, slot: Slot) -> Self {
        TrackedIo {
            tcp: Some(tcp),
            activity,
            limits,
            peer_closed: false,
            slot: Some(slot),
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
        // Nothing answered (a failed handshake, a silent client), or the peer is gone: no
        // response to protect, so close now.
        if self.peer_closed || !self.activity.answered() || self.activity.was_evicted() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limits = self.limits;
        let slot = self.slot.take();
        let activity = self.activity.clone();
        rt.spawn(async move {
            // A lingering connection has no request in flight: it may be chosen to make room.
            tokio::select! {
                () = linger(tcp, limits) => {}
                () = activity.evicted() => {}
            }
            drop(slot);
        });
    }
}

/// Send FIN after whatever was written, then read and discard until the client closes or the
/// bounds are reached, so the client reads our response instead of a reset.
async fn linger(mut tcp: TcpStream, limits: ConnLimits) {
    let _ = tcp.shutdown().await;
    let mut buf = vec![0u8; limits.linger_buffer];
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

/// The connection cap. Each open connection (lingering ones included) holds a [`Slot`]. At the
/// cap a new connection is still admitted: it takes the place of the connection that has been
/// quiet longest with no request in flight (handshaking, waiting for its first request, sending
/// headers that never complete, idle keep-alive, lingering), which is closed at once. Only when
/// every connection has a request in flight is the new one refused; those are bounded by the
/// request and send timeouts. While a chosen connection closes (a request that began just
/// before it was chosen is answered first) the count may exceed the cap by it: at most
/// [`MAX_CLOSING`] such, the accept loop waits for them ([`Slots::room`]) before taking more.
pub struct Slots {
    max: usize,
    state: Mutex<SlotState>,
    /// A chosen connection closed.
    closed: tokio::sync::Notify,
}

/// Connections chosen to make room and not closed yet, at most (their tasks close them at once).
pub const MAX_CLOSING: usize = 8;

struct SlotState {
    next_id: u64,
    /// Every connection holding a slot.
    open: HashMap<u64, Weak<Activity>>,
    /// Of those, the ones chosen to make room and not closed yet.
    closing: usize,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Slots {
            max: max.max(1),
            state: Mutex::new(SlotState {
                next_id: 0,
                open: HashMap::new(),
                closing: 0,
            }),
            closed: tokio::sync::Notify::new(),
        })
    }

    /// Resolves while fewer than [`MAX_CLOSING`] chosen connections are still closing, so the
    /// open connections stay within the cap plus those few (new ones wait in the kernel's queue).
    pub async fn room(&self) {
        while self.state().closing >= MAX_CLOSING {
            self.closed.notified().await;
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        // Nothing here panics while holding it; were it poisoned, the counts are still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection, making room at the cap (`None`: every connection has a
    /// request in flight). Linear in the open connections, only at the cap.
    pub fn claim(self: &Arc<Self>, activity: &Arc<Activity>) -> Option<Slot> {
        let mut state = self.state();
        if state.open.len() - state.closing >= self.max {
            // A request may start on the chosen one meanwhile: then the next quietest.
            let chosen = (0..4).any(|_| {
                state
                    .open
                    .values()
                    .filter_map(Weak::upgrade)
                    .filter(|a| !a.was_evicted() && a.in_flight() == 0)
                    .min_by_key(|a| a.quiet_since())
                    .is_some_and(|a| a.try_evict())
            });
            if !chosen {
                return None;
            }
            state.closing += 1;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, Arc::downgrade(activity));
        Some(Slot {
            slots: self.clone(),
            id,
            activity: activity.clone(),
        })
    }
}

/// One connection's place under the cap, given back on drop.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.open.remove(&self.id);
        // Chosen while it held its slot (the choice is made under this lock): counted closing.
        if self.activity.was_evicted() {
            state.closing = state.closing.saturating_sub(1);
            self.slots.closed.notify_one();
        }
    }
}
