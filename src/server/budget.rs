//! The memory model, enforced: request bodies, the work on them and the responses not yet sent
//! are charged to one byte budget. A request is charged for its body as the bytes arrive (before
//! they are kept), for its work once the body is complete, and gives it back only when its
//! response has been handed to the socket, so what clients hold in flight can never add up past
//! the budget; past it a request is refused at once with a 503, never buffered. A declared
//! `Content-Length` is only a ceiling: headers alone hold nothing.

use super::ApiError;
use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use plx_store_core::PodLimits;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes requests may hold at once. One permit is one byte.
#[derive(Clone, Debug)]
pub struct Budget {
    bytes: usize,
    sem: Arc<Semaphore>,
    /// The share bodies still arriving may hold at once (half): however slowly clients send, the
    /// other half stays for bodies that arrive whole — a run pod's review from the apiserver, a
    /// few KiB, comes in one read and never needs it.
    arriving: Arc<Semaphore>,
}

/// A share of the budget, given back when dropped.
pub type Charge = OwnedSemaphorePermit;

impl Budget {
    pub fn new(bytes: usize) -> Self {
        Budget {
            bytes,
            sem: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            arriving: Arc::new(Semaphore::new((bytes / 2).min(Semaphore::MAX_PERMITS))),
        }
    }

    /// `n` more bytes of the share of bodies still arriving, or `None`.
    fn try_take_arriving(&self, n: usize) -> Option<Charge> {
        let n = u32::try_from(n.max(1)).ok()?;
        self.arriving.clone().try_acquire_many_owned(n).ok()
    }

    /// `n` bytes now, or `None` (never waits: waiting would queue memory behind memory).
    pub fn try_take(&self, n: usize) -> Option<Charge> {
        let n = u32::try_from(n.max(1)).ok()?;
        self.sem.clone().try_acquire_many_owned(n).ok()
    }

    /// Bytes not held by any request.
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }

    pub fn total(&self) -> usize {
        self.bytes
    }
}

/// What one request is charged beyond its body once the body is complete: the decoded pod and the
/// constant part of what a review produces. The pod reader's entry limit bounds the decoded pod
/// (≈ 160 B an entry), so that part grows with the body up to that bound. The rest of
/// [`produced_bound`] is charged once the pod is read ([`produced_reserve`]).
pub fn work_reserve(body: usize) -> usize {
    body.saturating_mul(4).clamp(64 * 1024, 4 * 1024 * 1024) + PRODUCED_CONSTANT
}

/// What a review is charged once its pod is read, besides [`work_reserve`]: the share of
/// [`produced_bound`] that grows with the body and the containers — only for a pod within the
/// limits (`within`), since one over them gets a short fixed denial, so a flood of oversized
/// pods does not take the budget others need.
pub fn produced_reserve(body: usize, containers: usize, within: bool) -> usize {
    if !within {
        return 0;
    }
    produced_bound(body, containers) - PRODUCED_CONSTANT
}

/// The patch's share of [`produced_bound`]: it grows with the containers served.
pub fn patch_reserve(containers: usize) -> usize {
    containers.min(PodLimits::DEFAULT.containers) * PRODUCED_PER_CONTAINER
}

/// At most what a review of a `body`-byte request whose pod has `containers` containers
/// produces — the response and the decision log line together — as the property test
/// `tests/output_bounds.rs` holds: the engine's warnings and messages are capped whatever the pod
/// holds (`engine::warnings`), and the patch grows with the containers it serves (up to the
/// pod limit's 128).
pub fn produced_bound(body: usize, containers: usize) -> usize {
    body.saturating_mul(PRODUCED_PER_BODY_BYTE) + PRODUCED_CONSTANT + patch_reserve(containers)
}

/// [`produced_bound`]'s parts: bytes per body byte (names echoed, cut), the constant (capped
/// warnings, denial message, log line) and the patch per container served.
pub const PRODUCED_PER_BODY_BYTE: usize = 2;
pub const PRODUCED_CONSTANT: usize = 48 * 1024;
pub const PRODUCED_PER_CONTAINER: usize = 1536;

/// A request body must keep arriving at this rate (after a first second), so that slow senders
/// cannot hold request slots and budget for the whole request timeout.
#[derive(Debug, Clone, Copy)]
pub struct BodyRate {
    pub grace: Duration,
    pub bytes_per_second: u64,
}

impl BodyRate {
    pub const DEFAULT: BodyRate = BodyRate {
        grace: Duration::from_secs(1),
        bytes_per_second: 64 * 1024,
    };

    /// When `bytes` must have arrived, for a body that started at `start`.
    fn deadline(&self, start: Instant, bytes: usize) -> Instant {
        let rate = self.bytes_per_second.max(1);
        start + self.grace + Duration::from_millis((bytes as u64).saturating_mul(1000) / rate)
    }
}

/// Read a request body of at most `limit` bytes, charged to `budget` as its bytes arrive (the
/// buffer's capacity, never the declared length: headers alone hold nothing; a body that does not
/// come whole in its first piece, also to the share of bodies still arriving, until its end — not
/// its declared length: an HTTP/2 stream may send all of it and never end), then its work reserve
/// once it is complete. Too slow (below `rate`, declared or not) is a 408, over the limit a 413,
/// over the budget a 503.
pub async fn read(
    body: Body,
    declared: Option<usize>,
    limit: usize,
    budget: &Budget,
    rate: BodyRate,
) -> Result<(Bytes, Charge), ApiError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let most = declared.unwrap_or(limit);
    let mut charge = budget.try_take(1).ok_or(ApiError::MemoryBudget)?;
    let mut arriving: Option<Charge> = None;
    let start = Instant::now();
    // The first frame is kept as it is: a body that arrives in one piece (the apiserver's,
    // nearly always) is never copied.
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut len = 0;
    let mut body = body;
    loop {
        // The body must keep coming: the next 64 KiB within the rate's time for them.
        let due = rate.deadline(start, (len + 64 * 1024).min(most));
        let frame = match tokio::time::timeout_at(due, body.frame()).await {
            Err(_) => {
                return Err(ApiError::SlowBody {
                    bytes_per_second: rate.bytes_per_second,
                })
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ApiError::BadRequest(format!("reading the body: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let grown = len + data.len();
        if grown > limit {
            return Err(ApiError::TooLarge { limit });
        }
        // What holding it costs: the frame alone, or a buffer grown by doubling (within the
        // declared length), charged before it is allocated.
        let holds = match (&first, buf.capacity()) {
            (None, 0) => grown,
            (_, cap) if grown <= cap => cap,
            (_, cap) => grown.max(cap.saturating_mul(2)).min(most.max(grown)),
        };
        if holds > charge.num_permits() {
            charge.merge(
                budget
                    .try_take(holds - charge.num_permits())
                    .ok_or(ApiError::MemoryBudget)?,
            );
        }
        // Whole in its first piece (its end already known: HTTP/1.1 counts the declared length,
        // HTTP/2 needs END_STREAM): never
        // arriving. Otherwise it holds the arriving share from now until its end.
        let whole = len == 0 && http_body::Body::is_end_stream(&body);
        if !whole {
            let held = arriving.as_ref().map_or(0, |a| a.num_permits());
            if holds > held {
                let more = budget
                    .try_take_arriving(holds - held)
                    .ok_or(ApiError::MemoryBudget)?;
                match arriving.as_mut() {
                    Some(a) => a.merge(more),
                    None => arriving = Some(more),
                }
            }
        }
        len = grown;
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            taken => {
                buf.reserve_exact(holds - buf.len());
                if let Some(f) = taken {
                    buf.extend_from_slice(&f);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    drop(arriving);
    charge.merge(
        budget
            .try_take(work_reserve(len))
            .ok_or(ApiError::MemoryBudget)?,
    );
    let bytes = match first {
        Some(f) => f,
        None => Bytes::from(buf),
    };
    Ok((bytes, charge))
}

/// A response that keeps its request's charge (and whatever else it is given to hold, like the
/// request slot) until its last byte is handed to the connection, in pieces of at most
/// [`HeldBody::CHUNK`] so that an HTTP/2 peer that stops reading leaves the rest here, counted.
pub struct HeldBody<H> {
    data: Bytes,
    held: Option<H>,
}

impl<H> HeldBody<H> {
    pub const CHUNK: usize = 16 * 1024;
}

impl<H: Send + Unpin + 'static> HeldBody<H> {
    pub fn new(data: Bytes, held: H) -> Self {
        HeldBody {
            data,
            held: Some(held),
        }
    }

    pub fn into_body(self) -> Body {
        Body::new(self)
    }
}

impl<H: Unpin> http_body::Body for HeldBody<H> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let n = self.data.len().min(HeldBody::<H>::CHUNK);
        if n == 0 {
            self.held = None;
            return Poll::Ready(None);
        }
        let chunk = self.data.split_to(n);
        if self.data.is_empty() {
            self.held = None;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_charged_until_its_response_is_sent() {
        let budget = Budget::new(1 << 20);
        let body = Body::from(vec![b'x'; 1000]);
        let (bytes, charge) = read(body, Some(1000), 4096, &budget, BodyRate::DEFAULT)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 1000);
        assert_eq!(budget.available(), (1 << 20) - 1000 - work_reserve(1000));
        let mut out = HeldBody::new(Bytes::from(vec![0u8; 40_000]), charge);
        let mut sizes = Vec::new();
        while let Some(frame) = out.frame().await {
            sizes.push(frame.unwrap().into_data().unwrap().len());
            if sizes.len() < 3 {
                assert!(
                    budget.available() < 1 << 20,
                    "released before the last chunk"
                );
            }
        }
        assert_eq!(sizes, [16384, 16384, 7232]);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn over_the_limit_is_refused_before_reading_and_over_the_budget_as_bytes_arrive() {
        let budget = Budget::new(100_000);
        let r = read(
            Body::empty(),
            Some(2 << 20),
            1 << 20,
            &budget,
            BodyRate::DEFAULT,
        )
        .await;
        assert!(matches!(r, Err(ApiError::TooLarge { .. })), "{r:?}");
        let r = read(
            Body::from(vec![b'x'; 150_000]),
            Some(150_000),
            1 << 20,
            &budget,
            BodyRate::DEFAULT,
        )
        .await;
        assert!(matches!(r, Err(ApiError::MemoryBudget)), "{r:?}");
        assert_eq!(budget.available(), 100_000);
    }

    /// A body that never comes.
    struct Never;
    impl http_body::Body for Never {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    /// A body sent all but its last byte.
    fn short_by_one(len: usize) -> Body {
        let first = futures::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from(vec![
            b' ';
            len - 1
        ])))]);
        Body::new(http_body_util::StreamBody::new(futures::StreamExt::chain(
            first,
            futures::stream::pending(),
        )))
    }

    #[tokio::test]
    async fn bodies_still_arriving_hold_at_most_half_the_budget() {
        // The reviewer's fill: 3 MiB bodies one byte short, then smaller ones for the gaps.
        let budget = Budget::new(32 << 20);
        let rate = BodyRate {
            grace: Duration::from_secs(5),
            bytes_per_second: 64 * 1024,
        };
        let mut held = Vec::new();
        for len in std::iter::repeat_n(3 << 20, 12).chain(std::iter::repeat_n(40 * 1024, 60)) {
            let b = budget.clone();
            held.push(tokio::spawn(async move {
                read(short_by_one(len), Some(len), 3 << 20, &b, rate).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(budget.available() >= 16 << 20, "{}", budget.available());
        // A complete review still fits, as do 20 at once.
        let reviews: Vec<_> = (0..20)
            .map(|_| {
                read(
                    Body::from(vec![b'x'; 20_000]),
                    Some(20_000),
                    3 << 20,
                    &budget,
                    rate,
                )
            })
            .collect();
        for r in futures::future::join_all(reviews).await {
            assert!(r.is_ok(), "{r:?}");
        }
        for h in held {
            h.abort();
        }
    }

    #[tokio::test]
    async fn a_body_sent_whole_that_never_ends_holds_the_arriving_share() {
        // HTTP/2: all of the declared length, then no END_STREAM.
        let budget = Budget::new(32 << 20);
        let rate = BodyRate {
            grace: Duration::from_secs(5),
            bytes_per_second: 64 * 1024,
        };
        let len = 3 << 20;
        let held: Vec<_> = (0..11)
            .map(|_| {
                let b = budget.clone();
                tokio::spawn(
                    async move { read(short_by_one(len + 1), Some(len), len, &b, rate).await },
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(budget.available() >= 16 << 20, "{}", budget.available());
        let refused = held.iter().filter(|h| h.is_finished()).count();
        assert!(refused >= 6, "{refused} refused at once");
        for h in held {
            h.abort();
        }
    }

    #[tokio::test]
    async fn a_declared_length_holds_nothing_until_its_bytes_arrive() {
        // Issue #29: five header-only requests declaring 3 MiB held the 32 MiB budget.
        let budget = Budget::new(32 << 20);
        let rate = BodyRate {
            grace: Duration::from_millis(300),
            bytes_per_second: 64 * 1024,
        };
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let b = budget.clone();
                tokio::spawn(async move {
                    read(Body::new(Never), Some(3 << 20), 3 << 20, &b, rate).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            budget.available() >= (32 << 20) - 20,
            "{}",
            budget.available()
        );
        let (bytes, charge) = read(
            Body::from(vec![b'x'; 1 << 20]),
            Some(1 << 20),
            3 << 20,
            &budget,
            rate,
        )
        .await
        .unwrap();
        assert_eq!(bytes.len(), 1 << 20);
        drop(charge);
        for w in waiting {
            let r = w.await.unwrap();
            assert!(matches!(r, Err(ApiError::SlowBody { .. })), "{r:?}");
        }
        assert_eq!(budget.available(), 32 << 20);
    }
}
