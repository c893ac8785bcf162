//! What the watches know, shared by admission (lookups), `/metrics`, `/fleet` and the `fleet`
//! command. One lock; every reader takes it once (classifying a pod asks for references under
//! the same read guard).

use crate::fleet::RunPod;
use crate::references::{ObjectKind, Presence, References};
use std::collections::{HashMap, HashSet};
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

/// One named object's watch: which namespaces have it.
#[derive(Debug, Default)]
pub struct NamedWatch {
    pub state: WatchState,
    pub namespaces: HashSet<String>,
}

/// Everything the watches know.
#[derive(Debug, Default)]
pub struct View {
    /// Live run pods by (namespace, name).
    pub pods: HashMap<(String, String), RunPod>,
    pub pods_watch: WatchState,
    pub named: HashMap<ObjectKind, HashMap<String, NamedWatch>>,
}

impl References for View {
    fn presence(&self, kind: ObjectKind, name: &str, namespace: &str) -> Presence {
        match self.named.get(&kind).and_then(|m| m.get(name)) {
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
    /// Every watch synced and none failing.
    pub fn synced(&self) -> bool {
        self.pods_watch.trusted()
            && self
                .named
                .values()
                .flat_map(|m| m.values())
                .all(|w| w.state.trusted())
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
