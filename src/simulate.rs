//! `wolkvox-exporter simulate`: the built-in simulated Wolkvox as its own server, for a
//! local stack (`demo/stack.sh`) or for trying `check`, `backfill` and the exporter
//! without an account. It serves the demo's operations ([`crate::demo::populate`]) with
//! the API's limits (row cap, 31 days, two requests at a time, a daily budget), random
//! failures, `--history` of rows, and a hang-up incident around its start
//! ([`crate::simulator::incidents::start_incident`]) so that an alert fires in the
//! first minutes of a stack with a backfilled week. `--write-config` writes an
//! exporter config that points at it.
//!
//! [`plan`] builds the simulator from the options and the start instant alone, so a
//! test can rebuild the very same one in-process for ground truth.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::cli::ListenAddr;
use crate::demo::{self, DemoError, SimOperation};
use crate::simulator::{MAX_LATENESS_SECS, SELF_SERVICE_OPTIONS, Simulator, incidents};

/// Where `simulate` listens unless told: loopback, next to the exporter's 10150.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10160";
/// The demo's seed: `simulate` and `--demo` serve the same traffic unless told.
pub const DEFAULT_SEED: u64 = demo::DEMO_SEED;
/// Share of report requests that fail (or answer slowly), as in the demo.
pub const DEFAULT_FAULTS: f64 = 0.02;
/// Requests per token and UTC day: ten licences' worth.
pub const DEFAULT_DAILY_BUDGET: u32 = 10_000;

/// `simulate`'s validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub listen: ListenAddr,
    pub seed: u64,
    /// How far back from the start the operations have rows.
    pub history: Duration,
    pub write_config: Option<PathBuf>,
    /// Share of report requests answered with a failure or slowly.
    pub faults: f64,
    /// Requests per token and UTC day; `None`: no limit.
    pub daily_budget: Option<u32>,
}

/// A simulator set up for one run, and what it serves.
pub struct Plan {
    pub sim: Simulator,
    pub operations: Vec<SimOperation>,
    /// The start, on a whole minute: history and the start incident count from it.
    pub started: Timestamp,
}

/// The run's simulator: the demo's operations with `options`' seed, failures and
/// budget, rows from `started - history` on, and the start incident at the first
/// operation (acme). `started` is
/// taken down to its minute; the same options and minute give the same rows.
pub fn plan(options: &Options, started: Timestamp) -> Result<Plan, DemoError> {
    let started =
        Timestamp::from_second(started.as_second().div_euclid(60) * 60).unwrap_or(started);
    let sim = Simulator::new();
    let operations = demo::populate(
        &sim,
        options.seed,
        &format!("sim{}", options.seed),
        options.faults,
    )?;
    let history = SignedDuration::try_from(options.history).unwrap_or(SignedDuration::MAX);
    let from = started.checked_sub(history).ok();
    for (i, op) in operations.iter().enumerate() {
        sim.set_history_start(&op.token, from);
        sim.set_daily_budget(&op.token, options.daily_budget);
        // The first operation only: the others show what normal looks like beside it.
        if i == 0 {
            sim.add_incident(&op.token, incidents::start_incident(started));
        }
    }
    Ok(Plan {
        sim,
        operations,
        started,
    })
}

/// The exporter config for the simulator at `base_url`: each operation's token in a
/// file beside the config (`token_file(config, name)`), its zone, windows short enough
/// for a live demo, and a `settle` that covers the simulator's latest rows.
pub fn config_yaml(
    config: &Path,
    operations: &[SimOperation],
    base_url: &str,
    options: &Options,
) -> String {
    let dir = config.parent().unwrap_or(Path::new("."));
    let mut y = format!(
        "# Written by `wolkvox-exporter simulate --seed {} --history {}`: an exporter config\n\
         # for the simulated Wolkvox at {base_url} (it accepts the tokens in the files below).\n\
         # The calls' self-service options of its IVR: {}.\n\
         operations:\n",
        options.seed,
        humantime::format_duration(options.history),
        SELF_SERVICE_OPTIONS.join(", ")
    );
    for op in operations {
        y.push_str(&format!(
            "  - name: {}\n    base_url: {}\n    token_file: {}\n    timezone: {}\n",
            op.name,
            quoted(base_url),
            quoted(&token_file(config, op.name).to_string_lossy()),
            op.zone_name
        ));
    }
    y.push_str(&format!(
        "poll:\n  \
           interval: 15s\n  \
           delay: 5s\n  \
           # the simulator serves some rows up to {} minutes late\n  \
           settle: {}\n  \
           # on a first start; demo/stack.sh sets 0s, as it backfills Prometheus itself\n  \
           backfill: 1h\n  \
           timeout: 30s\n\
         state_dir: {}\n",
        MAX_LATENESS_SECS / 60,
        humantime::format_duration(Duration::from_secs(MAX_LATENESS_SECS as u64 + 60)),
        quoted(&dir.join("state").to_string_lossy())
    ));
    y
}

/// Where `config`'s operation `name` keeps its token: `DIR/STEM.NAME.token`.
pub fn token_file(config: &Path, name: &str) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or_else(|| "wolkvox".into(), |s| s.to_string_lossy().into_owned());
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{stem}.{name}.token"))
}

/// A YAML double-quoted scalar: JSON's string escapes are YAML's too.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// Writes the token files (mode 0600) and the config, each atomically.
fn write_config(
    config: &Path,
    operations: &[SimOperation],
    base_url: &str,
    options: &Options,
) -> std::io::Result<()> {
    if config.to_str().is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is not UTF-8",
        ));
    }
    for op in operations {
        write_atomic(&token_file(config, op.name), op.token.as_bytes(), 0o600)?;
    }
    let yaml = config_yaml(config, operations, base_url, options);
    write_atomic(config, yaml.as_bytes(), 0o644)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = open.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// The URL clients use for a bound address: every interface reads as loopback.
pub fn base_url(bound: SocketAddr) -> String {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, bound.port()))
}

/// The subcommand: plans, binds, writes the config if asked, serves until `shutdown`.
/// Exit 0 after a clean stop; 2 with one line on stderr when it cannot start.
pub async fn command(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> ExitCode {
    match run(options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wolkvox-exporter: simulate: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let plan = plan(&options, Timestamp::now()).map_err(|e| e.to_string())?;
    let (listener, addr) = crate::bind(&options.listen)
        .await
        .map_err(|e| e.to_string())?;
    let bound = listener.local_addr().unwrap_or(addr);
    let url = base_url(bound);
    if let Some(path) = &options.write_config {
        write_config(path, &plan.operations, &url, &options)
            .map_err(|e| format!("--write-config: cannot write {}: {e}", path.display()))?;
    }
    let incident = incidents::start_incident(plan.started);
    tracing::info!(
        address = %bound,
        seed = options.seed,
        history = %humantime::format_duration(options.history),
        started = %plan.started,
        operations = plan.operations.len(),
        "listening"
    );
    tracing::info!(
        operation = plan.operations.first().map_or("", |o| o.name),
        rp_id = incident.rp_id,
        from = %incident.start,
        to = %incident.end,
        hangup_rate = incident.hangup_rate,
        "hang-up incident at the start"
    );
    let names: Vec<&str> = plan.operations.iter().map(|o| o.name).collect();
    eprintln!(
        "\n  simulated Wolkvox at {url} (operations {}){}\n",
        names.join(", "),
        options
            .write_config
            .as_ref()
            .map_or(String::new(), |p| format!(
                "\n  exporter config: {}  (try: wolkvox-exporter check --config {})",
                p.display(),
                p.display()
            ))
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(plan.sim.clone().serve(listener, async move {
        let _ = stop_rx.await;
    }));
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), served).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            listen: ListenAddr::parse(DEFAULT_LISTEN).unwrap(),
            seed: 42,
            history: Duration::from_secs(8 * 86_400),
            write_config: None,
            faults: 0.0,
            daily_budget: Some(10_000),
        }
    }

    #[test]
    fn the_plan_is_the_demo_with_history_and_a_start_incident() {
        let started: Timestamp = "2026-11-25T15:17:42Z".parse().unwrap();
        let p = plan(&options(), started).unwrap();
        assert_eq!(
            p.started,
            "2026-11-25T15:17:00Z".parse::<Timestamp>().unwrap()
        );
        let tokens: Vec<&str> = p.operations.iter().map(|o| o.token.as_str()).collect();
        assert_eq!(tokens, ["sim42-acme", "sim42-andina"]);
        // Rows from 8 days before the start on, none before.
        let from = p.started - SignedDuration::from_hours(8 * 24);
        let hour = SignedDuration::from_hours(1);
        assert!(
            p.sim
                .rows_between("sim42-acme", from - hour, from)
                .is_empty()
        );
        assert!(
            !p.sim
                .rows_between("sim42-acme", from, from + hour)
                .is_empty()
        );
        // Same options, same minute: same rows.
        let again = plan(&options(), started + SignedDuration::from_secs(10)).unwrap();
        let t = p.started - hour;
        assert_eq!(
            p.sim.rows_between("sim42-andina", t, p.started),
            again.sim.rows_between("sim42-andina", t, p.started)
        );
    }

    #[test]
    fn base_urls_reach_the_bound_address() {
        assert_eq!(
            base_url("0.0.0.0:10160".parse().unwrap()),
            "http://127.0.0.1:10160/"
        );
        assert_eq!(base_url("[::]:5".parse().unwrap()), "http://[::1]:5/");
        assert_eq!(
            base_url("127.0.0.2:5".parse().unwrap()),
            "http://127.0.0.2:5/"
        );
    }
}
