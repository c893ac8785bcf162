//! `check-config` output: the resolved plan in words, and what each default container kind of a
//! Polyaxon run pod would get, computed by running the real engine on a pod shaped as Polyaxon
//! builds it (store already mounted in the sidecar and init containers, as Polyaxon does when its
//! own artifactsStore is this store).

use crate::clients::GOOGLE_APPLICATION_CREDENTIALS;
use crate::config::{Config, NoMatch, RunFacts, Store};
use crate::engine::report::{Piece, PieceKind, PieceState};
use crate::engine::{self, Decision, Request};
use crate::plan::{Plan, RefKind, Route, StorePlan, VolumeSource, GC_KEY_PATH};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Container kinds of a Polyaxon run pod, with a representative name and list.
const KINDS: &[(&str, &str, &str)] = &[
    ("main", "polyaxon-main", "containers"),
    ("sidecar", "polyaxon-sidecar", "containers"),
    (
        "init artifacts",
        "polyaxon-init-artifacts-default",
        "initContainers",
    ),
    (
        "init tensorboard",
        "polyaxon-init-tb-0123456789",
        "initContainers",
    ),
    (
        "init auth (not a default target)",
        "polyaxon-init-auth",
        "initContainers",
    ),
];

/// The human-readable plan: the shared policy, the rule table, then each store's plan.
pub fn describe(config: &Config, plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "config hash: {}", config.hash);
    let inj = &config.injection;
    let sel: Vec<String> = inj
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(out, "pods: CREATE of pods labelled {}", sel.join(", "));
    let _ = writeln!(
        out,
        "namespaces: include [{}] (empty = all), exclude [{}]",
        globs(&inj.namespaces_include),
        globs(&inj.namespaces_exclude)
    );
    let _ = writeln!(
        out,
        "containers: [{}]; initContainers: [{}]",
        globs(&inj.containers),
        globs(&inj.init_containers)
    );
    let _ = writeln!(out, "on conflict: {}", inj.on_conflict.as_str());
    let _ = writeln!(
        out,
        "mode: {}{}",
        inj.mode.as_str(),
        if inj.mode == crate::config::Mode::Audit {
            " (runs get annotations only; warnings, logs and metrics say what would be added)"
        } else {
            ""
        }
    );
    out.push_str(&rule_table(config));
    let default_label = match config.no_match {
        NoMatch::Default if config.rules.is_empty() => "every run",
        NoMatch::Default => "runs no rule matches (the default)",
        _ => "unused: injection.noMatch is not `default`",
    };
    let _ = writeln!(out, "\n== store {} — {default_label}", config.store.name);
    describe_store(&mut out, &config.store, &plan.default);
    for (rule, rp) in config.rules.iter().zip(&plan.rules) {
        let _ = writeln!(out, "\n== store {} — rule {}", rule.store.name, rule.name);
        describe_store(&mut out, &rule.store, &rp.plan);
    }
    out
}

fn globs(g: &[crate::glob::Glob]) -> String {
    g.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ")
}

/// The rules in order, one line each, and what happens when none matches.
pub fn rule_table(config: &Config) -> String {
    let mut out = String::new();
    if config.rules.is_empty() {
        let _ = writeln!(
            out,
            "rules: none; every run gets the artifactsStore {}",
            config.store.name
        );
        return out;
    }
    let _ = writeln!(out, "\nrules (first match wins):");
    let mut rows = vec![[
        "#".to_string(),
        "name".to_string(),
        "match".to_string(),
        "store".to_string(),
        "connections".to_string(),
        "mode".to_string(),
        "identity".to_string(),
    ]];
    for (i, r) in config.rules.iter().enumerate() {
        let m = &r.matcher;
        let crit: Vec<String> = [
            ("namespaces", &m.namespaces),
            ("owners", &m.owners),
            ("projects", &m.projects),
            ("components", &m.components),
        ]
        .into_iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(field, g)| format!("{field}=[{}]", globs(g)))
        .collect();
        let conns: Vec<&str> = r.connections.iter().map(|c| c.name.as_str()).collect();
        rows.push([
            (i + 1).to_string(),
            r.name.clone(),
            if crit.is_empty() {
                "(every run)".to_string()
            } else {
                crit.join(" ")
            },
            r.store.name.clone(),
            if conns.is_empty() {
                "-".to_string()
            } else {
                conns.join(", ")
            },
            r.mode.unwrap_or(config.injection.mode).as_str().to_string(),
            r.identity.as_ref().map_or("key".to_string(), |i| {
                format!("serviceAccount {}", i.service_account)
            }),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if let Some(w) = widths.get(c) {
                line.push_str(&" ".repeat(w.saturating_sub(cell.chars().count())));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(
        out,
        "  no match: {}",
        match config.no_match {
            NoMatch::Default => format!("the artifactsStore {}", config.store.name),
            NoMatch::Warn => "nothing injected, with a warning".to_string(),
            NoMatch::Deny => "the pod is refused".to_string(),
        }
    );
    out
}

/// Which rule a run with these facts would hit, and why, criterion by criterion.
pub fn explain_route(plan: &Plan, facts: &RunFacts<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "a run with namespace {:?}, owner {}, project {}, component {}:",
        facts.namespace,
        opt(facts.owner),
        opt(facts.project),
        opt(facts.component)
    );
    for r in &plan.rules {
        let crit = r.matcher.explain(facts);
        let matched = r.matcher.matches(facts);
        let why: Vec<String> = crit
            .iter()
            .map(|c| format!("{}: {}", c.detail, if c.matched { "yes" } else { "no" }))
            .collect();
        let _ = writeln!(
            out,
            "  rule {}: {} ({})",
            r.name,
            if matched { "MATCHES" } else { "no match" },
            if why.is_empty() {
                "matches every run".to_string()
            } else {
                why.join("; ")
            }
        );
        if matched {
            break;
        }
    }
    let line = match plan.route(facts) {
        Route::Rule(r) => format!(
            "→ rule {}: store {}{}",
            r.name,
            r.plan.store_name,
            conns(&r.plan)
        ),
        Route::Default(p) => format!(
            "→ {}: store {}{}",
            if plan.rules.is_empty() {
                "no rules"
            } else {
                "no rule matched, injection.noMatch: default"
            },
            p.store_name,
            conns(p)
        ),
        Route::Unmatched(NoMatch::Deny) => {
            "→ no rule matched, injection.noMatch: deny: the pod is refused".to_string()
        }
        Route::Unmatched(_) => {
            "→ no rule matched, injection.noMatch: warn: nothing injected, the user sees a warning"
                .to_string()
        }
    };
    let _ = writeln!(out, "  {line}");
    out
}

fn opt(v: Option<&str>) -> String {
    v.map_or("(none)".to_string(), |v| format!("{v:?}"))
}

fn conns(p: &StorePlan) -> String {
    if p.connections.is_empty() {
        String::new()
    } else {
        format!(", connections {}", p.connections.join(", "))
    }
}

/// One store's plan in words, and what each container kind of a Polyaxon pod would get.
fn describe_store(out: &mut String, s: &Store, plan: &StorePlan) {
    let _ = writeln!(
        out,
        "store: {} (kind {}{})",
        s.name,
        s.kind.as_str(),
        s.bucket
            .as_ref()
            .map(|b| format!(", bucket {b}"))
            .unwrap_or_default()
    );
    if !plan.connections.is_empty() {
        let _ = writeln!(out, "connections: {}", plan.connections.join(", "));
    }
    if plan.mode == crate::config::Mode::Audit {
        let _ = writeln!(
            out,
            "mode: audit — these runs are admitted with annotations only ({}: audit); the warnings, \
             the decision log and plx_webhook_admission_requests_total{{result=\"audit\"}} say what would be added",
            crate::engine::ANNOTATION_MODE
        );
    }
    if let Some(id) = &plan.identity {
        let globs: Vec<&str> = plan
            .policy
            .runs_service_accounts
            .iter()
            .map(|g| g.as_str())
            .collect();
        let _ = writeln!(
            out,
            "identity (keyless): serviceAccountName {} — set when the run's account is `default` or a Polyaxon runs \
             account [{}]; a user's own account is kept with a warning, another rule's identity is refused{}",
            id.service_account,
            globs.join(", "),
            if id.azure_label {
                "; label azure.workload.identity/use: \"true\""
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "\nwhat every target container ends up with:");
    for m in &plan.mounts {
        let why = match (&m.source, s.secret.as_ref().and_then(|r| r.mount_path.as_ref())) {
            (VolumeSource::Secret { .. }, Some(t)) if t.file.is_some() => format!(
                "secret.mountPath {} names a file, so the volume goes on its directory and the key lands at that path",
                t.written
            ),
            _ => "at the mountPath the config gives".to_string(),
        };
        let _ = writeln!(
            out,
            "  volume + {}mount of {} at {} — {}; an existing volume with the same source is reused, and a container \
             that already mounts it keeps its mount",
            if m.read_only || m.source.always_read_only() { "read-only " } else { "" },
            m.what,
            m.dir,
            why
        );
    }
    for r in &plan.env_from {
        let _ = writeln!(
            out,
            "  envFrom {} {} — the {} has only a name",
            r.kind.fields().0,
            r.name,
            kind_word(r.kind)
        );
    }
    for i in &plan.env_items {
        let _ = writeln!(
            out,
            "  env {} from {} {} key {} — the {} lists items and no mountPath",
            i.env_name,
            kind_word(i.kind),
            i.resource,
            i.key,
            kind_word(i.kind)
        );
    }
    if let Some(k) = &plan.gcs_key {
        let _ = writeln!(out, "  env GC_KEY_PATH = the file where the kubelet puts key {} in that container (kept if already set)", k.key);
        if plan.policy.standard_client_env {
            let _ = writeln!(out, "  env GOOGLE_APPLICATION_CREDENTIALS = the same file as GC_KEY_PATH, for google-auth, google-cloud-storage, gcsfs, TensorFlow (kept if already set)");
        }
    }
    for i in &plan.client_env {
        let _ = writeln!(
            out,
            "  env {} from {} {} key {} (optional) — the name standard clients read; kept if the container sets it",
            i.env_name,
            kind_word(i.kind),
            i.resource,
            i.key
        );
    }
    for n in &plan.notes {
        let _ = writeln!(out, "  NOTE: {n}");
    }
    let _ = writeln!(
        out,
        "  annotations plx-store-webhook.dev/store, plx-store-webhook.dev/config-hash and \
         plx-store-webhook.dev/decision: {} (this decision's fingerprint) on the pod",
        plan.fingerprint
    );
    let _ = writeln!(out, "\non a run pod as Polyaxon builds it with this store:");
    let text = polyaxon_like_pod(plan).to_string();
    let only = Plan::single(plan.clone());
    let req = Request::pod_create("polyaxon").with_report();
    let outcome = engine::mutate(&engine::decode(&text), &only, &req);
    if let Decision::Denied(m) = &outcome.decision {
        let _ = writeln!(out, "  DENIED: {m}");
    }
    for (kind, name, _) in KINDS {
        let added: Vec<String> = outcome
            .report
            .iter()
            .filter(|c| c.name == *name)
            .flat_map(|c| &c.pieces)
            .filter(|p| p.state == PieceState::Added)
            .map(|p| short(plan, p))
            .collect();
        let _ = writeln!(
            out,
            "  {kind} ({name}): {}",
            if added.is_empty() {
                "nothing added".to_string()
            } else {
                format!("adds {}", added.join("; "))
            }
        );
    }
    for w in &outcome.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
}

fn kind_word(k: RefKind) -> &'static str {
    match k {
        RefKind::Secret => "secret",
        RefKind::ConfigMap => "configMap",
    }
}

/// One added piece, briefly.
fn short(plan: &StorePlan, p: &Piece) -> String {
    match p.kind {
        PieceKind::Mount(i) => {
            let m = &plan.mounts[i];
            let ro = if m.read_only || m.source.always_read_only() {
                " (read-only)"
            } else {
                ""
            };
            format!("mount {}{ro}", p.detail.trim_start_matches("volume "))
        }
        PieceKind::EnvFrom(i) => {
            let r = &plan.env_from[i];
            format!("envFrom {} {}", r.kind.fields().0, r.name)
        }
        PieceKind::Env(i) => format!("env {} from a key reference", plan.env_items[i].env_name),
        PieceKind::ClientEnv(i) => format!(
            "env {} from a key reference (standard client name)",
            plan.client_env[i].env_name
        ),
        PieceKind::GcKeyPath => format!("env {GC_KEY_PATH}={}", p.detail),
        PieceKind::GoogleApplicationCredentials => {
            format!("env {GOOGLE_APPLICATION_CREDENTIALS}={}", p.detail)
        }
    }
}

/// A pod shaped like Polyaxon 2.x's converter output for this store (facts §3).
fn polyaxon_like_pod(plan: &StorePlan) -> Value {
    let mut volumes = vec![json!({"name": "artifacts-context", "emptyDir": {}})];
    let mut store_mounts =
        vec![json!({"name": "artifacts-context", "mountPath": "/plx-context/artifacts"})];
    let mut store_env_from = Vec::new();
    // Polyaxon mounts the store itself; mandated connections are the webhook's to add.
    for m in &plan.mounts[..plan.store_mounts] {
        let (vol, path) = match &m.source {
            VolumeSource::Secret { name, .. } => (
                json!({"name": name, "secret": {"secretName": name}}),
                written_path(plan, m),
            ),
            VolumeSource::ConfigMap { name, .. } => (
                json!({"name": name, "configMap": {"name": name}}),
                m.dir.clone(),
            ),
            other => (other.to_volume(&m.preferred_name), m.dir.clone()),
        };
        let name = vol["name"].clone();
        volumes.push(vol);
        store_mounts.push(json!({"name": name, "mountPath": path, "readOnly": true}));
    }
    for r in &plan.env_from[..plan.store_env_from] {
        store_env_from.push(json!({ r.kind.fields().0: {"name": r.name} }));
    }
    let with_store = |name: &str| json!({"name": name, "image": "x", "volumeMounts": store_mounts, "envFrom": store_env_from});
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "plx-operation-x-", "labels":
            plan.policy.selector.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>()},
        "spec": {
            "initContainers": [
                {"name": "polyaxon-init-auth", "image": "x"},
                with_store("polyaxon-init-artifacts-default"),
                with_store("polyaxon-init-tb-0123456789"),
            ],
            "containers": [
                {"name": "polyaxon-main", "image": "x", "volumeMounts": [{"name": "artifacts-context", "mountPath": "/plx-context/artifacts"}]},
                with_store("polyaxon-sidecar"),
            ],
            "volumes": volumes,
        }
    })
}

/// Polyaxon mounts the secret at the mountPath exactly as written (even a file path).
fn written_path(plan: &StorePlan, m: &crate::plan::MountPlan) -> String {
    plan.written_secret_path
        .clone()
        .unwrap_or_else(|| m.dir.clone())
}
