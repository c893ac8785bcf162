//! Loading the store config: detect which of Polyaxon's three forms a document is, parse it with
//! positions, and resolve it into a [`Config`] that is valid Kubernetes. Every "is this config sane"
//! error lives here, so nothing can fail later at request time.

mod model;
mod raw;
mod resolve;
pub use resolve::{gcs_key, DEFAULT_GCS_KEY};

pub use model::*;

use raw::{HelmValues, RawConnection, CONNECTION_FIELDS};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

/// A config error a person can act on: which file, where, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("config {source_name}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub message: String,
}

impl ConfigError {
    fn new(source_name: &str, message: impl Into<String>) -> Self {
        ConfigError {
            source_name: source_name.to_string(),
            message: message.into(),
        }
    }
}

/// Read and validate a config file (YAML or JSON).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&name, format!("cannot read file: {e}")))?;
    load_str(&text, &name)
}

/// Validate a config held in memory; `source_name` is used in error messages.
pub fn load_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let shape: Value = serde_saphyr::from_str(text)
        .map_err(|e| ConfigError::new(source_name, format!("not valid YAML/JSON: {e}")))?;
    let mut connections = Vec::new();
    let (conn, injection, field) = match &shape {
        // (c) the agent ConfigMap's value: a JSON string holding one connection.
        Value::String(inner) => {
            let conn: RawConnection = serde_saphyr::from_str(inner).map_err(|e| {
                ConfigError::new(
                    source_name,
                    format!("the string is not a connection (positions are inside the string): {e}"),
                )
            })?;
            (conn, None, "")
        }
        // (a) a Helm values file.
        Value::Object(map) if map.contains_key("artifactsStore") => {
            let values: HelmValues = serde_saphyr::from_str(text)
                .map_err(|e| ConfigError::new(source_name, format!("artifactsStore: {e}")))?;
            let Some(conn) = values.artifacts_store else {
                return Err(ConfigError::new(source_name, "artifactsStore is empty"));
            };
            connections = values.connections.unwrap_or_default();
            if conn.injection.is_some() {
                return Err(ConfigError::new(
                    source_name,
                    "artifactsStore.injection: `injection` is the webhook's own section and belongs at the top level",
                ));
            }
            (conn, values.injection, "artifactsStore.")
        }
        // (b) a document that is one connection.
        Value::Object(map) if map.contains_key("name") && map.contains_key("kind") => {
            let mut conn: RawConnection = serde_saphyr::from_str(text)
                .map_err(|e| ConfigError::new(source_name, e.to_string()))?;
            let injection = conn.injection.take();
            (conn, injection, "")
        }
        _ => {
            return Err(ConfigError::new(
                source_name,
                format!(
                    "expected a Polyaxon Helm values file with a top-level `artifactsStore`, a connection \
                     (a mapping with `name` and `kind`; fields: {}), or a JSON string holding one",
                    CONNECTION_FIELDS.join(", ")
                ),
            ))
        }
    };
    let store = resolve::store(conn, field).map_err(|m| ConfigError::new(source_name, m))?;
    let raw_injection = injection.unwrap_or_default();
    let wanted = raw_injection.connections.clone().unwrap_or_default();
    let injection =
        resolve::injection(raw_injection).map_err(|m| ConfigError::new(source_name, m))?;
    let mandated = resolve::mandated(&store, connections, &wanted)
        .map_err(|m| ConfigError::new(source_name, m))?;
    let mut config = Config {
        store,
        mandated,
        injection,
        hash: String::new(),
    };
    config.hash = hash(&config);
    Ok(config)
}

/// A short content hash of the resolved config: equal configs, equal hashes, whatever the form.
fn hash(config: &Config) -> String {
    let bytes = serde_json::to_vec(config).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
