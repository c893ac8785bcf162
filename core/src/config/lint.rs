//! `check-config`'s lints: configs that load but do not do what their author meant. Errors are
//! mistakes (a run would get the wrong thing); notes are dead weight (a rule that can never
//! match). The config still loads: the server keeps serving it.

use super::{Config, Rule, Store, StoreKind};
use crate::codes;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Note,
}

/// One finding (the shape of `check-config -o json`'s `findings`).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    /// Where in the config: `injection.rules[1].match.namespaces`.
    pub path: String,
    pub message: String,
}

/// Every finding for `config`, in config order.
pub fn lint(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    bucket(&config.store, "artifactsStore", &mut out);
    let mut seen = vec![config.store.name.clone()];
    let others = config.mandated.iter().chain(
        config
            .rules
            .iter()
            .flat_map(|r| std::iter::once(&r.store).chain(&r.connections)),
    );
    for s in others {
        if !seen.contains(&s.name) {
            seen.push(s.name.clone());
            bucket(s, &format!("connections[{}]", s.name), &mut out);
        }
    }
    for (i, r) in config.rules.iter().enumerate() {
        for field in &r.empty_lists {
            out.push(Finding {
                severity: Severity::Error,
                code: codes::LINT_EMPTY_LIST,
                path: format!("injection.rules[{i}].match.{field}"),
                message: format!(
                    "rule {:?}: an empty `{field}` list matches every run; leave the field out \
                     to mean any, or list what it should match",
                    r.name
                ),
            });
        }
        if let Some(earlier) = config.rules[..i].iter().find(|e| covers(e, r)) {
            out.push(Finding {
                severity: Severity::Note,
                code: codes::LINT_SHADOWED,
                path: format!("injection.rules[{i}]"),
                message: format!(
                    "rule {:?} can never match: the earlier rule {:?} catches all its runs \
                     (first match wins); move it above {:?} or narrow {:?}",
                    r.name, earlier.name, earlier.name, earlier.name
                ),
            });
        }
    }
    out
}

/// The bucket schemes each store kind takes.
fn schemes(kind: StoreKind) -> &'static [&'static str] {
    match kind {
        StoreKind::Gcs => &["gs"],
        StoreKind::S3 => &["s3", "s3a"],
        StoreKind::Wasb => &["wasb", "wasbs", "abfs", "abfss", "az"],
        StoreKind::VolumeClaim | StoreKind::HostPath => &[],
    }
}

fn bucket(s: &Store, at: &str, out: &mut Vec<Finding>) {
    let Some(b) = &s.bucket else { return };
    let Some((scheme, _)) = b.split_once("://") else {
        return;
    };
    let ok = schemes(s.kind);
    if !ok.is_empty() && !ok.contains(&scheme) {
        out.push(Finding {
            severity: Severity::Error,
            code: codes::LINT_BUCKET_SCHEME,
            path: format!("{at}.schema.bucket"),
            message: format!(
                "store {:?} is a `{}` store but its bucket {b:?} is a `{scheme}://` URL; \
                 expected {}",
                s.name,
                s.kind.as_str(),
                ok.iter()
                    .map(|x| format!("{x}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        });
    }
}

/// Whether every run `later` matches is matched by `earlier` (judged on the patterns: an empty
/// list, `*`, or the same pattern).
fn covers(earlier: &Rule, later: &Rule) -> bool {
    let field = |e: &[crate::glob::Glob], l: &[crate::glob::Glob]| {
        e.is_empty()
            || (!l.is_empty()
                && l.iter().all(|lg| {
                    e.iter().any(|eg| {
                        eg.as_str() == "*"
                            || eg.as_str() == lg.as_str()
                            || (!lg.as_str().contains(['*', '?', '[']) && eg.matches(lg.as_str()))
                    })
                }))
    };
    let (e, l) = (&earlier.matcher, &later.matcher);
    field(&e.namespaces, &l.namespaces)
        && field(&e.owners, &l.owners)
        && field(&e.projects, &l.projects)
        && field(&e.components, &l.components)
}
