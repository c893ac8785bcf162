//! The parts of a pod the engine reads, deserialized straight from the request bytes (or from a
//! `serde_json::Value`) with borrowed strings; every other field is skipped without being built.
//! A pod that does not fit fails with the path of the offending field.

use crate::limits::PodLimits;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

type Str<'a> = Cow<'a, str>;
pub type StrMap<'a> = BTreeMap<Str<'a>, Str<'a>>;

/// serde borrows a `Cow<str>` from the input only for a field spelled `Cow<'a, str>` marked
/// `#[serde(borrow)]` (an alias such as `Str<'a>` is not recognised); inside an `Option` or a
/// map it always builds an owned copy. Fields below therefore spell the type out, and these
/// read optional strings and string maps borrowed whenever the JSON string has no escape (the
/// owned copies were ≈ 116 allocations per review of a real run pod). Use with
/// `#[serde(borrow, default, deserialize_with = …)]`.
pub mod borrowed {
    use super::{Str, StrMap};
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde::Deserialize;
    use std::fmt;

    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

    /// An optional string, borrowed when it can be.
    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Str<'de>>, D::Error> {
        Ok(Option::<Text<'de>>::deserialize(d)?.map(|t| t.0))
    }

    /// An optional string map (labels, annotations), keys and values borrowed when they can be.
    /// A repeated key keeps its last value, as serde's own map does.
    pub fn map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StrMap<'de>>, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = StrMap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut out = StrMap::new();
                while let Some((k, v)) = access.next_entry::<Text<'de>, Text<'de>>()? {
                    out.insert(k.0, v.0);
                }
                Ok(out)
            }
        }
        struct Wrapped<'de>(StrMap<'de>);
        impl<'de> Deserialize<'de> for Wrapped<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_map(Entries).map(Wrapped)
            }
        }
        Ok(Option::<Wrapped<'de>>::deserialize(d)?.map(|w| w.0))
    }
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a Pod object")]
pub struct Pod<'a> {
    #[serde(borrow)]
    pub metadata: Option<Meta<'a>>,
    #[serde(borrow)]
    pub spec: Option<Spec<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub generate_name: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed::map")]
    pub labels: Option<StrMap<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed::map")]
    pub annotations: Option<StrMap<'a>>,
}

/// Only the metadata: enough to tell whether a malformed object is a run at all.
#[derive(Debug, Deserialize)]
pub struct MetaOnly<'a> {
    #[serde(borrow)]
    pub metadata: Option<Meta<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec<'a> {
    #[serde(borrow)]
    pub volumes: Option<Vec<Volume<'a>>>,
    #[serde(borrow)]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    pub init_containers: Option<Vec<Container<'a>>>,
    pub security_context: Option<PodSecurity>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub service_account_name: Option<Str<'a>>,
    /// Deprecated alias of `serviceAccountName`, still honoured by the apiserver.
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub service_account: Option<Str<'a>>,
    /// Then `/proc/<pid>/root` may be another container's root.
    pub share_process_namespace: Option<bool>,
}

/// The pod-level `securityContext` fields that decide who can read a mounted key.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurity {
    pub run_as_user: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub fs_group: Option<i64>,
}

/// The container-level `securityContext` fields that override the pod's user.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSecurity {
    pub run_as_user: Option<i64>,
    pub run_as_non_root: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub secret: Option<SecretSource<'a>>,
    #[serde(borrow)]
    pub config_map: Option<SecretProjection<'a>>,
    #[serde(borrow)]
    pub persistent_volume_claim: Option<ClaimSource<'a>>,
    #[serde(borrow)]
    pub host_path: Option<HostPathSource<'a>>,
    #[serde(borrow, rename = "downwardAPI")]
    pub downward_api: Option<DownwardApi<'a>>,
    #[serde(borrow)]
    pub projected: Option<Projected<'a>>,
    /// The one source that starts empty (a volume without a source is one too).
    pub empty_dir: Option<IgnoredAny>,
}

/// A downward API volume or projection: only where its files land.
#[derive(Debug, Deserialize)]
pub struct DownwardApi<'a> {
    #[serde(borrow)]
    pub items: Option<Vec<PathOnly<'a>>>,
}

/// An entry that names only the file it puts in a volume (downward API items, a token).
#[derive(Debug, Deserialize)]
pub struct PathOnly<'a> {
    #[serde(borrow)]
    pub path: Cow<'a, str>,
}

/// A projected volume: where each source puts its files (a key, a copied token, the bound token).
#[derive(Debug, Deserialize)]
pub struct Projected<'a> {
    #[serde(borrow)]
    pub sources: Option<Vec<Projection<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Projection<'a> {
    #[serde(borrow)]
    pub secret: Option<SecretProjection<'a>>,
    #[serde(borrow)]
    pub config_map: Option<SecretProjection<'a>>,
    #[serde(borrow, rename = "downwardAPI")]
    pub downward_api: Option<DownwardApi<'a>>,
    #[serde(borrow)]
    pub service_account_token: Option<PathOnly<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct SecretProjection<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub items: Option<Vec<KeyPath<'a>>>,
}

impl Volume<'_> {
    /// Secret, ConfigMap, downward API and projected volumes are always mounted read-only.
    pub fn always_read_only(&self) -> bool {
        self.secret.is_some()
            || self.config_map.is_some()
            || self.downward_api.is_some()
            || self.projected.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub secret_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub items: Option<Vec<KeyPath<'a>>>,
    pub default_mode: Option<i32>,
}

#[derive(Debug, Deserialize)]
pub struct KeyPath<'a> {
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    pub mode: Option<i32>,
}

#[derive(Debug, Deserialize)]
pub struct NameRef<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSource<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub claim_name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct HostPathSource<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub path: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// The image reference as written (Polyaxon's own containers are told apart by it).
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub image: Option<Str<'a>>,
    /// Where relative paths its processes read start (unset: the image's, unknown here).
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub working_dir: Option<Str<'a>>,
    #[serde(borrow)]
    pub volume_mounts: Option<Vec<Mount<'a>>>,
    #[serde(borrow)]
    pub env: Option<Vec<Env<'a>>>,
    #[serde(borrow)]
    pub env_from: Option<Vec<EnvFrom<'a>>>,
    pub security_context: Option<ContainerSecurity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub mount_path: Cow<'a, str>,
    pub read_only: Option<bool>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub sub_path: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub sub_path_expr: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Env<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub value: Option<Str<'a>>,
    #[serde(borrow)]
    pub value_from: Option<ValueFrom<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom<'a> {
    #[serde(borrow)]
    pub secret_key_ref: Option<KeyRef<'a>>,
    #[serde(borrow)]
    pub config_map_key_ref: Option<KeyRef<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct KeyRef<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub key: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFrom<'a> {
    #[serde(borrow)]
    pub secret_ref: Option<NameRef<'a>>,
    #[serde(borrow)]
    pub config_map_ref: Option<NameRef<'a>>,
    /// Prepended to every key's name: the same object under a prefix gives other variables.
    #[serde(borrow, default, deserialize_with = "borrowed::opt")]
    pub prefix: Option<Str<'a>>,
}

/// Why a pod could not be read: the offending field's JSON path and the problem there, and its
/// metadata when that much was readable.
#[derive(Debug)]
pub struct Malformed<'a> {
    /// `spec.containers[0].env`, or empty when the document itself is the problem.
    pub path: String,
    pub message: String,
    /// Boxed: only the slow path for bad input pays for it.
    pub meta: Option<Box<Meta<'a>>>,
}

impl Malformed<'_> {
    /// The problem in words, with its path.
    pub fn problem(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }
}

/// Read a pod from JSON text: the one-pass reader of [`super::pod_scan`], and only when it is
/// unsure the serde reader, which decides and, for a bad pod, names the offending field.
pub fn decode(text: &str) -> Result<Pod<'_>, Malformed<'_>> {
    super::pod_scan::pod_text(text, usize::MAX).or_else(|_| decode_serde(text))
}

/// The serde reader alone: the definition of a pod that the one-pass reader must agree with.
/// On failure a second pass finds the path of the offending field and a lenient third reads the
/// metadata alone.
pub fn decode_serde(text: &str) -> Result<Pod<'_>, Malformed<'_>> {
    serde_json::from_str(text).map_err(|first: serde_json::Error| {
        let mut de = serde_json::Deserializer::from_str(text);
        let (path, message) = match serde_path_to_error::deserialize::<_, Pod<'_>>(&mut de) {
            Ok(_) => (String::new(), first.to_string()),
            Err(e) => {
                let p = e.path().to_string();
                let path = if p == "." { String::new() } else { p };
                (path, e.into_inner().to_string())
            }
        };
        Malformed {
            path,
            message,
            meta: serde_json::from_str::<MetaOnly<'_>>(text)
                .ok()
                .and_then(|m| m.metadata)
                .map(Box::new),
        }
    })
}

/// Which container list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Containers,
    InitContainers,
}

impl ListKind {
    pub fn field(self) -> &'static str {
        match self {
            ListKind::Containers => "containers",
            ListKind::InitContainers => "initContainers",
        }
    }
}

/// A container with its position in the pod.
#[derive(Debug)]
pub struct Placed<'p, 'a> {
    pub list: ListKind,
    pub index: usize,
    pub c: &'p Container<'a>,
}

impl<'a> Container<'a> {
    pub fn mounts(&self) -> &[Mount<'a>] {
        self.volume_mounts.as_deref().unwrap_or_default()
    }

    /// The variable `name` as the container sees it: the kubelet keeps the LAST of duplicate
    /// entries (the apiserver only warns about them), so every read of a variable goes here.
    pub fn env_var(&self, name: &str) -> Option<&Env<'a>> {
        self.env
            .as_deref()
            .unwrap_or_default()
            .iter()
            .rfind(|e| e.name == name)
    }

    pub fn env_from(&self) -> &[EnvFrom<'a>] {
        self.env_from.as_deref().unwrap_or_default()
    }
}

impl Pod<'_> {
    /// The list elements and map entries read into this pod: what the one-pass reader counts
    /// against [`crate::PodLimits::entries`], so both readers refuse the same pods.
    pub fn entries(&self) -> usize {
        fn len<T>(v: &Option<Vec<T>>) -> usize {
            v.as_ref().map_or(0, Vec::len)
        }
        let meta = self.metadata.as_ref().map_or(0, |m| {
            m.labels.as_ref().map_or(0, StrMap::len) + m.annotations.as_ref().map_or(0, StrMap::len)
        });
        let spec = self.spec.as_ref().map_or(0, |s| {
            let volumes = s.volumes.as_deref().unwrap_or_default();
            let items: usize = volumes
                .iter()
                .map(|v| {
                    let sources = v.projected.as_ref().and_then(|p| p.sources.as_deref());
                    let projected = sources.map_or(0, |s| {
                        s.len()
                            + s.iter()
                                .map(|p| {
                                    p.secret.as_ref().map_or(0, |s| len(&s.items))
                                        + p.config_map.as_ref().map_or(0, |s| len(&s.items))
                                        + p.downward_api.as_ref().map_or(0, |d| len(&d.items))
                                })
                                .sum::<usize>()
                    });
                    v.secret.as_ref().map_or(0, |s| len(&s.items))
                        + v.config_map.as_ref().map_or(0, |s| len(&s.items))
                        + v.downward_api.as_ref().map_or(0, |d| len(&d.items))
                        + projected
                })
                .sum();
            let containers = [&s.containers, &s.init_containers]
                .into_iter()
                .flat_map(|l| l.as_deref().unwrap_or_default())
                .map(|c| 1 + len(&c.volume_mounts) + len(&c.env) + len(&c.env_from))
                .sum::<usize>();
            volumes.len() + items + containers
        });
        meta + spec
    }
}

/// A pod that reads fine but has nothing to inject into, or more than the webhook serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotInjectable {
    #[error("spec is missing")]
    NoSpec,
    #[error("spec.containers must list at least one container")]
    NoContainers,
    #[error(
        "the pod has {count} containers and init containers, more than the {limit} this webhook \
         serves in one pod"
    )]
    TooManyContainers { count: usize, limit: usize },
}

/// Volumes by name, for pods with more than a few: every mount of every container looks its
/// volume up, which a scan would make quadratic. Small pods (nearly all) scan, with no hashing.
#[derive(Debug)]
struct VolumeIndex<'p>(Option<std::collections::HashMap<&'p str, usize>>);

impl<'p> VolumeIndex<'p> {
    const FROM: usize = 16;

    fn new(volumes: &'p [Volume<'_>]) -> Self {
        if volumes.len() <= Self::FROM {
            return VolumeIndex(None);
        }
        let mut index = std::collections::HashMap::with_capacity(volumes.len());
        for (i, v) in volumes.iter().enumerate() {
            index.entry(&*v.name).or_insert(i);
        }
        VolumeIndex(Some(index))
    }
}

/// The checked pod the engine works on.
#[derive(Debug)]
pub struct PodView<'p, 'a> {
    pub meta: Option<&'p Meta<'a>>,
    pub volumes: &'p [Volume<'a>],
    by_name: VolumeIndex<'p>,
    /// Whether `spec.volumes` is an array in the original document.
    pub has_volumes: bool,
    pub containers: Vec<Placed<'p, 'a>>,
    pub security: Option<&'p PodSecurity>,
    pub service_account_name: Option<&'p str>,
    pub service_account: Option<&'p str>,
    pub share_process_namespace: bool,
}

impl<'p, 'a> PodView<'p, 'a> {
    /// Check what injection needs beyond types: a spec with at least one container.
    pub fn new(pod: &'p Pod<'a>, limits: &PodLimits) -> Result<Self, NotInjectable> {
        let spec = pod.spec.as_ref().ok_or(NotInjectable::NoSpec)?;
        if spec.containers.as_ref().is_none_or(Vec::is_empty) {
            return Err(NotInjectable::NoContainers);
        }
        let count = [&spec.containers, &spec.init_containers]
            .into_iter()
            .map(|l| l.as_ref().map_or(0, Vec::len))
            .sum::<usize>();
        if count > limits.containers {
            return Err(NotInjectable::TooManyContainers {
                count,
                limit: limits.containers,
            });
        }
        let mut containers = Vec::with_capacity(count);
        for (list, items) in [
            (ListKind::InitContainers, &spec.init_containers),
            (ListKind::Containers, &spec.containers),
        ] {
            for (index, c) in items.as_deref().unwrap_or_default().iter().enumerate() {
                containers.push(Placed { list, index, c });
            }
        }
        let volumes = spec.volumes.as_deref().unwrap_or_default();
        Ok(PodView {
            meta: pod.metadata.as_ref(),
            volumes,
            by_name: VolumeIndex::new(volumes),
            has_volumes: spec.volumes.is_some(),
            containers,
            security: spec.security_context.as_ref(),
            service_account_name: spec.service_account_name.as_deref(),
            service_account: spec.service_account.as_deref(),
            share_process_namespace: spec.share_process_namespace == Some(true),
        })
    }

    /// The first volume named `name` (the one the apiserver would resolve a mount to).
    pub fn volume(&self, name: &str) -> Option<&'p Volume<'a>> {
        match &self.by_name.0 {
            Some(index) => index.get(name).map(|&i| &self.volumes[i]),
            None => self.volumes.iter().find(|v| v.name == name),
        }
    }

    pub fn annotations(&self) -> Option<&'p StrMap<'a>> {
        self.meta.and_then(|m| m.annotations.as_ref())
    }

    pub fn annotation(&self, key: &str) -> Option<&'p str> {
        self.annotations()
            .and_then(|a| a.get(key))
            .map(|v| v.as_ref())
    }

    /// The user `c` declares it runs as, when it declares a non-root one: `Some(Some(uid))`, or
    /// `Some(None)` for `runAsNonRoot: true` without a uid. `None` when it may run as root.
    pub fn non_root_user(&self, c: &Container<'_>) -> Option<Option<i64>> {
        let own = c.security_context.as_ref();
        let user = own
            .and_then(|s| s.run_as_user)
            .or(self.security.and_then(|s| s.run_as_user));
        let non_root = own
            .and_then(|s| s.run_as_non_root)
            .or(self.security.and_then(|s| s.run_as_non_root));
        match user {
            Some(0) => None,
            Some(uid) => Some(Some(uid)),
            None if non_root == Some(true) => Some(None),
            None => None,
        }
    }

    pub fn fs_group(&self) -> Option<i64> {
        self.security.and_then(|s| s.fs_group)
    }

    pub fn label(&self, key: &str) -> Option<&'p str> {
        self.meta
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.get(key))
            .map(|v| v.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::ptr_arg)] // the point is to look at the Cow itself
    fn borrowed(s: &Cow<'_, str>) -> bool {
        matches!(s, Cow::Borrowed(_))
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_request_and_escaped_ones_decoded() {
        let text = r#"{"metadata": {"name": "run-1", "namespace": "ns",
            "labels": {"app.kubernetes.io/part-of": "polyaxon-runs", "esc": "a\"b"},
            "annotations": {"k": "v"}},
          "spec": {"serviceAccountName": "sa", "volumes": [{"name": "v",
              "secret": {"secretName": "s", "items": [{"key": "k", "path": "p"}]}}],
            "containers": [{"name": "c", "env": [{"name": "E", "value": "x\u00e9"},
              {"name": "F", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
              "volumeMounts": [{"name": "v", "mountPath": "/m", "subPath": "sp"}],
              "envFrom": [{"configMapRef": {"name": "cm"}}]}]}}"#;
        let pod = decode(text).unwrap();
        let meta = pod.metadata.as_ref().unwrap();
        let spec = pod.spec.as_ref().unwrap();
        let c = &spec.containers.as_ref().unwrap()[0];
        let env = c.env.as_ref().unwrap();
        let labels = meta.labels.as_ref().unwrap();
        let secret = spec.volumes.as_ref().unwrap()[0].secret.as_ref().unwrap();
        let plain = [
            meta.name.as_ref().unwrap(),
            meta.namespace.as_ref().unwrap(),
            spec.service_account_name.as_ref().unwrap(),
            labels.get("app.kubernetes.io/part-of").unwrap(),
            meta.annotations.as_ref().unwrap().get("k").unwrap(),
            secret.secret_name.as_ref().unwrap(),
            &secret.items.as_ref().unwrap()[0].path,
            &c.name,
            &env[0].name,
            env[1]
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name
                .as_ref()
                .unwrap(),
            &c.volume_mounts.as_ref().unwrap()[0].mount_path,
            c.volume_mounts.as_ref().unwrap()[0]
                .sub_path
                .as_ref()
                .unwrap(),
            c.env_from.as_ref().unwrap()[0]
                .config_map_ref
                .as_ref()
                .unwrap()
                .name
                .as_ref()
                .unwrap(),
        ];
        for s in plain {
            assert!(borrowed(s), "{s:?} was copied");
        }
        for key in labels.keys() {
            assert!(borrowed(key), "label key {key:?} was copied");
        }
        // Escapes are decoded into owned strings, as before.
        assert_eq!(labels.get("esc").map(|v| v.as_ref()), Some("a\"b"));
        assert_eq!(env[0].value.as_deref(), Some("xé"));
        assert!(!borrowed(env[0].value.as_ref().unwrap()));
    }

    #[test]
    fn a_repeated_label_keeps_its_last_value_and_null_maps_are_absent() {
        let pod = decode(r#"{"metadata": {"labels": {"a": "1", "a": "2"}, "annotations": null}}"#)
            .unwrap();
        let meta = pod.metadata.unwrap();
        assert_eq!(meta.labels.unwrap().get("a").map(|v| v.as_ref()), Some("2"));
        assert!(meta.annotations.is_none());
        let bad = decode(r#"{"metadata": {"labels": {"a": 1}}}"#).unwrap_err();
        assert_eq!(bad.path, "metadata.labels.a");
    }
}
