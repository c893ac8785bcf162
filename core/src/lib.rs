//! plx-store-core: the rules of plx-store-webhook, with no I/O runtime. The compiler keeps it
//! pure: no tokio, hyper, axum, tower, clap, notify, tracing-subscriber or prometheus-client
//! among its dependencies, and no `unsafe`.
//!
//! Data flows one way: [`config`] (Polyaxon's connection forms, validated) → [`plan`] (what each
//! container must get, once per config) → [`engine`] (pure: pod + plan + request facts →
//! patch, warnings, decision) → [`admission`] (the AdmissionReview envelope). [`describe`] and
//! [`explain`] turn a plan and an engine outcome into words for `check-config` and
//! `mutate --explain`; they sit on top and nothing below uses them. [`json_scan`] is the request
//! hot path's one-pass JSON reader under `engine::pod_scan` and `admission`; the serde model in
//! `engine::pod` stays the definition it is tested against and the fallback when it is unsure.

#![forbid(unsafe_code)]

pub mod admission;
pub mod clients;
pub mod codes;
pub mod config;
pub mod describe;
pub mod engine;
pub mod explain;
pub mod fleet;
pub mod glob;
pub mod json_scan;
pub mod k8s_names;
pub mod limits;
pub mod plan;
pub mod references;

pub use config::{load_file, load_str, Config, ConfigError};
pub use engine::{mutate, Decision, Outcome, Request};
pub use limits::PodLimits;
pub use plan::Plan;
