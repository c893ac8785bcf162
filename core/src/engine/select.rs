//! Which pods are Polyaxon runs, and which of their containers get the store.

use super::pod::{ListKind, Placed, PodView, StrMap};
use crate::config::Injection;
use crate::glob::any_match;
use crate::plan::ANNOTATION_SKIP_CONTAINERS;

/// Every selector label must be present with exactly that value.
pub fn selector_matches(labels: Option<&StrMap<'_>>, selector: &[(String, String)]) -> bool {
    selector.iter().all(|(k, v)| {
        labels.and_then(|l| l.get(k.as_str())).map(|x| x.as_ref()) == Some(v.as_str())
    })
}

/// Include list (empty = all) then exclude list.
pub fn namespace_allowed(namespace: &str, policy: &Injection) -> bool {
    (policy.namespaces_include.is_empty() || any_match(&policy.namespaces_include, namespace))
        && !any_match(&policy.namespaces_exclude, namespace)
}

/// Names listed in the skip annotation (comma or space separated), sorted so that looking every
/// container up stays linear-logarithmic however long the annotation is.
pub struct SkipList<'p>(Vec<&'p str>);

impl SkipList<'_> {
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search(&name).is_ok()
    }
}

pub fn skip_list<'p>(view: &PodView<'p, '_>) -> SkipList<'p> {
    let mut names: Vec<&str> = view
        .annotation(ANNOTATION_SKIP_CONTAINERS)
        .map(|s| {
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    SkipList(names)
}

/// Whether the policy's globs pick this container.
pub fn is_target(p: &Placed<'_, '_>, policy: &Injection) -> bool {
    let globs = match p.list {
        ListKind::Containers => &policy.containers,
        ListKind::InitContainers => &policy.init_containers,
    };
    any_match(globs, &p.c.name)
}
