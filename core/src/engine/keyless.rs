//! What a target container of a keyless run may not carry: every place the store kind's clients
//! read a credential before the team identity (`clients::reads`, in their order), reached by a
//! variable or by a file any volume can put there. One table, one reach model ([`Files`]).

use super::identity::TOKEN_MOUNT;
use super::keypath::{clean, is_strictly_under, Files};
use super::pod::{Container, Env, Mount, PodView, Volume};
use super::q;
use crate::clients::{self, Accept, Place, Read};
use crate::config::StoreKind;
use std::collections::HashMap;

/// Where the kubelet may put files, per volume of one pod, built on first use.
pub(super) struct Reach<'v, 'p, 'a> {
    view: &'v PodView<'p, 'a>,
    built: HashMap<&'p str, Files>,
}

impl<'v, 'p, 'a> Reach<'v, 'p, 'a> {
    pub fn new(view: &'v PodView<'p, 'a>) -> Self {
        Reach {
            view,
            built: HashMap::new(),
        }
    }

    /// The first mount of `c` whose volume can put something at `target` (or under it, with
    /// `below`), with its volume, skipping volumes `skip` says are fine there.
    fn mount_reaching<'c, 'b>(
        &mut self,
        c: &'c Container<'b>,
        target: &str,
        below: bool,
        skip: impl Fn(&Volume<'_>) -> bool,
    ) -> Option<(&'c Mount<'b>, &'p Volume<'a>)> {
        let view = self.view;
        for m in c.mounts() {
            let Some(v) = view.volume(&m.name) else {
                continue;
            };
            if skip(v) {
                continue;
            }
            let files = self
                .built
                .entry(&*v.name)
                .or_insert_with(|| Files::of_volume(v));
            let sub = match (&m.sub_path_expr, &m.sub_path) {
                (Some(e), _) if !e.is_empty() => Some(None),
                (_, Some(s)) if !s.is_empty() => Some(Some(s.as_ref())),
                _ => None,
            };
            if files.reach(&m.mount_path, sub, target, below) {
                return Some((m, v));
            }
        }
        None
    }
}

impl Reach<'_, '_, '_> {
    /// The first mount of `c` that may put files in `D/rel` for some directory `D` (`HOME`
    /// unknown), in words.
    fn mount_reaching_any_home(
        &mut self,
        c: &Container<'_>,
        rel: &'static str,
        r: &Read,
    ) -> Option<String> {
        let view = self.view;
        for m in c.mounts() {
            let Some(v) = view.volume(&m.name) else {
                continue;
            };
            let files = self
                .built
                .entry(&*v.name)
                .or_insert_with(|| Files::of_volume(v));
            if files.reach_any_home(&m.mount_path, rel) {
                return Some(format!(
                    "HOME set by valueFrom or $(VAR), so ~ may be any directory, and a {} volume {} mounted at {} \
                     that may put files in ~/{rel}, where {} reads credentials",
                    source(v),
                    q(&v.name),
                    q(&m.mount_path),
                    r.client
                ));
            }
        }
        None
    }
}

/// The kind of a volume's source, in the words of the pod spec.
fn source(v: &Volume<'_>) -> &'static str {
    if v.secret.is_some() {
        "secret"
    } else if v.config_map.is_some() {
        "configMap"
    } else if v.projected.is_some() {
        "projected"
    } else if v.downward_api.is_some() {
        "downwardAPI"
    } else if v.host_path.is_some() {
        "hostPath"
    } else if v.persistent_volume_claim.is_some() {
        "persistentVolumeClaim"
    } else {
        "csi, ephemeral or another"
    }
}

/// The first credential `c` carries that a `kind` client would use before the pod's identity,
/// in words; `None` when it carries none.
pub(super) fn carried(
    reach: &mut Reach<'_, '_, '_>,
    c: &Container<'_>,
    kind: StoreKind,
) -> Option<String> {
    for r in clients::reads(kind) {
        match r.place {
            Place::Var(name) => {
                if let Some(e) = c.env_var(name) {
                    if !accepted(reach.view, c, kind, r, e) {
                        return Some(format!("env {name}, read by {}", r.client));
                    }
                }
            }
            Place::Sdk(_) | Place::VarPrefix(_) => {
                // Every entry (the last of each name is what the container sees; any form counts).
                let env = c.env.as_deref().unwrap_or_default();
                let hit = env.iter().enumerate().rev().find(|(i, e)| {
                    clients::variable(kind, &e.name).is_some_and(|x| std::ptr::eq(x, r))
                        && !env[i + 1..].iter().any(|l| l.name == e.name)
                });
                if let Some((_, e)) = hit {
                    let plain = e.name.len() <= 63
                        && e.name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    return Some(if plain {
                        format!("env {}, read by {}", e.name, r.client)
                    } else {
                        format!("env {}, read by {}", q(&e.name), r.client)
                    });
                }
            }
            Place::File(path) => {
                if let Some(found) = file_at(reach, c, path, false, r) {
                    return Some(found);
                }
            }
            Place::Dir(dir) => {
                if let Some(found) = file_at(reach, c, dir, true, r) {
                    return Some(found);
                }
            }
            Place::HomeFile(rel) => {
                if home_unknown(c) {
                    if let Some(found) = reach.mount_reaching_any_home(c, rel, r) {
                        return Some(found);
                    }
                }
                for home in homes(c) {
                    let file = format!("{}/{rel}", home.trim_end_matches('/'));
                    if let Some(found) = file_at(reach, c, &file, false, r) {
                        return Some(found);
                    }
                }
            }
            Place::HomeDir(rel) => {
                if home_unknown(c) {
                    if let Some(found) = reach.mount_reaching_any_home(c, rel, r) {
                        return Some(found);
                    }
                }
                for home in homes(c) {
                    let dir = format!("{}/{rel}", home.trim_end_matches('/'));
                    if let Some(found) = file_at(reach, c, &dir, true, r) {
                        return Some(found);
                    }
                }
            }
        }
    }
    token_directory(reach, c)
}

fn file_at(
    reach: &mut Reach<'_, '_, '_>,
    c: &Container<'_>,
    path: &str,
    below: bool,
    r: &Read,
) -> Option<String> {
    let (m, v) = reach.mount_reaching(c, path, below, |_| false)?;
    Some(format!(
        "a {} volume {} mounted at {} that puts {} {path}, where {} reads credentials",
        source(v),
        q(&v.name),
        q(&m.mount_path),
        if below { "files in" } else { "a file at" },
        r.client
    ))
}

/// Whether `HOME` is set to a value the webhook cannot read: by `valueFrom`, or with a `$(VAR)`
/// the kubelet expands. Then `~` may be any directory.
fn home_unknown(c: &Container<'_>) -> bool {
    c.env_var("HOME").is_some_and(|e| {
        e.value_from.is_some() || e.value.as_deref().is_some_and(|v| v.contains("$("))
    })
}

/// Home directories a client may expand `~` to: root's, and the container's `HOME` when set (the
/// last entry, as the kubelet keeps).
fn homes<'c>(c: &'c Container<'_>) -> impl Iterator<Item = &'c str> {
    let home = c.env_var("HOME").and_then(|e| e.value.as_deref());
    std::iter::once("/root").chain(home.filter(|h| clean(h) != "/root"))
}

/// Anything but the pod's own bound token in the service-account token directory (a copied
/// token in a ConfigMap, a hostPath …). Secrets there are the legacy-token case, decided apart.
fn token_directory(reach: &mut Reach<'_, '_, '_>, c: &Container<'_>) -> Option<String> {
    let (m, v) = reach.mount_reaching(c, TOKEN_MOUNT, true, |v| {
        bound_token(v) || super::keypath::Layout::of_volume(v).is_secret()
    })?;
    Some(format!(
        "a {} volume {} mounted at {} that puts files in the service account token directory {TOKEN_MOUNT}, \
         where only the pod's bound token may be",
        source(v),
        q(&v.name),
        q(&m.mount_path)
    ))
}

/// The volume the ServiceAccount plugin adds with bound tokens: projected from the pod's own
/// token, the cluster's CA (`kube-root-ca.crt`) and the namespace (downward API).
fn bound_token(v: &Volume<'_>) -> bool {
    let Some(sources) = v.projected.as_ref().and_then(|p| p.sources.as_deref()) else {
        return false;
    };
    // Only the token source may put a file named `token` (a downward API item or the CA
    // bundle's items renamed to `token` would be a token clients read, but not the pod's).
    let not_token = |p: &str| clean(p).trim_start_matches('/') != "token";
    sources.iter().any(|s| s.service_account_token.is_some())
        && sources.iter().all(|s| {
            s.secret.is_none()
                && s.config_map.as_ref().is_none_or(|c| {
                    c.name.as_deref() == Some("kube-root-ca.crt")
                        && c.items.iter().flatten().all(|i| not_token(&i.path))
                })
                && s.downward_api
                    .as_ref()
                    .is_none_or(|d| d.items.iter().flatten().all(|i| not_token(&i.path)))
        })
}

/// Whether a variable `r` names is what the identity webhooks set for the pod's own account.
fn accepted(
    view: &PodView<'_, '_>,
    c: &Container<'_>,
    kind: StoreKind,
    r: &Read,
    e: &Env<'_>,
) -> bool {
    match r.accept {
        Accept::Never => false,
        Accept::OwnToken => {
            e.value_from.is_none() && e.value.as_deref().is_some_and(|p| own_token(view, c, p))
        }
        Accept::Values(vs) => {
            e.value_from.is_none() && e.value.as_deref().is_some_and(|v| vs.contains(&v))
        }
        Accept::With(other) => match (c.env_var(other), clients::variable(kind, other)) {
            (Some(o), Some(ro)) if !matches!(ro.accept, Accept::With(_)) => {
                accepted(view, c, kind, ro, o)
            }
            _ => false,
        },
    }
}

/// Whether `path` is, in `c`, a file of a projected volume made only of service account
/// tokens (the kubelet fills it with the pod's own account's token; nothing else can be there).
fn own_token(view: &PodView<'_, '_>, c: &Container<'_>, path: &str) -> bool {
    let path = clean(path);
    // The innermost mount at or above the path decides what is there (a file mounted at the
    // token path itself, by subPath, is innermost).
    let Some(m) = c
        .mounts()
        .iter()
        .filter(|m| {
            let at = clean(&m.mount_path);
            at == path || is_strictly_under(&path, &at)
        })
        .max_by_key(|m| clean(&m.mount_path).len())
    else {
        return false;
    };
    if m.sub_path.as_deref().is_some_and(|s| !s.is_empty())
        || m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
    {
        return false;
    }
    let Some(sources) = view
        .volume(&m.name)
        .and_then(|v| v.projected.as_ref())
        .and_then(|p| p.sources.as_deref())
    else {
        return false;
    };
    let rel = path[clean(&m.mount_path).trim_end_matches('/').len()..].trim_start_matches('/');
    !sources.is_empty()
        && sources.iter().all(|s| {
            s.secret.is_none()
                && s.config_map.is_none()
                && s.downward_api.is_none()
                && s.service_account_token.is_some()
        })
        && sources
            .iter()
            .filter_map(|s| s.service_account_token.as_ref())
            .any(|t| clean(&t.path).trim_start_matches('/') == rel)
}
