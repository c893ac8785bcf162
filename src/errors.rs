//! How the command line reports an error: once (a cause already contained in the message above
//! it is not repeated), prefixed `error:`, or as one JSON line when logs are JSON.

use crate::config::{ConfigError, ConfigProblem};
use std::io::Write as _;

/// The error and its causes, each said once.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether the error is a closed stdout (`… | head`): the reader has what it wanted.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error as one JSON log line (the shape of the server's own lines), with the file, line,
/// column and section of a config error when known.
pub fn json_line(e: &anyhow::Error) -> String {
    // The first line is the message; a config error's source lines go in `snippet`.
    let text = message(e);
    let (first, snippet) = text.split_once('\n').unwrap_or((&text, ""));
    let mut line = serde_json::json!({
        "timestamp": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "level": "ERROR",
        "target": "plx_store_webhook",
        "message": first,
    });
    if !snippet.is_empty() {
        line["snippet"] = snippet.into();
    }
    if let Some(c) = e.chain().find_map(|c| c.downcast_ref::<ConfigError>()) {
        line["config"] = c.source_name.clone().into();
        if let ConfigProblem::Syntax(s) = &c.problem {
            line["file"] = s.file.clone().into();
            line["line"] = s.line.into();
            line["column"] = s.column.into();
            line["path"] = s.path.clone().into();
        }
    }
    line.to_string()
}

/// Print `e` on stderr, as text or as a JSON line.
pub fn report(e: &anyhow::Error, json: bool) {
    let text = if json {
        json_line(e)
    } else {
        format!("error: {}", message(e))
    };
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
