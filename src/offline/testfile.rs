//! `test`: declarative expectations, as `kyverno test` has them. A test file
//! (`plx-store-test.yaml`, or any `*.plx-store-test.yaml`) names a config, resources, and for
//! each object the answer expected; every expectation is checked against the same answers
//! `mutate` and `validate` give.
//!
//! ```yaml
//! name: team routing
//! config: ../teams.yaml           # relative to this file; `--config` overrides it
//! settings: settings.yaml         # optional
//! resources: [pods/, job.yaml]    # files or directories, relative to this file
//! results:
//!   - object: Job/train           # Kind/name as in `mutate`'s output
//!     replica: Worker             # optional: a training job's replica type
//!     namespace: team-vision      # optional
//!     mode: mutate                # mutate (default) or validate
//!     decision: mutated           # mutated, unchanged, allowed, denied, not-served, audited, skipped
//!     store: vision-s3
//!     rule: vision
//!     identity: team-vision-runs
//!     warnings: ["PSW2001"]       # each text is contained in some warning (code or message)
//!     message: "onConflict"       # contained in the denial / reason
//! ```

use super::objects::{self, Input};
use super::{evaluate, render, Mode, ObjectResult};
use crate::config::Source;
use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub settings: Option<String>,
    pub resources: Vec<String>,
    pub results: Vec<Expect>,
}

/// One expectation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub object: String,
    #[serde(default)]
    pub replica: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub decision: Option<String>,
    #[serde(default)]
    pub store: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The outcome of one expectation (the JSON shape of `test -o json`'s `tests`).
#[derive(Debug, Serialize)]
pub struct Checked {
    pub file: String,
    pub test: String,
    pub object: String,
    pub mode: &'static str,
    /// `pass` or `fail`.
    pub result: &'static str,
    pub mismatches: Vec<String>,
    /// The answers the expectation was checked against.
    pub actual: Vec<ObjectResult>,
}

/// Every test's outcome (`test -o json`).
#[derive(Debug, Serialize, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub tests: Vec<Checked>,
}

impl Summary {
    pub fn exit_code(&self) -> u8 {
        if self.failed > 0 {
            2
        } else {
            0
        }
    }
}

/// Whether `path` is a test file by its name.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "plx-store-test.yaml" || n.ends_with(".plx-store-test.yaml"))
}

/// The test files `paths` name (a directory: every test file below it).
pub fn find(paths: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            let mut all = Vec::new();
            objects::walk(path, &mut all)?;
            out.extend(all.into_iter().filter(|f| is_test_file(f)));
        } else {
            out.push(path.to_path_buf());
        }
    }
    if out.is_empty() {
        anyhow::bail!(
            "no test file (plx-store-test.yaml or *.plx-store-test.yaml) below {}",
            paths.join(", ")
        );
    }
    Ok(out)
}

/// Run one test file. `config`: the command line's config, over the file's own.
pub fn run_file(path: &Path, config: Option<&Source>, summary: &mut Summary) -> anyhow::Result<()> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    let file: TestFile = serde_saphyr::from_str(&text).map_err(|e| {
        let text = e.render_with_options(serde_saphyr::render_options! {
            source_name: Some(name.as_str()),
        });
        anyhow::anyhow!(
            "test file {name}: {}",
            text.strip_prefix("error: ").unwrap_or(&text)
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let source = match (config, &file.config) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) => Source::new(dir.join(c), file.settings.as_ref().map(|s| dir.join(s))),
        (None, None) => anyhow::bail!("{name}: no `config:` and no --config"),
    };
    let plan = Plan::from_config(&source.load()?);
    let resources: Vec<String> = file
        .resources
        .iter()
        .map(|r| dir.join(r).display().to_string())
        .collect();
    let inputs: Vec<Input> = objects::read_inputs(&resources)?;
    let mut docs = Vec::new();
    for i in &inputs {
        docs.extend(objects::documents(i)?);
    }
    let mut answers: [Option<Vec<ObjectResult>>; 2] = [None, None];
    for e in &file.results {
        let mode = match e.mode.as_deref() {
            None | Some("mutate") => Mode::Mutate,
            Some("validate") => Mode::Validate,
            Some(m) => anyhow::bail!(
                "{name}: {}: mode {m:?}; expected mutate or validate",
                e.object
            ),
        };
        let slot = &mut answers[usize::from(mode == Mode::Validate)];
        let all =
            slot.get_or_insert_with(|| evaluate(docs.clone(), &plan, mode, None, false).results);
        let actual: Vec<ObjectResult> = all
            .iter()
            .filter(|r| {
                same_object(&e.object, r)
                    && e.replica.as_ref().is_none_or(|x| *x == r.replica)
                    && e.namespace.as_ref().is_none_or(|x| *x == r.namespace)
            })
            .cloned()
            .collect();
        let mut mismatches = Vec::new();
        if actual.is_empty() {
            mismatches.push(format!("no object {} in the resources", e.object));
        }
        for a in &actual {
            mismatches.extend(mismatch(e, a));
        }
        let pass = mismatches.is_empty();
        if pass {
            summary.passed += 1;
        } else {
            summary.failed += 1;
        }
        summary.tests.push(Checked {
            file: name.clone(),
            test: file.name.clone(),
            object: match &e.replica {
                Some(r) => format!("{} ({r})", e.object),
                None => e.object.clone(),
            },
            mode: if mode == Mode::Mutate {
                "mutate"
            } else {
                "validate"
            },
            result: if pass { "pass" } else { "fail" },
            mismatches,
            actual,
        });
    }
    Ok(())
}

fn same_object(want: &str, r: &ObjectResult) -> bool {
    match want.split_once('/') {
        Some((k, n)) => k.eq_ignore_ascii_case(&r.kind) && n == r.name,
        None => want == r.name,
    }
}

fn mismatch(e: &Expect, a: &ObjectResult) -> Vec<String> {
    let mut out = Vec::new();
    let who = a.label();
    if let Some(d) = &e.decision {
        let d = d.trim().replace(' ', "-");
        if d != a.decision {
            out.push(format!("{who}: decision {} (expected {d})", a.decision));
        }
    }
    for (field, want, got) in [
        ("store", &e.store, &a.store),
        ("rule", &e.rule, &a.rule),
        ("identity", &e.identity, &a.identity),
    ] {
        if let Some(w) = want {
            if w != got {
                out.push(format!("{who}: {field} {got:?} (expected {w:?})"));
            }
        }
    }
    for w in &e.warnings {
        if !a
            .warnings
            .iter()
            .any(|f| f.code == w || f.message.contains(w.as_str()))
        {
            out.push(format!("{who}: no warning containing {w:?}"));
        }
    }
    if let Some(m) = &e.message {
        if !a.message.contains(m.as_str()) && a.code != m {
            out.push(format!(
                "{who}: message {:?} does not contain {m:?}",
                a.message
            ));
        }
    }
    out
}

/// The summary as a table.
pub fn table(s: &Summary) -> String {
    let rows: Vec<[String; 5]> = s
        .tests
        .iter()
        .map(|t| {
            [
                t.file.clone(),
                t.object.clone(),
                t.mode.to_string(),
                t.result.to_uppercase(),
                t.mismatches.join("; "),
            ]
        })
        .collect();
    let mut out = render::columns(&["FILE", "OBJECT", "MODE", "RESULT", "DETAILS"], &rows);
    let _ = writeln!(out, "\n{} passed, {} failed", s.passed, s.failed);
    out
}

/// The summary as JUnit XML: one test suite per file, one test case per expectation.
pub fn junit(s: &Summary) -> String {
    let mut files: Vec<&str> = s.tests.iter().map(|t| t.file.as_str()).collect();
    files.dedup();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"plx-store-webhook\" tests=\"{}\" failures=\"{}\">",
        s.tests.len(),
        s.failed
    );
    for f in files {
        let cases: Vec<&Checked> = s.tests.iter().filter(|t| t.file == f).collect();
        let failures = cases.iter().filter(|t| t.result == "fail").count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
            xml(f),
            cases.len()
        );
        for t in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{} {}\"",
                xml(f),
                t.mode,
                xml(&t.object)
            );
            if t.result == "pass" {
                out.push_str("/>\n");
            } else {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\"/>\n    </testcase>",
                    xml(&t.mismatches.join("; "))
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}
