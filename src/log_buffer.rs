//! Where log lines go: gathered in memory and written out by a background thread at most
//! [`FLUSH_INTERVAL`] after the first line of a batch, so an admission request never waits on a
//! `write(2)` to stderr, nor on the container runtime reading the other end of that pipe (each
//! write there also wakes the reader on another core). The thread sleeps until a line arrives:
//! an idle replica costs no CPU here. Nothing is dropped: past [`BACKLOG_LIMIT`] the writing
//! thread writes the backlog out itself (the back-pressure a plain blocking writer applies), and
//! [`LogBuffer::flush`] runs at shutdown and before a panic message. A process killed outright
//! (SIGKILL, OOM) loses at most one interval of lines.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in memory before it is written (counted from the first line of a
/// batch, so one wakeup writes everything logged in that time).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Backlog size at which the thread logging writes it out itself instead of waiting.
pub const BACKLOG_LIMIT: usize = 1 << 20;

/// A cloneable handle on the buffer; hand it to tracing-subscriber as its writer.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Held while bytes go out, so lines leave in the order they were logged.
    out: Mutex<Box<dyn Write + Send>>,
    /// Signalled when a batch starts (the first line into an empty buffer) and at stop.
    wake: Condvar,
    /// No flushing thread: each line is written as it comes.
    immediate: bool,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    stop: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves plain bytes behind: keep using them.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LogBuffer {
    /// A buffer writing to `out`, flushed by its own thread every `interval`.
    pub fn start(out: Box<dyn Write + Send>, interval: Duration) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(64 * 1024),
                stop: false,
            }),
            out: Mutex::new(out),
            wake: Condvar::new(),
            immediate: false,
        });
        let flusher = Arc::clone(&shared);
        thread::Builder::new()
            .name("plx-log-flush".into())
            .spawn(move || flusher.run(interval))?;
        Ok(LogBuffer { shared })
    }

    /// A buffer without a flushing thread: every line is written at once.
    pub fn unbuffered(out: Box<dyn Write + Send>) -> Self {
        LogBuffer {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending {
                    bytes: Vec::new(),
                    stop: true,
                }),
                out: Mutex::new(out),
                wake: Condvar::new(),
                immediate: true,
            }),
        }
    }

    /// A writer for one line (what tracing-subscriber gets per event, for callers that format
    /// their own lines).
    pub fn line(&self) -> Line<'_> {
        Line(&self.shared)
    }

    /// Write everything logged so far (shutdown, panic).
    pub fn flush(&self) {
        self.shared.write_out();
    }

    /// Like [`flush`](Self::flush), but skipped when the output is busy: for the panic hook,
    /// which may run on a thread that is itself in the middle of writing.
    pub fn flush_if_idle(&self) {
        if let Ok(mut out) = self.shared.out.try_lock() {
            let batch = std::mem::take(&mut lock(&self.shared.pending).bytes);
            let _ = out.write_all(&batch).and_then(|()| out.flush());
        }
    }

    /// Stop the flushing thread after a last flush.
    pub fn stop(&self) {
        lock(&self.shared.pending).stop = true;
        self.shared.wake.notify_all();
        self.flush();
    }
}

impl Shared {
    /// The flushing thread: asleep until a batch starts, then writes it `interval` later.
    fn run(&self, interval: Duration) {
        let mut pending = lock(&self.pending);
        loop {
            while pending.bytes.is_empty() && !pending.stop {
                pending = self.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
            if pending.stop {
                return;
            }
            drop(pending);
            thread::sleep(interval);
            self.write_out();
            pending = lock(&self.pending);
        }
    }

    fn write_out(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut lock(&self.pending).bytes);
        if batch.is_empty() {
            return;
        }
        // Like a plain stderr writer, a failing stderr does not stop the webhook.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        // Hand the allocation back so the next interval does not grow a new one.
        let mut pending = lock(&self.pending);
        if pending.bytes.is_empty() && batch.capacity() <= 4 * BACKLOG_LIMIT {
            let mut batch = batch;
            batch.clear();
            pending.bytes = batch;
        }
    }
}

/// One event's writer: appends to the buffer.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let (backlog, first) = {
            let mut pending = lock(&self.0.pending);
            let first = pending.bytes.is_empty();
            pending.bytes.extend_from_slice(bytes);
            (pending.bytes.len(), first)
        };
        if first && !self.0.immediate {
            self.0.wake.notify_one();
        }
        if backlog > BACKLOG_LIMIT || self.0.immediate {
            self.0.write_out();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A sink that records what it was given and can be made slow.
    #[derive(Clone, Default)]
    struct Sink {
        got: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        delay: Duration,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            thread::sleep(self.delay);
            *lock(&self.writes) += 1;
            lock(&self.got).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(buf: &LogBuffer, text: &str) {
        buf.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_arrive_in_order_in_few_writes_without_an_explicit_flush() {
        let sink = Sink::default();
        let buf = LogBuffer::start(Box::new(sink.clone()), Duration::from_millis(10)).unwrap();
        for i in 0..1000 {
            line(&buf, &format!("line {i}\n"));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let want: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        while lock(&sink.got).len() < want.len() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(String::from_utf8(lock(&sink.got).clone()).unwrap(), want);
        // Batched: far fewer writes than lines (one per line without the buffer).
        assert!(*lock(&sink.writes) < 100, "{} writes", lock(&sink.writes));
        buf.stop();
    }

    #[test]
    fn a_backlog_past_the_limit_is_written_by_the_logging_thread_and_nothing_is_lost() {
        // A flusher that never runs on its own in this test, and a slow sink.
        let sink = Sink {
            delay: Duration::from_millis(1),
            ..Sink::default()
        };
        let buf = LogBuffer::start(Box::new(sink.clone()), Duration::from_secs(3600)).unwrap();
        let text = "x".repeat(1000) + "\n";
        let n = 3 * BACKLOG_LIMIT / text.len();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (buf, text) = (buf.clone(), text.clone());
                thread::spawn(move || (0..n).for_each(|_| line(&buf, &text)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        // Written while logging, before any flush: memory stayed bounded.
        assert!(lock(&sink.got).len() >= 4 * n * text.len() - BACKLOG_LIMIT - text.len());
        buf.stop();
        assert_eq!(lock(&sink.got).len(), 4 * n * text.len());
        assert!(lock(&sink.got)
            .split(|b| *b == b'\n')
            .all(|l| l.is_empty() || l.len() == 1000));
    }

    #[test]
    fn the_panic_path_flush_never_waits_on_a_busy_output() {
        let sink = Sink::default();
        let buf = LogBuffer::start(Box::new(sink.clone()), Duration::from_secs(3600)).unwrap();
        line(&buf, "before the panic\n");
        {
            let _busy = lock(&buf.shared.out);
            buf.flush_if_idle(); // would deadlock with `flush` while this thread holds the output
        }
        assert!(lock(&sink.got).is_empty());
        buf.flush_if_idle();
        assert_eq!(lock(&sink.got).as_slice(), b"before the panic\n");
        buf.stop();
    }

    #[test]
    fn stop_writes_what_is_pending() {
        let sink = Sink::default();
        let buf = LogBuffer::start(Box::new(sink.clone()), Duration::from_secs(3600)).unwrap();
        line(&buf, "last words\n");
        buf.stop();
        assert_eq!(lock(&sink.got).as_slice(), b"last words\n");
    }
}
