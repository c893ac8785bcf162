//! The fleet view (`--fleet`, the `fleet` and `rbac` commands): every live run pod classified
//! against today's config, and which namespaces have each object the config references, kept
//! by kube-rs watches. Off by default, so the base install needs no API permission. Admission
//! reads it (never waits on it); `/metrics` and `/fleet` compute from it when asked, so the
//! view costs nothing between events.

pub mod cli;
pub mod rbac;
pub mod report;
pub mod scope;
pub mod view;
pub mod watch;

pub use plx_store_core::fleet::*;
pub use view::Fleet;

use crate::plan::Plan;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One look at the cluster (the `fleet` command): start the watches `plan` needs, wait until
/// each has listed or failed (at most `timeout`), and report.
pub async fn snapshot(
    client: kube::Client,
    plan: &Arc<Plan>,
    timeout: Duration,
) -> anyhow::Result<report::Report> {
    let fleet = Arc::new(Fleet::default());
    let mut watches = watch::Watches::new(client, fleet.clone());
    watches.follow(plan);
    let deadline = Instant::now() + timeout;
    loop {
        let settled = fleet
            .read()
            .states()
            .all(|s| s.synced || s.failure.is_some());
        if settled || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(watches);
    let r = report::build(&fleet.read(), plan, true);
    Ok(r)
}
