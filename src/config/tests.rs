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
