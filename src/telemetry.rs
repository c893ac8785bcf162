//! Logging setup: `RUST_LOG`-style filtering, JSON or text lines.
//!
//! The JSON lines come from [`JsonLine`], a formatter that writes each event straight into the
//! output buffer: tracing-subscriber's own JSON formatter builds every field through serde and a
//! `format!` per Display field, which cost ≈ 10 % of a whole admission request under load.

use crate::log_buffer::{self, LogBuffer};
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber once (the binary calls this; the library never does). Lines
/// go to stderr through a [`LogBuffer`], off the request's path; the caller stops it at exit so
/// the last lines are written. A panic message is preceded by every line logged before it.
pub fn init(json: bool) -> LogBuffer {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = match LogBuffer::start(Box::new(std::io::stderr()), log_buffer::FLUSH_INTERVAL) {
        Ok(logs) => logs,
        // No thread for the flusher: write each line at once, as before.
        Err(_) => LogBuffer::unbuffered(Box::new(std::io::stderr())),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(logs.clone())
        .with_ansi(ansi);
    let _ = if json {
        builder.event_format(JsonLine).try_init()
    } else {
        builder.try_init()
    };
    let on_panic = logs.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        on_panic.flush_if_idle();
        previous(info);
    }));
    logs
}

/// One JSON object per event, fields flattened next to `timestamp`, `level`, `target` and
/// `message` (the shape of tracing-subscriber's `json().flatten_event(true)`, minus span lists:
/// the webhook logs no spans).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_event(&mut w, event)
    }
}

fn write_event(w: &mut Writer<'_>, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    w.write_str("{\"timestamp\":\"")?;
    SystemTime.format_time(w)?;
    w.write_str("\",\"level\":\"")?;
    w.write_str(meta.level().as_str())?;
    w.write_str("\",\"target\":")?;
    string(w, meta.target())?;
    let mut fields = Fields { w, result: Ok(()) };
    event.record(&mut fields);
    fields.result?;
    w.write_str("}\n")
}

/// Writes each field as `,"name":value`, escaping on the fly (no per-field allocation).
struct Fields<'w, 'b> {
    w: &'w mut Writer<'b>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.w.write_str(",")?;
                string(self.w, field.name())?;
                self.w.write_str(":")?;
                value(self.w)
            })();
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| string(w, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, |w| write!(w, "{value}"));
        } else {
            self.field(field, |w| quoted(w, format_args!("{value}")));
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |w| quoted(w, format_args!("{value}")));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| quoted(w, format_args!("{value:?}")));
    }
}

/// A JSON string literal.
fn string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_str("\"")?;
    Escaped(w).write_str(s)?;
    w.write_str("\"")
}

/// Formatted text as a JSON string literal, escaped as it is formatted.
fn quoted(w: &mut Writer<'_>, args: fmt::Arguments<'_>) -> fmt::Result {
    w.write_str("\"")?;
    Escaped(w).write_fmt(args)?;
    w.write_str("\"")
}

/// Escapes what it is given as the inside of a JSON string.
struct Escaped<'w, 'b>(&'w mut Writer<'b>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_json(s, |piece| self.0.write_str(piece))
    }
}

/// Hands `out` the pieces of `s` escaped as the inside of a JSON string (RFC 8259 §7): runs of
/// plain text as they are, and each quote, backslash or control character as its escape.
pub fn escape_json<E>(s: &str, mut out: impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let mut unicode = [b'\\', b'u', b'0', b'0', 0, 0];
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => {
                unicode[4] = HEX[usize::from(b >> 4)];
                unicode[5] = HEX[usize::from(b & 15)];
                std::str::from_utf8(&unicode).unwrap_or_default()
            }
            _ => continue,
        };
        out(&s[start..i])?;
        out(esc)?;
        start = i + 1;
    }
    out(&s[start..])
}

/// `s` as a JSON string literal, appended to `out`.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let _ = escape_json(s, |piece| {
        out.extend_from_slice(piece.as_bytes());
        Ok::<(), std::convert::Infallible>(())
    });
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn every_field_kind_is_valid_json_with_its_value() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} unicode é ✓ end";
        let warnings = vec![nasty.to_string(), "second".to_string()];
        let err = io::Error::other("disk \"full\"");
        let got = lines(|| {
            tracing::info!(
                uid = nasty,
                shown = %nasty,
                warnings = ?warnings,
                dry_run = true,
                ops = 7u64,
                delta = -3i64,
                ratio = 0.5f64,
                inf = f64::INFINITY,
                error = &err as &(dyn std::error::Error + 'static),
                "admission {} decision",
                "x"
            );
            tracing::warn!("plain");
        });
        assert_eq!(got.len(), 2);
        let l = &got[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["target"], module_path!());
        assert_eq!(l["message"], "admission x decision");
        assert_eq!(l["uid"], nasty);
        assert_eq!(l["shown"], nasty);
        assert_eq!(l["warnings"], format!("{warnings:?}"));
        assert_eq!(l["dry_run"], true);
        assert_eq!(l["ops"], 7);
        assert_eq!(l["delta"], -3);
        assert_eq!(l["ratio"], 0.5);
        assert_eq!(l["inf"], "inf");
        assert_eq!(l["error"], "disk \"full\"");
        let ts = l["timestamp"].as_str().unwrap();
        assert!(
            ts.len() >= 20 && ts.ends_with('Z') && &ts[4..5] == "-",
            "{ts}"
        );
        assert_eq!(got[1]["level"], "WARN");
        assert_eq!(got[1]["message"], "plain");
    }

    #[test]
    fn every_control_character_is_escaped() {
        let all: String = (0u8..0x20).map(char::from).collect();
        let got = lines(|| tracing::info!(s = all.as_str(), d = ?all));
        assert_eq!(got[0]["s"], all);
        assert_eq!(got[0]["d"], format!("{all:?}"));
    }
}
