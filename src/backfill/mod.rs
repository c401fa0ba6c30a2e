//! `wolkvox-exporter backfill`: history for Prometheus. Fetches a past range with the
//! poller's rules (31-day cut, split at the row cap, 404 as no rows, retries, the
//! ledger) and writes the business counters as OpenMetrics text, one sample per window
//! end, for `promtool tsdb create-blocks-from openmetrics`.
//!
//! Memory stays bounded whatever the range: the range is fetched part by part (each at
//! most 31 days and under the row cap), in time order, and only the running totals, the
//! ledger entries a following part can still return and two days of row counts (to size
//! the next request from the same hours yesterday) are kept. Samples go straight to
//! disk. OpenMetrics wants each family's samples together, while going through time
//! produces every family at each window end, so the largest family goes straight into
//! `OUTPUT.tmp` and every other one into its own temporary file (unlinked at once, so
//! nothing is left behind whatever happens); they are appended at the end and
//! `OUTPUT.tmp` is renamed to `OUTPUT`.
//!
//! One concept a file. Pure: `dates.rs` ([`DateArg`], the `--from`/`--to` forms;
//! [`Windows`], which window a row belongs to; [`row_instant`], a row's wall-clock date
//! as an instant), `openmetrics.rs` ([`Renderer`], the OpenMetrics lines, and the order
//! of the families) and `span.rs` ([`Recent`], the next request's length from
//! yesterday's traffic). With I/O: `output.rs` (the atomic output file), `progress.rs`
//! (progress on stderr, the final [`report`]) and `sink.rs` (one operation's run as the
//! fetch engine's sink). This file holds what the user asks for and gets back, and
//! [`run`], which does the I/O and takes the config, so tests can aim it at the
//! simulator.

mod calls;
mod dates;
mod openmetrics;
mod output;
mod progress;
mod sink;
mod span;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Semaphore;

use crate::config::{Config, Operation, ProcessEnv};
use crate::fetch::{Engine, FetchError, Jitter, RetryPolicy};
use crate::window::{Query, Range};
use crate::wolkvox::client::Client;
use crate::wolkvox::{ApiError, Reason};

pub use dates::{DateArg, Windows, resolve_range, row_instant};
pub use openmetrics::{FAMILY_COUNT, Renderer, assemble, family_header, family_name};
pub use output::tmp_path;
pub use progress::report;
pub use span::Recent;

use output::Output;
use progress::Progress;
use sink::{BackfillSink, OpRun};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub from: DateArg,
    pub to: DateArg,
    pub output: PathBuf,
    pub operation: Option<String>,
}

/// How patient to be, and whether to show progress.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Retries of one request after a transient error, before giving up.
    pub retries: u32,
    /// The first retry's wait; each next one doubles (with jitter).
    pub retry_base: Duration,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Settings {
    /// The engine's retry policy: maintenance is ridden out too, so one run survives
    /// the vendor's backups.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            base: self.retry_base,
            max: self.retry_base.saturating_mul(1024),
            retry_maintenance: true,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        // 1 + 2 + ... + 32 s: about a minute, long enough for a gateway hiccup or a
        // busy token, short enough that a real outage ends the run with a clear error.
        Settings {
            retries: 6,
            retry_base: Duration::from_secs(1),
            progress: true,
        }
    }
}

/// Why a backfill did not complete.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments, config or output path: exit code 2.
    Usage(String),
    /// The API or the disk failed: exit code 1. Nothing was written to OUTPUT.
    Run(String),
    /// Ctrl-C: exit code 130.
    Interrupted,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Run(_) => 1,
            Failure::Interrupted => 130,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) => write!(f, "backfill: {m}"),
            Failure::Run(m) => write!(f, "backfill failed: {m}; no output was written"),
            Failure::Interrupted => write!(f, "backfill interrupted; no output was written"),
        }
    }
}

/// What a completed run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub operations: Vec<String>,
    pub windows: u64,
    /// Rows counted (each once).
    pub rows: u64,
    /// Copies seen again in another answer and not counted.
    pub duplicates: u64,
    /// Rows dated outside the range their query covers: a query's wall-clock bounds
    /// can take in the repeated hour of a DST fold, whose rows count at the first pass.
    pub outside: u64,
    pub requests: u64,
    /// Answers cut at the cap and halved (their rows not in date order).
    pub splits: u64,
    /// Answers cut at the cap in date order: kept up to their last second, which was
    /// asked again.
    pub continued: u64,
    pub retries: u64,
    /// Answers at the row cap whose range (one second) could not be split.
    pub capped: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub output: PathBuf,
    /// The earliest and latest instants covered, over every operation.
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

/// Fetches `config`'s operations (or the one `req.operation` names) over the range and
/// writes `req.output`. Never writes the exporter's state.
pub async fn run(
    config: &Config,
    req: &Request,
    settings: &Settings,
    now: Timestamp,
) -> Result<Summary, Failure> {
    let started = Instant::now();
    let ops: Vec<&Operation> = match &req.operation {
        None => config.operations.iter().collect(),
        Some(name) => match config.operations.iter().find(|o| &o.name == name) {
            Some(op) => vec![op],
            None => {
                let names: Vec<&str> = config.operations.iter().map(|o| o.name.as_str()).collect();
                return Err(Failure::Usage(format!(
                    "--operation: no operation named {name:?} in the config (it has: {})",
                    names.join(", ")
                )));
            }
        },
    };
    let mut plans = Vec::with_capacity(ops.len());
    for op in &ops {
        let range = resolve_range(req.from, req.to, &op.zone, now).map_err(|e| {
            Failure::Usage(format!("{e} (operation {}, {})", op.name, op.zone_name))
        })?;
        plans.push((*op, range, Windows::new(range, op.poll.interval)));
    }
    for (op, range, _) in &plans {
        warn_about_live_overlap(config, op, *range, now);
    }
    let mut output = Output::create(&req.output).map_err(|e| {
        Failure::Usage(format!(
            "--output: cannot write {}: {e}",
            tmp_path(&req.output).display()
        ))
    })?;
    let total_secs: f64 = plans
        .iter()
        .map(|(_, r, _)| r.duration().as_secs_f64())
        .sum();
    let windows_total: u64 = plans.iter().map(|(_, _, w)| w.count()).sum();
    let mut progress = Progress::new(settings.progress, total_secs, windows_total);
    let mut summary = Summary {
        output: req.output.clone(),
        ..Summary::default()
    };
    let io_fail = |e: io::Error| {
        Failure::Run(format!(
            "cannot write {}: {e}",
            tmp_path(&req.output).display()
        ))
    };
    let mut jitter = Jitter::new(now.as_nanosecond() as u64);
    // Nothing of a backfill is kept: its calls need a key for this run only.
    let call_key = crate::calls::CallKey::random().map_err(|e| Failure::Run(e.to_string()))?;
    let mut windows_before = 0;
    for (op, range, windows) in plans {
        summary.operations.push(op.name.clone());
        summary.start = Some(summary.start.map_or(range.start, |s| s.min(range.start)));
        summary.end = Some(summary.end.map_or(range.end, |e| e.max(range.end)));
        // One request at a time: the API counts simultaneous requests per token, and a
        // running exporter may be using the same token.
        let client = Client::for_operation(op, Arc::new(Semaphore::new(1)))
            .map_err(|e| Failure::Run(format!("operation {}: {e}", op.name)))?;
        let mut run = OpRun::new(op, config.limits, &config.buckets, windows, call_key);
        run.start(&mut output.writers).map_err(io_fail)?;
        let mut sink = BackfillSink::new(
            &mut run,
            &mut output.writers,
            &mut summary,
            &mut progress,
            windows_before,
        );
        let mut engine = Engine::new(&client, &op.zone, settings.policy(), &mut jitter);
        match engine.run(range, &mut sink).await {
            Ok(_) => {}
            Err(FetchError::Api {
                error,
                query,
                attempts,
            }) => {
                return Err(Failure::Run(request_failure(op, &query, &error, attempts)));
            }
            Err(FetchError::Sink(e)) => return Err(io_fail(e)),
            Err(FetchError::Shutdown) => return Err(Failure::Interrupted),
        }
        windows_before += run.windows_done();
    }
    summary.windows = windows_before;
    progress.done();
    summary.bytes = output.finish().map_err(io_fail)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn request_failure(op: &Operation, q: &Query, e: &ApiError, attempts: u32) -> String {
    let what = format!(
        "operation {}: the report for {} to {} ({}) failed",
        op.name,
        q.date_ini_string(),
        q.date_end_string(),
        op.zone_name
    );
    match e.reason {
        Reason::TokenLimit => format!(
            "{what}: the token's daily request budget is spent ({e}); run it again after midnight"
        ),
        Reason::InvalidToken | Reason::MissingToken => {
            format!("{what}: the token was refused ({e}); check the operation's token")
        }
        r if r.is_transient() || r == Reason::Maintenance => {
            format!("{what} {attempts} times; last error: {e}")
        }
        _ => format!("{what}: {e}"),
    }
}

/// Backfilled and live series differ only by the `job` and `instance` labels Prometheus
/// adds to scraped ones, so sums over both count the overlap twice. Reads (never writes)
/// the exporter's state to find where its own history begins.
fn warn_about_live_overlap(config: &Config, op: &Operation, range: Range, now: Timestamp) {
    let path = crate::state::path(&config.state_dir, &op.name);
    match crate::state::load(&path) {
        Ok(Some(s)) if s.origin < range.end => {
            eprintln!(
                "warning: operation {}: the live exporter's counters (state {}) begin at {}; this backfill reaches {}. Sums over both would count those rows twice: use --to {} or earlier",
                op.name,
                path.display(),
                s.origin,
                range.end,
                s.origin
            );
        }
        Ok(Some(_)) => {}
        _ if now.duration_since(range.end) < SignedDuration::from_hours(24) => {
            eprintln!(
                "warning: operation {}: the range ends less than a day ago; do not backfill the hours a running exporter already counts (it starts at its first start minus poll.backfill)",
                op.name
            );
        }
        _ => {}
    }
}

/// The `backfill` subcommand: parses the arguments, loads the config, runs (Ctrl-C
/// stops it and removes `OUTPUT.tmp`) and prints the summary.
pub async fn command(
    config: &Path,
    from: &str,
    to: &str,
    output: &Path,
    operation: Option<&str>,
) -> Result<(), Failure> {
    let from = DateArg::parse("--from", from).map_err(Failure::Usage)?;
    let to = DateArg::parse("--to", to).map_err(Failure::Usage)?;
    let (config, warnings) =
        Config::from_file(config, &ProcessEnv).map_err(|e| Failure::Usage(e.to_string()))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let req = Request {
        from,
        to,
        output: output.to_path_buf(),
        operation: operation.map(str::to_string),
    };
    let settings = Settings::default();
    let summary = tokio::select! {
        r = run(&config, &req, &settings, Timestamp::now()) => r?,
        // Dropping the run removes OUTPUT.tmp; the family files are already unlinked.
        _ = tokio::signal::ctrl_c() => return Err(Failure::Interrupted),
    };
    print!("{}", report(&summary));
    Ok(())
}
