//! CLI: parse arguments, call the library, map errors to exit codes.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use plx_store_webhook::offline::{self, Output};
use plx_store_webhook::server::{self, serve, tls, AppState};
use plx_store_webhook::{certs, describe, load_file, telemetry, Decision, Plan};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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
    Serve(ServeArgs),
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
    /// Store config: Helm values, a connection, or the agent ConfigMap's JSON.
    #[arg(long, env = "PLX_WEBHOOK_CONFIG")]
    config: PathBuf,
    /// Address of the HTTPS listener.
    #[arg(long, env = "PLX_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Serving certificate (PEM). Without it an ephemeral self-signed one is generated.
    #[arg(long, env = "PLX_WEBHOOK_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, env = "PLX_WEBHOOK_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "PLX_WEBHOOK_BODY_LIMIT", default_value_t = server::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Log line format.
    #[arg(long, env = "PLX_WEBHOOK_LOG_FORMAT", value_parser = ["json", "text"], default_value = "json")]
    log_format: String,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "PLX_WEBHOOK_GRACE_SECONDS", default_value_t = 25)]
    grace_seconds: u64,
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
        Command::Serve(args) => serve_cmd(args),
    }
}

fn serve_cmd(args: ServeArgs) -> anyhow::Result<ExitCode> {
    telemetry::init(args.log_format == "json");
    let cfg = load_file(&args.config)?;
    let plan = Plan::from_config(&cfg);
    let tls_config = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => tls::load(c, k)?,
        _ => {
            let bundle = certs::generate(
                "plx-store-webhook",
                &["localhost".into(), "127.0.0.1".into()],
                30,
            )?;
            let dir = std::env::temp_dir().join("plx-store-webhook-dev");
            std::fs::create_dir_all(&dir)?;
            let ca = dir.join("ca.crt");
            std::fs::write(&ca, &bundle.ca_pem)?;
            tracing::warn!(ca = %ca.display(), "no --tls-cert given: serving an ephemeral self-signed certificate for localhost/127.0.0.1; trust the CA written here");
            tls::server_config(
                bundle.cert_pem.as_bytes(),
                bundle.key_pem.as_bytes(),
                ("ephemeral", "ephemeral"),
            )?
        }
    };
    let mut state = AppState::new(plan);
    state.body_limit = args.body_limit;
    let app = server::router(state);
    let limits = serve::Limits {
        grace: std::time::Duration::from_secs(args.grace_seconds),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        tracing::info!(listen = %listener.local_addr()?, store = %cfg.store.name, config_hash = %cfg.hash, "serving");
        serve::serve_tls(listener, tls_config, app, limits, serve::shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
