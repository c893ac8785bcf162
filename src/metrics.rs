//! Prometheus metrics, low cardinality by construction: every label value comes from a closed
//! set (decisions, reasons, versions), never from a pod.

use crate::engine::{Decision, DenyReason, Outcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub result: &'static str,
    pub api_version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    pub listener: &'static str,
    pub reason: &'static str,
}

/// Counts a connection as open until dropped.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    pub hash: String,
    pub store: String,
}

/// Every metric the webhook exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Histogram,
    pub injected_containers: Counter,
    pub skips: Family<ReasonLabels, Counter>,
    /// Refused run pods by why (a closed set), so the denial-ratio alert can name the top one.
    pub denials: Family<ReasonLabels, Counter>,
    pub conflicts: Family<KindLabels, Counter>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub cert_reloads: Family<ResultLabels, Counter>,
    pub cert_not_after: Gauge,
    pub config_info: Family<ConfigLabels, Gauge>,
    pub connections_open: Family<ListenerLabels, Gauge>,
    pub connections_refused: Family<ListenerLabels, Counter>,
    pub connections_closed: Family<ClosedLabels, Counter>,
    /// 1 while this replica is ready (what `/readyz` says), for the no-ready-replica alert.
    pub ready: Gauge,
    /// Keyless runs by what happened to their ServiceAccount.
    pub identities: Family<ResultLabels, Counter>,
    /// 1 while the last load of `what` (config, cert) failed and the last good one serves.
    pub reload_failing: Family<WhatLabels, Gauge>,
    /// Reviews of the enforcing webhook (`/validate`) by result.
    pub validations: Family<ResultLabels, Counter>,
    /// The fleet view's gauges (registered with `--fleet` only, so that without it no alert
    /// reads a view that does not exist).
    pub fleet: Option<FleetGauges>,
}

/// What the fleet view exports; set from the view at each scrape (no timer of its own).
#[derive(Default)]
pub struct FleetGauges {
    pub run_pods: Family<StateLabels, Gauge>,
    pub missing_references: Family<MissingLabels, Gauge>,
    pub synced: Gauge,
    pub watches_failing: Family<WatchLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

/// Bounded: the names are the config's, the namespaces those with live runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MissingLabels {
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
}

/// Bounded: one per watch (pods, and each name the config references).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub resource: &'static str,
    pub name: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WhatLabels {
    pub what: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Count a connection of `listener` as open until the returned guard is dropped.
    pub fn connection_opened(&self, listener: &'static str) -> OpenConnection {
        let g = self
            .connections_open
            .get_or_create(&ListenerLabels { listener })
            .clone();
        g.inc();
        OpenConnection(g)
    }

    pub fn connection_refused(&self, listener: &'static str) {
        self.connections_refused
            .get_or_create(&ListenerLabels { listener })
            .inc();
    }

    pub fn connection_closed(&self, listener: &'static str, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ClosedLabels { listener, reason })
            .inc();
    }

    pub fn new() -> Self {
        Self::build(false)
    }

    /// The metrics with the fleet view's gauges (`--fleet`).
    pub fn with_fleet() -> Self {
        Self::build(true)
    }

    fn build(fleet: bool) -> Self {
        let mut registry = Registry::with_prefix("plx_webhook");
        let m = Metrics {
            requests: Family::default(),
            // 25 µs … ~6.5 s: fine enough for sub-millisecond work, and past the MWC's
            // timeoutSeconds (5 s), so a p99 approaching it is measurable.
            duration: Histogram::new(exponential_buckets(0.000_025, 2.0, 19)),
            injected_containers: Counter::default(),
            skips: Family::default(),
            denials: Family::default(),
            conflicts: Family::default(),
            config_reloads: Family::default(),
            cert_reloads: Family::default(),
            cert_not_after: Gauge::default(),
            config_info: Family::default(),
            connections_open: Family::default(),
            connections_refused: Family::default(),
            connections_closed: Family::default(),
            ready: Gauge::default(),
            identities: Family::default(),
            reload_failing: Family::default(),
            validations: Family::default(),
            fleet: fleet.then(FleetGauges::default),
            registry: Registry::default(),
        };
        if let Some(f) = &m.fleet {
            registry.register(
                "run_pods",
                "Live run pods by state (current, stale, missing, audit, missing-reference, unmatched), as the fleet view classifies them against today's config",
                f.run_pods.clone(),
            );
            registry.register(
                "missing_references",
                "1 for each object a run's decision needs that its namespace lacks (namespaces with live runs only)",
                f.missing_references.clone(),
            );
            registry.register(
                "fleet_synced",
                "1 while every fleet watch has listed and none is failing (the view makes claims only then)",
                f.synced.clone(),
            );
            registry.register(
                "fleet_watches_failing",
                "1 for each fleet watch failing, by resource, name and reason (forbidden: RBAC; error: the API)",
                f.watches_failing.clone(),
            );
        }
        registry.register(
            "admission_requests",
            "Admission requests by result (mutated, unchanged, ignored, denied, audit, error) and API version",
            m.requests.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time to answer an admission request, body read to response",
            m.duration.clone(),
        );
        registry.register(
            "injected_containers",
            "Target containers given the store (or found already having it) in allowed run pods",
            m.injected_containers.clone(),
        );
        registry.register(
            "skips",
            "Pods or containers left alone, by reason",
            m.skips.clone(),
        );
        registry.register(
            "denials",
            "Run pods refused, by reason (conflict, identity, no_rule_matched, missing_reference, too_large, malformed)",
            m.denials.clone(),
        );
        registry.register(
            "conflicts",
            "Mount conflicts found, by kind",
            m.conflicts.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result",
            m.config_reloads.clone(),
        );
        registry.register(
            "cert_reloads",
            "TLS certificate reloads by result",
            m.cert_reloads.clone(),
        );
        registry.register(
            "serving_cert_not_after_timestamp_seconds",
            "notAfter of the serving certificate, as a Unix timestamp",
            m.cert_not_after.clone(),
        );
        registry.register(
            "config",
            "The loaded config (hash, store)",
            m.config_info.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now, by listener",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept because --max-connections were open, by listener",
            m.connections_refused.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed by the server: a timeout (handshake_timeout, header_timeout, idle_timeout, send_timeout) or to make room at the cap (evicted), by listener",
            m.connections_closed.clone(),
        );
        registry.register(
            "identities",
            "Runs of keyless stores by what happened to their ServiceAccount (assigned: the store's identity; user_account: the run's own account, kept)",
            m.identities.clone(),
        );
        registry.register(
            "ready",
            "1 while this replica is ready to serve admissions (as /readyz says)",
            m.ready.clone(),
        );
        registry.register(
            "reload_failing",
            "1 while the last load of the config or the serving certificate failed (the last good one serves)",
            m.reload_failing.clone(),
        );
        registry.register(
            "validations",
            "Reviews of the enforcing webhook (/validate) by result: allowed, denied (a run lacking its store), audit (not enforced), ignored",
            m.validations.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let m = Metrics { registry, ..m };
        m.zeros();
        m
    }

    /// Every label set a dashboard or alert divides by, present at 0 from the start: a rate
    /// over a series that does not exist yet is "no data", not 0.
    fn zeros(&self) {
        use plx_store_core::engine::{ConflictKind, IgnoreReason};
        // Refusals at the cap are rare now that idle connections make room: the series exists
        // at 0 all the same, so the Connections panel shows 0 rather than "no data".
        for listener in ["webhook", "admin"] {
            let _ = self
                .connections_refused
                .get_or_create(&ListenerLabels { listener });
        }
        for result in [
            "mutated",
            "unchanged",
            "ignored",
            "denied",
            "audit",
            "error",
        ] {
            for api_version in ["v1", "v1beta1"] {
                let _ = self.requests.get_or_create(&RequestLabels {
                    result,
                    api_version,
                });
            }
        }
        for r in IgnoreReason::ALL {
            let _ = self
                .skips
                .get_or_create(&ReasonLabels { reason: r.metric() });
        }
        let _ = self.skips.get_or_create(&ReasonLabels {
            reason: "container_conflict",
        });
        for k in [
            ConflictKind::MountPathTaken,
            ConflictKind::NestedInReadOnly,
            ConflictKind::MountInsideOurs,
            ConflictKind::KeyOverIdentity,
        ] {
            let _ = self
                .conflicts
                .get_or_create(&KindLabels { kind: k.as_str() });
        }
        for result in ["success", "failure"] {
            let _ = self.config_reloads.get_or_create(&ResultLabels { result });
            let _ = self.cert_reloads.get_or_create(&ResultLabels { result });
        }
        for result in ["allowed", "denied", "audit", "ignored"] {
            let _ = self.validations.get_or_create(&ResultLabels { result });
        }
        for result in ["assigned", "user_account"] {
            let _ = self.identities.get_or_create(&ResultLabels { result });
        }
        // Every reason from zero, so a first denial is a rate and the reference lists them all.
        for r in DenyReason::ALL {
            let _ = self
                .denials
                .get_or_create(&ReasonLabels { reason: r.metric() });
        }
    }

    /// Count one answered review.
    pub fn observe(&self, outcome: &Outcome, api_version: &'static str, seconds: f64) {
        let result = outcome.decision.label();
        self.requests
            .get_or_create(&RequestLabels {
                result,
                api_version,
            })
            .inc();
        self.duration.observe(seconds);
        if let Decision::Ignored(r) = outcome.decision {
            self.skips
                .get_or_create(&ReasonLabels { reason: r.metric() })
                .inc();
        }
        if let (Decision::Denied(_), Some(r)) = (&outcome.decision, outcome.deny_reason) {
            self.denials
                .get_or_create(&ReasonLabels { reason: r.metric() })
                .inc();
        }
        for c in &outcome.conflicts {
            self.conflicts
                .get_or_create(&KindLabels { kind: c.as_str() })
                .inc();
        }
        if outcome.allowed() {
            let skipped = outcome.conflicts.len() as u64;
            if skipped > 0 {
                self.skips
                    .get_or_create(&ReasonLabels {
                        reason: "container_conflict",
                    })
                    .inc_by(skipped);
            }
            self.injected_containers
                .inc_by(outcome.injected_containers as u64);
            if let Some(result) = outcome.identity_result() {
                self.identities
                    .get_or_create(&ResultLabels { result })
                    .inc();
            }
        }
    }

    /// Count one review of the enforcing webhook.
    pub fn observe_validation(&self, outcome: &Outcome) {
        let result = match outcome.decision {
            Decision::Denied(_) => "denied",
            Decision::Audited(_) => "audit",
            Decision::Ignored(_) => "ignored",
            _ => "allowed",
        };
        self.validations
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Count a request that could not be answered as a review (400/413…).
    pub fn observe_error(&self, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                result: "error",
                api_version: "unknown",
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// Record the result of loading `what` (`config` or `cert`).
    pub fn set_reload_result(&self, what: &'static str, ok: bool) {
        self.reload_failing
            .get_or_create(&WhatLabels { what })
            .set(i64::from(!ok));
    }

    /// Record the config now in force.
    pub fn set_config(&self, hash: &str, store: &str) {
        self.config_info.clear();
        self.config_info
            .get_or_create(&ConfigLabels {
                hash: hash.to_string(),
                store: store.to_string(),
            })
            .set(1);
    }

    /// Text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
