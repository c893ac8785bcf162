//! The docs book holds true: its generated reference (metrics from the registry, the decision
//! log line from the writer, the alerts from the rule files) equals what the code and the
//! manifests say; every relative link and `#anchor` in docs/ and README.md resolves; every
//! alert's `runbook_url` names a section of docs/runbook.md; and every number the docs quote
//! from the manifests (replicas, memory and CPU, timeouts, failure policy, disruption budget,
//! spread) is the number in the rendered manifests.
//!
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites the generated sections after a deliberate change.

mod common;

use common::root;
use plx_store_webhook::decision_log::FIELDS;
use plx_store_webhook::metrics::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the alerts' `runbook_url`s point: the published book's runbook page.
const RUNBOOK_BASE: &str = "https://plx-store-webhook.example.invalid/book/runbook.html";
const RULE_FILES: &[&str] = &[
    "manifests/monitoring/alerts.rules.yml",
    "manifests/monitoring-apiserver/alerts.rules.yml",
];

// ------------------------------------------------------------------ generated reference

/// Every metric the registry exports: (name as queried, type, label names, help).
fn metrics_table() -> String {
    let m = Metrics::with_fleet();
    // Touch every family once so its label names appear in the exposition.
    let _ = m.requests.get_or_create(&RequestLabels {
        result: "x",
        api_version: "x",
    });
    for f in [&m.skips, &m.denials] {
        let _ = f.get_or_create(&ReasonLabels { reason: "x" });
    }
    let _ = m.conflicts.get_or_create(&KindLabels { kind: "x" });
    for f in [
        &m.config_reloads,
        &m.cert_reloads,
        &m.identities,
        &m.validations,
    ] {
        let _ = f.get_or_create(&ResultLabels { result: "x" });
    }
    m.set_config("x", "x");
    let _ = m
        .connections_open
        .get_or_create(&ListenerLabels { listener: "x" });
    m.connection_refused("x");
    m.connection_closed("x", "x");
    m.set_reload_result("x", true);
    let fleet = m.fleet.as_ref().unwrap();
    let _ = fleet.run_pods.get_or_create(&StateLabels { state: "x" });
    let _ = fleet.missing_references.get_or_create(&MissingLabels {
        kind: "x",
        name: "x".into(),
        namespace: "x".into(),
    });
    let _ = fleet.watches_failing.get_or_create(&WatchLabels {
        resource: "x",
        name: "x".into(),
        reason: "x",
    });
    let text = m.encode();
    let mut help = BTreeMap::new();
    let mut kind = BTreeMap::new();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, h) = rest.split_once(' ').unwrap();
            help.insert(name.to_string(), h.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap();
            kind.insert(name.to_string(), t.to_string());
        } else if let Some((series, _)) = line.split_once('{') {
            let family = kind
                .keys()
                .filter(|k| series.starts_with(k.as_str()))
                .max_by_key(|k| k.len())
                .unwrap()
                .clone();
            let inner = line.split_once('{').unwrap().1.split_once('}').unwrap().0;
            for pair in inner.split("\",") {
                let name = pair.split('=').next().unwrap().trim();
                if name != "le" && !name.is_empty() {
                    labels
                        .entry(family.clone())
                        .or_default()
                        .insert(name.into());
                }
            }
        }
    }
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for (name, t) in &kind {
        let queried = match t.as_str() {
            "counter" => format!("{name}_total"),
            "info" => format!("{name}_info"),
            "histogram" => format!("{name}_bucket, _sum, _count"),
            _ => name.clone(),
        };
        let l = labels
            .get(name)
            .map(|s| {
                s.iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let fleet_only = [
            "run_pods",
            "missing_references",
            "fleet_synced",
            "fleet_watches_failing",
        ]
        .iter()
        .any(|f| name == &format!("plx_webhook_{f}"));
        out.push_str(&format!(
            "| `{queried}` | {t} | {l} | {}{} |\n",
            help[name].replace('|', "\\|"),
            if fleet_only {
                " (with `--fleet` only)"
            } else {
                ""
            }
        ));
    }
    out
}

fn log_table() -> String {
    let mut out = String::from("| key | holds |\n|---|---|\n");
    for (k, v) in FIELDS {
        out.push_str(&format!("| `{k}` | {v} |\n"));
    }
    out
}

fn rule_files() -> Vec<(String, Value)> {
    RULE_FILES
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(root().join(f)).unwrap();
            (
                f.to_string(),
                serde_saphyr::from_str::<Value>(&text).unwrap(),
            )
        })
        .collect()
}

fn alerts() -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (file, doc) in rule_files() {
        for g in doc["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                out.push((
                    file.clone(),
                    g["name"].as_str().unwrap().to_string(),
                    r.clone(),
                ));
            }
        }
    }
    out
}

fn alerts_table() -> String {
    let mut out = String::from(
        "| alert | group (file) | severity | for | runbook |\n|---|---|---|---|---|\n",
    );
    for (file, group, r) in alerts() {
        let url = r["annotations"]["runbook_url"].as_str().unwrap_or("");
        let anchor = url.rsplit_once('#').map(|x| x.1).unwrap_or("");
        out.push_str(&format!(
            "| `{}` | `{group}` (`{file}`) | {} | {} | [runbook](runbook.md#{anchor}) |\n",
            r["alert"].as_str().unwrap(),
            r["labels"]["severity"].as_str().unwrap(),
            r["for"].as_str().unwrap_or("0s"),
        ));
    }
    out
}

/// Replace (or check) the text between `<!-- generated:NAME -->` and `<!-- end:NAME -->`.
fn generated(file: &str, sections: &[(&str, String)]) {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut updated = text.clone();
    for (name, body) in sections {
        let start =
            format!("<!-- generated:{name} (tests/docs.rs; UPDATE_DOCS=1 to rewrite) -->\n");
        let end = format!("<!-- end:{name} -->");
        let a = updated
            .find(&start)
            .unwrap_or_else(|| panic!("{file}: no marker {start}"))
            + start.len();
        let b = a + updated[a..]
            .find(&end)
            .unwrap_or_else(|| panic!("{file}: no marker {end}"));
        updated.replace_range(a..b, body);
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &updated).unwrap();
    } else {
        assert!(
            text == updated,
            "{file}: the generated reference differs from the code; run UPDATE_DOCS=1 cargo test --test docs"
        );
    }
}

#[test]
fn metrics_log_and_alert_reference_equal_the_code() {
    generated(
        "docs/observability.md",
        &[
            ("metrics", metrics_table()),
            ("log", log_table()),
            ("alerts", alerts_table()),
        ],
    );
}

// ------------------------------------------------------------------ links

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "book") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// The text outside fenced code blocks and inline code.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut code = false;
        for c in line.chars() {
            if c == '`' {
                code = !code;
            } else if !code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// A page as the book renders it: `{{#include FILE}}` lines replaced by the file.
fn page(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            match l
                .trim()
                .strip_prefix("{{#include ")
                .and_then(|r| r.strip_suffix("}}"))
            {
                Some(inc) => page(&path.parent().unwrap().join(inc.trim())),
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The anchors a page's headings get (mdBook's and GitHub's rule: lowercase; letters, digits,
/// `_` and `-` kept; spaces become `-`; the rest dropped; repeats get `-1`, `-2` …).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_default();
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// `[text](target)` links in prose.
fn links(text: &str) -> Vec<String> {
    let p = prose(text);
    let mut out = Vec::new();
    let mut rest = p.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        if let Some(j) = after.find(')') {
            out.push(
                after[..j]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        rest = after;
    }
    out
}

/// `a/b/../c` as `a/c` (the target exists, so no symlink games matter here).
fn normalized(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") || link.is_empty() {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !target.exists() {
                broken.push(format!("{rel}: {link}: no such file"));
                continue;
            }
            // The book is built from docs/ alone: a page's link out of it breaks in the HTML.
            let in_book = file.starts_with(root().join("docs"));
            if in_book && !path.is_empty() && !normalized(&target).starts_with(root().join("docs"))
            {
                broken.push(format!(
                    "{rel}: {link}: leaves docs/ (the book cannot follow it)"
                ));
            }
            if !anchor.is_empty() {
                let ok = target.extension().is_some_and(|x| x == "md")
                    && anchors(&page(&target)).contains(anchor);
                if !ok {
                    broken.push(format!("{rel}: {link}: no such section"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_book_page_is_in_the_summary_and_says_what_it_is_for() {
    let summary = std::fs::read_to_string(root().join("docs/SUMMARY.md")).unwrap();
    let listed: BTreeSet<String> = links(&summary).into_iter().collect();
    for file in markdown_files() {
        let rel = file.strip_prefix(root().join("docs"));
        let Ok(rel) = rel else { continue };
        let rel = rel.display().to_string();
        if rel == "SUMMARY.md" {
            continue;
        }
        assert!(
            listed.contains(&rel),
            "docs/{rel} is not in docs/SUMMARY.md"
        );
    }
    // Every page of the book opens with what a reader can do after it.
    for page in &listed {
        let text = std::fs::read_to_string(root().join("docs").join(page)).unwrap();
        assert!(
            text.contains("After this page you can"),
            "docs/{page} does not say what a reader can do after it"
        );
    }
}

#[test]
fn every_alert_has_a_runbook_url_naming_a_runbook_section() {
    let runbook = anchors(&page(&root().join("docs/runbook.md")));
    for (file, _, r) in alerts() {
        let name = r["alert"].as_str().unwrap();
        let url = r["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: {name} has no runbook_url"));
        let (base, anchor) = url.split_once('#').unwrap();
        assert_eq!(base, RUNBOOK_BASE, "{file}: {name}");
        assert!(
            runbook.contains(anchor),
            "{file}: {name}: docs/runbook.md has no section #{anchor}"
        );
        // The runbook section names the alert it serves.
        let text = std::fs::read_to_string(root().join("docs/runbook.md")).unwrap();
        assert!(text.contains(name), "docs/runbook.md never names {name}");
    }
}

// ------------------------------------------------------------------ claims vs manifests

fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join(dir))
        .output()
        .unwrap_or_else(|e| panic!("kubectl is needed to render manifests: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

fn kind<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == k)
        .unwrap_or_else(|| panic!("no {k} rendered"))
}

/// Every number that follows `key` in the docs' prose and code, e.g. `timeoutSeconds: 5`.
fn quoted_after(key: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(key) {
            let after = rest[i + key.len()..].trim_start_matches([':', ' ', '`', '=', '*']);
            let value: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            if !value.is_empty() {
                out.push((rel.clone(), value));
            }
            rest = &rest[i + key.len()..];
        }
    }
    out
}

/// Every number just before `word` (e.g. `128Mi limit`, `128 Mi limit`, `2 replicas`) in the
/// docs' prose.
fn quoted_before(word: &str) -> Vec<(String, String)> {
    let token = |t: &str| {
        t.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.')
            .to_string()
    };
    let mut out = Vec::new();
    for file in markdown_files() {
        let text = prose(&std::fs::read_to_string(&file).unwrap());
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(word) {
            let toks: Vec<String> = rest[..i]
                .split_whitespace()
                .rev()
                .take(2)
                .map(token)
                .collect();
            let digit = |t: &String| t.starts_with(|c: char| c.is_ascii_digit());
            let value = match toks.as_slice() {
                [last, ..] if digit(last) => Some(last.clone()),
                [unit, n] if digit(n) && unit.chars().all(|c| c.is_ascii_alphabetic()) => {
                    Some(format!("{n}{unit}"))
                }
                _ => None,
            };
            if let Some(v) = value {
                out.push((rel.clone(), v));
            }
            rest = &rest[i + word.len()..];
        }
    }
    out
}

#[test]
fn numbers_the_docs_quote_are_the_rendered_manifests() {
    let base = render("manifests/base");
    let deploy = kind(&base, "Deployment");
    let mwc = kind(&base, "MutatingWebhookConfiguration");
    let pdb = kind(&base, "PodDisruptionBudget");
    let vwc: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            root().join("manifests/enforce/validatingwebhookconfiguration.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let pod = &deploy["spec"]["template"]["spec"];
    let res = &pod["containers"][0]["resources"];
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let mut wrong = Vec::new();
    let mut extra = Vec::new();
    let mut expect =
        |what: &str, quotes: Vec<(String, String)>, want: &[String], at_least_once: bool| {
            if at_least_once && quotes.is_empty() {
                wrong.push(format!("the docs never quote {what}"));
            }
            for (file, v) in quotes {
                if !want.contains(&v) {
                    wrong.push(format!(
                        "{file}: {what} quoted as {v}, the manifests say {want:?}"
                    ));
                }
            }
        };

    // Timeouts and failure policies: both webhook configurations.
    let timeouts = vec![
        s(&mwc["webhooks"][0]["timeoutSeconds"]),
        s(&vwc["webhooks"][0]["timeoutSeconds"]),
    ];
    assert_eq!(timeouts[0], timeouts[1]);
    expect(
        "timeoutSeconds",
        quoted_after("timeoutSeconds"),
        &timeouts,
        true,
    );
    let policies = vec![
        s(&mwc["webhooks"][0]["failurePolicy"]),
        s(&vwc["webhooks"][0]["failurePolicy"]),
    ];
    assert_eq!(policies, ["Fail", "Fail"]);
    // `failurePolicy: Ignore` may be named as what the shipped manifests do *not* do, in a
    // sentence that says so; every other quote is the shipped value.
    let quotes = quoted_after("failurePolicy")
        .into_iter()
        .filter(|(_, v)| v != "Ignore")
        .collect();
    expect("failurePolicy", quotes, &policies, true);

    // Replicas, disruption budget, rollout.
    let replicas = s(&deploy["spec"]["replicas"]);
    expect(
        "replicas",
        quoted_before(" replicas"),
        std::slice::from_ref(&replicas),
        true,
    );
    expect("replicas:", quoted_after("replicas:"), &[replicas], false);
    expect(
        "minAvailable",
        quoted_after("minAvailable"),
        &[s(&pdb["spec"]["minAvailable"])],
        true,
    );
    expect(
        "maxUnavailable",
        quoted_after("maxUnavailable"),
        &[s(
            &deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"]
        )],
        true,
    );

    // Memory and CPU.
    let mem_limit = s(&res["limits"]["memory"]);
    expect(
        "the memory limit",
        quoted_before(" limit"),
        &[mem_limit.clone(), "128MiB".into()],
        true,
    );
    expect(
        "the memory request",
        quoted_before(" memory request"),
        &[s(&res["requests"]["memory"])],
        false,
    );
    expect(
        "the CPU request",
        quoted_before(" CPU request"),
        &[s(&res["requests"]["cpu"])],
        true,
    );
    assert!(
        res["limits"].get("cpu").is_none(),
        "the docs say there is no CPU limit"
    );
    for file in markdown_files() {
        let text = prose(&std::fs::read_to_string(&file).unwrap()).to_lowercase();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("cpu limit") {
            if !rest[..i].ends_with("no ") {
                extra.push(format!(
                    "{}: a CPU limit is claimed; there is none",
                    file.display()
                ));
            }
            rest = &rest[i + 9..];
        }
    }

    // preStop and grace.
    let pre_stop = s(&pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]);
    expect(
        "the preStop sleep",
        quoted_before(" s preStop"),
        std::slice::from_ref(&pre_stop),
        false,
    );
    expect(
        "terminationGracePeriodSeconds",
        quoted_after("terminationGracePeriodSeconds"),
        &[s(&pod["terminationGracePeriodSeconds"])],
        false,
    );

    // The spread: hard across nodes, soft across zones (docs/security.md and the runbook say so).
    let spread: BTreeMap<String, String> = pod["topologySpreadConstraints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (s(&c["topologyKey"]), s(&c["whenUnsatisfiable"])))
        .collect();
    assert_eq!(spread["kubernetes.io/hostname"], "DoNotSchedule");
    assert_eq!(spread["topology.kubernetes.io/zone"], "ScheduleAnyway");
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains("spread over nodes and zones") {
            extra.push(format!(
                "{}: \"spread over nodes and zones\": the zone spread is soft (ScheduleAnyway)",
                file.display()
            ));
        }
    }
    wrong.extend(extra);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ------------------------------------------------------------------ the README's first steps

/// The README's five-minute start: its `mutate --explain` command, run as written, allows the
/// pod, and every line of the excerpt it shows is what the binary prints.
#[test]
fn the_readme_first_command_prints_what_the_readme_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let at = readme
        .find("cargo run -- mutate ")
        .expect("the README's five-minute start runs mutate");
    let line = readme[at..].lines().next().unwrap();
    let args: Vec<&str> = line["cargo run -- ".len()..]
        .split('>')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(args.contains(&"--explain"), "{line}");
    let out = Command::new(env!("CARGO_BIN_EXE_plx-store-webhook"))
        .args(&args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stderr).unwrap();
    let excerpt_at = readme[at..]
        .find("```text\n")
        .expect("an excerpt of its output")
        + at
        + 8;
    let excerpt = &readme[excerpt_at..excerpt_at + readme[excerpt_at..].find("```").unwrap()];
    for l in excerpt.lines().filter(|l| *l != "…") {
        assert!(
            printed.contains(l),
            "the README shows {l:?}; mutate --explain printed:\n{printed}"
        );
    }
    let patch: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!patch.as_array().unwrap().is_empty());
}
