use super::*;
use crate::glob::Glob;

fn err(text: &str) -> String {
    load_str(text, "test.yaml").unwrap_err().to_string()
}

#[test]
fn three_forms_resolve_to_the_same_store() {
    let helm = "ingress: {enabled: false}\nartifactsStore:\n  name: s\n  kind: gcs\n  schema: {bucket: gs://b}\n  secret: {name: gcs-secret, mountPath: /plx-context/.gc}\n";
    let conn = "name: s\nkind: gcs\nschema: {bucket: gs://b}\nsecret: {name: gcs-secret, mountPath: /plx-context/.gc}\n";
    let json = r#""{\"name\":\"s\",\"kind\":\"gcs\",\"schema\":{\"bucket\":\"gs://b\"},\"secret\":{\"name\":\"gcs-secret\",\"mountPath\":\"/plx-context/.gc\"}}""#;
    let a = load_str(helm, "a").unwrap();
    let b = load_str(conn, "b").unwrap();
    let c = load_str(json, "c").unwrap();
    assert_eq!(a.hash, b.hash);
    assert_eq!(b.hash, c.hash);
    assert_eq!(
        a.store.secret.unwrap().mount_path.unwrap().dir,
        "/plx-context/.gc"
    );
}

#[test]
fn raw_polyaxon_forms_are_converted() {
    let c = load_str(
        "name: s\nkind: gcs\nschema: {bucket: b}\nsecret: {name: k, mountPath: /etc/gcs/, items: [gc-secret.json], defaultMode: \"0400\"}\n",
        "t",
    )
    .unwrap();
    let s = c.store.secret.unwrap();
    assert_eq!(
        s.items,
        vec![KeyToPath {
            key: "gc-secret.json".into(),
            path: "gc-secret.json".into(),
            mode: None
        }]
    );
    assert_eq!(s.default_mode, Some(256));
    assert_eq!(s.mount_path.unwrap().dir, "/etc/gcs");
}

#[test]
fn legacy_file_mount_path_is_split() {
    let c = load_str("name: s\nkind: gcs\nschema: {bucket: b}\nsecret: {name: k, mountPath: /plx-context/.gc/gc-secret.json}\n", "t").unwrap();
    let t = c.store.secret.unwrap().mount_path.unwrap();
    assert_eq!(t.dir, "/plx-context/.gc");
    assert_eq!(t.file.as_deref(), Some("gc-secret.json"));
}

#[test]
fn errors_say_where_and_what() {
    let e = err("name: s\nkind: gcs\nschema: {bucket: b}\nsecrett: {name: k}\n");
    assert!(
        e.contains("test.yaml") && e.contains("secrett") && e.contains("line 4"),
        "{e}"
    );
    assert!(
        e.contains("expected one of") && e.contains("configMap"),
        "lists the allowed fields: {e}"
    );
    let e = err("name: s\nkind: minio\n");
    assert!(e.contains("kind") && e.contains("gcs, s3, wasb"), "{e}");
    let e = err("name: s\nkind: gcs\n");
    assert!(e.contains("schema.bucket"), "{e}");
    let e = err("artifactsStore:\n  name: s\n  kind: s3\n  schema: {bucket: b}\n  secret: {name: Bad_Name}\n");
    assert!(
        e.contains("artifactsStore.secret.name") && e.contains("Bad_Name"),
        "{e}"
    );
    let e = err("name: s\nkind: gcs\nschema: {bucket: b}\nsecret: {name: k, mountPath: etc/gcs}\n");
    assert!(
        e.contains("secret.mountPath") && e.contains("absolute"),
        "{e}"
    );
    let e = err("name: s\nkind: gcs\nschema: {bucket: b}\nsecret: {name: k, mountPath: /x, defaultMode: \"0999\"}\n");
    assert!(e.contains("defaultMode"), "{e}");
    let e = err("name: s\nkind: gcs\nschema: {bucket: b}\ninjection: {onConflict: maybe}\n");
    assert!(e.contains("injection.onConflict"), "{e}");
    let e = err("name: s\nkind: gcs\nschema: {bucket: b}\ninjection: {containerz: [a]}\n");
    assert!(e.contains("containerz"), "{e}");
    let e = err("foo: bar\n");
    assert!(e.contains("artifactsStore"), "{e}");
    let e = err(
        "name: s\nkind: gcs\nschema: {bucket: b}\nsecret: {name: k, items: [a.json, b.json]}\n",
    );
    assert!(e.contains("secret.items"), "{e}");
    let e =
        err("name: s\nkind: s3\nschema: {bucket: b}\nsecret: {name: k, items: [\"bad key\"]}\n");
    assert!(e.contains("env var"), "{e}");
}

#[test]
fn volume_stores_need_their_schema() {
    let c = load_str("name: vol\nkind: volume_claim\nschema: {volumeClaim: pvc, mountPath: /data, readOnly: true}\n", "t").unwrap();
    assert_eq!(
        c.store.volume.unwrap().source,
        VolumeStoreSource::Claim("pvc".into())
    );
    assert!(
        err("name: vol\nkind: host_path\nschema: {mountPath: /data}\n").contains("schema.hostPath")
    );
}

const WITH_CONNECTIONS: &str = "artifactsStore:\n  name: gcs-artifacts\n  kind: gcs\n  schema: {bucket: gs://b}\n  secret: {name: gcs-secret, mountPath: /plx-context/.gc}\nconnections:\n  - {name: datasets, kind: volume_claim, schema: {volumeClaim: datasets-pvc, mountPath: /data, readOnly: true}}\n  - {name: s3-shared, kind: s3, schema: {bucket: s3://shared}, secret: {name: aws-shared}}\n";

#[test]
fn mandated_connections_are_resolved_in_order() {
    let c = load_str(
        &format!(
            "{WITH_CONNECTIONS}injection: {{connections: [s3-shared, datasets, gcs-artifacts]}}\n"
        ),
        "t",
    )
    .unwrap();
    let names: Vec<&str> = c.mandated.iter().map(|s| s.name.as_str()).collect();
    // The store itself is not repeated.
    assert_eq!(names, ["s3-shared", "datasets"]);
    let none = load_str(WITH_CONNECTIONS, "t").unwrap();
    assert!(
        none.mandated.is_empty(),
        "declared but not mandated: not injected"
    );
    assert_ne!(c.hash, none.hash);
}

#[test]
fn connection_errors_are_load_time_errors() {
    let e = err(&format!(
        "{WITH_CONNECTIONS}injection: {{connections: [nope]}}\n"
    ));
    assert!(
        e.contains("injection.connections[0]")
            && e.contains("\"nope\"")
            && e.contains("datasets, s3-shared"),
        "{e}"
    );
    let dup = WITH_CONNECTIONS.replace("name: s3-shared", "name: datasets");
    let e = err(&dup);
    assert!(
        e.contains("connections[1].name") && e.contains("duplicate"),
        "{e}"
    );
    let clash = WITH_CONNECTIONS.replace("mountPath: /data", "mountPath: /plx-context/.gc");
    let e = err(&format!("{clash}injection: {{connections: [datasets]}}\n"));
    assert!(
        e.contains("/plx-context/.gc") && e.contains("share a mountPath"),
        "{e}"
    );
    let e = err(&WITH_CONNECTIONS.replace("kind: volume_claim", "kind: nope"));
    assert!(e.contains("connections[0].kind"), "{e}");
}

fn with_rules(rules: &str) -> String {
    format!("{WITH_CONNECTIONS}injection:\n  connections: [datasets]\n  rules:\n{rules}")
}

#[test]
fn rules_resolve_store_and_connections() {
    let c = load_str(
        &with_rules(
            "    - {name: shared, match: {namespaces: [team-*], owners: [acme]}, store: s3-shared, connections: [datasets, s3-shared]}\n    - {match: {projects: [p]}, store: gcs-artifacts}\n",
        ),
        "t",
    )
    .unwrap();
    assert_eq!(c.rules.len(), 2);
    let r = &c.rules[0];
    assert_eq!(r.store.name, "s3-shared");
    // The mandated connection once, the rule's store never as its own connection.
    let names: Vec<&str> = r.connections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["datasets"]);
    assert_eq!(r.matcher.namespaces[0].as_str(), "team-*");
    assert_eq!(
        c.rules[1].name, "rules[1]",
        "unnamed rules get their position"
    );
    assert_eq!(c.rules[1].store.name, "gcs-artifacts");
    assert_eq!(c.no_match, NoMatch::Default);
    let plain = load_str(
        &format!("{WITH_CONNECTIONS}injection:\n  connections: [datasets]\n"),
        "t",
    )
    .unwrap();
    assert_ne!(c.hash, plain.hash, "rules are part of the config hash");
}

#[test]
fn rule_errors_are_load_time_errors() {
    let e = err(&with_rules("    - {store: nope}\n"));
    assert!(
        e.contains("injection.rules[0].store")
            && e.contains("\"nope\"")
            && e.contains("gcs-artifacts")
            && e.contains("datasets, s3-shared"),
        "{e}"
    );
    let e = err(&with_rules(
        "    - {store: s3-shared, connections: [datasets, missing]}\n",
    ));
    assert!(
        e.contains("injection.rules[0].connections[1]") && e.contains("\"missing\""),
        "{e}"
    );
    let e = err(&with_rules(
        "    - {name: a, store: s3-shared}\n    - {name: a, store: s3-shared}\n",
    ));
    assert!(
        e.contains("injection.rules[1].name") && e.contains("duplicate"),
        "{e}"
    );
    let e = err(&with_rules(
        "    - {store: s3-shared, match: {teams: [x]}}\n",
    ));
    assert!(e.contains("teams") && e.contains("namespaces"), "{e}");
    let e = err(&with_rules(
        "    - {store: s3-shared, match: {owners: [\"\"]}}\n",
    ));
    assert!(e.contains("injection.rules[0].match.owners"), "{e}");
    let e = err(&format!(
        "{WITH_CONNECTIONS}injection: {{noMatch: maybe}}\n"
    ));
    assert!(e.contains("injection.noMatch") && e.contains("warn"), "{e}");
    // A rule whose store and connection mount at one directory.
    let clash = WITH_CONNECTIONS.replace("mountPath: /data", "mountPath: /plx-context/.gc");
    let e = err(&format!(
        "{clash}injection:\n  rules:\n    - {{name: r, store: gcs-artifacts, connections: [datasets]}}\n"
    ));
    assert!(
        e.contains("injection.rules[0] (r)") && e.contains("share a mountPath"),
        "{e}"
    );
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("plx-cfg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn agent_configmap_directory_with_settings_file() {
    let dir = temp_dir("agent");
    // As the kubelet writes a mounted ConfigMap: one file per key, the JSON Helm rendered.
    std::fs::write(
        dir.join(AGENT_STORE_KEY),
        r#"{"name":"gcs-artifacts","kind":"gcs","schema":{"bucket":"gs://b"},"secret":{"name":"gcs-secret","mountPath":"/plx-context/.gc"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join(AGENT_CONNECTIONS_KEY),
        r#"[{"name":"datasets","kind":"volume_claim","schema":{"volumeClaim":"datasets-pvc","mountPath":"/data","readOnly":true}},{"name":"s3-shared","kind":"s3","schema":{"bucket":"s3://shared"},"secret":{"name":"aws-shared"}}]"#,
    )
    .unwrap();
    std::fs::write(dir.join("POLYAXON_AGENT_OTHER"), "ignored").unwrap();
    let settings = dir.join("settings.yaml");
    std::fs::write(
        &settings,
        "injection:\n  connections: [datasets]\n  rules:\n    - {name: shared, match: {namespaces: [team-*]}, store: s3-shared}\n",
    )
    .unwrap();
    let from_dir = Source::new(&dir, Some(settings.clone())).load().unwrap();
    // The same config written as one Helm values file has the same hash.
    let helm = load_str(
        &with_rules("    - {name: shared, match: {namespaces: [team-*]}, store: s3-shared}\n"),
        "t",
    )
    .unwrap();
    assert_eq!(from_dir.hash, helm.hash);
    assert_eq!(from_dir.rules[0].store.name, "s3-shared");
    let files = Source::new(&dir, Some(settings.clone())).files();
    assert_eq!(
        files,
        [
            dir.join(AGENT_STORE_KEY),
            dir.join(AGENT_CONNECTIONS_KEY),
            settings.clone()
        ]
    );
    // Without the connections key the names are unknown: a load error naming one.
    std::fs::remove_file(dir.join(AGENT_CONNECTIONS_KEY)).unwrap();
    let e = Source::new(&dir, Some(settings.clone()))
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown connection \"datasets\"") && e.contains("settings.yaml"),
        "{e}"
    );
    // The settings file holds only `injection:`.
    std::fs::write(&settings, "artifactsStore: {name: x}\n").unwrap();
    let e = Source::new(&dir, Some(settings.clone()))
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("artifactsStore") && e.contains("injection"),
        "{e}"
    );
    // A directory without the store key says what it expects.
    let empty = temp_dir("empty");
    let e = Source::new(&empty, None).load().unwrap_err().to_string();
    assert!(
        e.contains(AGENT_STORE_KEY) && e.contains("polyaxon-agent-config"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn injection_in_both_places_is_refused() {
    let dir = temp_dir("both");
    let cfg = dir.join("values.yaml");
    std::fs::write(
        &cfg,
        format!("{WITH_CONNECTIONS}injection: {{onConflict: skip}}\n"),
    )
    .unwrap();
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, "injection: {onConflict: deny}\n").unwrap();
    let e = Source::new(&cfg, Some(settings))
        .load()
        .unwrap_err()
        .to_string();
    assert!(e.contains("both"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rule_match_semantics() {
    let m = RuleMatch {
        namespaces: vec![Glob::new("team-*")],
        owners: vec![Glob::new("acme"), Glob::new("beta")],
        projects: vec![],
        components: vec![],
    };
    let f = |ns, owner| RunFacts {
        namespace: ns,
        owner,
        project: Some("p"),
        component: None,
    };
    assert!(m.matches(&f("team-a", Some("beta"))));
    assert!(
        !m.matches(&f("team-a", None)),
        "a missing owner never matches a list"
    );
    assert!(!m.matches(&f("ops", Some("acme"))));
    assert!(
        RuleMatch::default().matches(&f("x", None)),
        "empty matches all"
    );
    let why = m.explain(&f("ops", Some("acme")));
    assert_eq!(why.len(), 2);
    assert!(!why[0].matched && why[1].matched);
}
