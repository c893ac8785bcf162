//! Which pods are Polyaxon runs, and which of their containers get the store.

use super::pod::{Container, ListKind, PodView};
use crate::config::Injection;
use crate::glob::any_match;
use crate::plan::ANNOTATION_SKIP_CONTAINERS;
use serde_json::{Map, Value};

/// Every selector label must be present with exactly that value.
pub fn selector_matches(
    labels: Option<&Map<String, Value>>,
    selector: &[(String, String)],
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v.as_str()))
}

/// Include list (empty = all) then exclude list.
pub fn namespace_allowed(namespace: &str, policy: &Injection) -> bool {
    (policy.namespaces_include.is_empty() || any_match(&policy.namespaces_include, namespace))
        && !any_match(&policy.namespaces_exclude, namespace)
}

/// Names listed in the skip annotation (comma or space separated).
pub fn skip_list<'a>(view: &PodView<'a>) -> Vec<&'a str> {
    view.annotation(ANNOTATION_SKIP_CONTAINERS)
        .map(|s| {
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the policy's globs pick this container.
pub fn is_target(c: &Container<'_>, policy: &Injection) -> bool {
    let globs = match c.list {
        ListKind::Containers => &policy.containers,
        ListKind::InitContainers => &policy.init_containers,
    };
    any_match(globs, c.name)
}
