//! The parts of a pod the engine reads, deserialized straight from the request bytes (or from a
//! `serde_json::Value`) with borrowed strings; every other field is skipped without being built.
//! A pod that does not fit fails with the path of the offending field.

use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

type Str<'a> = Cow<'a, str>;
pub type StrMap<'a> = BTreeMap<Str<'a>, Str<'a>>;

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
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub generate_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow)]
    pub labels: Option<StrMap<'a>>,
    #[serde(borrow)]
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
    #[serde(borrow)]
    pub service_account_name: Option<Str<'a>>,
    /// Deprecated alias of `serviceAccountName`, still honoured by the apiserver.
    #[serde(borrow)]
    pub service_account: Option<Str<'a>>,
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
    pub name: Str<'a>,
    #[serde(borrow)]
    pub secret: Option<SecretSource<'a>>,
    #[serde(borrow)]
    pub config_map: Option<NameRef<'a>>,
    #[serde(borrow)]
    pub persistent_volume_claim: Option<ClaimSource<'a>>,
    #[serde(borrow)]
    pub host_path: Option<HostPathSource<'a>>,
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<IgnoredAny>,
    pub projected: Option<IgnoredAny>,
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
    #[serde(borrow)]
    pub secret_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub items: Option<Vec<KeyPath<'a>>>,
    pub default_mode: Option<i32>,
}

#[derive(Debug, Deserialize)]
pub struct KeyPath<'a> {
    #[serde(borrow)]
    pub key: Str<'a>,
    #[serde(borrow)]
    pub path: Str<'a>,
    pub mode: Option<i32>,
}

#[derive(Debug, Deserialize)]
pub struct NameRef<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSource<'a> {
    #[serde(borrow)]
    pub claim_name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct HostPathSource<'a> {
    #[serde(borrow)]
    pub path: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
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
    pub name: Str<'a>,
    #[serde(borrow)]
    pub mount_path: Str<'a>,
    pub read_only: Option<bool>,
    #[serde(borrow)]
    pub sub_path: Option<Str<'a>>,
    #[serde(borrow)]
    pub sub_path_expr: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Env<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow)]
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
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub key: Str<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFrom<'a> {
    #[serde(borrow)]
    pub secret_ref: Option<NameRef<'a>>,
    #[serde(borrow)]
    pub config_map_ref: Option<NameRef<'a>>,
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

/// Read a pod from JSON text in one pass; only when that fails, a second pass finds the path of
/// the offending field and a lenient third reads the metadata alone.
pub fn decode(text: &str) -> Result<Pod<'_>, Malformed<'_>> {
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

    pub fn env_var(&self, name: &str) -> Option<&Env<'a>> {
        self.env
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|e| e.name == name)
    }

    pub fn env_from(&self) -> &[EnvFrom<'a>] {
        self.env_from.as_deref().unwrap_or_default()
    }
}

/// A pod that reads fine but has nothing to inject into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotInjectable {
    #[error("spec is missing")]
    NoSpec,
    #[error("spec.containers must list at least one container")]
    NoContainers,
}

/// The checked pod the engine works on.
#[derive(Debug)]
pub struct PodView<'p, 'a> {
    pub meta: Option<&'p Meta<'a>>,
    pub volumes: &'p [Volume<'a>],
    /// Whether `spec.volumes` is an array in the original document.
    pub has_volumes: bool,
    pub containers: Vec<Placed<'p, 'a>>,
    pub security: Option<&'p PodSecurity>,
    pub service_account_name: Option<&'p str>,
    pub service_account: Option<&'p str>,
}

impl<'p, 'a> PodView<'p, 'a> {
    /// Check what injection needs beyond types: a spec with at least one container.
    pub fn new(pod: &'p Pod<'a>) -> Result<Self, NotInjectable> {
        let spec = pod.spec.as_ref().ok_or(NotInjectable::NoSpec)?;
        if spec.containers.as_ref().is_none_or(Vec::is_empty) {
            return Err(NotInjectable::NoContainers);
        }
        let mut containers = Vec::new();
        for (list, items) in [
            (ListKind::InitContainers, &spec.init_containers),
            (ListKind::Containers, &spec.containers),
        ] {
            for (index, c) in items.as_deref().unwrap_or_default().iter().enumerate() {
                containers.push(Placed { list, index, c });
            }
        }
        Ok(PodView {
            meta: pod.metadata.as_ref(),
            volumes: spec.volumes.as_deref().unwrap_or_default(),
            has_volumes: spec.volumes.is_some(),
            containers,
            security: spec.security_context.as_ref(),
            service_account_name: spec.service_account_name.as_deref(),
            service_account: spec.service_account.as_deref(),
        })
    }

    pub fn volume(&self, name: &str) -> Option<&'p Volume<'a>> {
        self.volumes.iter().find(|v| v.name == name)
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
