//! What the engine did for each container, piece by piece — filled only when a request asks for
//! it (`Request::report`: `mutate --explain`, `check-config`), so the server pays nothing. The
//! explanations read it; they never re-derive a rule or parse patch paths.

use super::pod::ListKind;

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
