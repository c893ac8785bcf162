//! The command line: the only place clap appears. Defined in the library so tests can check that
//! the shipped manifests and the README only use flags the binary really accepts; every default
//! comes from the library's own constants (`Limits::DEFAULT`, `Guards::DEFAULT`, `Options`).

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
    // The release and the commit it was built from (build.rs).
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PLX_GIT_COMMIT"), ")"),
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
    /// Answer as the mutating webhook (/mutate) would, for every pod and pod template in the
    /// inputs: Pods, AdmissionReviews, workloads (Job, CronJob, Deployment, StatefulSet,
    /// DaemonSet, ReplicaSet, PyTorchJob, TFJob, MPIJob, XGBoostJob, PaddleJob), Lists,
    /// multi-document YAML, directories.
    #[command(after_help = EXIT_CODES)]
    Mutate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also say, on stderr, which store rule matched and why each piece was or was not added.
        #[arg(long)]
        explain: bool,
        /// What to print: the JSON patch (one object) or patches (several); the mutated objects
        /// (`json`, `yaml`, or `pod`: as written); the AdmissionReview response; the per-object
        /// results (`results`, JSON).
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Patch)]
        output: OutputFormat,
        /// Namespace of objects that name none (default: their metadata.namespace, else "default").
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Files or directories (YAML or JSON); `-` for stdin.
        #[arg(default_value = "-")]
        inputs: Vec<String>,
    },
    /// Answer as the validating webhook (/validate, enforce) would, for every pod and pod
    /// template in the inputs (the same inputs as `mutate`).
    #[command(after_help = EXIT_CODES)]
    Validate {
        #[command(flatten)]
        config: ConfigArgs,
        /// `table`, or the per-object results as `json` or `yaml`.
        #[arg(short = 'o', long, value_enum, default_value_t = ResultFormat::Table)]
        output: ResultFormat,
        /// Namespace of objects that name none (default: their metadata.namespace, else "default").
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Files or directories (YAML or JSON); `-` for stdin.
        #[arg(default_value = "-")]
        inputs: Vec<String>,
    },
    /// Run declarative tests: every test file (plx-store-test.yaml, *.plx-store-test.yaml)
    /// below the given directories names resources and the answer expected for each.
    #[command(after_help = EXIT_CODES)]
    Test {
        /// Store config for every test file, over their own `config:`.
        #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
        config: Option<PathBuf>,
        /// The webhook's settings file (`injection:`), with --config.
        #[arg(long, env = "PLX_WEBHOOK_SETTINGS", requires = "config")]
        settings: Option<PathBuf>,
        /// `table`, `json`, or `junit` (JUnit XML for CI systems).
        #[arg(short = 'o', long, value_enum, default_value_t = TestFormat::Table)]
        output: TestFormat,
        /// Test files, or directories to search.
        #[arg(default_value = ".")]
        paths: Vec<String>,
    },
    /// Validate a config, lint it, and print what it will inject.
    #[command(after_help = EXIT_CODES)]
    CheckConfig {
        /// Store config: Helm values, a connection, the agent ConfigMap's JSON or manifest, or a
        /// directory holding the agent ConfigMap's keys; `-` for stdin.
        #[arg(long, env = "PLX_WEBHOOK_CONFIG", required_unless_present = "file")]
        config: Option<PathBuf>,
        /// The config as a positional argument (as older releases took it).
        #[arg(hide = true, conflicts_with = "config")]
        file: Option<PathBuf>,
        /// The webhook's settings file (`injection:`) or its ConfigMap manifest, beside an agent
        /// ConfigMap.
        #[arg(long, env = "PLX_WEBHOOK_SETTINGS")]
        settings: Option<PathBuf>,
        /// Notes count as problems: exit 2 when there is any.
        #[arg(long)]
        strict: bool,
        /// `text`, or the result as `json` or `yaml`.
        #[arg(short = 'o', long, value_enum, default_value_t = CheckFormat::Text)]
        output: CheckFormat,
        #[command(flatten)]
        route: RouteArgs,
    },
    /// Generate a CA and a serving certificate for the webhook's Service.
    Certs(CertsArgs),
    /// Classify every live run pod against a config, through the Kubernetes API (kubeconfig or
    /// in-cluster), and list the objects namespaces lack.
    #[command(after_help = EXIT_CODES)]
    Fleet {
        #[command(flatten)]
        config: ConfigArgs,
        /// `table`, or the report as `json` or `yaml` (the same document as the admin port's /fleet).
        #[arg(short = 'o', long, value_enum, default_value_t = FleetOutput::Table)]
        output: FleetOutput,
        /// How long to wait for every watch to list.
        #[arg(long, default_value_t = 30)]
        timeout_seconds: u64,
        /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// The kubeconfig context to use (default: its current context).
        #[arg(long)]
        context: Option<String>,
        /// Report only run pods in this namespace.
        #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
        namespace: Option<String>,
        /// Report run pods in every namespace (the default).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Print the RBAC the fleet view needs for a config: list/watch of run pods (specs
    /// included) and of only the objects the config names (their data included), in a
    /// ClusterRole, or in Roles of the namespaces routes name literally.
    #[command(after_help = EXIT_CODES)]
    Rbac {
        #[command(flatten)]
        config: ConfigArgs,
        /// The webhook's ServiceAccount.
        #[arg(long, default_value = "plx-store-webhook")]
        service_account: String,
        /// Its namespace.
        #[arg(short = 'n', long, default_value = "plx-store-webhook")]
        namespace: String,
        /// `yaml` (documents for kubectl apply) or `json` (a List).
        #[arg(short = 'o', long, value_enum, default_value_t = RbacFormat::Yaml)]
        output: RbacFormat,
    },
}

/// The exit codes, the same for every command.
pub const EXIT_CODES: &str = "Exit codes: 0 fine; 1 an error (input, config, I/O, cluster); 2 the \
policy said no (a denial, a failed test, lint errors or with --strict notes, fleet problems or an \
incomplete view); 64 a usage error.";

/// The config every command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Store config: Helm values, a connection, the agent ConfigMap's JSON or manifest, or a
    /// directory holding the agent ConfigMap's keys; `-` for stdin.
    #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
    pub config: PathBuf,
    /// The webhook's settings file (`injection:`) or its ConfigMap manifest, beside an agent
    /// ConfigMap.
    #[arg(long, env = "PLX_WEBHOOK_SETTINGS")]
    pub settings: Option<PathBuf>,
}

impl ConfigArgs {
    /// The name errors and reports use (`<stdin>` for `-`).
    pub fn name(&self) -> String {
        if self.config.as_os_str() == "-" {
            STDIN.to_string()
        } else {
            self.config.display().to_string()
        }
    }

    /// Read and validate the config (`-`: from stdin).
    pub fn load(&self) -> Result<crate::Config, crate::ConfigError> {
        if self.config.as_os_str() != "-" {
            return crate::config::Source::new(&self.config, self.settings.clone()).load();
        }
        let source = crate::config::Source::new(STDIN, self.settings.clone());
        let mut bytes = Vec::new();
        let stdin = std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map(|_| bytes)
            .map_err(|e| crate::config::FileError {
                missing: false,
                message: format!("cannot read stdin: {e}"),
            });
        let mut contents = vec![stdin];
        contents.extend(crate::config::read_files(&source.files()[1..]));
        source.load_from(&contents)
    }
}

/// The config's name when read from stdin.
const STDIN: &str = "<stdin>";

/// `--output` of `fleet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetOutput {
    Table,
    Json,
    Yaml,
}

/// `--output` of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultFormat {
    Table,
    Json,
    Yaml,
}

/// `--output` of `check-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Yaml,
}

/// `--output` of `rbac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RbacFormat {
    Yaml,
    Json,
}

/// `--output` of `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    Table,
    Json,
    Junit,
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
    /// Validity of the serving certificate in days (a new CA: at least 3650).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Folder of ca.crt, ca.key and tls.key (mode 0600), tls.crt, cabundle-patch.yaml and
    /// cabundle-patch-enforce.yaml (the caBundle, every CA to trust).
    #[arg(long, default_value = "certs/out")]
    pub out_dir: PathBuf,
    /// Replace existing files with a new CA and pair (the caBundle changes: not gapless; see
    /// --renew and --rotate-ca).
    #[arg(long, conflicts_with_all = ["renew", "rotate_ca", "drop_previous_ca"])]
    pub force: bool,
    /// A new serving pair from the kept CA (ca.key): the caBundle does not change.
    #[arg(long, conflicts_with_all = ["rotate_ca", "drop_previous_ca"])]
    pub renew: bool,
    /// Start a CA rotation: a new CA; the caBundle patches hold the previous and the new CA.
    /// Apply them, then --renew, then --drop-previous-ca once every replica serves the new pair.
    #[arg(long, conflicts_with = "drop_previous_ca")]
    pub rotate_ca: bool,
    /// End a CA rotation: the caBundle patches hold only the new CA.
    #[arg(long)]
    pub drop_previous_ca: bool,
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
    /// The RFC 6902 patch (`[]` when nothing is to be done); several objects: one per object.
    Patch,
    /// The mutated objects in the input's format.
    Pod,
    /// The mutated objects as JSON (several: a List).
    Json,
    /// The mutated objects as YAML documents.
    Yaml,
    /// The AdmissionReview response.
    Review,
    /// The per-object results as JSON.
    Results,
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
    /// Seconds a connection may stay open with nothing in flight (keep it above the
    /// apiserver's 90 s idle timeout, so the client closes pooled connections first).
    #[arg(long, env = "PLX_WEBHOOK_IDLE_TIMEOUT_SECONDS", default_value_t = LIMITS.idle.as_secs())]
    pub idle_timeout_seconds: u64,
    /// Open connections per listener at most. At the cap a new connection takes the place of one
    /// waiting on its client (handshake, headers, body, an unread response, idle), those that
    /// never sent a request first, then the quietest; only when the server is working on a
    /// request of every one is it closed at once (logged, counted in
    /// plx_webhook_connections_refused_total).
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
    /// Seconds a response waiting for the peer may go with no piece of it taken; past it the
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
