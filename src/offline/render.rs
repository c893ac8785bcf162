//! Printing: tables for people, JSON and YAML for programs, the same shapes everywhere.

use super::objects::Doc;
use super::ObjectResult;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// Pretty JSON with a final newline.
pub fn json<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}

/// YAML.
pub fn yaml<T: Serialize>(v: &T) -> anyhow::Result<String> {
    serde_saphyr::to_string(v).map_err(|e| anyhow::anyhow!("cannot write YAML: {e}"))
}

/// Objects as YAML documents, `---` between them.
pub fn objects_yaml(objects: &[Doc]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (i, d) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&yaml(&d.value)?);
    }
    Ok(out)
}

/// Objects as JSON: one object as itself, several as a `List` (as kubectl prints them).
pub fn objects_json(objects: &[Doc]) -> anyhow::Result<String> {
    match objects {
        [one] => json(&one.value),
        many => json(&serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": many.iter().map(|d| &d.value).collect::<Vec<&Value>>(),
        })),
    }
}

/// Objects in the format they were written in (the first one's, when mixed).
pub fn objects_as_written(objects: &[Doc]) -> anyhow::Result<String> {
    if objects.first().is_some_and(|d| d.yaml) {
        objects_yaml(objects)
    } else {
        objects_json(objects)
    }
}

/// One line per object: what was decided and why.
pub fn table(results: &[ObjectResult]) -> String {
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|r| {
            let why = if r.message.is_empty() {
                r.warnings
                    .iter()
                    .map(|w| format!("[{}] {}", w.code, w.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            } else if r.code.is_empty() {
                r.message.clone()
            } else {
                format!("[{}] {}", r.code, r.message)
            };
            [
                r.label(),
                r.namespace.clone(),
                r.decision.to_string(),
                r.store.clone(),
                r.rule.clone(),
                why,
            ]
        })
        .collect();
    columns(
        &[
            "OBJECT",
            "NAMESPACE",
            "DECISION",
            "STORE",
            "RULE",
            "MESSAGE",
        ],
        &rows,
    )
}

/// Left-aligned columns, two spaces apart, the last one unpadded.
pub fn columns<const N: usize>(titles: &[&str; N], rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for (i, t) in titles.iter().enumerate() {
        width[i] = rows
            .iter()
            .map(|r| r[i].chars().count())
            .chain([t.len()])
            .max()
            .unwrap_or(0);
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:w$}  ", w = width[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(titles.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}
