//! A borrowed, checked view of the parts of a pod the engine reads. Reading never copies the pod
//! and fails with a message naming the field when the object is not a Pod.

use serde_json::{Map, Value};

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

#[derive(Debug)]
pub struct PodView<'a> {
    pub metadata: Option<&'a Map<String, Value>>,
    pub annotations: Option<&'a Map<String, Value>>,
    pub volumes: Vec<Volume<'a>>,
    /// Whether `spec.volumes` is an array in the original document.
    pub has_volumes: bool,
    pub containers: Vec<Container<'a>>,
}

#[derive(Debug)]
pub struct Volume<'a> {
    pub name: &'a str,
    pub raw: &'a Value,
}

impl Volume<'_> {
    /// Secret, ConfigMap, downward API and projected volumes are always mounted read-only.
    pub fn always_read_only(&self) -> bool {
        ["secret", "configMap", "downwardAPI", "projected"]
            .iter()
            .any(|k| self.raw.get(k).is_some_and(|v| !v.is_null()))
    }
}

#[derive(Debug)]
pub struct Container<'a> {
    pub list: ListKind,
    pub index: usize,
    pub name: &'a str,
    pub mounts: Vec<Mount<'a>>,
    pub has_mounts: bool,
    pub env: Vec<(&'a str, &'a Value)>,
    pub has_env: bool,
    pub env_from: &'a [Value],
    pub has_env_from: bool,
}

#[derive(Debug)]
pub struct Mount<'a> {
    pub name: &'a str,
    pub mount_path: &'a str,
    pub read_only: bool,
    pub sub_path: Option<&'a str>,
    pub sub_path_expr: bool,
}

/// `Ok(None)` for absent or null, `Err` for any other non-array.
fn opt_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a [Value]>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.as_slice())),
        Some(_) => Err(format!("{at}.{key} must be a list")),
    }
}

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at} must be an object"))
}

fn str_field<'a>(o: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a str, String> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}.{key} must be a string"))
}

/// Labels and annotations must be string maps.
pub fn string_map<'a>(
    meta: Option<&'a Map<String, Value>>,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    let Some(meta) = meta else { return Ok(None) };
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            if m.values().all(Value::is_string) {
                Ok(Some(m))
            } else {
                Err(format!("metadata.{key} values must be strings"))
            }
        }
        Some(_) => Err(format!("metadata.{key} must be a map")),
    }
}

pub fn metadata(pod: &Value) -> Result<Option<&Map<String, Value>>, String> {
    let pod = obj(pod, "the object")?;
    match pod.get("metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(m) => obj(m, "metadata").map(Some),
    }
}

impl<'a> PodView<'a> {
    /// Read the pod; only what injection touches is checked.
    pub fn read(pod: &'a Value) -> Result<Self, String> {
        let metadata = metadata(pod)?;
        let annotations = string_map(metadata, "annotations")?;
        let spec = pod
            .get("spec")
            .ok_or_else(|| "spec is missing".to_string())
            .and_then(|s| obj(s, "spec"))?;
        let raw_volumes = opt_array(spec, "volumes", "spec")?;
        let mut volumes = Vec::new();
        for (i, v) in raw_volumes.unwrap_or_default().iter().enumerate() {
            let at = format!("spec.volumes[{i}]");
            let name = str_field(obj(v, &at)?, "name", &at)?;
            volumes.push(Volume { name, raw: v });
        }
        let mut containers = Vec::new();
        for list in [ListKind::InitContainers, ListKind::Containers] {
            let at = format!("spec.{}", list.field());
            let items = opt_array(spec, list.field(), "spec")?;
            if list == ListKind::Containers && items.is_none_or(<[Value]>::is_empty) {
                return Err("spec.containers must list at least one container".into());
            }
            for (index, c) in items.unwrap_or_default().iter().enumerate() {
                containers.push(Container::read(c, list, index, &format!("{at}[{index}]"))?);
            }
        }
        Ok(PodView {
            metadata,
            annotations,
            volumes,
            has_volumes: raw_volumes.is_some(),
            containers,
        })
    }

    pub fn volume(&self, name: &str) -> Option<&Volume<'a>> {
        self.volumes.iter().find(|v| v.name == name)
    }

    pub fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }
}

impl<'a> Container<'a> {
    fn read(c: &'a Value, list: ListKind, index: usize, at: &str) -> Result<Self, String> {
        let o = obj(c, at)?;
        let name = str_field(o, "name", at)?;
        let raw_mounts = opt_array(o, "volumeMounts", at)?;
        let mut mounts = Vec::new();
        for (i, m) in raw_mounts.unwrap_or_default().iter().enumerate() {
            let mat = format!("{at}.volumeMounts[{i}]");
            let mo = obj(m, &mat)?;
            mounts.push(Mount {
                name: str_field(mo, "name", &mat)?,
                mount_path: str_field(mo, "mountPath", &mat)?,
                read_only: mo.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
                sub_path: mo
                    .get("subPath")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty()),
                sub_path_expr: mo
                    .get("subPathExpr")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()),
            });
        }
        let raw_env = opt_array(o, "env", at)?;
        let mut env = Vec::new();
        for (i, e) in raw_env.unwrap_or_default().iter().enumerate() {
            let eat = format!("{at}.env[{i}]");
            env.push((str_field(obj(e, &eat)?, "name", &eat)?, e));
        }
        let env_from = opt_array(o, "envFrom", at)?;
        Ok(Container {
            list,
            index,
            name,
            has_mounts: raw_mounts.is_some(),
            mounts,
            has_env: raw_env.is_some(),
            env,
            env_from: env_from.unwrap_or_default(),
            has_env_from: env_from.is_some(),
        })
    }

    pub fn env_var(&self, name: &str) -> Option<&'a Value> {
        self.env.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}
