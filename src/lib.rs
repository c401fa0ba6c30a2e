//! wolkvox-exporter: polls the Wolkvox "IVR call detail" report (`diagram_1`) window by
//! window, counts every row exactly once, and serves the totals to Prometheus.
//!
//! The binary is [`cli::Settings::from_cli`] then [`execute`]; the exporter itself is
//! [`run`], which takes a validated [`config::Config`], a bound listener and a shutdown
//! future, so the binary and the tests drive the same code.
#![forbid(unsafe_code)]

pub mod backfill;
pub mod calls;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod fetch;
pub mod fleet;
pub mod ingest;
mod journal;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod poll_thread;
pub mod poller;
pub mod secret;
pub mod server;
pub mod simulate;
pub mod simulator;
pub mod state;
pub mod status;
pub mod totals;
pub mod web_config;
pub mod window;
pub mod wolkvox;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{ListenAddr, Serve, Settings, SettingsError, Source};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::poller::RestoreError;
use crate::state::StateError;
use crate::wolkvox::client::ClientError;

/// Whatever stops the binary: each knows its exit code, and prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Start(#[from] StartError),
    /// `backfill` words its own failures and picks their exit codes.
    #[error("{0}")]
    Backfill(backfill::Failure),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// 2 for input that cannot be used (the contract's "bad config, missing token,
    /// unknown zone, port in use"); a healthcheck's and a backfill's own otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Settings(e) => e.exit_code(),
            Error::Backfill(f) => f.exit_code(),
            Error::Start(_) | Error::Runtime(_) => 2,
        }
    }

    /// The line for stderr: `wolkvox-exporter: {self}`, except that a healthcheck
    /// speaks as `healthcheck:`, as its probe's other answers do.
    pub fn report(&self) -> String {
        match self {
            Error::Settings(e @ SettingsError::Healthcheck(_)) => e.to_string(),
            e => format!("wolkvox-exporter: {e}"),
        }
    }
}

/// Why [`run`] (or [`serve`], which binds first) could not start. Each names the file,
/// key or flag; [`run`] returns one before it serves anything.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("state_dir: cannot create {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state_dir: {} is a file, not a directory", path.display())]
    StateDirIsFile { path: PathBuf },
    /// `--state.reset` could not rename the old state out of the way.
    #[error("{}: cannot move state aside: {source}", path.display())]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    CallKey(#[from] calls::key::KeyError),
    #[error("operations ({operation}): {source}")]
    Client {
        operation: String,
        source: ClientError,
    },
    #[error(transparent)]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start the poll thread: {0}")]
    PollThread(#[source] std::io::Error),
    #[error("--web.listen-address: cannot resolve {addr}: {source}")]
    Resolve {
        addr: ListenAddr,
        source: std::io::Error,
    },
    #[error("--web.listen-address: cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
}

/// Acts on validated settings; `Ok` holds the exit code of a command that reports its
/// own outcome (`check`, `healthcheck`).
pub fn execute(settings: Settings) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    match settings {
        Settings::Serve(s) => {
            runtime.block_on(serve(*s, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Settings::Check { config, warnings } => {
            for w in warnings {
                println!("warning: {w}");
            }
            Ok(runtime.block_on(check::check(&config)))
        }
        Settings::Healthcheck(probe) => Ok(runtime.block_on(check::healthcheck(&probe))),
        Settings::Simulate(options) => {
            Ok(runtime.block_on(simulate::command(options, shutdown_signal())))
        }
        Settings::Backfill {
            config,
            from,
            to,
            output,
            operation,
        } => {
            runtime
                .block_on(backfill::command(
                    &config,
                    &from,
                    &to,
                    &output,
                    operation.as_deref(),
                ))
                .map_err(Error::Backfill)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The binary's run: starts the demo's simulator when asked, binds, says where it
/// listens, and [`run`]s until `shutdown`.
pub async fn serve(s: Serve, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    for w in &s.warnings {
        tracing::warn!("{w}");
    }
    let scheme = if s.web.as_ref().is_some_and(|w| w.current().tls_enabled()) {
        "https"
    } else {
        "http"
    };
    // Stops the demo's simulator after the exporter.
    let (stop_tx, stop_rx) = watch::channel(false);
    let is_demo = matches!(s.source, Source::Demo { .. });
    let (config, demo_dir) = match s.source {
        Source::Config(c) => (c, None),
        Source::Demo {
            state_dir,
            temporary,
        } => {
            let (sim, c) = demo::start(state_dir.clone(), stop_rx).await?;
            tracing::info!(simulator = %format!("http://{sim}/"), "demo: simulated Wolkvox started");
            (c, temporary.then_some(state_dir))
        }
    };
    if let Some((shard, all)) = s.shard {
        tracing::info!(shard = %format!("{}/{}", shard.index, shard.count), operations = config.operations.len(), of = all, "sharded");
    }
    // Before listening: a start that cannot save state stops before it says "listening".
    state_dir(&config.state_dir)?;
    let (listener, addr) = bind(&s.listen).await?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(address = %bound, operations = config.operations.len(), tls = scheme == "https", "listening");
    if is_demo {
        let shown = shown_address(bound);
        eprintln!(
            "\n  wolkvox-exporter demo is running: open {scheme}://{shown}/  (metrics at {scheme}://{shown}{})\n",
            s.telemetry_path
        );
    }
    let options = RunOptions {
        telemetry_path: s.telemetry_path,
        web: s.web,
        state_reset: s.state_reset,
        lifecycle: s.lifecycle,
        reload: s.reload,
    };
    let result = run(config, listener, options, async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    if let Some(d) = demo_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    result
}

/// Binds the first of the address's resolved socket addresses that can be bound;
/// returns the listener and the address it was bound to.
pub async fn bind(addr: &ListenAddr) -> Result<(TcpListener, std::net::SocketAddr), StartError> {
    let candidates = match &addr.host {
        cli::ListenHost::Name(name) => tokio::net::lookup_host((name.as_str(), addr.port))
            .await
            .map(|all| {
                let mut all: Vec<_> = all.collect();
                // IPv4 first, as Go's listener picks it.
                all.sort_by_key(|a| a.is_ipv6());
                all
            }),
        _ => addr.resolve(),
    }
    .map_err(|source| StartError::Resolve {
        addr: addr.clone(),
        source,
    })?;
    let mut last = None;
    for a in candidates {
        match TcpListener::bind(a).await {
            Ok(l) => return Ok((l, a)),
            Err(source) => last = Some(StartError::Listen { addr: a, source }),
        }
    }
    Err(last.unwrap_or_else(|| StartError::Resolve {
        addr: addr.clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"),
    }))
}

/// The address to show a person: every interface reads as `localhost`.
fn shown_address(bound: std::net::SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        format!("localhost:{}", bound.port())
    } else {
        bound.to_string()
    }
}

/// SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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

/// Settings of one run that are not part of the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub telemetry_path: String,
    /// `--web.config.file`, loaded and validated: TLS, basic auth, response headers.
    pub web: Option<Arc<web_config::WebConfigFile>>,
    /// `--state.reset`: move existing state aside before starting.
    pub state_reset: bool,
    /// `--web.enable-lifecycle`: `POST /-/reload` reloads the config.
    pub lifecycle: bool,
    /// How SIGHUP and `/-/reload` read the config again; `None` (the demo): nothing to
    /// read, a reload is refused.
    pub reload: Option<ConfigLoader>,
}

/// Restores state, then serves and polls until `shutdown` resolves; saves and returns.
/// Errors are one line, for the start (bad state file, unusable state directory).
pub async fn run(
    config: Config,
    listener: TcpListener,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let now = Timestamp::now();
    state_dir(&config.state_dir)?;
    warn_about_orphan_state(&config);

    let key_path = config.state_dir.join(calls::key::FILE);
    if options.state_reset {
        // A fresh start needs no old key, and a broken key must not stop it.
        state::move_aside(&key_path, now).map_err(|source| StartError::MoveAside {
            path: key_path.clone(),
            source,
        })?;
    }
    let call_key = calls::CallKey::load_or_create(&config.state_dir)?;
    let mut saved = Vec::new();
    for op in &config.operations {
        let path = state::path(&config.state_dir, &op.name);
        if options.state_reset {
            match state::move_aside(&path, now) {
                Ok(Some(aside)) => {
                    tracing::warn!(operation = %op.name, moved_to = %aside.display(), "state reset: old state moved aside")
                }
                Ok(None) => {}
                Err(source) => return Err(StartError::MoveAside { path, source }),
            }
        }
        saved.push(state::load(&path)?);
    }

    let metrics = Arc::new(Metrics::new(config.buckets.clone(), Vec::new())?);
    metrics.exporter.config_loaded(true, now);
    let mut fleet = fleet::Fleet::start(&config, call_key, Arc::clone(&metrics), saved, now)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    let app = Arc::new(server::App {
        metrics: Arc::clone(&metrics),
        statuses: fleet.statuses(),
        telemetry_path: options.telemetry_path.clone(),
        web: options.web.clone(),
        reload: options.lifecycle.then(|| reload_tx.clone()),
    });
    let server = tokio::spawn(server::serve(listener, app, stop_rx.clone()));

    let mut hangups = Hangups::new();
    tokio::pin!(shutdown);
    loop {
        let reply = tokio::select! {
            _ = &mut shutdown => break,
            Some(reply) = reload_rx.recv() => Some(reply),
            _ = hangups.next() => None,
        };
        let result = reload(&mut fleet, options.reload.as_ref(), &metrics).await;
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Pollers save their state on the way out; give them most of the 10 s budget.
    fleet.stop(Duration::from_secs(7)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}

/// Reads the config again and applies it; logs the outcome in one line and sets
/// `wolkvox_config_last_reload_successful`. A failure keeps the running config.
async fn reload(
    fleet: &mut fleet::Fleet,
    loader: Option<&ConfigLoader>,
    metrics: &Metrics,
) -> Result<(), String> {
    let result = match loader {
        None => Err("nothing to reload: this run has no config to read again".to_string()),
        Some(loader) => match loader.load() {
            Ok((config, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                fleet.reload(config).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        },
    };
    metrics
        .exporter
        .config_loaded(result.is_ok(), Timestamp::now());
    match result {
        Ok(c) => {
            tracing::info!(added = ?c.added, removed = ?c.removed, changed = ?c.changed, unchanged = c.unchanged.len(), "config reloaded");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; the last good config stays in force");
            Err(e)
        }
    }
}

/// Reads the config as the start did (file or environment, flags applied): the
/// validated config and its warnings, or the one-line error.
#[derive(Clone)]
pub struct ConfigLoader(Arc<LoadFn>);

type LoadFn = dyn Fn() -> Result<(Config, config::Warnings), String> + Send + Sync;

impl ConfigLoader {
    pub fn new(
        f: impl Fn() -> Result<(Config, config::Warnings), String> + Send + Sync + 'static,
    ) -> ConfigLoader {
        ConfigLoader(Arc::new(f))
    }

    pub fn load(&self) -> Result<(Config, config::Warnings), String> {
        (self.0)()
    }
}

impl std::fmt::Debug for ConfigLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigLoader(..)")
    }
}

/// SIGHUP, as a stream; never on platforms without it.
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn new() -> Hangups {
        Hangups {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Creates the state directory if it is missing.
fn state_dir(path: &std::path::Path) -> Result<(), StartError> {
    if path.exists() && !path.is_dir() {
        return Err(StartError::StateDirIsFile {
            path: path.to_path_buf(),
        });
    }
    std::fs::create_dir_all(path).map_err(|source| StartError::StateDir {
        path: path.to_path_buf(),
        source,
    })
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
