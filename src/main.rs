#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use wolkvox_exporter::cli::{Cli, Command, listen_addr};
use wolkvox_exporter::config::{Config, ProcessEnv};
use wolkvox_exporter::web_config::WebConfigFile;
use wolkvox_exporter::{RunOptions, check, demo, logging, run};

/// Exit code for a start that cannot go ahead: bad config, port in use, bad state.
const EXIT_CONFIG: u8 = 2;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("wolkvox-exporter: {msg}");
    ExitCode::from(EXIT_CONFIG)
}

/// `healthcheck`'s probe from the exporter's own listen address and web config.
fn healthcheck_probe(cli: &Cli) -> Result<check::Probe, String> {
    let listen = listen_addr(&cli.listen_address)?;
    let web = match &cli.web_config_file {
        Some(path) => Some(wolkvox_exporter::web_config::WebConfig::from_file(path)?.0),
        None => None,
    };
    Ok(check::Probe::from_settings(listen, web.as_ref()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match &cli.command {
        Some(Command::Healthcheck {
            url,
            insecure_skip_verify,
        }) => {
            let probe = match url {
                Some(url) => check::Probe {
                    url: url.clone(),
                    insecure_skip_verify: *insecure_skip_verify,
                    alive_on_unauthorized: false,
                    connect_only: None,
                },
                None => match healthcheck_probe(&cli) {
                    Ok(probe) => probe,
                    // Unhealthy rather than 2, which a container runtime reserves.
                    Err(e) => {
                        eprintln!("healthcheck: {e}");
                        return ExitCode::from(1);
                    }
                },
            };
            runtime.block_on(check::healthcheck(&probe))
        }
        Some(Command::Check { config }) => {
            let Some(path) = config.as_ref().or(cli.config.as_ref()) else {
                return fail("check: --config FILE is required");
            };
            match Config::from_file(path, &ProcessEnv) {
                Ok((config, warnings)) => {
                    for w in warnings {
                        println!("warning: {w}");
                    }
                    runtime.block_on(check::check(&config))
                }
                Err(e) => fail(e),
            }
        }
        Some(Command::Backfill {
            config,
            from,
            to,
            output,
            operation,
        }) => {
            let done = runtime.block_on(wolkvox_exporter::backfill::command(
                config,
                from,
                to,
                output,
                operation.as_deref(),
            ));
            match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wolkvox-exporter: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        None => runtime.block_on(serve(cli)),
    }
}

async fn serve(cli: Cli) -> ExitCode {
    // Checked first: a broken web config must stop the start before anything listens.
    let web = match &cli.web_config_file {
        Some(path) => match WebConfigFile::load(path) {
            Ok((web, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                Some(std::sync::Arc::new(web))
            }
            Err(e) => return fail(e),
        },
        None => None,
    };
    let scheme = if web.as_ref().is_some_and(|w| w.current().tls_enabled()) {
        "https"
    } else {
        "http"
    };
    if !cli.telemetry_path.starts_with('/') || cli.telemetry_path.len() < 2 {
        return fail(format!(
            "--web.telemetry-path: {:?} must start with / and name a path",
            cli.telemetry_path
        ));
    }
    let addr = match listen_addr(&cli.listen_address) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut demo_dir = None;
    let config = if cli.demo {
        let dir = match &cli.state_dir {
            Some(d) => d.clone(),
            None => {
                let d = std::env::temp_dir()
                    .join(format!("wolkvox-exporter-demo-{}", std::process::id()));
                demo_dir = Some(d.clone());
                d
            }
        };
        match demo::start(dir, stop_rx.clone()).await {
            Ok((sim, c)) => {
                tracing::info!(simulator = %format!("http://{sim}/"), "demo: simulated Wolkvox started");
                c
            }
            Err(e) => return fail(e),
        }
    } else {
        let loaded = match &cli.config {
            Some(path) => Config::from_file(path, &ProcessEnv),
            None => Config::from_env(&ProcessEnv),
        };
        match loaded {
            Ok((mut c, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                if let Some(d) = &cli.state_dir {
                    c.state_dir = d.clone();
                }
                if let Some(shard) = cli.shard {
                    let all = c.operations.len();
                    c.operations.retain(|op| shard.selects(op.token.expose()));
                    if c.operations.is_empty() {
                        return fail(format!(
                            "--shard {}/{}: none of the {all} operations falls in this shard",
                            shard.index, shard.count
                        ));
                    }
                    tracing::info!(shard = %format!("{}/{}", shard.index, shard.count), operations = c.operations.len(), of = all, "sharded");
                }
                c
            }
            Err(e) => return fail(e),
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            return fail(format!(
                "--web.listen-address: cannot listen on {addr}: {e}"
            ));
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    let shown = bound.port();
    tracing::info!(address = %bound, operations = config.operations.len(), tls = scheme == "https", "listening");
    if cli.demo {
        eprintln!(
            "\n  wolkvox-exporter demo is running: open {scheme}://{host}:{shown}/  (metrics at {scheme}://{host}:{shown}{})\n",
            cli.telemetry_path
        );
    }
    let options = RunOptions {
        telemetry_path: cli.telemetry_path.clone(),
        web,
        state_reset: cli.state_reset,
    };
    let result = run(config, listener, options, async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await;
    if let Some(d) = demo_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
