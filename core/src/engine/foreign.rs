//! "Does this run carry another route's credentials?" — one answer for `/mutate` and `/validate`
//! (and so for enforce, which asks mutate on the final pod). Another route's store object is a
//! Secret that some other route's plan gives and this route's plan does not; a container
//! carries it through a volume it mounts (plain or projected), `envFrom` or an `env` reference.
//!
//! Polyaxon's own agent store (the config's default store) is what Polyaxon itself mounts in
//! its init and sidecar containers of every run: there it is allowed, whatever the route; in any
//! other container (the main container, user containers) it is refused like any other route's.

use super::pod::{Container, ListKind, Placed, PodView, Volume};
use super::q;
use crate::plan::{Plan, RefKind, StorePlan, VolumeSource};

/// Polyaxon's own containers, which carry the agent's store in every run: Polyaxon's shape — the
/// sidecar (`polyaxon-sidecar`, in `containers`, image named `polyaxon-sidecar`) or an init
/// container (`polyaxon-init-*`, in `initContainers`, image named `polyaxon-init`), under any
/// registry and path (a mirror), any tag or digest. Not airtight: whoever writes the pod can run those images with
/// their own command (docs/enforce.md says where the boundary is: the namespaces that hold the
/// Secret).
fn polyaxons_own(p: &Placed<'_, '_>) -> bool {
    // The image's own name, under any registry and path: mirrors (Harbor projects, GCR and ECR
    // repositories) put their own path before it.
    let image = p.c.image.as_deref().map(repository);
    let image = image.map(|r| r.rsplit('/').next().unwrap_or(r));
    match p.list {
        ListKind::Containers => p.c.name == "polyaxon-sidecar" && image == Some("polyaxon-sidecar"),
        ListKind::InitContainers => {
            p.c.name.starts_with("polyaxon-init-") && image == Some("polyaxon-init")
        }
    }
}

/// An image reference's repository path: without the tag or digest, and without a registry host
/// (a first component with `.` or `:`, or `localhost`); Docker Hub's `docker.io/` and
/// `index.docker.io/` are hosts like any other.
pub(super) fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or("");
    let image = match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    };
    match image.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => image,
    }
}

/// Every Secret name a store plan gives a run.
fn secrets(p: &StorePlan) -> impl Iterator<Item = &str> {
    let mounts = p.mounts.iter().filter_map(|m| match &m.source {
        VolumeSource::Secret { name, .. } => Some(name.as_str()),
        _ => None,
    });
    let env_from = p
        .env_from
        .iter()
        .filter(|r| r.kind == RefKind::Secret)
        .map(|r| r.name.as_str());
    let env = p
        .env_items
        .iter()
        .chain(&p.client_env)
        .filter(|e| e.kind == RefKind::Secret)
        .map(|e| e.resource.as_str());
    mounts.chain(env_from).chain(env)
}

/// Another route's Secret named `name`, if it is one: (its store, whether it is the agent's).
fn owner<'p>(plan: &'p Plan, ours: &StorePlan, name: &str) -> Option<(&'p str, bool)> {
    if secrets(ours).any(|s| s == name) {
        return None;
    }
    plan.rules
        .iter()
        .map(|r| (&r.plan, false))
        .chain([(&plan.default, true)])
        .find(|(p, _)| p.store_name != ours.store_name && secrets(p).any(|s| s == name))
        .map(|(p, agent)| (p.store_name.as_str(), agent))
}

/// The Secrets a volume projects (plain or projected sources).
fn volume_secrets<'v>(v: &'v Volume<'_>) -> impl Iterator<Item = &'v str> {
    let plain = v.secret.as_ref().and_then(|s| s.secret_name.as_deref());
    let projected = v
        .projected
        .iter()
        .flat_map(|p| p.sources.as_deref().unwrap_or_default())
        .filter_map(|s| s.secret.as_ref().and_then(|s| s.name.as_deref()));
    plain.into_iter().chain(projected)
}

/// Each place the pod carries another route's Secret, in words naming the container (or the
/// volume) and the piece. A volume counts even when no container mounts it: an ephemeral
/// container can mount any volume of the pod later. Empty when the config has a single store.
pub(super) fn carried(view: &PodView<'_, '_>, plan: &Plan, ours: &StorePlan) -> Vec<String> {
    let mut found = Found::default();
    if plan.rules.is_empty() {
        return Vec::new();
    }
    for v in view.volumes {
        for name in volume_secrets(v) {
            let Some((store, agent)) = owner(plan, ours, name) else {
                continue;
            };
            let mut users = mounting(view, v).peekable();
            if agent && users.clone().all(polyaxons_own) {
                continue;
            }
            let words = if users.peek().is_none() {
                "mounted by no container".to_string()
            } else {
                let names: Vec<String> = users.take(3).map(|p| q(&p.c.name).to_string()).collect();
                format!("mounted by container {}", names.join(", "))
            };
            found.push(format!(
                "volume {} holds store {store:?}'s secret {} ({words})",
                q(&v.name),
                q(name)
            ));
        }
    }
    for p in &view.containers {
        let c: &Container<'_> = p.c;
        let own = polyaxons_own(p);
        let mut note = |name: &str, how: String| {
            if let Some((store, agent)) = owner(plan, ours, name) {
                if !(agent && own) {
                    found.push(format!(
                        "container {} carries store {store:?}'s secret {} ({how})",
                        q(&c.name),
                        q(name)
                    ));
                }
            }
        };
        for e in c.env_from() {
            if let Some(s) = e.secret_ref.as_ref().and_then(|r| r.name.as_deref()) {
                note(s, "envFrom".into());
            }
        }
        for e in c.env.as_deref().unwrap_or_default() {
            let r = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref());
            if let Some(s) = r.and_then(|r| r.name.as_deref()) {
                note(s, format!("env {}", q(&e.name)));
            }
        }
    }
    found.finish()
}

/// What was found, bounded: the first few in words, then a count (a hostile pod's thousands of
/// volumes cost a counter, not a message each).
#[derive(Default)]
struct Found {
    words: Vec<String>,
    more: usize,
}

impl Found {
    const SHOWN: usize = 4;

    fn push(&mut self, what: String) {
        if self.words.len() < Self::SHOWN {
            self.words.push(what);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.words.push(format!("{} more", self.more));
        }
        self.words
    }
}

/// The containers that mount volume `v`.
fn mounting<'v, 'p, 'a>(
    view: &'v PodView<'p, 'a>,
    v: &'v Volume<'_>,
) -> impl Iterator<Item = &'v Placed<'p, 'a>> + Clone + 'v {
    view.containers
        .iter()
        .filter(move |p| p.c.mounts().iter().any(|m| m.name == v.name))
}

#[cfg(test)]
mod tests {
    use super::repository;

    #[test]
    fn image_repository_without_host_tag_or_digest() {
        for (image, repo) in [
            ("polyaxon/polyaxon-init", "polyaxon/polyaxon-init"),
            ("polyaxon/polyaxon-init:2.18.0", "polyaxon/polyaxon-init"),
            (
                "docker.io/polyaxon/polyaxon-init:2.18.0",
                "polyaxon/polyaxon-init",
            ),
            (
                "registry.example.com:5000/polyaxon/polyaxon-sidecar@sha256:ab",
                "polyaxon/polyaxon-sidecar",
            ),
            ("localhost/polyaxon/polyaxon-init", "polyaxon/polyaxon-init"),
            (
                "localhost:5000/polyaxon/polyaxon-init:v1@sha256:ab",
                "polyaxon/polyaxon-init",
            ),
            ("busybox", "busybox"),
            ("evil/polyaxon/polyaxon-init", "evil/polyaxon/polyaxon-init"),
            (
                "registry.example.com/mirror/polyaxon/polyaxon-init",
                "mirror/polyaxon/polyaxon-init",
            ),
        ] {
            assert_eq!(repository(image), repo, "{image}");
        }
    }
}
