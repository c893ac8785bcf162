//! Assembling a running webhook: load config and certificate, start the reload watchers, the
//! TLS and admin listeners, and shut down in two phases — first fail readiness and ask
//! keep-alive clients to close for a drain period, then stop accepting and let in-flight
//! requests finish.

use super::reload;
use super::serve::{self, Limits, TlsSide};
use super::tls::{self, Material, MinVersion};
use super::{admin_router, router, AppState, Guards};
use crate::config;
use crate::metrics::ResultLabels;
use crate::plan::Plan;
use arc_swap::ArcSwapOption;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The admin listener's connection cap (or --max-connections, if lower).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files, watched and reloaded.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for localhost made at start; its CA is written to this path.
    Ephemeral { ca_out: PathBuf },
}

#[derive(Debug, Clone)]
pub struct Options {
    /// A config file, or a directory holding Polyaxon's agent ConfigMap keys.
    pub config: PathBuf,
    /// The webhook's own settings file (`injection:`), beside an agent ConfigMap.
    pub settings: Option<PathBuf>,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub cert: CertSource,
    pub client_ca: Option<PathBuf>,
    pub allowed_client_names: Vec<String>,
    pub min_tls: MinVersion,
    pub guards: Guards,
    pub limits: Limits,
    /// Phase one of shutdown: not ready, `Connection: close`, still serving.
    pub drain: Duration,
    /// Backstop poll of watched files.
    pub reload_poll: Duration,
    /// Where decision lines go (the JSON log's buffer, or tracing).
    pub decision_log: crate::decision_log::DecisionLog,
    /// Keep the fleet view (`--fleet`): watches through the Kubernetes API.
    pub fleet: bool,
    /// Where the bound addresses are written once serving (`--addresses-file`).
    pub addresses_file: Option<PathBuf>,
}

impl Options {
    /// Shutdown phase one by default.
    pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
    /// Backstop poll of watched files by default.
    pub const DEFAULT_RELOAD_POLL: Duration = Duration::from_secs(10);

    /// Defaults for everything but the config path and addresses.
    pub fn new(config: PathBuf, listen: SocketAddr, cert: CertSource) -> Self {
        Options {
            config,
            settings: None,
            listen,
            admin_listen: None,
            cert,
            client_ca: None,
            allowed_client_names: Vec::new(),
            min_tls: MinVersion::Tls12,
            guards: Guards::default(),
            limits: Limits::default(),
            drain: Self::DEFAULT_DRAIN,
            reload_poll: Self::DEFAULT_RELOAD_POLL,
            decision_log: Default::default(),
            fleet: false,
            addresses_file: None,
        }
    }
}

/// A started webhook.
pub struct Running {
    pub tls_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Begin the two-phase shutdown (what SIGTERM does).
    pub fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Wait until both phases are over.
    pub async fn wait(self) -> std::io::Result<()> {
        self.done
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Why the serving certificate could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Read(#[from] config::FileError),
    #[error(transparent)]
    Build(#[from] tls::TlsError),
}

/// The certificate material from the watched files' bytes (cert, key, then the client CA);
/// an unreadable file is an error naming it.
fn material(contents: &reload::Contents) -> Result<Material, CertError> {
    let get = |i: usize| match contents.get(i) {
        Some(Ok(b)) => Ok(b.clone()),
        Some(Err(e)) => Err(CertError::Read(e.clone())),
        // `start` always watches cert and key, in that order.
        None => unreachable!("certificate file {i} is not watched"),
    };
    Ok(Material {
        cert_pem: get(0)?,
        key_pem: get(1)?,
        client_ca_pem: (contents.len() > 2).then(|| get(2)).transpose()?,
    })
}

/// Connections the kernel queues before we accept them. Past a full queue it drops the
/// client's handshake ACK, leaving a connection the client thinks open and we never see, so it
/// is sized for a burst of a whole connection cap (the default std backlog is 128).
const LISTEN_BACKLOG: u32 = 1024;

/// Bind a listener, saying which one and where when it fails.
async fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| anyhow::anyhow!("{what} {addr}: cannot listen: {e}"))
}

/// Apply a certificate load result: swap on success, keep the last good pair on failure.
fn apply_tls(state: &AppState, side: &TlsSide, result: Result<tls::Built, CertError>) {
    match result {
        Ok(built) => {
            side.config.store(Some(built.config));
            state.metrics.cert_not_after.set(built.not_after);
            state
                .metrics
                .cert_reloads
                .get_or_create(&ResultLabels { result: "success" })
                .inc();
            state.health.cert_result(Ok(()));
            state.metrics.set_reload_result("cert", true);
            tracing::info!(not_after = built.not_after, "serving certificate loaded");
        }
        Err(e) => {
            state
                .metrics
                .cert_reloads
                .get_or_create(&ResultLabels { result: "failure" })
                .inc();
            if side.config.load().is_some() {
                tracing::error!(error = %e, "serving certificate not reloaded; the last good one keeps serving");
            } else {
                tracing::error!(error = %e, "no valid serving certificate yet: unready, and TLS connections are closed, until one appears");
            }
            state.health.cert_result(Err(e.to_string()));
            state.metrics.set_reload_result("cert", false);
        }
    }
}

/// The fleet view's watches, following the plan, on a thread of their own with a one-thread
/// runtime: admission never waits on them, and every allocation of the watches (the kube
/// client's connections, list pages) lives in that thread's heap, which is handed back to the OS
/// after each complete list (mimalloc keeps a thread's freed memory otherwise: a relist of 3,000
/// pods left 20 MiB resident on the admission threads).
fn spawn_fleet(state: &AppState) {
    let Some(fleet) = state.fleet.clone() else {
        return;
    };
    let (plan, changed) = (state.plan.clone(), state.plan_changed.clone());
    let started = std::thread::Builder::new()
        .name("fleet".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(&fleet, format!("no runtime for the fleet view: {e}")),
            };
            rt.block_on(async move {
                let client = match kube::Client::try_default().await {
                    Ok(c) => c,
                    Err(e) => {
                        return fail(
                            &fleet,
                            format!("no Kubernetes client (in-cluster or KUBECONFIG): {e}"),
                        )
                    }
                };
                let mut watches = crate::fleet::watch::Watches::new(client, fleet);
                loop {
                    watches.follow(&plan.load_full());
                    changed.notified().await;
                }
            })
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "fleet view off: no thread for it");
    }
}

/// The fleet view cannot run at all: say so in it (and the log); admission goes on.
fn fail(fleet: &crate::fleet::Fleet, message: String) {
    tracing::error!(error = %message, "fleet view off: admission goes on without it");
    fleet
        .write()
        .pods_watches
        .entry(String::new())
        .or_default()
        .failure = Some(crate::fleet::view::Failure {
        message,
        forbidden: false,
        rule: String::new(),
    });
}

/// Apply a config load result: an atomic swap of the whole plan, or keep the old one.
fn apply_config(state: &AppState, result: Result<config::Config, config::ConfigError>) {
    match result {
        Ok(cfg) => {
            let plan = Plan::from_config(&cfg);
            state
                .metrics
                .set_config(&plan.config_hash, plan.store_name());
            state.plan.store(Arc::new(plan));
            state.plan_changed.notify_one();
            state
                .metrics
                .config_reloads
                .get_or_create(&ResultLabels { result: "success" })
                .inc();
            state.health.config_result(Ok(()));
            state.metrics.set_reload_result("config", true);
            tracing::info!(config_hash = %cfg.hash, store = %cfg.store.name, "config loaded");
        }
        Err(e) => {
            state
                .metrics
                .config_reloads
                .get_or_create(&ResultLabels { result: "failure" })
                .inc();
            tracing::error!(error = %e, "config not reloaded; the last good one stays in force");
            state.health.config_result(Err(e.to_string()));
            state.metrics.set_reload_result("config", false);
        }
    }
}

/// Write the bound addresses as JSON, whole or not at all (a reader polling for the file never
/// sees half of it).
fn write_addresses(
    path: &std::path::Path,
    webhook: SocketAddr,
    admin: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let text = serde_json::json!({
        "webhook": webhook.to_string(),
        "admin": admin.map(|a| a.to_string()),
    })
    .to_string();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| anyhow::anyhow!("--addresses-file {}: {e}", path.display()))
}

/// Start everything. A config that does not load at start is an error (fail fast, visible as a
/// crash loop); a certificate that is not there yet only keeps the webhook unready. Listeners
/// are bound before anything is written (the dev CA), so a start that fails on a busy port
/// leaves a running instance's files alone.
pub async fn start(opts: Options) -> anyhow::Result<Running> {
    let source = config::Source::new(&opts.config, opts.settings.clone());
    let config_paths = source.files();
    let config_bytes = reload::read_all(&config_paths).await;
    let cfg = source.load_from(&config_bytes)?;
    let mut state = AppState::with_guards(Plan::from_config(&cfg), opts.guards);
    state.decision_log = opts.decision_log.clone();
    if opts.fleet {
        let metrics = crate::metrics::Metrics::with_fleet();
        metrics.set_config(&cfg.hash, &cfg.store.name);
        state.metrics = Arc::new(metrics);
        state.fleet = Some(Arc::new(crate::fleet::Fleet::default()));
        spawn_fleet(&state);
    }
    state.health = Arc::new(super::Health::default());
    state.health.config_result(Ok(()));
    state.metrics.set_reload_result("config", true);

    let listener = bind("webhook listener (--listen)", opts.listen).await?;
    let admin_listener = match opts.admin_listen {
        Some(addr) => Some(bind("admin listener (--admin-listen)", addr).await?),
        None => None,
    };

    let side = TlsSide {
        config: Arc::new(ArcSwapOption::empty()),
        allowed_client_names: Arc::new(opts.allowed_client_names.clone()),
    };
    let mut watchers = Vec::new();
    match &opts.cert {
        CertSource::Files { cert, key } => {
            let mut paths = vec![cert.clone(), key.clone()];
            paths.extend(opts.client_ca.clone());
            let min = opts.min_tls;
            let load = move |contents: &reload::Contents| {
                material(contents).and_then(|m| Ok(tls::build(&m, min)?))
            };
            let bytes = reload::read_all(&paths).await;
            apply_tls(&state, &side, load(&bytes));
            let (st, sd) = (state.clone(), side.clone());
            watchers.push(reload::spawn(paths, bytes, opts.reload_poll, move |now| {
                apply_tls(&st, &sd, load(now))
            }));
        }
        CertSource::Ephemeral { ca_out } => {
            let bundle = crate::certs::generate(
                "plx-store-webhook",
                &["localhost".into(), "127.0.0.1".into()],
                30,
            )?;
            let client_ca_pem = match &opts.client_ca {
                Some(p) => {
                    Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
                }
                None => None,
            };
            let m = Material {
                cert_pem: bundle.cert_pem.into_bytes(),
                key_pem: bundle.key_pem.into_bytes(),
                client_ca_pem,
            };
            apply_tls(
                &state,
                &side,
                tls::build(&m, opts.min_tls).map_err(Into::into),
            );
            if let Some(dir) = ca_out.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(ca_out, &bundle.ca_pem)?;
            tracing::warn!(ca = %ca_out.display(), "no --tls-cert given: serving an ephemeral self-signed certificate for localhost/127.0.0.1; trust the CA written here");
        }
    }
    {
        let st = state.clone();
        watchers.push(reload::spawn(
            config_paths,
            config_bytes,
            opts.reload_poll,
            move |now| apply_config(&st, source.load_from(now)),
        ));
    }

    let (close_tx, close_rx) = watch::channel(false);
    let closed = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let tls_addr = listener.local_addr()?;
    let tls_task = tokio::spawn(serve::serve(
        listener,
        Some(side),
        router(state.clone()),
        opts.limits,
        Some(serve::ConnMetrics {
            metrics: state.metrics.clone(),
            listener: "webhook",
        }),
        closed(close_rx.clone()),
    ));
    let (admin_addr, admin_task) = match admin_listener {
        Some(l) => {
            let a = l.local_addr()?;
            // Probes and scrapes need few connections; the cap keeps a flood of them small.
            let limits = Limits {
                grace: Duration::from_secs(1),
                linger: Duration::ZERO,
                max_connections: opts.limits.max_connections.min(ADMIN_MAX_CONNECTIONS),
                ..opts.limits
            };
            (
                Some(a),
                Some(tokio::spawn(serve::serve(
                    l,
                    None,
                    admin_router(state.clone()),
                    limits,
                    Some(serve::ConnMetrics {
                        metrics: state.metrics.clone(),
                        listener: "admin",
                    }),
                    closed(close_rx.clone()),
                ))),
            )
        }
        None => (None, None),
    };
    tracing::info!(listen = %tls_addr, admin = %admin_addr.map_or("off".to_string(), |a| a.to_string()), store = %cfg.store.name, config_hash = %cfg.hash, "serving");
    if let Some(path) = &opts.addresses_file {
        write_addresses(path, tls_addr, admin_addr)?;
    }

    let (stop, mut stop_rx) = watch::channel(false);
    let health = state.health.clone();
    let drain = opts.drain;
    let done = tokio::spawn(async move {
        let _ = stop_rx.wait_for(|v| *v).await;
        health.start_draining();
        tracing::info!(
            drain_seconds = drain.as_secs_f64(),
            "shutdown: not ready, asking clients to close"
        );
        tokio::time::sleep(drain).await;
        let _ = close_tx.send(true);
        let result = tls_task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        for w in watchers {
            w.abort();
        }
        tracing::info!("shutdown complete");
        result
    });
    Ok(Running {
        tls_addr,
        admin_addr,
        state,
        stop,
        done,
    })
}
