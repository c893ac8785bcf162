//! One connection's bounds in time, and what happens when it ends.
//!
//! hyper alone cannot tell "idle between requests" from "slow request headers" (its HTTP/1
//! header timer also runs while a keep-alive connection waits), and hyper-util's auto builder
//! waits for the protocol preface with no timer at all. So each connection carries an
//! [`Activity`] record, fed by the socket ([`TrackedIo`]), by the request bodies and by the
//! responses ([`Tracked`]), and a watchdog closes it when:
//! - no request has arrived within the header timeout of the connection's start (a TLS client
//!   that sends nothing, an HTTP/2 client without a preface);
//! - an HTTP/1.1 request's first bytes arrived but it was not dispatched within the header
//!   timeout (slow headers);
//! - nothing has been in flight for the idle timeout, which is longer than the apiserver's own
//!   idle timeout (90 s), so the client, not us, closes a pooled connection: a request sent on a
//!   connection the server is closing at that moment would fail;
//! - a request's handler has run past the request timeout plus the send timeout (a safety net:
//!   the request timeout answers it first);
//! - a response waiting for the peer has made no progress — no piece of it taken by the
//!   connection — for the send timeout (a peer that stops reading, e.g. an HTTP/2 window kept at
//!   zero). Progress, not the request's start, so new streams cannot re-arm an old wait.
//!
//! When a connection that answered a request ends with bytes the client may still be sending (an
//! early 413/503/408), the socket is not just dropped — that makes the kernel answer with a
//! reset, which can destroy the response before the client reads it. [`TrackedIo`] shuts down
//! the write side and reads and discards what still arrives, bounded in bytes and time
//! ("lingering close"), still holding the connection's slot under the connection cap.
//!
//! The cap ([`Slots`]) counts connections, not clients. A request is *protected* only while the
//! server works on it: from its body's last byte until its response is produced. Everything else
//! a connection can be doing waits on the client — a handshake, headers, a body, a response the
//! client does not read, idle keep-alive, a lingering close — and at the cap a new connection
//! takes the slot of one of those, so no client can hold every slot by waiting.

use hyper::body::Incoming;
use hyper::service::Service;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

const NONE: u64 = u64::MAX;
/// A connection this young that has not completed a request yet is given its time to: it is
/// ordered among the idle ones by its age, not put first (a TLS handshake and a first request
/// take milliseconds in a cluster).
const FRESH: Duration = Duration::from_secs(1);
/// The bit of [`Activity::working`] that marks the connection chosen to make room at the cap.
const EVICTED: usize = 1 << (usize::BITS - 1);

/// How long a connection may wait, and how much a closing one drains.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the connection's start (or a request's first byte) to its headers being complete.
    pub header: Duration,
    /// With nothing in flight.
    pub idle: Duration,
    /// From a request's dispatch until its response is produced (a safety net behind the
    /// request timeout).
    pub in_flight: Duration,
    /// A response waiting for the peer with no progress this long closes the connection.
    pub send: Duration,
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
    /// It was waiting on its client and a new connection needed its slot.
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

/// What one connection is doing, shared by its socket, its requests, its responses and its
/// watchdog. Times are milliseconds since the connection started.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Requests the server is working on (body complete, response not yet produced), and
    /// [`EVICTED`]: one word, so work starting and the connection being chosen for eviction
    /// cannot both happen.
    working: AtomicUsize,
    /// Each request dispatched and not done, and its clock: when it was dispatched (its handler
    /// running) or when its response last made progress (waiting for the peer). At most the
    /// connection's stream limit long.
    requests: Mutex<Vec<Clock>>,
    /// Requests dispatched, and of those whose body completed, ever.
    dispatched: AtomicU64,
    completed: AtomicU64,
    /// When bytes of a request not yet dispatched first arrived (HTTP/1.1 only), or NONE.
    pending_since: AtomicU64,
    /// When the last response was all taken (the idle timer).
    last_done: AtomicU64,
    /// When a request last completed its body (the eviction order).
    last_completed: AtomicU64,
    /// HTTP/1.1: bytes arriving while nothing is in flight start a new request's header timer.
    /// Off for HTTP/2, whose pings and window updates arrive on idle connections.
    track_partial: AtomicBool,
    /// Wakes whoever waits in [`Activity::evicted`].
    evict: tokio::sync::Notify,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Self::started(Instant::now())
    }

    fn started(start: Instant) -> Arc<Self> {
        Arc::new(Activity {
            start,
            working: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            dispatched: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            pending_since: AtomicU64::new(NONE),
            last_done: AtomicU64::new(0),
            last_completed: AtomicU64::new(0),
            track_partial: AtomicBool::new(false),
            evict: tokio::sync::Notify::new(),
        })
    }

    /// Resolves once the connection was chosen to make room at the cap. Nothing the server works
    /// on is cut: it is chosen only with no work in progress, and no work starts after.
    pub async fn evicted(&self) {
        while !self.was_evicted() {
            self.evict.notified().await;
        }
    }

    /// Chosen to make room (then it closes without lingering: it was waiting on its client).
    fn was_evicted(&self) -> bool {
        self.working.load(Ordering::Acquire) & EVICTED != 0
    }

    fn working(&self) -> usize {
        self.working.load(Ordering::Relaxed) & !EVICTED
    }

    /// Choose this connection to make room, if the server is working on nothing of it.
    fn try_evict(&self) -> bool {
        let chosen = self
            .working
            .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if chosen {
            self.evict.notify_one();
        }
        chosen
    }

    /// Start work on a request, unless the connection was chosen to make room (then the request
    /// goes with it, unanswered: the client sees the connection close, as at an idle timeout).
    fn try_work(&self) -> bool {
        self.working
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| {
                (w & EVICTED == 0).then_some(w + 1)
            })
            .is_ok()
    }

    /// The eviction order at `now`, first evicted first. Connections past [`FRESH`] that never
    /// completed a request: first those that never sent one (silent, handshaking, trickling
    /// headers), then those whose bodies never came; oldest first. Then every other connection,
    /// the one stalest first — since a request last completed its body, else since it was
    /// accepted (headers, trickled bytes and window updates do not count). So a flood of fresh
    /// connections makes room among its own kind first once they are past [`FRESH`], and before
    /// that takes the idle ones, stalest first: a connection just opened has its time to send its
    /// first request, and one the apiserver keeps using stays behind every idle or stalling one.
    fn eviction_rank(&self, now: Instant) -> (u8, Instant) {
        let completed = self.completed.load(Ordering::Relaxed);
        let age = now.saturating_duration_since(self.start);
        let given_up = age >= FRESH;
        if completed == 0 && given_up {
            let level = u8::from(self.dispatched.load(Ordering::Relaxed) > 0);
            return (level, self.start);
        }
        let since = if completed == 0 {
            self.start
        } else {
            self.start + Duration::from_millis(self.last_completed.load(Ordering::Relaxed))
        };
        (2, since)
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Set once the protocol is known (after ALPN, or for plain HTTP/1.1 listeners).
    pub fn set_http1(&self, http1: bool) {
        self.track_partial.store(http1, Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        !self.requests().is_empty()
    }

    fn on_read(&self) {
        if self.track_partial.load(Ordering::Relaxed)
            && self.pending_since.load(Ordering::Relaxed) == NONE
            && !self.busy()
        {
            self.pending_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Vec<Clock>> {
        // A panic while holding it leaves a plain Vec behind: still usable.
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new request; its id on this connection.
    fn dispatch(&self) -> u64 {
        let now = self.now_ms();
        let id = self.dispatched.fetch_add(1, Ordering::Relaxed);
        self.requests().push(Clock {
            id,
            since: now,
            waiting: false,
        });
        self.pending_since.store(NONE, Ordering::Relaxed);
        id
    }

    /// Restart request `id`'s clock: its response is waiting for the peer, as of now.
    fn waiting(&self, id: u64) {
        let now = self.now_ms();
        if let Some(c) = self.requests().iter_mut().find(|c| c.id == id) {
            (c.since, c.waiting) = (now, true);
        }
    }

    fn done(&self, id: u64) {
        let mut requests = self.requests();
        if let Some(i) = requests.iter().position(|c| c.id == id) {
            requests.swap_remove(i);
        }
    }

    /// Whether a request was dispatched on this connection (only then is a lingering close
    /// worth its cost: there is a response to protect).
    pub fn answered(&self) -> bool {
        self.dispatched.load(Ordering::Relaxed) > 0
    }

    /// When the watchdog must close the connection, and why.
    pub fn deadline(&self, limits: &ConnLimits) -> Option<(Instant, CloseReason)> {
        let at = |ms: u64, d: Duration| self.start + Duration::from_millis(ms) + d;
        // Each request on its own clock, so a new one cannot re-arm an old one's wait.
        let due = self
            .requests()
            .iter()
            .map(|c| {
                at(
                    c.since,
                    if c.waiting {
                        limits.send
                    } else {
                        limits.in_flight
                    },
                )
            })
            .min();
        if let Some(due) = due {
            return Some((due, CloseReason::SendTimeout));
        }
        let pending = self.pending_since.load(Ordering::Relaxed);
        if pending != NONE {
            return Some((at(pending, limits.header), CloseReason::HeaderTimeout));
        }
        if self.dispatched.load(Ordering::Relaxed) == 0 {
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
            // A deadline can move earlier (a response starts waiting, the next request's header
            // timer starts): look again at least every header timeout.
            Some((at, _)) => tokio::time::sleep_until(at.min(Instant::now() + limits.header)).await,
            None => tokio::time::sleep(limits.header).await,
        }
    }
}

/// One request's clock in [`Activity::requests`].
#[derive(Debug)]
struct Clock {
    id: u64,
    since: u64,
    waiting: bool,
}

/// Where one request is: its body arriving, the server working on it, its response waiting to
/// be taken by the connection, or done.
const READING: u8 = 0;
const WORKING: u8 = 1;
const SENDING: u8 = 2;
const DONE: u8 = 3;

/// One request's place in its connection's [`Activity`], shared by its body, its handler's
/// future and its response body; whichever holds it last ends it.
struct RequestMark {
    activity: Arc<Activity>,
    id: u64,
    state: AtomicU8,
}

impl RequestMark {
    fn new(activity: Arc<Activity>) -> Arc<Self> {
        let id = activity.dispatch();
        Arc::new(RequestMark {
            activity,
            id,
            state: AtomicU8::new(READING),
        })
    }

    /// The body's last byte arrived: the server works on it now (protected from eviction).
    /// `false`: the connection was chosen to make room, so no work may start.
    fn body_complete(&self) -> bool {
        let a = &self.activity;
        if self.state.load(Ordering::Acquire) != READING {
            return true;
        }
        if !a.try_work() {
            return false;
        }
        self.state.store(WORKING, Ordering::Release);
        a.completed.fetch_add(1, Ordering::Relaxed);
        a.last_completed.store(a.now_ms(), Ordering::Relaxed);
        true
    }

    /// The handler produced its response: it now waits for the connection to take it.
    fn produced(&self) {
        let a = &self.activity;
        let was = self.state.swap(SENDING, Ordering::AcqRel);
        if was == WORKING {
            a.working.fetch_sub(1, Ordering::AcqRel);
        }
        if was <= WORKING {
            a.waiting(self.id);
        }
    }

    /// A piece of the response was taken by the connection.
    fn progressed(&self) {
        self.activity.waiting(self.id);
    }

    fn finish(&self) {
        let a = &self.activity;
        match self.state.swap(DONE, Ordering::AcqRel) {
            DONE => return,
            WORKING => {
                a.working.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        a.done(self.id);
        a.last_done.store(a.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The service of one connection: dispatches each request with a [`RequestMark`], carried by
/// its body (which marks the body complete), its handler's future (which marks the response
/// produced) and its response body (which marks progress and the end).
#[derive(Clone)]
pub struct Tracked<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
}

pin_project_lite::pin_project! {
    /// A request body that tells its connection when its last byte arrived.
    pub struct MarkedRequest<B> {
        #[pin]
        body: B,
        mark: Option<Arc<RequestMark>>,
    }
}

/// The error a body ends with when its connection was chosen to make room as it completed: the
/// handler stops there (the engine does not run, nothing is logged as decided), and its answer
/// would have nowhere to go.
#[derive(Debug, thiserror::Error)]
#[error("the connection was closed to make room for another (--max-connections)")]
pub struct Evicted;

impl<B> hyper::body::Body for MarkedRequest<B>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, Self::Error>>> {
        let me = self.project();
        let frame = std::task::ready!(me.body.poll_frame(cx));
        if frame.is_none() {
            if let Some(mark) = me.mark.take() {
                if !mark.body_complete() {
                    return Poll::Ready(Some(Err(Box::new(Evicted))));
                }
            }
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        mark: Option<Arc<RequestMark>>,
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
        if let Some(m) = &mark {
            m.produced();
        }
        Poll::Ready(resp.map(|r| r.map(|body| Marked { body, mark })))
    }
}

pin_project_lite::pin_project! {
    /// A response body carrying its request's mark until it ends.
    pub struct Marked<B> {
        #[pin]
        body: B,
        mark: Option<Arc<RequestMark>>,
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
        match &frame {
            None => {
                me.mark.take();
            }
            Some(_) => {
                if let Some(m) = me.mark.as_ref() {
                    m.progressed();
                }
            }
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
    S: Service<hyper::Request<MarkedRequest<Incoming>>, Response = hyper::Response<B>>,
{
    type Response = hyper::Response<Marked<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let mark = RequestMark::new(self.activity.clone());
        let req = req.map(|body| MarkedRequest {
            body,
            mark: Some(mark.clone()),
        });
        TrackedFuture {
            inner: self.inner.call(req),
            mark: Some(mark),
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
            // A lingering connection waits on its client: it may be chosen to make room.
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
/// cap a new connection is still admitted: it takes the place of the first in
/// [`Activity::eviction_rank`] order among those the server is working on nothing of (each is
/// waiting on its client), which is closed at once. Only when the server is working on a request
/// of every connection is the new one refused; that work is bounded by the memory budget and the
/// request timeout. While a chosen connection closes the count may exceed the cap by it: at most
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

    /// A slot for a new connection, making room at the cap (`None`: the server is working on a
    /// request of every connection). Linear in the open connections, only at the cap.
    pub fn claim(self: &Arc<Self>, activity: &Arc<Activity>) -> Option<Slot> {
        let mut state = self.state();
        if state.open.len() - state.closing >= self.max {
            let now = Instant::now();
            // Work may start on the chosen one meanwhile: then the next in order.
            let chosen = (0..4).any(|_| {
                state
                    .open
                    .values()
                    .filter_map(Weak::upgrade)
                    .filter(|a| !a.was_evicted() && a.working() == 0)
                    .min_by_key(|a| a.eviction_rank(now))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            in_flight: Duration::from_secs(20),
            send: Duration::from_secs(10),
            linger_time: Duration::from_secs(2),
            linger_bytes: 1024,
            linger_buffer: 1024,
        }
    }

    fn open(slots: &Arc<Slots>) -> (Arc<Activity>, Slot) {
        let a = Activity::new();
        let slot = slots.claim(&a).expect("a slot");
        (a, slot)
    }

    /// A newcomer that at once completes a request (as the apiserver does): last in the order.
    fn busy_newcomer(slots: &Arc<Slots>) -> Slot {
        let (a, slot) = open(slots);
        RequestMark::new(a).body_complete();
        slot
    }

    #[tokio::test]
    async fn a_connection_chosen_to_make_room_starts_no_more_work() {
        let a = Activity::new();
        assert!(a.try_evict());
        // A request pipelined behind the choice: dispatched, but never worked on or answered.
        let mark = RequestMark::new(a.clone());
        assert!(!mark.body_complete(), "its handler is told to stop");
        assert_eq!(a.working(), 0);
        tokio::time::timeout(Duration::from_millis(100), a.evicted())
            .await
            .expect("closes at once");
    }

    /// A connection accepted `age` ago, its last request completed `completed_ago` ago.
    fn aged(slots: &Arc<Slots>, age: u64, completed_ago: Option<u64>) -> (Arc<Activity>, Slot) {
        let a = Activity::started(Instant::now() - Duration::from_secs(age));
        if let Some(ago) = completed_ago {
            RequestMark::new(a.clone()).body_complete();
            a.last_completed
                .store((age - ago) * 1000, Ordering::Relaxed);
        }
        let slot = slots.claim(&a).expect("a slot");
        (a, slot)
    }

    #[test]
    fn at_the_cap_connections_waiting_on_their_client_make_room_in_order() {
        let slots = Slots::new(6);
        let (young, _s1) = aged(&slots, 0, None);
        let (unread, _s2) = aged(&slots, 5, Some(1));
        let unread_req = RequestMark::new(unread.clone());
        unread_req.body_complete();
        unread_req.produced();
        unread.last_completed.store(4000, Ordering::Relaxed);
        let (idle, _s3) = aged(&slots, 10, Some(9));
        let (stalled, _s4) = aged(&slots, 5, None);
        let stalled_req = RequestMark::new(stalled.clone());
        let (silent_newer, _s5) = aged(&slots, 2, None);
        let (silent, _s6) = aged(&slots, 5, None);
        let order = [
            (&silent, "silent past its first second, oldest first"),
            (&silent_newer, "then the newer silent one"),
            (&stalled, "then a body that never came"),
            (&idle, "then the stalest: idle 9 s"),
            (&unread, "then an answer nobody reads (completed 1 s ago)"),
            (&young, "and last the one just opened"),
        ];
        let mut keep = Vec::new();
        for (which, why) in order {
            keep.push(busy_newcomer(&slots));
            assert!(which.was_evicted(), "{why}");
            assert_eq!(
                [&silent, &silent_newer, &stalled, &idle, &unread, &young]
                    .iter()
                    .filter(|a| a.was_evicted())
                    .count(),
                keep.len(),
                "only one per newcomer ({why})"
            );
        }
        drop((stalled_req, unread_req));
    }

    #[test]
    fn a_connection_just_opened_has_its_time_before_idle_ones_go() {
        // The reviewer's flood: every other slot held by idle connections that once completed a
        // request; a fresh client's connection is not the one the next arrival takes.
        let slots = Slots::new(3);
        let (idle_a, _a) = aged(&slots, 30, Some(20));
        let (idle_b, _b) = aged(&slots, 30, Some(10));
        let (fresh, _f) = aged(&slots, 0, None);
        let (_flood, _g) = aged(&slots, 0, None);
        assert!(idle_a.was_evicted() && !fresh.was_evicted());
        let (_flood, _h) = aged(&slots, 0, None);
        assert!(idle_b.was_evicted() && !fresh.was_evicted());
        // Past its first second without a request, it goes before those that completed one.
        let slots = Slots::new(2);
        let (idle, _i) = aged(&slots, 30, Some(20));
        let (silent, _s) = aged(&slots, 2, None);
        let (_new, _n) = aged(&slots, 0, None);
        assert!(silent.was_evicted() && !idle.was_evicted());
    }

    #[test]
    fn work_in_progress_is_never_evicted_and_a_full_house_refuses() {
        let slots = Slots::new(2);
        let (a, _sa) = open(&slots);
        let (b, _sb) = open(&slots);
        let ra = RequestMark::new(a.clone());
        ra.body_complete();
        let rb = RequestMark::new(b.clone());
        rb.body_complete();
        assert!(slots.claim(&Activity::new()).is_none());
        assert!(!a.was_evicted() && !b.was_evicted());
        // Its response produced, b waits on its client again: it makes room.
        rb.produced();
        assert!(slots.claim(&Activity::new()).is_some());
        assert!(b.was_evicted() && !a.was_evicted());
    }

    #[tokio::test]
    async fn an_unread_response_is_bounded_by_progress_not_by_new_requests() {
        let l = limits();
        let a = Activity::new();
        let old = RequestMark::new(a.clone());
        old.body_complete();
        old.produced();
        let (due, why) = a.deadline(&l).unwrap();
        assert_eq!(why, CloseReason::SendTimeout);
        assert!(due <= Instant::now() + l.send);
        // A new request — even one whose response then waits too — does not move the stalled
        // response's deadline later.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let new = RequestMark::new(a.clone());
        new.body_complete();
        new.produced();
        assert!(a.deadline(&l).unwrap().0 <= due);
        drop(new);
        // Once the response is all taken, the idle timer runs instead.
        drop(old);
        let (due, why) = a.deadline(&l).unwrap();
        assert_eq!(why, CloseReason::IdleTimeout);
        assert!(due > Instant::now() + l.send);
    }
}
