//! CLI: parse arguments, call the library, map errors to exit codes.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use plx_store_webhook::offline::{self, Output};
use plx_store_webhook::server::run::{self, CertSource};
use plx_store_webhook::server::tls::MinVersion;
use plx_store_webhook::server::{self, serve, Guards};
use plx_store_webhook::{describe, load_file, telemetry, Decision, Plan};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "plx-store-webhook",
    version,
    about = "Gives Polyaxon run pods their artifacts-store credentials"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the admission webhook over HTTPS.
    Serve(Box<ServeArgs>),
    /// Run the engine on a Pod or AdmissionReview file (or stdin) and print the result.
    Mutate {
        /// Store config: Helm values, a connection, or the agent ConfigMap's JSON.
        #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
        config: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value_t = Output::Patch)]
        output: Output,
        /// Namespace for a bare pod (default: its metadata.namespace, else "default").
        #[arg(long)]
        namespace: Option<String>,
        /// Pod or AdmissionReview, JSON or YAML; `-` for stdin.
        #[arg(default_value = "-")]
        input: String,
    },
    /// Validate a config and print what it will inject.
    CheckConfig {
        /// The config file.
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Store config: Helm values, a connection, or the agent ConfigMap's JSON. Reloaded on change.
    #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
    config: PathBuf,
    /// Address of the HTTPS (admission) listener.
    #[arg(long, env = "PLX_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Address of the plain-HTTP admin listener (/healthz, /readyz, /metrics); "off" disables it.
    #[arg(long, env = "PLX_WEBHOOK_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    admin_listen: String,
    /// Serving certificate (PEM), reloaded on change. Without it an ephemeral self-signed one is made.
    #[arg(long, env = "PLX_WEBHOOK_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serving key (PEM), reloaded on change.
    #[arg(long, env = "PLX_WEBHOOK_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Lowest TLS version accepted.
    #[arg(
        long,
        env = "PLX_WEBHOOK_TLS_MIN_VERSION",
        value_enum,
        default_value = "1.2"
    )]
    tls_min_version: MinVersion,
    /// CA bundle (PEM) for client certificates: when set, clients must present one it signed (mTLS).
    #[arg(long, env = "PLX_WEBHOOK_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// With --client-ca: comma-separated client names (CN or DNS/URI SAN) allowed; empty = any.
    #[arg(
        long,
        env = "PLX_WEBHOOK_CLIENT_ALLOWED_NAMES",
        value_delimiter = ',',
        requires = "client_ca"
    )]
    client_allowed_names: Vec<String>,
    /// Where the ephemeral certificate's CA is written when no --tls-cert is given.
    #[arg(
        long,
        env = "PLX_WEBHOOK_DEV_CA_OUT",
        default_value = "/tmp/plx-store-webhook-dev/ca.crt"
    )]
    dev_ca_out: PathBuf,
    /// Largest accepted request body, in bytes (413 past it).
    #[arg(long, env = "PLX_WEBHOOK_BODY_LIMIT", default_value_t = server::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Seconds a client may take to send request headers.
    #[arg(long, env = "PLX_WEBHOOK_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    header_timeout_seconds: u64,
    /// Seconds a whole request may take, body included (408 past it).
    #[arg(
        long,
        env = "PLX_WEBHOOK_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    request_timeout_seconds: u64,
    /// Requests served at once; past it, 503.
    #[arg(
        long,
        env = "PLX_WEBHOOK_MAX_CONCURRENT_REQUESTS",
        default_value_t = 512
    )]
    max_concurrent_requests: usize,
    /// Seconds between backstop polls of the watched config and certificate files.
    #[arg(long, env = "PLX_WEBHOOK_RELOAD_POLL_SECONDS", default_value_t = 10)]
    reload_poll_seconds: u64,
    /// Shutdown phase one, seconds: not ready and `Connection: close`, still serving.
    #[arg(long, env = "PLX_WEBHOOK_DRAIN_SECONDS", default_value_t = 5)]
    drain_seconds: u64,
    /// Shutdown phase two, seconds: listener closed, in-flight requests finish.
    #[arg(long, env = "PLX_WEBHOOK_GRACE_SECONDS", default_value_t = 20)]
    grace_seconds: u64,
    /// Log line format (filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, env = "PLX_WEBHOOK_LOG_FORMAT", value_parser = ["json", "text"], default_value = "json")]
    log_format: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { config } => {
            let cfg = load_file(&config)?;
            let plan = Plan::from_config(&cfg);
            println!("config OK: {}", config.display());
            print!("{}", describe::describe(&cfg, &plan));
            Ok(ExitCode::SUCCESS)
        }
        Command::Mutate {
            config,
            output,
            namespace,
            input,
        } => {
            let cfg = load_file(&config)?;
            let plan = Plan::from_config(&cfg);
            let text = if input == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading stdin")?;
                s
            } else {
                std::fs::read_to_string(&input).with_context(|| format!("reading {input}"))?
            };
            let rendered = offline::run(&text, &plan, output, namespace.as_deref())
                .map_err(anyhow::Error::msg)?;
            for w in &rendered.outcome.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", rendered.text);
            if let Decision::Denied(m) = &rendered.outcome.decision {
                eprintln!("denied: {m}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve_cmd(*args),
    }
}

fn serve_cmd(args: ServeArgs) -> anyhow::Result<ExitCode> {
    telemetry::init(args.log_format == "json");
    let admin_listen = match args.admin_listen.as_str() {
        "off" | "" => None,
        a => Some(a.parse().with_context(|| format!("--admin-listen {a:?}"))?),
    };
    let cert = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => CertSource::Files { cert, key },
        _ => CertSource::Ephemeral {
            ca_out: args.dev_ca_out,
        },
    };
    let mut opts = run::Options::new(args.config, args.listen, cert);
    opts.admin_listen = admin_listen;
    opts.client_ca = args.client_ca;
    opts.allowed_client_names = args
        .client_allowed_names
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect();
    opts.min_tls = args.tls_min_version;
    opts.guards = Guards {
        body_limit: args.body_limit,
        request_timeout: Duration::from_secs(args.request_timeout_seconds),
        max_concurrent: args.max_concurrent_requests,
    };
    opts.limits = serve::Limits {
        handshake: Duration::from_secs(args.header_timeout_seconds),
        header_read: Duration::from_secs(args.header_timeout_seconds),
        grace: Duration::from_secs(args.grace_seconds),
        ..Default::default()
    };
    opts.drain = Duration::from_secs(args.drain_seconds);
    opts.reload_poll = Duration::from_secs(args.reload_poll_seconds.max(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = run::start(opts).await?;
        serve::shutdown_signal().await;
        running.begin_shutdown();
        running.wait().await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
