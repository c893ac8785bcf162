//! plx-store-webhook: a mutating admission webhook that gives Polyaxon run pods their
//! artifacts-store credentials.
//!
//! The rules live in the `plx-store-core` crate (config → plan → engine → admission envelope,
//! no I/O runtime; re-exported here). This crate is the shell around them: [`server`] (HTTPS,
//! TLS reload, limits), [`cli`], [`metrics`], [`telemetry`] (lines written by [`log_buffer`]), [`certs`] and the [`offline`]
//! commands.

pub mod allocator;
pub mod certs;
pub mod cli;
pub mod decision_log;
pub mod errors;
pub mod fleet;
pub mod log_buffer;
pub mod metrics;
pub mod offline;
pub mod server;
pub mod telemetry;

pub use plx_store_core::{
    admission, clients, codes, config, describe, engine, explain, glob, json_scan, k8s_names,
    limits, plan, references,
};
pub use plx_store_core::{
    load_file, load_str, mutate, Config, ConfigError, Decision, Outcome, Plan, PodLimits, Request,
};
