//! The pod model of [`super::pod`] read in one pass by [`crate::json_scan`], without serde's
//! visitor per field: the request hot path. Anything it is unsure of goes back to the serde
//! reader, which stays the definition of what a pod is (the tests below hold the two readers to
//! the same answers).

use super::pod::{
    ClaimSource, Container, ContainerSecurity, DownwardApi, Env, EnvFrom, HostPathSource, KeyPath,
    KeyRef, Meta, Mount, NameRef, PathOnly, Pod, PodSecurity, Projected, Projection,
    SecretProjection, SecretSource, Spec, StrMap, ValueFrom, Volume,
};
use crate::json_scan::{field, Cursor, Scan, Seen, Unsure};
use serde::de::IgnoredAny;
use std::borrow::Cow;

const I32: u64 = i32::MAX as u64;
const I64: u64 = i64::MAX as u64;

/// A whole JSON text that is one pod, building at most `entries` list and map entries; the
/// error says whether the budget ran out (`true`) or the reader was unsure.
pub fn pod_text(text: &str, entries: usize) -> Result<Pod<'_>, bool> {
    let mut c = Cursor::with_budget(text, entries);
    match pod(&mut c) {
        Ok(pod) => c.finish().map(|()| pod).map_err(|_| false),
        Err(_) => Err(c.over_budget()),
    }
}

fn required<'a>(name: Option<Cow<'a, str>>) -> Scan<Cow<'a, str>> {
    name.ok_or(Unsure)
}

/// A pod (an object; serde's sequence form of a struct is left to serde).
pub fn pod<'a>(c: &mut Cursor<'a>) -> Scan<Pod<'a>> {
    let (mut metadata, mut spec) = (None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "metadata" => field!(seen, 0, metadata, c.opt(meta)?),
        "spec" => field!(seen, 1, spec, c.opt(spec_of)?),
        _ => c.skip(),
    })?;
    Ok(Pod { metadata, spec })
}

fn meta<'a>(c: &mut Cursor<'a>) -> Scan<Meta<'a>> {
    let mut m = Meta {
        name: None,
        generate_name: None,
        namespace: None,
        labels: None,
        annotations: None,
    };
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "name" => field!(seen, 0, m.name, c.opt(Cursor::str)?),
        "generateName" => field!(seen, 1, m.generate_name, c.opt(Cursor::str)?),
        "namespace" => field!(seen, 2, m.namespace, c.opt(Cursor::str)?),
        "labels" => field!(seen, 3, m.labels, c.opt(str_map)?),
        "annotations" => field!(seen, 4, m.annotations, c.opt(str_map)?),
        _ => c.skip(),
    })?;
    Ok(m)
}

/// Labels or annotations; a repeated key keeps its last value (as serde's map does).
fn str_map<'a>(c: &mut Cursor<'a>) -> Scan<StrMap<'a>> {
    let mut map = StrMap::new();
    c.object(|c, key| {
        c.spend()?;
        map.insert(key, c.str()?);
        Ok(())
    })?;
    Ok(map)
}

fn spec_of<'a>(c: &mut Cursor<'a>) -> Scan<Spec<'a>> {
    let mut s = Spec {
        volumes: None,
        containers: None,
        init_containers: None,
        security_context: None,
        service_account_name: None,
        service_account: None,
        share_process_namespace: None,
    };
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "volumes" => field!(seen, 0, s.volumes, c.opt(|c| c.list(volume))?),
        "containers" => field!(seen, 1, s.containers, c.opt(|c| c.list(container))?),
        "initContainers" => field!(seen, 2, s.init_containers, c.opt(|c| c.list(container))?),
        "securityContext" => field!(seen, 3, s.security_context, c.opt(pod_security)?),
        "serviceAccountName" => field!(seen, 4, s.service_account_name, c.opt(Cursor::str)?),
        "serviceAccount" => field!(seen, 5, s.service_account, c.opt(Cursor::str)?),
        "shareProcessNamespace" => field!(seen, 6, s.share_process_namespace, c.opt(Cursor::bool)?),
        _ => c.skip(),
    })?;
    Ok(s)
}

fn int(c: &mut Cursor<'_>, max: u64) -> Scan<Option<i64>> {
    // Both bounds are at most i64::MAX, so the conversion cannot fail.
    c.opt(|c| c.uint(max))?
        .map(|v| i64::try_from(v).map_err(|_| Unsure))
        .transpose()
}

fn int32(c: &mut Cursor<'_>) -> Scan<Option<i32>> {
    int(c, I32)?
        .map(|v| i32::try_from(v).map_err(|_| Unsure))
        .transpose()
}

fn pod_security(c: &mut Cursor<'_>) -> Scan<PodSecurity> {
    let mut s = PodSecurity::default();
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "runAsUser" => field!(seen, 0, s.run_as_user, int(c, I64)?),
        "runAsNonRoot" => field!(seen, 1, s.run_as_non_root, c.opt(Cursor::bool)?),
        "fsGroup" => field!(seen, 2, s.fs_group, int(c, I64)?),
        _ => c.skip(),
    })?;
    Ok(s)
}

fn container_security(c: &mut Cursor<'_>) -> Scan<ContainerSecurity> {
    let mut s = ContainerSecurity::default();
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "runAsUser" => field!(seen, 0, s.run_as_user, int(c, I64)?),
        "runAsNonRoot" => field!(seen, 1, s.run_as_non_root, c.opt(Cursor::bool)?),
        _ => c.skip(),
    })?;
    Ok(s)
}

fn ignored(c: &mut Cursor<'_>) -> Scan<IgnoredAny> {
    c.skip().map(|_| IgnoredAny)
}

fn volume<'a>(c: &mut Cursor<'a>) -> Scan<Volume<'a>> {
    let (mut name, mut secret, mut config_map, mut claim, mut host_path) =
        (None, None, None, None, None);
    let (mut downward_api, mut projected, mut empty_dir) = (None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "name" => field!(seen, 0, name, Some(c.str()?)),
        "secret" => field!(seen, 1, secret, c.opt(secret_source)?),
        "configMap" => field!(seen, 2, config_map, c.opt(secret_projection)?),
        "persistentVolumeClaim" => field!(seen, 3, claim, c.opt(claim_source)?),
        "hostPath" => field!(seen, 4, host_path, c.opt(host_path_source)?),
        "downwardAPI" => field!(seen, 5, downward_api, c.opt(downward)?),
        "projected" => field!(seen, 6, projected, c.opt(projected_source)?),
        "emptyDir" => field!(seen, 7, empty_dir, c.opt(ignored)?),
        _ => c.skip(),
    })?;
    Ok(Volume {
        name: required(name)?,
        secret,
        config_map,
        persistent_volume_claim: claim,
        host_path,
        downward_api,
        projected,
        empty_dir,
    })
}

fn downward<'a>(c: &mut Cursor<'a>) -> Scan<DownwardApi<'a>> {
    let mut items = None;
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "items" => field!(seen, 0, items, c.opt(|c| c.list(path_only))?),
        _ => c.skip(),
    })?;
    Ok(DownwardApi { items })
}

fn path_only<'a>(c: &mut Cursor<'a>) -> Scan<PathOnly<'a>> {
    let mut path = None;
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "path" => field!(seen, 0, path, Some(c.str()?)),
        _ => c.skip(),
    })?;
    Ok(PathOnly {
        path: required(path)?,
    })
}

fn secret_source<'a>(c: &mut Cursor<'a>) -> Scan<SecretSource<'a>> {
    let (mut secret_name, mut items, mut default_mode) = (None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "secretName" => field!(seen, 0, secret_name, c.opt(Cursor::str)?),
        "items" => field!(seen, 1, items, c.opt(|c| c.list(key_path))?),
        "defaultMode" => field!(seen, 2, default_mode, int32(c)?),
        _ => c.skip(),
    })?;
    Ok(SecretSource {
        secret_name,
        items,
        default_mode,
    })
}

fn projected_source<'a>(c: &mut Cursor<'a>) -> Scan<Projected<'a>> {
    let mut sources = None;
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "sources" => field!(seen, 0, sources, c.opt(|c| c.list(projection))?),
        _ => c.skip(),
    })?;
    Ok(Projected { sources })
}

fn projection<'a>(c: &mut Cursor<'a>) -> Scan<Projection<'a>> {
    let (mut secret, mut config_map, mut downward_api, mut token) = (None, None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "secret" => field!(seen, 0, secret, c.opt(secret_projection)?),
        "configMap" => field!(seen, 1, config_map, c.opt(secret_projection)?),
        "downwardAPI" => field!(seen, 2, downward_api, c.opt(downward)?),
        "serviceAccountToken" => field!(seen, 3, token, c.opt(path_only)?),
        _ => c.skip(),
    })?;
    Ok(Projection {
        secret,
        config_map,
        downward_api,
        service_account_token: token,
    })
}

fn secret_projection<'a>(c: &mut Cursor<'a>) -> Scan<SecretProjection<'a>> {
    let (mut name, mut items) = (None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "name" => field!(seen, 0, name, c.opt(Cursor::str)?),
        "items" => field!(seen, 1, items, c.opt(|c| c.list(key_path))?),
        _ => c.skip(),
    })?;
    Ok(SecretProjection { name, items })
}

fn key_path<'a>(c: &mut Cursor<'a>) -> Scan<KeyPath<'a>> {
    let (mut key_, mut path, mut mode) = (None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "key" => field!(seen, 0, key_, Some(c.str()?)),
        "path" => field!(seen, 1, path, Some(c.str()?)),
        "mode" => field!(seen, 2, mode, int32(c)?),
        _ => c.skip(),
    })?;
    Ok(KeyPath {
        key: required(key_)?,
        path: required(path)?,
        mode,
    })
}

/// An object whose one field of interest is an optional string (`name`, `claimName`, `path`).
fn one_name<'a>(c: &mut Cursor<'a>, field: &str) -> Scan<Option<Cow<'a, str>>> {
    let mut value = None;
    let mut seen = Seen::default();
    c.object(|c, key| {
        if *key == *field {
            field!(seen, 0, value, c.opt(Cursor::str)?)
        } else {
            c.skip()
        }
    })?;
    Ok(value)
}

fn name_ref<'a>(c: &mut Cursor<'a>) -> Scan<NameRef<'a>> {
    Ok(NameRef {
        name: one_name(c, "name")?,
    })
}

fn claim_source<'a>(c: &mut Cursor<'a>) -> Scan<ClaimSource<'a>> {
    Ok(ClaimSource {
        claim_name: one_name(c, "claimName")?,
    })
}

fn host_path_source<'a>(c: &mut Cursor<'a>) -> Scan<HostPathSource<'a>> {
    Ok(HostPathSource {
        path: one_name(c, "path")?,
    })
}

fn container<'a>(c: &mut Cursor<'a>) -> Scan<Container<'a>> {
    let (mut name, mut mounts, mut env, mut env_from, mut security, mut image, mut working_dir) =
        (None, None, None, None, None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "name" => field!(seen, 0, name, Some(c.str()?)),
        "volumeMounts" => field!(seen, 1, mounts, c.opt(|c| c.list(mount))?),
        "env" => field!(seen, 2, env, c.opt(|c| c.list(env_var))?),
        "envFrom" => field!(seen, 3, env_from, c.opt(|c| c.list(env_from_source))?),
        "securityContext" => field!(seen, 4, security, c.opt(container_security)?),
        "image" => field!(seen, 5, image, c.opt(Cursor::str)?),
        "workingDir" => field!(seen, 6, working_dir, c.opt(Cursor::str)?),
        _ => c.skip(),
    })?;
    Ok(Container {
        name: required(name)?,
        image,
        working_dir,
        volume_mounts: mounts,
        env,
        env_from,
        security_context: security,
    })
}

fn mount<'a>(c: &mut Cursor<'a>) -> Scan<Mount<'a>> {
    let (mut name, mut mount_path, mut read_only, mut sub_path, mut sub_path_expr) =
        (None, None, None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "name" => field!(seen, 0, name, Some(c.str()?)),
        "mountPath" => field!(seen, 1, mount_path, Some(c.str()?)),
        "readOnly" => field!(seen, 2, read_only, c.opt(Cursor::bool)?),
        "subPath" => field!(seen, 3, sub_path, c.opt(Cursor::str)?),
        "subPathExpr" => field!(seen, 4, sub_path_expr, c.opt(Cursor::str)?),
        _ => c.skip(),
    })?;
    Ok(Mount {
        name: required(name)?,
        mount_path: required(mount_path)?,
        read_only,
        sub_path,
        sub_path_expr,
    })
}

fn env_var<'a>(c: &mut Cursor<'a>) -> Scan<Env<'a>> {
    let (mut name, mut value, mut value_from) = (None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "name" => field!(seen, 0, name, Some(c.str()?)),
        "value" => field!(seen, 1, value, c.opt(Cursor::str)?),
        "valueFrom" => field!(seen, 2, value_from, c.opt(value_from_source)?),
        _ => c.skip(),
    })?;
    Ok(Env {
        name: required(name)?,
        value,
        value_from,
    })
}

fn value_from_source<'a>(c: &mut Cursor<'a>) -> Scan<ValueFrom<'a>> {
    let (mut secret, mut config_map) = (None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "secretKeyRef" => field!(seen, 0, secret, c.opt(key_ref)?),
        "configMapKeyRef" => field!(seen, 1, config_map, c.opt(key_ref)?),
        _ => c.skip(),
    })?;
    Ok(ValueFrom {
        secret_key_ref: secret,
        config_map_key_ref: config_map,
    })
}

fn key_ref<'a>(c: &mut Cursor<'a>) -> Scan<KeyRef<'a>> {
    let (mut name, mut key_) = (None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "name" => field!(seen, 0, name, c.opt(Cursor::str)?),
        "key" => field!(seen, 1, key_, Some(c.str()?)),
        _ => c.skip(),
    })?;
    Ok(KeyRef {
        name,
        key: required(key_)?,
    })
}

fn env_from_source<'a>(c: &mut Cursor<'a>) -> Scan<EnvFrom<'a>> {
    let (mut secret, mut config_map, mut prefix) = (None, None, None);
    let mut seen = Seen::default();
    c.object(|c, key| match &*key {
        "secretRef" => field!(seen, 0, secret, c.opt(name_ref)?),
        "configMapRef" => field!(seen, 1, config_map, c.opt(name_ref)?),
        "prefix" => field!(seen, 2, prefix, c.opt(Cursor::str)?),
        _ => c.skip(),
    })?;
    Ok(EnvFrom {
        secret_ref: secret,
        config_map_ref: config_map,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pod::decode_serde;
    use crate::json_scan::mutants::{mutate, Rng};

    const PODS: [&str; 5] = [
        include_str!("../../../tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json"),
        include_str!("../../../tests/fixtures/polyaxon-pods/job.gcs-etc.json"),
        include_str!("../../../tests/fixtures/polyaxon-pods/job.gcs-filepath.json"),
        include_str!("../../../tests/fixtures/polyaxon-pods/job.nostore.json"),
        include_str!("../../../examples/run-pod.json"),
    ];

    /// Every pod the converter makes takes the fast path (else it would only cost a pass).
    #[test]
    fn the_converters_pods_take_the_fast_path_and_read_as_serde_reads_them() {
        for text in PODS {
            let fast = pod_text(text, usize::MAX).expect("fast path");
            let serde = decode_serde(text).expect("serde");
            assert_eq!(format!("{fast:?}"), format!("{serde:?}"));
        }
    }

    /// The fast reader accepts only what serde accepts, and reads it the same. Over mutants of
    /// the real pods: types out of place, repeated fields, escapes, broken JSON.
    #[test]
    fn on_mutated_pods_the_fast_reader_agrees_with_serde_or_steps_aside() {
        let mut rng = Rng::new(0x5eed);
        let (mut agreed, mut aside, mut tried) = (0, 0, 0);
        for seed in PODS {
            for _ in 0..600 {
                let Some(text) = mutate(seed, &mut rng) else {
                    continue;
                };
                tried += 1;
                let serde = decode_serde(&text);
                match pod_text(&text, usize::MAX) {
                    Ok(fast) => {
                        let serde = serde.unwrap_or_else(|m| {
                            panic!(
                                "fast accepted what serde refuses ({}):\n{text}",
                                m.problem()
                            )
                        });
                        assert_eq!(format!("{fast:?}"), format!("{serde:?}"), "{text}");
                        agreed += 1;
                    }
                    Err(_) => aside += 1,
                }
            }
        }
        // Not vacuous: both outcomes happen often.
        assert!(
            agreed > tried / 10 && aside > tried / 10,
            "{agreed} agreed, {aside} aside of {tried}"
        );
    }

    #[test]
    fn hand_made_edges_agree_with_serde() {
        let cases = [
            r#"{"metadata": null, "spec": null}"#,
            r#"{"metadata": {"n\u0061me": "escaped key", "labels": {"k:{\"a\"}": "v"}}}"#,
            r#"{"spec": {"containers": [{"name": "c", "securityContext": {"runAsUser": 0, "runAsNonRoot": false}}],
                "securityContext": {"runAsUser": 9223372036854775807, "fsGroup": 0}}}"#,
            r#"{"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/h"}, "persistentVolumeClaim": {"claimName": "c"},
                "configMap": {"name": "cm"}, "downwardAPI": {"items": []}, "projected": null,
                "secret": {"secretName": "s", "defaultMode": 2147483647, "items": [{"key": "k", "path": "p", "mode": 256}]}}]}}"#,
            r#"{"spec": {"containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"key": "k"},
                "configMapKeyRef": {"name": null, "key": "k2"}}}], "envFrom": [{"secretRef": {"name": "s"}}, {"configMapRef": null}]}]}}"#,
            r#"{"spec": {"securityContext": {"runAsUser": 9223372036854775808}}}"#,
            r#"{"metadata": {"name": "a", "name": "b"}}"#,
            r#"{"metadata": {"name": null, "name": "b"}}"#,
            r#"{"metadata": {"labels": {"a": "1", "a": "2"}, "annotations": {"\u00e9": "x"}}}"#,
            r#"[{"name": "x"}, null]"#,
            r#"{"spec": {"containers": [{"volumeMounts": [{"name": "m"}]}]}}"#,
            r#"{"spec": {"initContainers": [{"name": "i", "volumeMounts": [{"name": "m", "mountPath": "/p", "subPathExpr": "$(X)"}]}]}}"#,
            r#"{"spec": {"volumes": [{"name": "p", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"path": "token"}},
                {"secret": {"name": "s", "items": [{"key": "k", "path": ".gc/gc-secret.json"}]}}, {"secret": null}, {"configMap": {"name": "c"}}]}},
                {"name": "q", "projected": {"sources": null}}, {"name": "r", "projected": {}}]}}"#,
        ];
        for text in cases {
            let serde = decode_serde(text);
            if let Ok(fast) = pod_text(text, usize::MAX) {
                let serde = serde.unwrap_or_else(|m| panic!("{text}: {}", m.problem()));
                assert_eq!(format!("{fast:?}"), format!("{serde:?}"), "{text}");
            }
        }
        // The valid ones among them stay on the fast path.
        for text in cases[..5].iter().chain(&cases[cases.len() - 1..]) {
            assert!(pod_text(text, usize::MAX).is_ok(), "{text}");
        }
    }
}
