//! CLI: parse arguments, call the library, map errors to exit codes.

use anyhow::Context as _;
use clap::Parser;
use plx_store_webhook::cli::{Cli, Command, ServeArgs};
use plx_store_webhook::config::Source;
use plx_store_webhook::offline;
use plx_store_webhook::server::run::{self, CertSource};
use plx_store_webhook::server::{serve, Guards};
use plx_store_webhook::{certs, describe, telemetry, Decision, Plan};
use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

/// glibc's allocator spent about a quarter of each admission request's instructions in a
/// profile (many short-lived small allocations while reading the pod); mimalloc is the server's
/// allocator for that reason. BENCHMARKS.md has the numbers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::CheckConfig {
            config,
            settings,
            route,
        } => {
            let cfg = Source::new(&config, settings).load()?;
            let plan = Plan::from_config(&cfg);
            println!("config OK: {}", config.display());
            if route.given() {
                print!("{}", describe::rule_table(&cfg));
                print!("{}", describe::explain_route(&plan, &route.facts()));
            } else {
                print!("{}", describe::describe(&cfg, &plan));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mutate {
            config,
            settings,
            explain,
            output,
            namespace,
            input,
        } => {
            let cfg = Source::new(&config, settings).load()?;
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
            let rendered = offline::run(&text, &plan, output, namespace.as_deref(), explain)
                .map_err(anyhow::Error::msg)?;
            if let Some(e) = &rendered.explanation {
                eprint!("{e}");
            }
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
        Command::Certs(args) => {
            let mut sans = certs::service_sans(&args.service, &args.namespace);
            sans.extend(args.extra_dns);
            sans.extend(args.extra_ips.iter().map(|ip| ip.to_string()));
            let bundle = certs::generate(&args.service, &sans, args.days)?;
            certs::write_files(&args.out_dir, &bundle, args.force)?;
            let dir = args.out_dir.display();
            println!("wrote {dir}/ca.crt, {dir}/tls.crt, {dir}/tls.key (0600), {dir}/cabundle-patch.yaml");
            let until = bundle
                .not_after
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| bundle.not_after.to_string());
            println!("SANs: {}; valid until {until}", sans.join(", "));
            if args.print {
                use base64::Engine as _;
                println!(
                    "\nkubectl -n {ns} create secret tls {svc}-tls --cert={dir}/tls.crt --key={dir}/tls.key",
                    ns = args.namespace,
                    svc = args.service
                );
                println!(
                    "\ncaBundle: {}",
                    base64::engine::general_purpose::STANDARD.encode(&bundle.ca_pem)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve_cmd(args: ServeArgs) -> anyhow::Result<ExitCode> {
    telemetry::init(args.log_format == "json");
    let admin_listen = args.admin_addr().map_err(anyhow::Error::msg)?;
    let cert = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => CertSource::Files { cert, key },
        _ => CertSource::Ephemeral {
            ca_out: args.dev_ca_out,
        },
    };
    let mut opts = run::Options::new(args.config, args.listen, cert);
    opts.settings = args.settings;
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
        idle: Duration::from_secs(args.idle_timeout_seconds),
        max_connections: args.max_connections,
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
