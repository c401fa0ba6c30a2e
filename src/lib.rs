//! wolkvox-exporter: polls the Wolkvox "IVR call detail" report (`diagram_1`) window by
//! window, counts every row exactly once, and serves the totals to Prometheus.
//!
//! [`start`] takes a validated [`config::Config`] and a bound listener and returns a
//! handle; the binary and the tests drive the same code.
#![forbid(unsafe_code)]

pub mod backfill;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod fetch;
pub mod ingest;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod secret;
pub mod server;
pub mod simulator;
pub mod state;
pub mod status;
pub mod totals;
pub mod web_config;
pub mod window;
pub mod wolkvox;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::poller::Poller;
use crate::wolkvox::client::Client;

/// Settings of one run that are not part of the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub telemetry_path: String,
    /// `--web.config.file`, loaded and validated: TLS, basic auth, response headers.
    pub web: Option<Arc<web_config::WebConfigFile>>,
    /// `--state.reset`: move existing state aside before starting.
    pub state_reset: bool,
}

/// Restores state, then serves and polls until `shutdown` resolves; saves and returns.
/// Errors are one line, for the start (bad state file, unusable state directory).
pub async fn run(
    config: Config,
    listener: TcpListener,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let now = Timestamp::now();
    std::fs::create_dir_all(&config.state_dir).map_err(|e| {
        format!(
            "state_dir: cannot create {}: {e}",
            config.state_dir.display()
        )
    })?;
    warn_about_orphan_state(&config);

    // One set of permits per token: the API limits simultaneous requests per token.
    let mut permits: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut per_token_max: HashMap<String, usize> = HashMap::new();
    for op in &config.operations {
        let e = per_token_max
            .entry(op.token.expose().to_string())
            .or_insert(2);
        *e = (*e).min(op.max_concurrent_requests);
    }
    for (token, max) in per_token_max {
        permits.insert(token, Arc::new(Semaphore::new(max)));
    }

    let mut saved = Vec::new();
    for op in &config.operations {
        let path = state::path(&config.state_dir, &op.name);
        if options.state_reset {
            match state::move_aside(&path, now) {
                Ok(Some(aside)) => {
                    tracing::warn!(operation = %op.name, moved_to = %aside.display(), "state reset: old state moved aside")
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{}: cannot move state aside: {e}", path.display())),
            }
        }
        saved.push(state::load(&path)?);
    }

    // Every operation's totals exist (empty) before the registry, which renders them;
    // each poller then restores its own into them.
    let totals: Vec<(String, metrics::SharedTotals)> = config
        .operations
        .iter()
        .map(|op| (op.name.clone(), metrics::SharedTotals::default()))
        .collect();
    let metrics =
        Arc::new(Metrics::new(config.buckets.clone(), totals.clone()).map_err(|e| e.to_string())?);
    let mut pollers = Vec::new();
    let mut statuses = Vec::new();
    for ((op, saved), (_, shared)) in config.operations.iter().zip(saved).zip(totals) {
        let token_permits = permits
            .get(op.token.expose())
            .cloned()
            .unwrap_or_else(|| Arc::new(Semaphore::new(1)));
        let client = Client::for_operation(op, token_permits)
            .map_err(|e| format!("operations ({}): {e}", op.name))?;
        let restored = saved.is_some();
        let p = Poller::new(
            op.clone(),
            client,
            config.limits,
            config.buckets.clone(),
            metrics.exporter.operation(&op.name),
            &config.state_dir,
            saved,
            shared,
            now,
        )?;
        if restored {
            tracing::info!(operation = %op.name, watermark = ?p.watermark, "state restored");
        }
        statuses.push(Arc::clone(&p.status));
        pollers.push(p);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for p in pollers {
        tracing::info!(operation = %p.op.name, zone = %p.op.zone_name, interval = %humantime::format_duration(p.op.poll.interval), "polling");
        tasks.push(tokio::spawn(p.run(stop_rx.clone())));
    }
    let app = Arc::new(server::App {
        metrics: Arc::clone(&metrics),
        statuses,
        telemetry_path: options.telemetry_path.clone(),
        web: options.web.clone(),
    });
    let server = tokio::spawn(server::serve(listener, app, stop_rx.clone()));

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Pollers save their state on the way out; give them most of the 10 s budget.
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(7), all)
        .await
        .is_err()
    {
        tracing::warn!("a poller did not stop in time; its last committed state is on disk");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}

/// A state file for an operation that is no longer configured is left alone, with a warning.
fn warn_about_orphan_state(config: &Config) {
    let Ok(entries) = std::fs::read_dir(&config.state_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(op) = name.strip_suffix(".json")
            && !config.operations.iter().any(|o| o.name == op)
        {
            tracing::warn!(file = %e.path().display(), "state file for an operation that is not configured; left as it is");
        }
    }
}
