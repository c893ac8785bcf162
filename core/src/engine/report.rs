//! What the engine did for each container, piece by piece — filled only when a request asks for
//! it (`Request::report`: `mutate --explain`, `check-config`), so the server pays nothing. The
//! explanations read it; they never re-derive a rule or parse patch paths.

use super::pod::ListKind;
use crate::clients::GOOGLE_APPLICATION_CREDENTIALS;
use crate::plan::{StorePlan, GC_KEY_PATH};

/// A marker annotation the engine records on served pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerReport {
    pub key: &'static str,
    pub value: String,
    pub state: PieceState,
}

/// One container of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerReport {
    pub name: String,
    pub list: ListKind,
    pub status: ContainerStatus,
    /// Each planned piece, in plan order (targets only).
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Not matched by `injection.containers` / `initContainers`.
    NotTarget,
    /// Listed in the pod's skip annotation.
    SkippedByAnnotation,
    /// A conflict stopped it (denied, or skipped with `onConflict: skip`).
    Conflict,
    Served,
}

/// Which planned piece (indexes into the store plan's lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    Mount(usize),
    EnvFrom(usize),
    Env(usize),
    ClientEnv(usize),
    GcKeyPath,
    GoogleApplicationCredentials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceState {
    Added,
    AlreadyThere,
    /// Not added: a conflict, another value kept, or nothing to point at (see `detail`).
    NotAdded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub kind: PieceKind,
    pub state: PieceState,
    /// Where or what: `volume gcs-secret at /plx-context/.gc`, a variable's value, a reason.
    pub detail: String,
}

/// One planned piece and what the engine did with it, in words (`mutate --explain`, audit
/// warnings).
pub fn describe(sp: &StorePlan, p: &Piece) -> String {
    let detail = if p.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", p.detail)
    };
    format!("{}: {}{detail}", what(sp, p.kind), state_of(p))
}

/// The piece itself, in words: `mount of secret gcs-secret`, `env GC_KEY_PATH`.
pub fn what(sp: &StorePlan, kind: PieceKind) -> String {
    match kind {
        PieceKind::Mount(i) => format!("mount of {}", sp.mounts[i].what),
        PieceKind::EnvFrom(i) => {
            let r = &sp.env_from[i];
            format!("envFrom {} {}", r.kind.fields().0, r.name)
        }
        PieceKind::Env(i) => {
            let e = &sp.env_items[i];
            format!("env {} (key {} of {})", e.env_name, e.key, e.resource)
        }
        PieceKind::ClientEnv(i) => {
            let e = &sp.client_env[i];
            format!(
                "env {} (standard client name, key {} of {}, optional)",
                e.env_name, e.key, e.resource
            )
        }
        PieceKind::GcKeyPath => format!("env {GC_KEY_PATH}"),
        PieceKind::GoogleApplicationCredentials => format!("env {GOOGLE_APPLICATION_CREDENTIALS}"),
    }
}

fn state_of(p: &Piece) -> &'static str {
    match (p.kind, p.state) {
        (PieceKind::GcKeyPath | PieceKind::GoogleApplicationCredentials, PieceState::Added) => {
            "added: the file where the kubelet puts the key"
        }
        (
            PieceKind::GcKeyPath | PieceKind::GoogleApplicationCredentials,
            PieceState::AlreadyThere,
        ) => "already set, kept",
        (_, s) => state(s),
    }
}

pub fn state(s: PieceState) -> &'static str {
    match s {
        PieceState::AlreadyThere => "already there",
        PieceState::Added => "added",
        PieceState::NotAdded => "NOT added (see the warnings)",
    }
}
