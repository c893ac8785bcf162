//! The decision log line: one per review, the line operators query. Written straight into the
//! [`LogBuffer`] as bytes when the log is JSON — the same keys, in the same order, as the
//! tracing event it replaces (`telemetry::JsonLine` of `tracing::info!`), without tracing's
//! per-field dispatch, `fmt` machinery and calendar arithmetic per line, which cost 10–17 % of a
//! whole request under load (BENCHMARKS.md §11). Text logs, and a process without a buffer (the
//! library in tests), go through `tracing` as before.

use crate::log_buffer::LogBuffer;
use crate::telemetry::json_str;
use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The tracing target the line has always carried (and that `RUST_LOG` filters on).
pub const TARGET: &str = "plx_store_webhook::server";

/// Where decision lines go: the JSON log's buffer, or `tracing` when `None`.
#[derive(Clone, Default)]
pub struct DecisionLog(Option<LogBuffer>);

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "DecisionLog(json)"
        } else {
            "DecisionLog(tracing)"
        })
    }
}

impl DecisionLog {
    /// Direct JSON lines into `buffer`.
    pub fn json(buffer: LogBuffer) -> Self {
        DecisionLog(Some(buffer))
    }

    /// Through `tracing` (text logs, tests).
    pub fn tracing() -> Self {
        DecisionLog(None)
    }

    pub fn write(&self, d: &Decision<'_>) {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        match &self.0 {
            Some(buffer) => LINE.with(|line| {
                let mut line = line.borrow_mut();
                line.clear();
                d.write_json(&mut line, SystemTime::now());
                let _ = buffer.line().write_all(&line);
            }),
            None => d.trace(),
        }
    }
}

thread_local! {
    /// Each thread's line under construction, reused (a line is ≈ 460 bytes).
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
    /// The timestamp up to the second (`2026-12-02T14:47:07.`) and the second it is for.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

/// One decision's fields, as the line has always named them.
pub struct Decision<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub operation: &'a str,
    pub dry_run: bool,
    pub api_version: &'a str,
    pub store: &'a str,
    pub rule: &'a str,
    pub identity: &'a str,
    pub config_hash: &'a str,
    /// The routed decision's fingerprint (the pod's `plx-store-webhook.dev/decision`).
    pub fingerprint: &'a str,
    pub decision: &'a str,
    pub reason: &'a str,
    pub warnings: &'a [String],
    pub patch_ops: usize,
    pub duration_us: u64,
}

impl<'a> Decision<'a> {
    /// The line for one review and what the engine decided on it.
    pub fn of(
        review: &'a plx_store_core::admission::Review<'_>,
        outcome: &'a plx_store_core::Outcome,
        config_hash: &'a str,
        duration_us: u64,
    ) -> Self {
        use plx_store_core::Decision as D;
        Decision {
            uid: &review.uid,
            namespace: &review.namespace,
            pod: &outcome.pod_name,
            operation: &review.operation,
            dry_run: review.dry_run,
            api_version: review.api_version.label(),
            store: &outcome.store,
            rule: &outcome.rule,
            identity: &outcome.identity,
            config_hash,
            fingerprint: &outcome.fingerprint,
            decision: outcome.decision.label(),
            reason: match &outcome.decision {
                D::Ignored(r) => r.as_str(),
                D::Denied(m) => m.as_str(),
                _ => "",
            },
            warnings: &outcome.warnings,
            patch_ops: outcome.patch.len(),
            duration_us,
        }
    }
}

impl Decision<'_> {
    fn trace(&self) {
        tracing::info!(
            target: TARGET,
            uid = self.uid,
            namespace = self.namespace,
            pod = self.pod,
            operation = self.operation,
            dry_run = self.dry_run,
            api_version = self.api_version,
            store = self.store,
            rule = self.rule,
            identity = self.identity,
            config_hash = self.config_hash,
            fingerprint = self.fingerprint,
            decision = self.decision,
            reason = self.reason,
            warnings = ?self.warnings,
            patch_ops = self.patch_ops,
            duration_us = self.duration_us,
            "admission decision"
        );
    }

    /// The line `JsonLine` would write for [`Decision::trace`]'s event at `now`.
    pub fn write_json(&self, out: &mut Vec<u8>, now: SystemTime) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out, now);
        out.extend_from_slice(
            b"\",\"level\":\"INFO\",\"target\":\"plx_store_webhook::server\",\"message\":\"admission decision\"",
        );
        for (key, value) in [
            ("uid", self.uid),
            ("namespace", self.namespace),
            ("pod", self.pod),
            ("operation", self.operation),
        ] {
            field_str(out, key, value);
        }
        out.extend_from_slice(if self.dry_run {
            b",\"dry_run\":true"
        } else {
            b",\"dry_run\":false"
        });
        for (key, value) in [
            ("api_version", self.api_version),
            ("store", self.store),
            ("rule", self.rule),
            ("identity", self.identity),
            ("config_hash", self.config_hash),
            ("fingerprint", self.fingerprint),
            ("decision", self.decision),
            ("reason", self.reason),
        ] {
            field_str(out, key, value);
        }
        if self.warnings.is_empty() {
            out.extend_from_slice(b",\"warnings\":\"[]\"");
        } else {
            // Rare: the Debug form of the list, as the tracing field wrote it.
            field_str(out, "warnings", &format!("{:?}", self.warnings));
        }
        out.extend_from_slice(b",\"patch_ops\":");
        number(out, self.patch_ops as u64);
        out.extend_from_slice(b",\"duration_us\":");
        number(out, self.duration_us);
        out.extend_from_slice(b"}\n");
    }
}

fn field_str(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(b',');
    json_str(out, key);
    out.push(b':');
    json_str(out, value);
}

fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber's `SystemTime` writes it; the part
/// up to the second is formatted once a second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs {
            let mut prefix = Vec::with_capacity(20);
            civil(&mut prefix, secs);
            cache.1.copy_from_slice(&prefix);
            cache.0 = secs;
        }
        out.extend_from_slice(&cache.1);
    });
    let micros = since.subsec_micros();
    let mut frac = [b'0'; 6];
    let mut m = micros;
    for d in frac.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.extend_from_slice(&frac);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix time (days to civil date: Howard Hinnant's algorithm).
fn civil(out: &mut Vec<u8>, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let two = |out: &mut Vec<u8>, v: u64| {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
    };
    let year = year.clamp(0, 9999) as u64;
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, month as u64);
    out.push(b'-');
    two(out, day as u64);
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.push(b'.');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn traced(d: &Decision<'_>) -> Value {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .event_format(crate::telemetry::JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, || d.trace());
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        serde_json::from_str(text.trim_end()).unwrap()
    }

    /// The direct line is the tracing line: same keys in the same order, same values, for plain
    /// fields, fields to escape and warnings; only the timestamp's instant differs.
    #[test]
    fn the_direct_line_is_the_tracing_line() {
        let warnings = ["container \"a\": x\ny".to_string(), "é \u{1}".to_string()];
        for (nasty, warnings) in [("plain", &[][..]), ("q\"uo\\te\n\t\u{7}é", &warnings[..])] {
            let d = Decision {
                uid: nasty,
                namespace: "team-a",
                pod: "plx-operation-1-",
                operation: "CREATE",
                dry_run: true,
                api_version: "v1",
                store: "gcs",
                rule: nasty,
                identity: "",
                config_hash: "abc",
                fingerprint: "def",
                decision: "denied",
                reason: nasty,
                warnings,
                patch_ops: 0,
                duration_us: 1_234_567,
            };
            let mut line = Vec::new();
            d.write_json(&mut line, SystemTime::now());
            assert_eq!(line.last(), Some(&b'\n'));
            let direct: Value = serde_json::from_slice(&line).unwrap();
            let mut want = traced(&d);
            want["timestamp"] = direct["timestamp"].clone();
            assert_eq!(direct, want);
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(&direct), keys(&want), "key order");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        for (secs, micros, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
            (1_796_222_827, 525_867, "2026-12-02T14:47:07.525867Z"),
            (4_102_444_799, 999_999, "2099-12-31T23:59:59.999999Z"),
        ] {
            let t = UNIX_EPOCH + std::time::Duration::new(secs, micros * 1000);
            let mut out = Vec::new();
            timestamp(&mut out, t);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
