//! CLI: parse arguments, call the library, map outcomes to the one exit-code table (0 fine,
//! 1 error, 2 the policy said no, 64 usage).

use clap::Parser;
use plx_store_webhook::cli::{
    CheckFormat, Cli, Command, ConfigArgs, FleetOutput, LogFormat, OutputFormat, RbacFormat,
    ResultFormat, ServeArgs, TestFormat,
};
use plx_store_webhook::config::lint::{self, Severity};
use plx_store_webhook::offline::{self, objects, render, testfile, Mode};
use plx_store_webhook::server::run;
use plx_store_webhook::server::serve;
use plx_store_webhook::{certs, describe, errors, telemetry, Plan};
use std::io::Write as _;
use std::process::ExitCode;

/// glibc's allocator spent about a quarter of each admission request's instructions in a
/// profile (many short-lived small allocations while reading the pod); mimalloc is the server's
/// allocator for that reason. BENCHMARKS.md has the numbers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Usage errors: BSD's EX_USAGE, so they never read as "the policy said no" (2).
const USAGE: u8 = 64;

/// kube-rs builds its TLS from the process-wide provider: make it ring (no aws-lc-rs).
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = match &cli.command {
        Command::Serve(args) => args.log_format == LogFormat::Json,
        _ => std::env::var("PLX_WEBHOOK_LOG_FORMAT").is_ok_and(|v| v == "json"),
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if errors::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errors::report(&e, json);
            ExitCode::from(1)
        }
    }
}

/// Write to stdout; a closed pipe comes back as an error the caller ends quietly on.
fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// A line on stderr (its failure is not worth failing over).
fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::CheckConfig {
            config,
            file,
            settings,
            strict,
            output,
            route,
        } => {
            let path = config.or(file).unwrap_or_default();
            let args = ConfigArgs {
                config: path,
                settings,
            };
            let cfg = args.load()?;
            let plan = Plan::from_config(&cfg);
            let findings = lint::lint(&cfg);
            let errors = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            let notes = findings.len() - errors;
            let name = args.name();
            match output {
                CheckFormat::Text => {
                    let mut text = if findings.is_empty() {
                        format!("config OK: {name}\n")
                    } else {
                        format!("config {name}: {errors} error(s), {notes} note(s)\n")
                    };
                    for f in &findings {
                        let sev = match f.severity {
                            Severity::Error => "error",
                            Severity::Note => "note",
                        };
                        text.push_str(&format!("{sev}: [{}] {}: {}\n", f.code, f.path, f.message));
                    }
                    if route.given() {
                        text.push_str(&describe::rule_table(&cfg));
                        text.push_str(&describe::explain_route(&plan, &route.facts()));
                    } else {
                        text.push_str(&describe::describe(&cfg, &plan));
                    }
                    out(&text)?;
                }
                CheckFormat::Json | CheckFormat::Yaml => {
                    let doc = serde_json::json!({
                        "config": name,
                        "hash": cfg.hash,
                        "errors": errors,
                        "notes": notes,
                        "findings": findings,
                        "resolved": cfg,
                        "route": route.given().then(|| {
                            let facts = route.facts();
                            match plan.route(&facts) {
                                plx_store_webhook::plan::Route::Rule(r) => serde_json::json!({"store": r.plan.store_name, "rule": r.name}),
                                plx_store_webhook::plan::Route::Default(p) => serde_json::json!({"store": p.store_name, "rule": ""}),
                                plx_store_webhook::plan::Route::Unmatched(_) => serde_json::json!({"store": "", "rule": ""}),
                            }
                        }),
                    });
                    out(&if output == CheckFormat::Json {
                        render::json(&doc)?
                    } else {
                        render::yaml(&doc)?
                    })?;
                }
            }
            Ok(if errors > 0 || (strict && notes > 0) {
                2
            } else {
                0
            })
        }
        Command::Mutate {
            config,
            explain,
            output,
            namespace,
            inputs,
        } => {
            let plan = Plan::from_config(&config.load()?);
            let docs = read_docs(&inputs)?;
            let ev = offline::evaluate(docs, &plan, Mode::Mutate, namespace.as_deref(), explain);
            let many = ev.results.len() > 1;
            for r in &ev.results {
                let who = if many || !r.name.is_empty() {
                    format!("{}: ", r.label())
                } else {
                    String::new()
                };
                if let Some(e) = &r.explanation {
                    if many {
                        note(&format!("# {}", r.label()));
                    }
                    let _ = write!(std::io::stderr().lock(), "{e}");
                }
                say(r, &who);
            }
            let patches = |f: &dyn Fn(
                &offline::ObjectResult,
            ) -> anyhow::Result<serde_json::Value>|
             -> anyhow::Result<String> {
                let served: Vec<&offline::ObjectResult> = ev
                    .results
                    .iter()
                    .filter(|r| r.decision != "skipped")
                    .collect();
                match served.as_slice() {
                    [one] => render::json(&f(one)?),
                    many => render::json(
                        &many
                            .iter()
                            .map(|r| {
                                Ok(serde_json::json!({"object": r.label(), "namespace": r.namespace, "value": f(r)?}))
                            })
                            .collect::<anyhow::Result<Vec<_>>>()?,
                    ),
                }
            };
            let text = match output {
                OutputFormat::Patch => {
                    patches(&|r| Ok(serde_json::to_value(r.patch.clone().unwrap_or_default())?))?
                }
                OutputFormat::Review => patches(&|r| {
                    Ok(serde_json::from_slice(
                        r.review.as_deref().unwrap_or(b"null"),
                    )?)
                })?,
                OutputFormat::Pod => render::objects_as_written(&ev.objects)?,
                OutputFormat::Json => render::objects_json(&ev.objects)?,
                OutputFormat::Yaml => render::objects_yaml(&ev.objects)?,
                OutputFormat::Results => render::json(&ev.results)?,
            };
            if !ev.results.iter().any(|r| r.decision != "skipped") {
                anyhow::bail!("no Pod, AdmissionReview or pod template in the input");
            }
            out(&text)?;
            Ok(ev.exit_code())
        }
        Command::Validate {
            config,
            output,
            namespace,
            inputs,
        } => {
            let plan = Plan::from_config(&config.load()?);
            let docs = read_docs(&inputs)?;
            let ev = offline::evaluate(docs, &plan, Mode::Validate, namespace.as_deref(), false);
            out(&match output {
                ResultFormat::Table => render::table(&ev.results),
                ResultFormat::Json => render::json(&ev.results)?,
                ResultFormat::Yaml => render::yaml(&ev.results)?,
            })?;
            if !ev.results.iter().any(|r| r.decision != "skipped") {
                anyhow::bail!("no Pod, AdmissionReview or pod template in the input");
            }
            Ok(ev.exit_code())
        }
        Command::Test {
            config,
            settings,
            output,
            paths,
        } => {
            let source = config.map(|c| plx_store_webhook::config::Source::new(c, settings));
            let mut summary = testfile::Summary::default();
            for f in testfile::find(&paths)? {
                testfile::run_file(&f, source.as_ref(), &mut summary)?;
            }
            out(&match output {
                TestFormat::Table => testfile::table(&summary),
                TestFormat::Json => render::json(&summary)?,
                TestFormat::Junit => testfile::junit(&summary),
            })?;
            Ok(summary.exit_code())
        }
        Command::Serve(args) => serve_cmd(*args),
        Command::Rbac {
            config,
            service_account,
            namespace,
            output,
        } => {
            let plan = Plan::from_config(&config.load()?);
            let yaml = plx_store_webhook::fleet::rbac::render(&plan, &service_account, &namespace);
            out(&match output {
                RbacFormat::Yaml => yaml,
                RbacFormat::Json => {
                    let items: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml)
                        .map_err(|e| anyhow::anyhow!("internal error: the RBAC YAML: {e}"))?;
                    render::json(&serde_json::json!({
                        "apiVersion": "v1", "kind": "List", "items": items,
                    }))?
                }
            })?;
            Ok(0)
        }
        Command::Fleet {
            config,
            output,
            timeout_seconds,
            kubeconfig,
            context,
            namespace,
            all_namespaces: _,
        } => {
            let plan = Plan::from_config(&config.load()?);
            install_crypto();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mut report = rt.block_on(async {
                let client =
                    plx_store_webhook::fleet::cli::client(kubeconfig.as_deref(), context).await?;
                plx_store_webhook::fleet::snapshot(
                    client,
                    &std::sync::Arc::new(plan),
                    std::time::Duration::from_secs(timeout_seconds),
                )
                .await
            })?;
            if let Some(ns) = &namespace {
                plx_store_webhook::fleet::cli::only_namespace(&mut report, ns);
            }
            out(&match output {
                FleetOutput::Json => render::json(&report)?,
                FleetOutput::Yaml => render::yaml(&report)?,
                FleetOutput::Table => plx_store_webhook::fleet::report::table(&report),
            })?;
            Ok(if !report.synced || report.has_problems() {
                2
            } else {
                0
            })
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
            let mut text = format!("{}\n", certs::step_summary(step, &dir.to_string()));
            if matches!(step, certs::Step::RotateCa | certs::Step::DropPreviousCa) {
                out(&text)?;
                return Ok(0);
            }
            let until = bundle
                .not_after
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| bundle.not_after.to_string());
            text.push_str(&format!("SANs: {}; valid until {until}\n", sans.join(", ")));
            if args.print {
                use base64::Engine as _;
                text.push_str(&format!(
                    "\nkubectl -n {ns} create secret tls {svc}-tls --cert={dir}/tls.crt --key={dir}/tls.key\n",
                    ns = args.namespace,
                    svc = args.service
                ));
                text.push_str(&format!(
                    "\ncaBundle: {}\n",
                    base64::engine::general_purpose::STANDARD.encode(&bundle.ca_pem)
                ));
            }
            out(&text)?;
            Ok(0)
        }
    }
}

/// Every object of the inputs.
fn read_docs(inputs: &[String]) -> anyhow::Result<Vec<objects::Doc>> {
    let mut docs = Vec::new();
    for i in objects::read_inputs(inputs)? {
        docs.extend(objects::documents(&i)?);
    }
    Ok(docs)
}

/// What `mutate` says on stderr about one object.
fn say(r: &offline::ObjectResult, who: &str) {
    for w in &r.warnings {
        note(&format!("warning: {who}[{}] {}", w.code, w.message));
    }
    match r.decision {
        "denied" => note(&format!("denied: {who}[{}] {}", r.code, r.message)),
        "error" => note(&format!("error: {who}{}", r.message)),
        "skipped" => note(&format!("skipped: {who}[{}] {}", r.code, r.message)),
        _ => {}
    }
}

fn serve_cmd(args: ServeArgs) -> anyhow::Result<u8> {
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
    Ok(0)
}
