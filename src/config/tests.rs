use super::*;

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
