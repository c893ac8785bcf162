//! What the watches know, shared by admission (lookups), `/metrics`, `/fleet` and the `fleet`
//! command. One lock; every reader takes it once (classifying a pod asks for references under
//! the same read guard).

use crate::fleet::RunPod;
use crate::references::{ObjectKind, Presence, References};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A watch's health: synced once its first list is complete; failing until it lists again.
#[derive(Debug, Clone, Default)]
pub struct WatchState {
    pub synced: bool,
    pub failure: Option<Failure>,
}

impl WatchState {
    /// Whether its data may be used for claims.
    pub fn trusted(&self) -> bool {
        self.synced && self.failure.is_none()
    }
}

/// Why a watch is failing, and for a Forbidden one the exact RBAC rule it needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub message: String,
    pub forbidden: bool,
    /// The ClusterRole rule to add (`plx-store-webhook rbac` prints all of them).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule: String,
}

/// One named object's watch (cluster-wide, or in one namespace): which namespaces have it.
#[derive(Debug, Default)]
pub struct NamedWatch {
    pub state: WatchState,
    pub namespaces: HashSet<String>,
}

/// Everything the watches know.
#[derive(Debug, Default)]
pub struct View {
    /// Live run pods by (namespace, name), as judged under the config with hash `pods_config`.
    pub pods: HashMap<(String, String), RunPod>,
    pub pods_config: String,
    /// The pod watches by namespace ("" for the cluster-wide one).
    pub pods_watches: BTreeMap<String, WatchState>,
    /// Named objects' watches by kind, then (name, namespace or "" for cluster-wide).
    pub named: HashMap<ObjectKind, HashMap<(String, String), NamedWatch>>,
}

impl References for View {
    fn presence(&self, kind: ObjectKind, name: &str, namespace: &str) -> Presence {
        let Some(m) = self.named.get(&kind) else {
            return Presence::Unknown;
        };
        let watch = m
            .get(&(name.to_string(), String::new()))
            .or_else(|| m.get(&(name.to_string(), namespace.to_string())));
        match watch {
            Some(w) if w.state.trusted() => {
                if w.namespaces.contains(namespace) {
                    Presence::Present
                } else {
                    Presence::Missing
                }
            }
            _ => Presence::Unknown,
        }
    }
}

impl View {
    /// Every watch synced and none failing (and at least the pods' started).
    pub fn synced(&self) -> bool {
        self.pods_synced()
            && self
                .named
                .values()
                .flat_map(|m| m.values())
                .all(|w| w.state.trusted())
    }

    /// Every pod watch synced and none failing.
    pub fn pods_synced(&self) -> bool {
        !self.pods_watches.is_empty() && self.pods_watches.values().all(WatchState::trusted)
    }

    /// Every watch's state, pods' first (for settling and reports).
    pub fn states(&self) -> impl Iterator<Item = &WatchState> {
        self.pods_watches.values().chain(
            self.named
                .values()
                .flat_map(|m| m.values().map(|w| &w.state)),
        )
    }
}

/// The shared view.
#[derive(Debug, Default)]
pub struct Fleet {
    view: RwLock<View>,
}

impl Fleet {
    pub fn read(&self) -> RwLockReadGuard<'_, View> {
        // A writer never panics while holding the lock; if one did, the data is still whole.
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl References for Fleet {
    fn presence(&self, kind: ObjectKind, name: &str, namespace: &str) -> Presence {
        self.read().presence(kind, name, namespace)
    }
}
