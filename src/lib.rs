//! plx-store-webhook: a mutating admission webhook that gives Polyaxon run pods their
//! artifacts-store credentials.
//!
//! Data flows one way: [`config`] → [`plan`] → [`engine`] (pure) → [`admission`] → [`server`].

pub mod admission;
pub mod certs;
pub mod cli;
pub mod clients;
pub mod config;
pub mod describe;
pub mod engine;
pub mod explain;
pub mod glob;
pub mod k8s_names;
pub mod metrics;
pub mod offline;
pub mod plan;
pub mod server;
pub mod telemetry;

pub use config::{load_file, load_str, Config, ConfigError};
pub use engine::{mutate, Decision, Outcome, Request};
pub use plan::Plan;
