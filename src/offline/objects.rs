//! The objects `mutate`, `validate` and `test` read: files, directories (recursively, `.yaml`,
//! `.yml` and `.json`), stdin, multi-document YAML, `List`s, and in each object the pod specs the
//! webhook would see: a Pod itself, or each pod template of a workload (what its controller will
//! create pods from).

use serde_json::Value;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// One input file's text, with the name used in messages.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub text: String,
}

/// Read `paths` (`-` is stdin; a directory is walked, its YAML and JSON files in name order).
pub fn read_inputs(paths: &[String]) -> anyhow::Result<Vec<Input>> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| anyhow::anyhow!("cannot read stdin: {e}"))?;
            out.push(Input {
                name: "<stdin>".into(),
                text,
            });
            continue;
        }
        let path = Path::new(p);
        if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            if files.is_empty() {
                anyhow::bail!("{p}: a directory with no .yaml, .yml or .json file");
            }
            // The test files beside the resources are not resources.
            for f in files.iter().filter(|f| !super::testfile::is_test_file(f)) {
                out.push(read_one(f)?);
            }
        } else {
            out.push(read_one(path)?);
        }
    }
    Ok(out)
}

fn read_one(path: &Path) -> anyhow::Result<Input> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(Input {
        name: path.display().to_string(),
        text,
    })
}

/// YAML and JSON files below `dir`, sorted, hidden entries skipped.
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// One object read from an input.
#[derive(Debug, Clone)]
pub struct Doc {
    pub source: String,
    pub value: Value,
    /// Written as YAML (printed back as YAML).
    pub yaml: bool,
}

/// Every object of `input`: each YAML document (empty ones skipped), a JSON document, and the
/// items of a `List`.
pub fn documents(input: &Input) -> anyhow::Result<Vec<Doc>> {
    let trimmed = input.text.trim_start();
    let (values, yaml) = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(&input.text) {
            Ok(v) => (vec![v], false),
            Err(_) => (yaml_docs(input)?, true),
        }
    } else {
        (yaml_docs(input)?, true)
    };
    let mut out = Vec::new();
    for v in values {
        push_items(v, &input.name, yaml, &mut out);
    }
    Ok(out)
}

fn yaml_docs(input: &Input) -> anyhow::Result<Vec<Value>> {
    serde_saphyr::from_multiple::<Value>(&input.text).map_err(|e| {
        let text = e.render_with_options(serde_saphyr::render_options! {
            source_name: Some(input.name.as_str()),
        });
        anyhow::anyhow!(
            "{}: not JSON or YAML: {}",
            input.name,
            text.strip_prefix("error: ").unwrap_or(&text)
        )
    })
}

fn push_items(v: Value, source: &str, yaml: bool, out: &mut Vec<Doc>) {
    match v {
        Value::Null => {}
        // A JSON array of objects: each one.
        Value::Array(items) => {
            for i in items {
                push_items(i, source, yaml, out);
            }
        }
        Value::Object(ref m)
            if m.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && m.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = v.get("items").cloned() {
                for i in items {
                    push_items(i, source, yaml, out);
                }
            }
        }
        other => out.push(Doc {
            source: source.to_string(),
            value: other,
            yaml,
        }),
    }
}

/// Where a document's pod specs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A Pod (or a bare pod spec document with `spec` and no `kind`).
    Pod,
    /// An AdmissionReview: its `request.object`.
    Review,
    /// A workload: its pod templates, as JSON pointers with a label (the replica type).
    Templates(Vec<Template>),
    /// Nothing the webhook would see.
    NotAPod(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// JSON pointer of the template (`/spec/template`).
    pub pointer: String,
    /// The replica type of a training job (`Worker`), else empty.
    pub replica: String,
}

/// Kubeflow training jobs and the field holding their replica specs.
const TRAINING_JOBS: &[(&str, &str)] = &[
    ("PyTorchJob", "pytorchReplicaSpecs"),
    ("TFJob", "tfReplicaSpecs"),
    ("MPIJob", "mpiReplicaSpecs"),
    ("XGBoostJob", "xgbReplicaSpecs"),
    ("PaddleJob", "paddleReplicaSpecs"),
];

/// The kind of a document (`Pod` for a bare pod without one).
pub fn kind(v: &Value) -> &str {
    match v.get("kind").and_then(Value::as_str) {
        Some(k) => k,
        None if v.get("spec").is_some() => "Pod",
        None => "",
    }
}

/// Where `v`'s pod specs are.
pub fn shape(v: &Value) -> Shape {
    if !v.is_object() {
        return Shape::NotAPod("not an object".into());
    }
    let k = kind(v);
    let one = |p: &str| {
        Shape::Templates(vec![Template {
            pointer: p.into(),
            replica: String::new(),
        }])
    };
    match k {
        "Pod" if v.get("spec").is_some() => Shape::Pod,
        "AdmissionReview" => Shape::Review,
        "Job"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController" => one("/spec/template"),
        "CronJob" => one("/spec/jobTemplate/spec/template"),
        _ => match TRAINING_JOBS.iter().find(|(kind, _)| *kind == k) {
            Some((_, field)) => {
                let mut t: Vec<Template> = v
                    .pointer(&format!("/spec/{field}"))
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter(|(_, r)| r.get("template").is_some())
                            .map(|(replica, _)| Template {
                                pointer: format!("/spec/{field}/{replica}/template"),
                                replica: replica.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                t.sort_by(|a, b| a.replica.cmp(&b.replica));
                Shape::Templates(t)
            }
            None if k.is_empty() => Shape::NotAPod("no kind".into()),
            None => Shape::NotAPod(format!("kind {k}")),
        },
    }
}

/// The pod the webhook would see for the template at `pointer` of workload `v`: the template's
/// metadata and spec, in the workload's namespace.
pub fn template_pod(v: &Value, pointer: &str) -> Option<Value> {
    let t = v.pointer(pointer)?;
    let mut meta = t
        .get("metadata")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    if let (Some(m), Some(ns)) = (meta.as_object_mut(), v.pointer("/metadata/namespace")) {
        m.entry("namespace").or_insert(ns.clone());
    }
    if let (Some(m), Some(name)) = (meta.as_object_mut(), v.pointer("/metadata/name")) {
        m.entry("generateName")
            .or_insert(Value::String(format!("{}-", name.as_str().unwrap_or(""))));
    }
    Some(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": t.get("spec").cloned().unwrap_or(Value::Null),
    }))
}

/// Put a (patched) template pod back into its workload.
pub fn put_template(v: &mut Value, pointer: &str, pod: &Value) {
    let Some(t) = v.pointer_mut(pointer).and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(spec) = pod.get("spec") {
        t.insert("spec".into(), spec.clone());
    }
    // Only what the webhook adds to metadata (annotations, labels) goes back; the namespace and
    // generateName filled in above do not belong to a template.
    for key in ["annotations", "labels"] {
        if let Some(x) = pod.pointer(&format!("/metadata/{key}")) {
            if let Some(meta) = t
                .entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()))
                .as_object_mut()
            {
                meta.insert(key.into(), x.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_names_its_templates() {
        let cases = [
            ("Job", "/spec/template"),
            ("CronJob", "/spec/jobTemplate/spec/template"),
            ("Deployment", "/spec/template"),
            ("StatefulSet", "/spec/template"),
            ("DaemonSet", "/spec/template"),
            ("ReplicaSet", "/spec/template"),
        ];
        for (k, p) in cases {
            let v = serde_json::json!({"kind": k});
            assert_eq!(
                shape(&v),
                Shape::Templates(vec![Template {
                    pointer: p.into(),
                    replica: String::new()
                }])
            );
        }
        for (k, field) in TRAINING_JOBS {
            let v = serde_json::json!({"kind": k, "spec": {*field: {
                "Worker": {"template": {}}, "Master": {"template": {}}}}});
            let Shape::Templates(t) = shape(&v) else {
                panic!("{k}")
            };
            assert_eq!(t.len(), 2, "{k}");
            assert_eq!(t[0].replica, "Master");
        }
        assert_eq!(
            shape(&serde_json::json!({"kind": "Service", "spec": {}})),
            Shape::NotAPod("kind Service".into())
        );
    }
}
