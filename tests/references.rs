//! What a decision needs in the run's namespace, and what admission says when the fleet view
//! knows the namespace lacks it: a warning naming object, namespace and consequence, or a denial
//! with `onMissingReference: deny`; nothing at all while the view does not know.

mod common;

use common::*;
use plx_store_webhook::references::{of_plan, ObjectKind, ObjectRef, Presence, References};
use plx_store_webhook::{load_str, Decision, Plan, Request};
use serde_json::Value;
use std::collections::HashSet;

/// A cluster as the fleet view would know it: (kind, name, namespace) present; `synced` false
/// answers Unknown for everything.
struct Cluster {
    synced: bool,
    have: HashSet<(ObjectKind, String, String)>,
}

impl References for Cluster {
    fn presence(&self, kind: ObjectKind, name: &str, namespace: &str) -> Presence {
        if !self.synced {
            return Presence::Unknown;
        }
        if self
            .have
            .contains(&(kind, name.to_string(), namespace.to_string()))
        {
            Presence::Present
        } else {
            Presence::Missing
        }
    }
}

fn cluster(synced: bool, have: &[(ObjectKind, &str, &str)]) -> Cluster {
    Cluster {
        synced,
        have: have
            .iter()
            .map(|(k, n, ns)| (*k, n.to_string(), ns.to_string()))
            .collect(),
    }
}

fn plan(yaml: &str) -> Plan {
    Plan::from_config(&load_str(yaml, "t").unwrap())
}

fn decide(plan: &Plan, pod: &Value, ns: &str, view: &Cluster) -> plx_store_webhook::Outcome {
    let mut req = Request::pod_create(ns);
    req.references = Some(view);
    let text = pod.to_string();
    plx_store_webhook::mutate(&plx_store_webhook::engine::decode(&text), plan, &req)
}

fn run_in(ns: &str) -> Value {
    let mut pod = read_json("tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json");
    pod["metadata"]["namespace"] = ns.into();
    pod
}

#[test]
fn every_route_lists_what_it_needs() {
    let p = plan(&std::fs::read_to_string(root().join("examples/teams.yaml")).unwrap());
    let r = |kind, name: &str| ObjectRef {
        kind,
        name: name.into(),
    };
    assert_eq!(
        of_plan(&p),
        vec![
            r(ObjectKind::Secret, "gcs-secret"),
            r(ObjectKind::Secret, "nlp-gcs-secret"),
            r(ObjectKind::Secret, "vision-aws"),
            r(ObjectKind::PersistentVolumeClaim, "datasets"),
        ]
    );
    // Keyless: the identities' accounts, the settings ConfigMap; no Secret at all.
    let k = plan(&std::fs::read_to_string(root().join("examples/keyless.yaml")).unwrap());
    assert_eq!(
        of_plan(&k),
        vec![
            r(ObjectKind::ConfigMap, "nlp-s3-settings"),
            r(ObjectKind::ServiceAccount, "plx-shared-runs"),
            r(ObjectKind::ServiceAccount, "team-nlp-runs"),
            r(ObjectKind::ServiceAccount, "team-research-runs"),
            r(ObjectKind::ServiceAccount, "team-vision-runs"),
        ]
    );
}

#[test]
fn a_missing_secret_is_warned_about_and_unknown_claims_nothing() {
    let p = plan_for("examples/store-ctxdir.yaml");
    let pod = run_in("team-a");
    let out = decide(&p, &pod, "team-a", &cluster(true, &[]));
    assert_eq!(out.decision, Decision::Mutated);
    assert!(
        out.warnings.contains(
            &"secret gcs-secret not found in namespace team-a: the pod will not start".to_string()
        ),
        "{:?}",
        out.warnings
    );
    // Present: nothing said. Not synced (or the API down): nothing said either.
    let have = cluster(true, &[(ObjectKind::Secret, "gcs-secret", "team-a")]);
    assert!(decide(&p, &pod, "team-a", &have).warnings.is_empty());
    assert!(decide(&p, &pod, "team-a", &cluster(false, &[]))
        .warnings
        .is_empty());
    // Another namespace's Secret does not count.
    let elsewhere = cluster(true, &[(ObjectKind::Secret, "gcs-secret", "team-b")]);
    assert_eq!(decide(&p, &pod, "team-a", &elsewhere).warnings.len(), 1);
    // Without the view (fleet off), as before.
    let out = mutate(&pod, &p, &Request::pod_create("team-a"));
    assert!(out.warnings.is_empty());
}

#[test]
fn on_missing_reference_deny_refuses_and_audit_says_it_would() {
    let yaml = "artifactsStore: {name: s, kind: gcs, schema: {bucket: gs://b}, secret: {name: gcs-secret, mountPath: /plx-context/.gc}}\ninjection: {onMissingReference: deny}\n";
    let p = plan(yaml);
    let pod = run_in("team-a");
    let out = decide(&p, &pod, "team-a", &cluster(true, &[]));
    let Decision::Denied(m) = &out.decision else {
        panic!("{:?}", out.decision)
    };
    assert!(
        m.contains("secret gcs-secret not found in namespace team-a: the pod will not start"),
        "{m}"
    );
    assert_eq!(
        out.deny_reason,
        Some(plx_store_webhook::engine::DenyReason::MissingReference)
    );
    assert!(out.patch.is_empty());
    let have = cluster(true, &[(ObjectKind::Secret, "gcs-secret", "team-a")]);
    assert_eq!(
        decide(&p, &pod, "team-a", &have).decision,
        Decision::Mutated
    );
    // Unknown never denies.
    assert_eq!(
        decide(&p, &pod, "team-a", &cluster(false, &[])).decision,
        Decision::Mutated
    );
    // Audit mode: admitted, "would deny" said.
    let audit = plan(&yaml.replace(
        "{onMissingReference: deny}",
        "{onMissingReference: deny, mode: audit}",
    ));
    let out = decide(&audit, &pod, "team-a", &cluster(true, &[]));
    assert!(out.allowed());
    assert!(
        out.warnings[0].starts_with("audit: would deny:")
            && out.warnings[0].contains("gcs-secret not found"),
        "{:?}",
        out.warnings
    );
    // The setting is checked, and `warn` (the default) keeps the config hash.
    let err = load_str(&yaml.replace("deny}", "maybe}"), "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("injection.onMissingReference"), "{err}");
    let plain = "artifactsStore: {name: s, kind: gcs, schema: {bucket: gs://b}, secret: {name: gcs-secret, mountPath: /plx-context/.gc}}\n";
    assert_eq!(
        load_str(plain, "t").unwrap().hash,
        load_str(
            &format!("{plain}injection: {{onMissingReference: warn}}\n"),
            "t"
        )
        .unwrap()
        .hash
    );
}

#[test]
fn a_keyless_teams_account_missing_is_named() {
    let p = plan(&std::fs::read_to_string(root().join("examples/keyless.yaml")).unwrap());
    let pod = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
    let out = decide(&p, &pod, "team-vision-1", &cluster(true, &[]));
    assert!(
        out.warnings.iter().any(|w| w
            == "serviceaccount team-vision-runs not found in namespace team-vision-1: the apiserver will refuse the pod"),
        "{:?}",
        out.warnings
    );
}

mod classify {
    use super::*;
    use plx_store_webhook::fleet::{classify, judge, State};

    /// The pod as the apiserver stores it after our webhook.
    fn admitted(plan: &Plan, ns: &str, owner: &str) -> Value {
        let mut pod = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
        pod["metadata"]["namespace"] = ns.into();
        pod["metadata"]["annotations"]["operation.polyaxon.com/owner"] = owner.into();
        check_applied(plan, &pod, ns).1
    }

    /// Judged under `plan` as the fleet view does on a watch event, then classified.
    fn state(pod: &Value, plan: &Plan, refs: &dyn References) -> Option<(State, String)> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap();
        let p = judge(ns, "p", &pod.to_string(), plan)?;
        let c = classify(&p, plan, refs)?;
        Some((c.state, c.why))
    }

    fn teams(edit: impl Fn(String) -> String) -> Plan {
        plan(&edit(
            std::fs::read_to_string(root().join("examples/teams.yaml")).unwrap(),
        ))
    }

    #[test]
    fn editing_one_rule_makes_only_its_runs_stale() {
        let all = cluster(false, &[]);
        let before = teams(|s| s);
        let vision = admitted(&before, "team-vision-1", "globex");
        let nlp = admitted(&before, "team-nlp-1", "globex");
        let default = admitted(&before, "polyaxon", "globex");
        for p in [&vision, &nlp, &default] {
            let (st, why) = state(p, &before, &all).unwrap();
            assert_eq!(st, State::Current, "{p}: {why}");
        }
        let after = teams(|s| {
            s.replace(
                "      store: nlp-gcs\n      connections: [scratch]",
                "      store: nlp-gcs\n      connections: [scratch, vision-s3]",
            )
        });
        assert_eq!(state(&vision, &after, &all).unwrap().0, State::Current);
        assert_eq!(state(&default, &after, &all).unwrap().0, State::Current);
        let (st, why) = state(&nlp, &after, &all).unwrap();
        assert_eq!(st, State::Stale, "{why}");
        assert!(why.contains("recreate it"), "{why}");
        // A connection taken away: the pod has all today's pieces, but claims the earlier
        // decision (which gave more): stale.
        let fewer = teams(|s| {
            s.replace(
                "      store: nlp-gcs\n      connections: [scratch]",
                "      store: nlp-gcs",
            )
        });
        let (st, why) = state(&nlp, &fewer, &all).unwrap();
        assert_eq!(st, State::Stale, "{why}");
        // A namespace moved to another team: stale, naming the store it claims.
        let moved = teams(|s| {
            s.replace(
                "namespaces: [\"team-nlp*\"]\n      store: nlp-gcs\n      connections",
                "namespaces: [\"team-nlp*\"]\n      store: vision-s3\n      connections",
            )
        });
        let (st, why) = state(&nlp, &moved, &all).unwrap();
        assert_eq!(st, State::Stale);
        assert!(why.contains("store \"nlp-gcs\""), "{why}");
    }

    /// The tenant writes the markers: a pod without the credentials is `missing` whatever its
    /// annotations say, and a tenant-set mode changes nothing.
    #[test]
    fn markers_never_hide_a_pod() {
        let p = teams(|s| s);
        let all = cluster(false, &[]);
        let real = admitted(&p, "team-vision-1", "globex");
        let mut raw = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
        raw["metadata"]["namespace"] = "team-vision-1".into();
        assert_eq!(state(&raw, &p, &all).unwrap().0, State::Missing);
        // Every marker of a real pod copied onto it, and `mode: audit` besides.
        let mut spoof = raw.clone();
        for (k, v) in real["metadata"]["annotations"].as_object().unwrap() {
            spoof["metadata"]["annotations"][k] = v.clone();
        }
        let (st, why) = state(&spoof, &p, &all).unwrap();
        assert_eq!(st, State::Missing, "{why}");
        assert!(
            why.contains("its markers claim store \"vision-s3\""),
            "{why}"
        );
        spoof["metadata"]["annotations"]["plx-store-webhook.dev/mode"] = "audit".into();
        assert_eq!(state(&spoof, &p, &all).unwrap().0, State::Missing);
        // On a pod that has its credentials, a tenant-set mode is just as meaningless.
        let mut moded = real.clone();
        moded["metadata"]["annotations"]["plx-store-webhook.dev/mode"] = "audit".into();
        assert_eq!(state(&moded, &p, &all).unwrap().0, State::Current);
        // Audit only when today's route is in audit mode.
        let audited =
            teams(|s| s.replace("  noMatch: default", "  mode: audit\n  noMatch: default"));
        let a = admitted(&audited, "team-vision-1", "globex");
        assert_eq!(state(&a, &audited, &all).unwrap().0, State::Audit);
        // A pod admitted in audit mode once its route injects: it has nothing, so missing.
        assert_eq!(state(&a, &p, &all).unwrap().0, State::Missing);
        // The skip annotation is the tenant's too: listing every container (added by an update,
        // after admission) does not make a pod without credentials current.
        let mut skipped = spoof.clone();
        let names: Vec<String> = skipped["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(
                skipped["spec"]["initContainers"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        skipped["metadata"]["annotations"]["plx-store-webhook.dev/skip-containers"] =
            names.join(",").into();
        let (st, why) = state(&skipped, &p, &all).unwrap();
        assert_eq!(st, State::Missing, "{why}");
    }

    #[test]
    fn missing_references_unmatched_and_excluded() {
        let p = teams(|s| s);
        let all = cluster(false, &[]);
        // The namespace lacks the store's Secret: missing-reference, named.
        let ok = admitted(&p, "team-vision-1", "globex");
        let lacks = cluster(
            true,
            &[(
                ObjectKind::PersistentVolumeClaim,
                "datasets",
                "team-vision-1",
            )],
        );
        let (st, why) = state(&ok, &p, &lacks).unwrap();
        assert_eq!(st, State::MissingReference);
        assert_eq!(
            why,
            "secret vision-aws not found in namespace team-vision-1: the pod will not start"
        );
        // Excluded namespaces are not ours to count.
        let excl = teams(|s| {
            s.replace(
                "injection:\n",
                "injection:\n  namespaces: {exclude: [\"team-vision-*\"]}\n",
            )
        });
        assert!(state(&ok, &excl, &all).is_none());
        // Unmatched by design with noMatch: warn; with noMatch: deny such a run exists only if
        // it went around the webhook (labelled or re-routed after admission): missing.
        for (how, want) in [("warn", State::Unmatched), ("deny", State::Missing)] {
            let plan = teams(|s| s.replace("noMatch: default", &format!("noMatch: {how}")));
            let mut stray = read_json("tests/fixtures/polyaxon-pods/job.nostore.json");
            stray["metadata"]["namespace"] = "elsewhere".into();
            stray["metadata"]["annotations"]["operation.polyaxon.com/owner"] = "globex".into();
            assert_eq!(
                state(&stray, &plan, &all).unwrap().0,
                want,
                "noMatch: {how}"
            );
        }
    }

    /// One decision: for every config in examples/ and every Polyaxon pod the repository holds,
    /// in several namespaces, the pod as the webhook leaves it is judged `current` (`audit` on
    /// audit routes), and the pod without it never `current` or `audit`, whatever markers of
    /// the admitted pod it carries (copied, with a tenant-set `mode: audit`).
    #[test]
    fn what_mutate_gives_is_current_and_nothing_less_is() {
        let all = cluster(false, &[]);
        let (mut seen, mut disagree) = (0, 0);
        for cfg in std::fs::read_dir(root().join("examples")).unwrap() {
            let path = cfg.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml")
                || path.ends_with("helm-values.yaml")
            {
                continue;
            }
            let p = plan(&std::fs::read_to_string(&path).unwrap());
            for fx in std::fs::read_dir(root().join("tests/fixtures/polyaxon-pods")).unwrap() {
                let raw0 = read_json(fx.unwrap().path().to_str().unwrap());
                for ns in ["polyaxon", "team-vision-1", "team-nlp-2", "team-research-1"] {
                    let mut raw = raw0.clone();
                    raw["metadata"]["namespace"] = ns.into();
                    let (out, admitted) = check_applied(&p, &raw, ns);
                    if !out.allowed() || out.patch.is_empty() {
                        continue;
                    }
                    let Some((st, why)) = state(&admitted, &p, &all) else {
                        continue;
                    };
                    if st == State::Unmatched {
                        continue;
                    }
                    // The fleet's verdict is /validate's on the same pod.
                    let text = admitted.to_string();
                    let decoded = plx_store_webhook::engine::decode(&text);
                    let checked =
                        plx_store_webhook::engine::validate(&decoded, &p, &Request::pod_create(ns));
                    let audit = matches!(out.decision, Decision::Audited(_));
                    if audit {
                        assert_eq!(st, State::Audit, "{path:?} {ns}: {why}");
                        continue;
                    } else if checked.allowed() {
                        assert_eq!(st, State::Current, "{path:?} {ns}: {why}");
                    } else {
                        // Mutate admitted what validate refuses (issue #29 item 3, the engine's
                        // to close): the fleet sides with validate.
                        assert!(st.is_problem(), "{path:?} {ns}: {st:?}: {why}");
                        disagree += 1;
                    }
                    let mut spoof = raw.clone();
                    for (k, v) in admitted["metadata"]["annotations"].as_object().unwrap() {
                        if k.starts_with("plx-store-webhook.dev/") {
                            spoof["metadata"]["annotations"][k] = v.clone();
                        }
                    }
                    spoof["metadata"]["annotations"]["plx-store-webhook.dev/mode"] = "audit".into();
                    for pod in [&raw, &spoof] {
                        let (st, why) = state(pod, &p, &all).unwrap();
                        assert!(
                            st.is_problem(),
                            "{path:?} {ns}: a pod without its credentials judged {st:?}: {why}"
                        );
                    }
                    seen += 1;
                }
            }
        }
        assert!(seen >= 20, "only {seen} cases");
        eprintln!("{seen} cases, {disagree} where /validate refuses what /mutate gave");
    }

    /// Whatever the tenant writes in its metadata, the record keeps a bounded few hundred bytes.
    #[test]
    fn the_record_is_bounded_whatever_the_metadata() {
        let p = teams(|s| s);
        let mut pod = admitted(&p, "team-vision-1", "globex");
        let fat = "x".repeat(200 * 1024);
        for k in [
            "operation.polyaxon.com/owner",
            "operation.polyaxon.com/project",
            "plx-store-webhook.dev/store",
            "plx-store-webhook.dev/decision",
            "plx-store-webhook.dev/config-hash",
        ] {
            pod["metadata"]["annotations"][k] = fat.clone().into();
        }
        pod["metadata"]["labels"]["operation.polyaxon.com/uuid"] = fat.clone().into();
        let r = judge("team-vision-1", "p", &pod.to_string(), &p).unwrap();
        assert_eq!((&r.owner, &r.project, &r.run), (&None, &None, &None));
        assert_eq!(r.verdict, State::Stale, "{}", r.why);
        assert!(
            r.why.len() <= plx_store_webhook::fleet::MAX_WHY,
            "{}",
            r.why.len()
        );
    }
}
