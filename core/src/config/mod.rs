//! Loading the store config: detect which of Polyaxon's three forms a document is, parse it with
//! positions, and resolve it into a [`Config`] that is valid Kubernetes. Every "is this config sane"
//! error lives here, so nothing can fail later at request time.

pub mod lint;
mod model;
mod raw;
mod resolve;
mod yaml_path;
pub use resolve::{gcs_key, DEFAULT_GCS_KEY};

pub use model::*;

use raw::{HelmValues, RawConnection, RawInjection, RawSettings, CONNECTION_FIELDS};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A config error a person can act on: which file, where, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("config {source_name}: {problem}")]
pub struct ConfigError {
    pub source_name: String,
    #[source]
    pub problem: ConfigProblem,
}

/// What is wrong with a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// Not YAML/JSON of the expected shape: the section path, the parser's message, and a
    /// snippet headed `--> <file>:<line>:<column>`, rendered once when the error is made.
    #[error("{}", .0.message)]
    Syntax(Box<SyntaxError>),
    /// Well-formed, but not a valid config (the message names the field).
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Where a parser error is, for programs (JSON error lines); `message` is what people read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyntaxError {
    #[serde(skip)]
    pub message: String,
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// The section holding the error (`injection.rules[0].match`), when known.
    pub path: String,
}

/// A config value that is not valid, with where it is: `artifactsStore.secret.mountPath: …`.
/// Validation has no underlying cause: the message is the whole story.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

impl ConfigError {
    fn new(source_name: &str, problem: impl Into<ConfigProblem>) -> Self {
        ConfigError {
            source_name: source_name.to_string(),
            problem: problem.into(),
        }
    }

    fn invalid(source_name: &str, message: impl Into<String>) -> Self {
        Self::new(source_name, Invalid(message.into()))
    }

    /// A parser error in `text` (the file `source_name`), with the section path found from its
    /// position (`context` when there is none: a value inside a string).
    fn syntax(source_name: &str, text: &str, context: &str, source: serde_saphyr::Error) -> Self {
        Self::syntax_hint(source_name, text, context, source, "")
    }

    fn syntax_hint(
        source_name: &str,
        text: &str,
        context: &str,
        source: serde_saphyr::Error,
        hint: &str,
    ) -> Self {
        Self::new(
            source_name,
            ConfigProblem::Syntax(Box::new(syntax_message(
                source_name,
                text,
                context,
                &source,
                hint,
            ))),
        )
    }
}

/// `path: message` and the snippet, named after the real file. The parser's own `error: `
/// prefix goes: the command line prints one.
fn syntax_message(
    file: &str,
    text: &str,
    context: &str,
    err: &serde_saphyr::Error,
    hint: &str,
) -> SyntaxError {
    let name = file.rsplit(" + ").next().unwrap_or(file);
    // A ConfigMap's value is parsed where it sits in the manifest: the snippet is the file's.
    let name = name.split(" (data.").next().unwrap_or(name);
    let rendered = err.render_with_options(serde_saphyr::render_options! {
        source_name: Some(name),
    });
    let rendered = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    let at = match err.location() {
        Some(l) if context.is_empty() => {
            yaml_path::at(text, l.line() as usize, l.column() as usize)
        }
        _ => String::new(),
    };
    let (head, rest) = rendered.split_once('\n').unwrap_or((rendered, ""));
    let head = if at.is_empty() {
        format!("{context}{head}")
    } else {
        format!("{at}: {head}")
    };
    let message = if rest.is_empty() {
        format!("{head}{hint}")
    } else {
        format!("{head}{hint}\n{rest}")
    };
    SyntaxError {
        message,
        file: name.to_string(),
        line: err.location().map(|l| l.line()),
        column: err.location().map(|l| l.column()),
        path: at,
    }
}

/// The agent ConfigMap key holding the artifacts store (one connection, JSON).
pub const AGENT_STORE_KEY: &str = "POLYAXON_AGENT_ARTIFACTS_STORE";
/// The agent ConfigMap key holding the other connections (a JSON list).
pub const AGENT_CONNECTIONS_KEY: &str = "POLYAXON_AGENT_CONNECTIONS";

/// Where a config comes from: a file (any of the three forms) or a directory where Polyaxon's
/// agent ConfigMap is mounted, plus an optional settings file holding the webhook's `injection:`
/// so the store itself is defined only once, in Polyaxon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub config: PathBuf,
    pub settings: Option<PathBuf>,
}

impl Source {
    pub fn new(config: impl Into<PathBuf>, settings: Option<PathBuf>) -> Self {
        Source {
            config: config.into(),
            settings,
        }
    }

    /// The files a change to which means a reload (for a directory: its two agent keys).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = if self.config.is_dir() {
            vec![
                self.config.join(AGENT_STORE_KEY),
                self.config.join(AGENT_CONNECTIONS_KEY),
            ]
        } else {
            vec![self.config.clone()]
        };
        out.extend(self.settings.clone());
        out
    }

    /// Read every file of [`Source::files`] now.
    pub fn read(&self) -> FileContents {
        read_files(&self.files())
    }

    /// Read and validate everything this source names.
    pub fn load(&self) -> Result<Config, ConfigError> {
        self.load_from(&self.read())
    }

    /// Validate the config from `contents`, the bytes of [`Source::files`] read earlier: a
    /// watcher that starts from the same bytes can never miss a change made in between.
    pub fn load_from(&self, contents: &FileContents) -> Result<Config, ConfigError> {
        let main_name = self.config.display().to_string();
        let files = self.files();
        let text = |i: usize| -> Result<Option<String>, FileError> {
            match contents.get(i) {
                Some(Ok(bytes)) => {
                    String::from_utf8(bytes.clone())
                        .map(Some)
                        .map_err(|_| FileError {
                            missing: false,
                            message: format!("{} is not UTF-8 text", files[i].display()),
                        })
                }
                Some(Err(e)) if e.missing => Ok(None),
                Some(Err(e)) => Err(e.clone()),
                None => Ok(None),
            }
        };
        let required = |i: usize| -> Result<String, FileError> {
            match text(i) {
                Ok(Some(t)) => Ok(t),
                Ok(None) => Err(FileError {
                    missing: true,
                    message: format!("cannot read {}: no such file", files[i].display()),
                }),
                Err(e) => Err(e),
            }
        };
        let mut parts = if self.config.is_dir() {
            let text_of_store = required(0).map_err(|e| {
                ConfigError::invalid(
                    &main_name,
                    format!(
                        "{e}; a directory must hold the keys of Polyaxon's agent ConfigMap \
                         (<release>-polyaxon-agent-config), at least {AGENT_STORE_KEY}"
                    ),
                )
            })?;
            let mut parts = parse_main(&text_of_store, &files[0].display().to_string())?;
            if let Some(conns) = text(1).map_err(|e| ConfigError::new(&main_name, e))? {
                parts.connections = parse_connections(&conns, &files[1].display().to_string())?;
            }
            parts
        } else {
            let t = required(0).map_err(|e| ConfigError::new(&main_name, e))?;
            parse_main(&t, &main_name)?
        };
        let mut name = main_name;
        if let Some(path) = &self.settings {
            let settings_name = path.display().to_string();
            let t = required(files.len() - 1).map_err(|e| ConfigError::new(&settings_name, e))?;
            let injection = parse_settings(&t, &settings_name)?;
            if injection.is_some() && parts.injection.is_some() {
                return Err(ConfigError::invalid(
                    &settings_name,
                    format!("`injection:` is set both here and in {name}; keep it in one place"),
                ));
            }
            parts.injection = parts.injection.or(injection);
            name = format!("{name} + {settings_name}");
        }
        finish(parts, &name)
    }
}

/// Why a watched file could not be read; equal errors compare equal, so a watcher does not
/// report the same failure twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FileError {
    /// The file does not exist (optional files may be absent).
    pub missing: bool,
    pub message: String,
}

/// The bytes of a list of files, in order.
pub type FileContents = Vec<Result<Vec<u8>, FileError>>;

/// Read every file (following symlinks). Blocking: call it off the async runtime.
pub fn read_files(paths: &[PathBuf]) -> FileContents {
    paths
        .iter()
        .map(|p| {
            std::fs::read(p).map_err(|e| FileError {
                missing: e.kind() == std::io::ErrorKind::NotFound,
                message: format!("cannot read {}: {e}", p.display()),
            })
        })
        .collect()
}

/// Read and validate a config file (YAML or JSON) or an agent ConfigMap directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    Source::new(path, None).load()
}

/// Validate a config held in memory; `source_name` is used in error messages.
pub fn load_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    finish(parse_main(text, source_name)?, source_name)
}

/// A config document, parsed but not yet resolved.
struct Parts {
    store: RawConnection,
    /// Where the store sits in the document, for error paths (`artifactsStore.`).
    store_at: &'static str,
    connections: Vec<RawConnection>,
    injection: Option<RawInjection>,
}

/// Detect which of Polyaxon's three forms `text` is and parse it with positions.
fn parse_main(text: &str, source_name: &str) -> Result<Parts, ConfigError> {
    let shape: Value = serde_saphyr::from_str(text)
        .map_err(|e| ConfigError::syntax(source_name, text, "not valid YAML/JSON: ", e))?;
    if let Some(data) = configmap_data(&shape) {
        return parse_configmap(data, text, source_name);
    }
    match &shape {
        // (c) the agent ConfigMap's value: a JSON string holding one connection.
        Value::String(inner) => {
            let store: RawConnection = serde_saphyr::from_str(inner).map_err(|e| {
                ConfigError::syntax(
                    source_name,
                    inner,
                    "the string is not a connection (positions are inside the string): ",
                    e,
                )
            })?;
            Ok(Parts {
                store,
                store_at: "",
                connections: Vec::new(),
                injection: None,
            })
        }
        // (a) a Helm values file.
        Value::Object(map) if map.contains_key("artifactsStore") => {
            let values: HelmValues = serde_saphyr::from_str(text)
                .map_err(|e| ConfigError::syntax(source_name, text, "", e))?;
            let Some(store) = values.artifacts_store else {
                return Err(ConfigError::invalid(source_name, "artifactsStore is empty"));
            };
            if store.injection.is_some() {
                return Err(ConfigError::invalid(
                    source_name,
                    "artifactsStore.injection: `injection` is the webhook's own section and belongs at the top level",
                ));
            }
            Ok(Parts {
                store,
                store_at: "artifactsStore.",
                connections: values.connections.unwrap_or_default(),
                injection: values.injection,
            })
        }
        // (b) a document that is one connection.
        Value::Object(map) if map.contains_key("name") && map.contains_key("kind") => {
            let mut store: RawConnection = serde_saphyr::from_str(text)
                .map_err(|e| ConfigError::syntax(source_name, text, "", e))?;
            let injection = store.injection.take();
            Ok(Parts {
                store,
                store_at: "",
                connections: Vec::new(),
                injection,
            })
        }
        _ => Err(ConfigError::invalid(
            source_name,
            format!(
                "expected a Polyaxon Helm values file with a top-level `artifactsStore`, a connection \
                 (a mapping with `name` and `kind`; fields: {}), or a JSON string holding one",
                CONNECTION_FIELDS.join(", ")
            ),
        )),
    }
}

/// A ConfigMap manifest's `data` (as `kubectl get configmap -o yaml` prints it).
fn configmap_data(shape: &Value) -> Option<&serde_json::Map<String, Value>> {
    (shape.get("kind").and_then(Value::as_str) == Some("ConfigMap"))
        .then(|| shape.get("data").and_then(Value::as_object))
        .flatten()
}

/// The one data key of a ConfigMap holding a file (`settings.yaml`, `values.yaml`, …).
fn single_key<'a>(
    data: &'a serde_json::Map<String, Value>,
    source_name: &str,
) -> Result<(&'a str, &'a str), ConfigError> {
    let texts: Vec<(&str, &str)> = data
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|t| (k.as_str(), t)))
        .collect();
    match texts.as_slice() {
        [one] => Ok(*one),
        _ => Err(ConfigError::invalid(
            source_name,
            format!(
                "a ConfigMap with data keys [{}]: expected Polyaxon's agent ConfigMap (key \
                 {AGENT_STORE_KEY}) or one key holding the config",
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// A ConfigMap manifest: Polyaxon's agent ConfigMap (its store and connections keys), or one
/// holding a config file under a single key.
fn parse_configmap(
    data: &serde_json::Map<String, Value>,
    manifest: &str,
    source_name: &str,
) -> Result<Parts, ConfigError> {
    let inner = |key: &str| format!("{source_name} (data.{key})");
    if let Some(store) = data.get(AGENT_STORE_KEY) {
        let text = store.as_str().ok_or_else(|| {
            ConfigError::invalid(source_name, format!("data.{AGENT_STORE_KEY}: not a string"))
        })?;
        let text = placed(manifest, AGENT_STORE_KEY, text);
        let mut parts = parse_main(&text, &inner(AGENT_STORE_KEY))?;
        if let Some(conns) = data.get(AGENT_CONNECTIONS_KEY).and_then(Value::as_str) {
            let conns = placed(manifest, AGENT_CONNECTIONS_KEY, conns);
            parts.connections = parse_connections(&conns, &inner(AGENT_CONNECTIONS_KEY))?;
        }
        return Ok(parts);
    }
    let (key, text) = single_key(data, source_name)?;
    parse_main(&placed(manifest, key, text), &inner(key))
}

/// A ConfigMap value `value` of data key `key`, padded with the blank lines and spaces that put
/// it where it sits in `manifest`, so a parser error's line and column (and snippet) are the
/// manifest's own. Block scalars (`key: |`) and single-line values; anything else (a JSON
/// manifest, an escaped multi-line string) is returned as it is.
fn placed(manifest: &str, key: &str, value: &str) -> String {
    let found = manifest.lines().enumerate().find_map(|(i, l)| {
        let t = l.trim_start();
        [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ]
        .iter()
        .find_map(|k| t.strip_prefix(k.as_str()))
        .map(|rest| (i, l.len() - rest.len(), rest))
    });
    let Some((line, at, rest)) = found else {
        return value.to_string();
    };
    let trimmed = rest.trim_start();
    if trimmed.starts_with(['|', '>']) {
        let Some(first) = manifest.lines().nth(line + 1) else {
            return value.to_string();
        };
        let indent = " ".repeat(first.len() - first.trim_start().len());
        let body: Vec<String> = value
            .lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{indent}{l}")
                }
            })
            .collect();
        return "\n".repeat(line + 1) + &body.join("\n");
    }
    if value.contains('\n') {
        return value.to_string();
    }
    let col = at + (rest.len() - trimmed.len()) + usize::from(trimmed.starts_with(['"', '\'']));
    "\n".repeat(line) + &" ".repeat(col) + value
}

/// The agent's connections key: a list of connections, or a JSON string holding one.
fn parse_connections(text: &str, source_name: &str) -> Result<Vec<RawConnection>, ConfigError> {
    let err = |e| ConfigError::syntax(source_name, text, "", e);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let shape: Value = serde_saphyr::from_str(text).map_err(err)?;
    match shape {
        Value::String(inner) => serde_saphyr::from_str(&inner).map_err(|e| {
            ConfigError::syntax(
                source_name,
                &inner,
                "the string is not a list of connections (positions are inside the string): ",
                e,
            )
        }),
        Value::Null => Ok(Vec::new()),
        _ => serde_saphyr::from_str(text).map_err(err),
    }
}

/// The webhook's settings file: only a top-level `injection:`.
fn parse_settings(text: &str, source_name: &str) -> Result<Option<RawInjection>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    if let Ok(shape) = serde_saphyr::from_str::<Value>(text) {
        if let Some(data) = configmap_data(&shape) {
            let (key, inner) = single_key(data, source_name)?;
            return parse_settings(
                &placed(text, key, inner),
                &format!("{source_name} (data.{key})"),
            );
        }
    }
    let s: RawSettings = serde_saphyr::from_str(text).map_err(|e| {
        ConfigError::syntax_hint(
            source_name,
            text,
            "",
            e,
            " (a settings file holds only the webhook's `injection:` section)",
        )
    })?;
    Ok(s.injection)
}

/// Resolve parsed parts into a config; every cross-reference is checked here.
fn finish(parts: Parts, source_name: &str) -> Result<Config, ConfigError> {
    let e = |m: Invalid| ConfigError::new(source_name, m);
    let store = resolve::store(parts.store, parts.store_at).map_err(e)?;
    let mut raw_injection = parts.injection.unwrap_or_default();
    let wanted = raw_injection.connections.take().unwrap_or_default();
    let raw_rules = raw_injection.rules.take().unwrap_or_default();
    let raw_identity = raw_injection.identity.take();
    let no_match = resolve::no_match(raw_injection.no_match.take().as_deref()).map_err(e)?;
    let injection = resolve::injection(raw_injection).map_err(e)?;
    let declared = resolve::declared(parts.connections).map_err(e)?;
    let mandated = resolve::mandated(&store, &declared, &wanted).map_err(e)?;
    let rules = resolve::rules(&store, &declared, &mandated, raw_rules).map_err(e)?;
    let identity = raw_identity
        .map(|i| resolve::identity(i, &store, "injection.identity"))
        .transpose()
        .map_err(e)?;
    resolve::check_identities(identity.as_ref().map(|i| (i, &store)), &rules, &injection)
        .map_err(e)?;
    let mut config = Config {
        store,
        mandated,
        rules,
        no_match,
        identity,
        injection,
        hash: String::new(),
    };
    config.hash = hash(&config).map_err(e)?;
    Ok(config)
}

/// A short content hash of the resolved config: equal configs, equal hashes, whatever the form.
fn hash(config: &Config) -> Result<String, Invalid> {
    let bytes = serde_json::to_vec(config)
        .map_err(|err| Invalid(format!("the config cannot be hashed: {err}")))?;
    Ok(short_digest(&bytes))
}

fn short_digest(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of one decision: what a run routed to `store` is given (the store, its
/// connections, its identity) and the options that shape that patch (which containers, conflict
/// handling, client variables, the runs accounts an identity replaces). Not the rule's matcher,
/// the run selector, the namespaces or the mode: editing another team's rule, or moving this one
/// from audit to inject, leaves it unchanged, so a run is stale only when what it would get changed.
pub fn decision_fingerprint(
    store: &Store,
    connections: &[Store],
    identity: Option<&Identity>,
    injection: &Injection,
) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape<'a> {
        store: &'a Store,
        connections: &'a [Store],
        identity: Option<&'a Identity>,
        containers: &'a [crate::glob::Glob],
        init_containers: &'a [crate::glob::Glob],
        on_conflict: OnConflict,
        standard_client_env: bool,
        runs_service_accounts: &'a [crate::glob::Glob],
    }
    let shape = Shape {
        store,
        connections,
        identity,
        containers: &injection.containers,
        init_containers: &injection.init_containers,
        on_conflict: injection.on_conflict,
        standard_client_env: injection.standard_client_env,
        runs_service_accounts: &injection.runs_service_accounts,
    };
    // The same plain data `hash` serialised when the config loaded (a failure there refused
    // the config), so this cannot fail; if it ever did, the error text is hashed, not a panic.
    // Through a `Value`: its keys come out sorted, so the fingerprint does not follow field order.
    let text = serde_json::to_value(&shape).map_or_else(|err| err.to_string(), |v| v.to_string());
    short_digest(text.as_bytes())
}

#[cfg(test)]
mod tests;
