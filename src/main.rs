//! CLI: parse arguments, call the library, map errors to exit codes.

use anyhow::Context as _;
use clap::Parser;
use plx_store_webhook::cli::{Cli, Command, FleetOutput, LogFormat, ServeArgs};
use plx_store_webhook::config::Source;
use plx_store_webhook::offline;
use plx_store_webhook::server::run;
use plx_store_webhook::server::serve;
use plx_store_webhook::{certs, describe, telemetry, Decision, Plan};
use std::io::Read as _;
use std::process::ExitCode;

/// glibc's allocator spent about a quarter of each admission request's instructions in a
/// profile (many short-lived small allocations while reading the pod); mimalloc is the server's
/// allocator for that reason. BENCHMARKS.md has the numbers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// kube-rs builds its TLS from the process-wide provider: make it ring (no aws-lc-rs).
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
            let rendered =
                offline::run(&text, &plan, output.into(), namespace.as_deref(), explain)?;
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
        Command::Rbac {
            config,
            settings,
            service_account,
            namespace,
        } => {
            let plan = Plan::from_config(&Source::new(&config, settings).load()?);
            print!(
                "{}",
                plx_store_webhook::fleet::rbac::render(&plan, &service_account, &namespace)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Fleet {
            config,
            settings,
            output,
            timeout_seconds,
        } => {
            let plan = match Source::new(&config, settings).load() {
                Ok(cfg) => Plan::from_config(&cfg),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            install_crypto();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = match rt.block_on(plx_store_webhook::fleet::snapshot(
                &std::sync::Arc::new(plan),
                std::time::Duration::from_secs(timeout_seconds),
            )) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            match output {
                FleetOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                FleetOutput::Table => {
                    print!("{}", plx_store_webhook::fleet::report::table(&report))
                }
            }
            Ok(ExitCode::from(if !report.synced {
                2
            } else if report.has_problems() {
                1
            } else {
                0
            }))
        }
        Command::Certs(args) => {
            let mut sans = certs::service_sans(&args.service, &args.namespace);
            sans.extend(args.extra_dns);
            sans.extend(args.extra_ips.iter().map(|ip| ip.to_string()));
            let step = if args.renew {
                certs::Step::Renew
            } else if args.rotate_ca {
                certs::Step::RotateCa
            } else if args.drop_previous_ca {
                certs::Step::DropPreviousCa
            } else {
                certs::Step::Create { force: args.force }
            };
            let bundle = certs::run_step(&args.out_dir, step, &args.service, &sans, args.days)?;
            let dir = args.out_dir.display();
            println!("{}", certs::step_summary(step, &dir.to_string()));
            if matches!(step, certs::Step::RotateCa | certs::Step::DropPreviousCa) {
                return Ok(ExitCode::SUCCESS);
            }
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
    let json = args.log_format == LogFormat::Json;
    let logs = telemetry::init(json);
    let mut opts = args.options();
    install_crypto();
    if json {
        opts.decision_log = plx_store_webhook::decision_log::DecisionLog::json(logs.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The backstop poll reads the watched files on the blocking pool every 10 s; with the
        // default 10 s keep-alive each poll started (and a new mimalloc heap warmed) a fresh
        // thread: most of an idle replica's CPU (BENCHMARKS.md §11). Idle threads cost nothing.
        .thread_keep_alive(std::time::Duration::from_secs(300))
        .build()?;
    let served = rt.block_on(async move {
        let running = run::start(opts).await?;
        serve::shutdown_signal().await;
        running.begin_shutdown();
        running.wait().await?;
        anyhow::Ok(())
    });
    // The last lines (shutdown, or why start failed) before the process ends.
    logs.stop();
    served?;
    Ok(ExitCode::SUCCESS)
}
