//! The fleet report: what `/fleet` answers, what `fleet` prints, and what the gauges show, all
//! computed from the view against today's plan when asked.

use super::view::{Failure, View};
use crate::fleet::{classify, State};
use crate::metrics::{FleetGauges, MissingLabels, StateLabels, WatchLabels};
use crate::plan::Plan;
use crate::references::ObjectKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Serialize)]
pub struct Report {
    /// Every watch has listed and none is failing; when false the rest is the last known state
    /// and no claim about missing objects is made.
    pub synced: bool,
    pub config_hash: String,
    /// Run pods by state (every state, zeros included).
    pub counts: BTreeMap<&'static str, usize>,
    pub pods: Vec<PodRow>,
    pub missing_references: Vec<MissingRow>,
    pub watches: Vec<WatchRow>,
}

#[derive(Debug, Serialize)]
pub struct PodRow {
    pub namespace: String,
    pub pod: String,
    /// Polyaxon's run: owner/project and uuid, as far as the pod says.
    pub run: String,
    pub store: String,
    pub rule: String,
    pub state: &'static str,
    pub why: String,
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingRow {
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    /// Live runs in that namespace whose decision needs it.
    pub runs: usize,
}

#[derive(Debug, Serialize)]
pub struct WatchRow {
    pub resource: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The one namespace it watches (absent: cluster-wide).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub synced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl Report {
    /// Whether a platform team must act: a run missing, stale or missing a reference.
    pub fn has_problems(&self) -> bool {
        State::ALL
            .iter()
            .filter(|s| s.is_problem())
            .any(|s| self.counts.get(s.as_str()).copied().unwrap_or(0) > 0)
    }
}

/// Classify every pod of `view` against `plan` (`with_pods`: keep a row per pod).
pub fn build(view: &View, plan: &Plan, with_pods: bool) -> Report {
    let mut counts: BTreeMap<&'static str, usize> =
        State::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut pods = Vec::new();
    let mut missing: BTreeMap<(ObjectKind, String, String), usize> = BTreeMap::new();
    // Records judged under another config (it just changed; the pod watches are relisting)
    // say nothing about this one.
    let judged = view.pods_config == plan.config_hash;
    for p in view.pods.values().filter(|_| judged) {
        let Some(c) = classify(p, plan, view) else {
            continue;
        };
        *counts.entry(c.state.as_str()).or_default() += 1;
        for r in &c.missing {
            *missing
                .entry((r.kind, r.name.clone(), p.namespace.clone()))
                .or_default() += 1;
        }
        if with_pods {
            let run = match (&p.owner, &p.project) {
                (Some(o), Some(pr)) => format!("{o}/{pr}"),
                _ => String::new(),
            };
            let run = match &p.run {
                Some(u) if run.is_empty() => u.clone(),
                Some(u) => format!("{run} {u}"),
                None => run,
            };
            pods.push(PodRow {
                namespace: p.namespace.clone(),
                pod: p.name.clone(),
                run,
                store: c.store,
                rule: c.rule,
                state: c.state.as_str(),
                why: c.why,
            });
        }
    }
    pods.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    let mut watches: Vec<WatchRow> = view
        .pods_watches
        .iter()
        .map(|(ns, st)| WatchRow {
            resource: "pods",
            name: String::new(),
            namespace: ns.clone(),
            synced: st.synced,
            failure: st.failure.clone(),
        })
        .collect();
    let mut named: Vec<_> = view
        .named
        .iter()
        .flat_map(|(k, m)| m.iter().map(move |(n, w)| (*k, n, w)))
        .collect();
    named.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (kind, (name, namespace), w) in named {
        watches.push(WatchRow {
            resource: kind.resource(),
            name: name.clone(),
            namespace: namespace.clone(),
            synced: w.state.synced,
            failure: w.state.failure.clone(),
        });
    }
    Report {
        synced: judged && view.synced(),
        config_hash: plan.config_hash.clone(),
        counts,
        pods,
        missing_references: missing
            .into_iter()
            .map(|((kind, name, namespace), runs)| MissingRow {
                kind: kind.as_str(),
                name,
                namespace,
                runs,
            })
            .collect(),
        watches,
    }
}

/// Set the gauges from a report.
pub fn set_gauges(g: &FleetGauges, r: &Report) {
    for s in State::ALL {
        let n = r.counts.get(s.as_str()).copied().unwrap_or(0);
        g.run_pods
            .get_or_create(&StateLabels { state: s.as_str() })
            .set(n as i64);
    }
    g.missing_references.clear();
    for m in &r.missing_references {
        g.missing_references
            .get_or_create(&MissingLabels {
                kind: m.kind,
                name: m.name.clone(),
                namespace: m.namespace.clone(),
            })
            .set(1);
    }
    g.synced.set(i64::from(r.synced));
    g.watches_failing.clear();
    for w in r.watches.iter() {
        if let Some(f) = &w.failure {
            g.watches_failing
                .get_or_create(&WatchLabels {
                    resource: w.resource,
                    name: w.name.clone(),
                    reason: if f.forbidden { "forbidden" } else { "error" },
                })
                .set(1);
        }
    }
}

/// The report as a table (the `fleet` command's default output).
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let counts: Vec<String> = r
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let _ = writeln!(
        out,
        "config {}; {}{}",
        r.config_hash,
        if counts.is_empty() {
            "no run pods".to_string()
        } else {
            counts.join(", ")
        },
        if r.synced {
            ""
        } else {
            " (NOT SYNCED: the view is incomplete or stale; see the watches below)"
        }
    );
    if !r.pods.is_empty() {
        let w = |f: fn(&PodRow) -> &str, title: &str| {
            r.pods
                .iter()
                .map(|p| f(p).len())
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let (wn, wp, wr, ws, wt) = (
            w(|p| &p.namespace, "NAMESPACE"),
            w(|p| &p.pod, "POD"),
            w(|p| &p.run, "RUN"),
            w(|p| &p.store, "STORE"),
            w(|p| p.state, "STATE"),
        );
        let _ = writeln!(
            out,
            "\n{:wn$}  {:wp$}  {:wr$}  {:ws$}  {:wt$}  WHY",
            "NAMESPACE", "POD", "RUN", "STORE", "STATE"
        );
        for p in &r.pods {
            let _ = writeln!(
                out,
                "{:wn$}  {:wp$}  {:wr$}  {:ws$}  {:wt$}  {}",
                p.namespace, p.pod, p.run, p.store, p.state, p.why
            );
        }
    }
    if !r.missing_references.is_empty() {
        let _ = writeln!(
            out,
            "\nmissing objects (kind name namespace: runs needing it):"
        );
        for m in &r.missing_references {
            let _ = writeln!(out, "  {} {} {}: {}", m.kind, m.name, m.namespace, m.runs);
        }
    }
    let failing: Vec<&WatchRow> = r
        .watches
        .iter()
        .filter(|w| w.failure.is_some() || !w.synced)
        .collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "\nwatches not synced:");
        for w in failing {
            let mut what = if w.name.is_empty() {
                w.resource.to_string()
            } else {
                format!("{} {}", w.resource, w.name)
            };
            if !w.namespace.is_empty() {
                let _ = write!(what, " in {}", w.namespace);
            }
            match &w.failure {
                Some(f) if f.forbidden => {
                    let _ = writeln!(
                        out,
                        "  {what}: forbidden; add to the RBAC (plx-store-webhook rbac): {}",
                        f.rule
                    );
                }
                Some(f) => {
                    let _ = writeln!(out, "  {what}: {}", f.message);
                }
                None => {
                    let _ = writeln!(out, "  {what}: listing");
                }
            }
        }
    }
    out
}
