//! The command line: the only place clap appears. Defined in the library so tests can check that
//! the shipped manifests and the README only use flags the binary really accepts; every default
//! comes from the library's own constants (`Limits::DEFAULT`, `Guards::DEFAULT`, `Options`).

use crate::offline::Output;
use crate::server::budget::BodyRate;
use crate::server::run::{CertSource, Options};
use crate::server::serve::Limits;
use crate::server::tls::MinVersion;
use crate::server::Guards;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "plx-store-webhook",
    version,
    about = "Gives Polyaxon run pods their artifacts-store credentials"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the admission webhook over HTTPS.
    Serve(Box<ServeArgs>),
    /// Run the engine on a Pod or AdmissionReview file (or stdin) and print the result.
    #[command(
        after_help = "Exit codes: 0 the pod is allowed (patched, unchanged or not served), 1 the input or the config \
                      cannot be read, 2 the webhook would deny the pod (the reason is on stderr)."
    )]
    Mutate {
        /// Store config: Helm values, a connection, the agent ConfigMap's JSON, or a directory
        /// holding the agent ConfigMap's keys.
        #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
        config: PathBuf,
        /// The webhook's settings file (`injection:`), beside an agent ConfigMap.
        #[arg(long, env = "PLX_WEBHOOK_SETTINGS")]
        settings: Option<PathBuf>,
        /// Also say, on stderr, which store rule matched and why each piece was or was not added.
        #[arg(long)]
        explain: bool,
        /// What to print.
        #[arg(long, value_enum, default_value_t = OutputFormat::Patch)]
        output: OutputFormat,
        /// Namespace for a bare pod (default: its metadata.namespace, else "default").
        #[arg(long)]
        namespace: Option<String>,
        /// Pod or AdmissionReview, JSON or YAML; `-` for stdin.
        #[arg(default_value = "-")]
        input: String,
    },
    /// Validate a config and print what it will inject.
    CheckConfig {
        /// The config file, or a directory holding the agent ConfigMap's keys.
        config: PathBuf,
        /// The webhook's settings file (`injection:`), beside an agent ConfigMap.
        #[arg(long)]
        settings: Option<PathBuf>,
        #[command(flatten)]
        route: RouteArgs,
    },
    /// Generate a CA and a serving certificate for the webhook's Service.
    Certs(CertsArgs),
    /// Classify every live run pod against a config, through the Kubernetes API (KUBECONFIG or
    /// in-cluster), and list the objects namespaces lack.
    #[command(
        after_help = "Exit codes: 0 every run is current (or in audit mode / unmatched by design), 1 a run is \
                      missing, stale or missing a reference, 2 the view could not be completed (the API \
                      unreachable, a watch forbidden: the rule to add is printed) or the config cannot be read."
    )]
    Fleet {
        /// Store config, as for `serve`.
        #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
        config: PathBuf,
        /// The webhook's settings file (`injection:`), beside an agent ConfigMap.
        #[arg(long, env = "PLX_WEBHOOK_SETTINGS")]
        settings: Option<PathBuf>,
        /// `table` or `json` (the same document as the admin port's /fleet).
        #[arg(long, value_enum, default_value_t = FleetOutput::Table)]
        output: FleetOutput,
        /// How long to wait for every watch to list.
        #[arg(long, default_value_t = 30)]
        timeout_seconds: u64,
    },
    /// Print the ClusterRole and ClusterRoleBinding the fleet view needs for a config: pods
    /// list/watch, and get/list/watch of only the objects the config names.
    Rbac {
        /// Store config, as for `serve`.
        #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
        config: PathBuf,
        /// The webhook's settings file (`injection:`), beside an agent ConfigMap.
        #[arg(long, env = "PLX_WEBHOOK_SETTINGS")]
        settings: Option<PathBuf>,
        /// The webhook's ServiceAccount.
        #[arg(long, default_value = "plx-store-webhook")]
        service_account: String,
        /// Its namespace.
        #[arg(long, default_value = "plx-store-webhook")]
        namespace: String,
    },
}

/// `--output` of `fleet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetOutput {
    Table,
    Json,
}

/// A run's facts for `check-config`: which store and connections would it get?
#[derive(clap::Args, Debug, Default)]
pub struct RouteArgs {
    /// The run's namespace; giving any of these flags prints the rule that would match.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The run's Polyaxon owner (annotation operation.polyaxon.com/owner).
    #[arg(long)]
    pub owner: Option<String>,
    /// The run's Polyaxon project (annotation operation.polyaxon.com/project).
    #[arg(long)]
    pub project: Option<String>,
    /// The run kind (label app.kubernetes.io/component, e.g. polyaxon-jobs).
    #[arg(long)]
    pub component: Option<String>,
}

impl RouteArgs {
    pub fn given(&self) -> bool {
        self.namespace.is_some()
            || self.owner.is_some()
            || self.project.is_some()
            || self.component.is_some()
    }

    pub fn facts(&self) -> crate::config::RunFacts<'_> {
        crate::config::RunFacts {
            namespace: self.namespace.as_deref().unwrap_or("default"),
            owner: self.owner.as_deref(),
            project: self.project.as_deref(),
            component: self.component.as_deref(),
        }
    }
}

#[derive(clap::Args)]
pub struct CertsArgs {
    /// Service name the apiserver calls.
    #[arg(long, default_value = "plx-store-webhook")]
    pub service: String,
    /// Namespace of the Service.
    #[arg(long, default_value = "plx-store-webhook")]
    pub namespace: String,
    /// Extra DNS names for the certificate (repeatable).
    #[arg(long = "dns")]
    pub extra_dns: Vec<String>,
    /// Extra IP addresses for the certificate (repeatable).
    #[arg(long = "ip")]
    pub extra_ips: Vec<std::net::IpAddr>,
    /// Validity in days (CA and certificate).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Folder to write ca.crt, tls.crt, tls.key (mode 0600), cabundle-patch.yaml and cabundle-patch-enforce.yaml into.
    #[arg(long, default_value = "certs/out")]
    pub out_dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// Also print the `kubectl create secret tls` command and the base64 caBundle.
    #[arg(long)]
    pub print: bool,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// `--tls-min-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsVersion {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
}

impl From<TlsVersion> for MinVersion {
    fn from(v: TlsVersion) -> Self {
        match v {
            TlsVersion::V12 => MinVersion::Tls12,
            TlsVersion::V13 => MinVersion::Tls13,
        }
    }
}

/// `--output` of `mutate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The RFC 6902 patch (`[]` when nothing is to be done).
    Patch,
    /// The patched pod, in the input's format.
    Pod,
    /// The AdmissionReview response.
    Review,
}

impl From<OutputFormat> for Output {
    fn from(o: OutputFormat) -> Self {
        match o {
            OutputFormat::Patch => Output::Patch,
            OutputFormat::Pod => Output::Pod,
            OutputFormat::Review => Output::Review,
        }
    }
}

/// `--admin-listen`: `off`, or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    Off,
    At(SocketAddr),
}

fn parse_admin_listen(s: &str) -> Result<AdminListen, String> {
    match s {
        "off" | "" => Ok(AdminListen::Off),
        a => a
            .parse()
            .map(AdminListen::At)
            .map_err(|e| format!("{a:?}: {e}; expected `off` or an address like 0.0.0.0:8080")),
    }
}

const LIMITS: Limits = Limits::DEFAULT;
const GUARDS: Guards = Guards::DEFAULT;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Store config: Helm values, a connection, the agent ConfigMap's JSON, or a directory holding
    /// the agent ConfigMap's keys. Reloaded on change.
    #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
    pub config: PathBuf,
    /// The webhook's settings file (`injection:`, rules), beside an agent ConfigMap. Reloaded on change.
    #[arg(long, env = "PLX_WEBHOOK_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// Address of the HTTPS (admission) listener.
    #[arg(long, env = "PLX_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin listener (/healthz, /readyz, /metrics); "off" disables it.
    /// Default: 0.0.0.0:8080, or port 8080 on the --listen host when no --tls-cert is given (dev).
    #[arg(long, env = "PLX_WEBHOOK_ADMIN_LISTEN", value_parser = parse_admin_listen)]
    pub admin_listen: Option<AdminListen>,
    /// Serving certificate (PEM), reloaded on change. Without it an ephemeral self-signed one is made.
    #[arg(long, env = "PLX_WEBHOOK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM), reloaded on change.
    #[arg(long, env = "PLX_WEBHOOK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Lowest TLS version accepted.
    #[arg(
        long,
        env = "PLX_WEBHOOK_TLS_MIN_VERSION",
        value_enum,
        default_value = "1.2"
    )]
    pub tls_min_version: TlsVersion,
    /// CA bundle (PEM) for client certificates: when set, clients must present one it signed (mTLS).
    #[arg(long, env = "PLX_WEBHOOK_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// With --client-ca: comma-separated client names (CN or DNS/URI SAN) allowed; empty = any.
    #[arg(
        long,
        env = "PLX_WEBHOOK_CLIENT_ALLOWED_NAMES",
        value_delimiter = ',',
        requires = "client_ca"
    )]
    pub client_allowed_names: Vec<String>,
    /// Where the ephemeral certificate's CA is written when no --tls-cert is given.
    #[arg(
        long,
        env = "PLX_WEBHOOK_DEV_CA_OUT",
        default_value = "/tmp/plx-store-webhook-dev/ca.crt"
    )]
    pub dev_ca_out: PathBuf,
    /// Once listening, write the bound addresses here as JSON (`{"webhook": "127.0.0.1:8443",
    /// "admin": "127.0.0.1:8080"}`, admin `null` when off): with port 0 in --listen and
    /// --admin-listen, a test harness learns the ports the kernel chose instead of racing for them.
    #[arg(long, env = "PLX_WEBHOOK_ADDRESSES_FILE")]
    pub addresses_file: Option<PathBuf>,
    /// Largest accepted request body, in bytes (413 past it).
    #[arg(long, env = "PLX_WEBHOOK_BODY_LIMIT", default_value_t = GUARDS.body_limit)]
    pub body_limit: usize,
    /// Seconds a client may take to send request headers (also: the TLS handshake, and the
    /// first request after it).
    #[arg(long, env = "PLX_WEBHOOK_HEADER_TIMEOUT_SECONDS", default_value_t = LIMITS.header_read.as_secs())]
    pub header_timeout_seconds: u64,
    /// Seconds a connection may stay open with no request in flight (keep it above the
    /// apiserver's 90 s idle timeout, so the client closes pooled connections first).
    #[arg(long, env = "PLX_WEBHOOK_IDLE_TIMEOUT_SECONDS", default_value_t = LIMITS.idle.as_secs())]
    pub idle_timeout_seconds: u64,
    /// Open connections per listener at most. At the cap a new connection takes the place of the
    /// one quiet longest with no request in flight; only when every one has a request in flight
    /// is it closed at once (logged, counted in plx_webhook_connections_refused_total).
    #[arg(long, env = "PLX_WEBHOOK_MAX_CONNECTIONS", default_value_t = LIMITS.max_connections)]
    pub max_connections: usize,
    /// Seconds a whole request may take, body included (408 past it).
    #[arg(long, env = "PLX_WEBHOOK_REQUEST_TIMEOUT_SECONDS", default_value_t = GUARDS.request_timeout.as_secs())]
    pub request_timeout_seconds: u64,
    /// Requests served at once; past it, 503.
    #[arg(long, env = "PLX_WEBHOOK_MAX_CONCURRENT_REQUESTS", default_value_t = GUARDS.max_concurrent)]
    pub max_concurrent_requests: usize,
    /// Bytes that request bodies, their work and unsent responses may hold at once; past it,
    /// 503 with Retry-After (README "Memory").
    #[arg(long, env = "PLX_WEBHOOK_MEMORY_BUDGET", default_value_t = GUARDS.memory_budget)]
    pub memory_budget: usize,
    /// Slowest accepted request body, bytes per second after its first second (408 below it).
    #[arg(long, env = "PLX_WEBHOOK_MIN_BODY_RATE", default_value_t = GUARDS.body_rate.bytes_per_second)]
    pub min_body_rate: u64,
    /// HTTP/2 streams one connection may have open at once.
    #[arg(long, env = "PLX_WEBHOOK_MAX_STREAMS_PER_CONNECTION", default_value_t = LIMITS.max_streams)]
    pub max_streams_per_connection: u32,
    /// Keep the fleet view: watch run pods and the objects the config references through the
    /// Kubernetes API (in-cluster or KUBECONFIG; RBAC from `plx-store-webhook rbac`), classify
    /// them on /fleet and /metrics, and warn at admission about missing objects.
    #[arg(long, env = "PLX_WEBHOOK_FLEET")]
    pub fleet: bool,
    /// Seconds a response may take to be sent after the request timeout; past it the
    /// connection is closed (a peer that stops reading).
    #[arg(long, env = "PLX_WEBHOOK_SEND_TIMEOUT_SECONDS", default_value_t = LIMITS.send.as_secs())]
    pub send_timeout_seconds: u64,
    /// Seconds between backstop polls of the watched config and certificate files.
    #[arg(long, env = "PLX_WEBHOOK_RELOAD_POLL_SECONDS", default_value_t = Options::DEFAULT_RELOAD_POLL.as_secs())]
    pub reload_poll_seconds: u64,
    /// Shutdown phase one, seconds: not ready and `Connection: close`, still serving.
    #[arg(long, env = "PLX_WEBHOOK_DRAIN_SECONDS", default_value_t = Options::DEFAULT_DRAIN.as_secs())]
    pub drain_seconds: u64,
    /// Shutdown phase two, seconds: listener closed, in-flight requests finish.
    #[arg(long, env = "PLX_WEBHOOK_GRACE_SECONDS", default_value_t = LIMITS.grace.as_secs())]
    pub grace_seconds: u64,
    /// Log line format (filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(
        long,
        env = "PLX_WEBHOOK_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
}

impl ServeArgs {
    /// The admin listener's address, `None` when `off`. Without --admin-listen: port 8080 on the
    /// --listen host in dev mode (no --tls-cert), so a loopback trial opens nothing on other
    /// interfaces; 0.0.0.0:8080 otherwise (the kubelet probes the pod IP).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        match self.admin_listen {
            Some(AdminListen::Off) => None,
            Some(AdminListen::At(a)) => Some(a),
            None if self.tls_cert.is_none() => Some(SocketAddr::new(self.listen.ip(), 8080)),
            None => Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
        }
    }

    /// The server's options from the flags (the library's types, the flags' values).
    pub fn options(&self) -> Options {
        let cert = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => CertSource::Ephemeral {
                ca_out: self.dev_ca_out.clone(),
            },
        };
        let mut opts = Options::new(self.config.clone(), self.listen, cert);
        opts.settings.clone_from(&self.settings);
        opts.admin_listen = self.admin_addr();
        opts.addresses_file.clone_from(&self.addresses_file);
        opts.client_ca.clone_from(&self.client_ca);
        opts.allowed_client_names = self
            .client_allowed_names
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        opts.min_tls = self.tls_min_version.into();
        opts.fleet = self.fleet;
        opts.guards = Guards {
            body_limit: self.body_limit,
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            max_concurrent: self.max_concurrent_requests,
            memory_budget: self.memory_budget,
            body_rate: BodyRate {
                bytes_per_second: self.min_body_rate,
                ..BodyRate::DEFAULT
            },
        };
        opts.limits = Limits {
            handshake: Duration::from_secs(self.header_timeout_seconds),
            header_read: Duration::from_secs(self.header_timeout_seconds),
            idle: Duration::from_secs(self.idle_timeout_seconds),
            max_connections: self.max_connections,
            grace: Duration::from_secs(self.grace_seconds),
            request: Duration::from_secs(self.request_timeout_seconds),
            send: Duration::from_secs(self.send_timeout_seconds),
            max_streams: self.max_streams_per_connection,
            ..Limits::DEFAULT
        };
        opts.drain = Duration::from_secs(self.drain_seconds);
        opts.reload_poll = Duration::from_secs(self.reload_poll_seconds.max(1));
        opts
    }
}

impl Cli {
    /// The clap command, for tests that inspect flags and env vars.
    pub fn command_for_tests() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}
