//! The start incident's alert from pending to resolved, through Prometheus's own rule
//! engine: `promtool test rules` evaluates prometheus/rules/*.yml on the simulator's own
//! data, as demo/stack.sh gives it to Prometheus, for a stack started at a fixed past
//! instant. The live stack (`stack.rs`) shows pending and firing as they happen; the
//! resolution comes about an hour after the start, too long to wait for in a test.
//!
//! The data: `simulate::plan` (what `wolkvox-exporter simulate` serves, start incident
//! included) for [`STARTED`], served in-process and read by `wolkvox-exporter backfill`,
//! in the two shapes the stack's Prometheus has:
//! - history, as stack.sh backfills it: samples every 5 minutes, no `job`/`instance`,
//!   up to the start. Only what the rules read around the start is kept (each of the 7
//!   past days from 2 hours before the start's time of day to 2 hours after, and the 2
//!   hours before the start), so that promtool's evaluation, which runs from the first
//!   sample on, is short;
//! - live, as the exporter's scraped counters: from zero at the start, with `job` and
//!   `instance`, sampled every minute (the stack scrapes every 15 s), and `wolkvox_up`.
//!
//! The IVR families only (interactions, PULSE, `wolkvox_up`): the call SLO rules read
//! windows up to 3 days long, which these pieces do not hold; their own tests are
//! prometheus/tests/calls_*.
//!
//! promtool evaluates every minute from the first piece on, so it has been running long
//! before the start, where the stack's Prometheus starts then. The states at and after
//! the start are the same wherever the condition holds without a break from before the
//! start: a Prometheus started at [`STARTED`] finds it pending at its first evaluation,
//! firing 10 minutes later, and resolved at the same instant as here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use wolkvox_exporter::cli::ListenAddr;
use wolkvox_exporter::simulate::{self, Options};

use crate::helpers::{BIN, tempdir};
use crate::prom::{assert_success, tool};

/// The simulator's start: a Wednesday, 10:15 in Bogotá (acme's zone), on a 5-minute mark
/// as stack.sh's history ends.
const STARTED: &str = "2026-11-18T15:15:00Z";
const MIN: i64 = 60;
const DAY: i64 = 86_400;
/// Each piece of history: this long before the start's time of day ...
const BEFORE: i64 = 2 * 3600;
/// ... to this long after it; the live data too.
const AFTER: i64 = 2 * 3600;
/// The minutes (from the start) whose alerts are checked.
const FROM_MIN: i64 = -30;
const TO_MIN: i64 = 90;
/// The live counters' scrape labels.
const LIVE: &str = r#"job="wolkvox",instance="127.0.0.1:10150""#;
/// The families the IVR alerts read.
const FAMILIES: [&str; 2] = ["wolkvox_ivr_interactions_total", "wolkvox_ivr_pulse_total"];

/// One alert's states, in minutes from the start: pending from `pending`, firing from
/// `pending + 10` (every `for:` here is 10m), gone from `resolved`.
struct Timeline {
    /// `alertname` and the alert's own labels, as in `ALERTS{...}`.
    labels: &'static str,
    pending: i64,
    resolved: i64,
}

/// What Prometheus's rule engine makes of the simulator's start incident at acme's main
/// menu (rp_id 1001, 30 minutes before the start to 15 after, hang-up probability 0.5),
/// and nothing else among the IVR alerts from [`FROM_MIN`] to [`TO_MIN`]:
/// - the routing point's condition holds from 15 minutes before the start to 64 minutes
///   after it (the incident's minutes leave the 1-hour window from its end on, and
///   the share no longer passes the thresholds once only 11 of them are left, 49
///   minutes after its end): a Prometheus started at the start has it pending at once,
///   firing at +10 min, resolved at +64 min;
/// - the operation's share (the main menu carries most of acme's traffic) passes its
///   baseline a minute after the start and falls back 35 minutes after the incident's end.
const EXPECTED: [Timeline; 2] = [
    Timeline {
        labels: r#"alertname="WolkvoxIVRRoutingPointHangupRateAboveBaseline",operation="acme",rp_id="1001",rp_name="Menú Principal",severity="warning""#,
        pending: -15,
        resolved: 64,
    },
    Timeline {
        labels: r#"alertname="WolkvoxIVRHangupRateAboveBaseline",operation="acme",severity="critical""#,
        pending: 1,
        resolved: 50,
    },
];

impl Timeline {
    fn state(&self, minute: i64) -> Option<&'static str> {
        if minute < self.pending || minute >= self.resolved {
            None
        } else if minute < self.pending + 10 {
            Some("pending")
        } else {
            Some("firing")
        }
    }
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus/rules")
}

/// `backfill` of `[from, to)` with windows of `interval` against `config` (an exporter
/// config from `simulate::config_yaml`), off the async workers: the simulator it talks
/// to is served by this test's runtime.
async fn backfill(dir: &Path, config: &str, interval: &str, from: i64, to: i64) -> String {
    let cfg = dir.join(format!("backfill-{interval}.yaml"));
    let yaml = config.replace(
        "\n  interval: 15s\n",
        &format!("\n  interval: {interval}\n"),
    );
    assert_ne!(
        &yaml, config,
        "no `interval: 15s` in the simulator's config:\n{config}"
    );
    std::fs::write(&cfg, yaml).expect("backfill config");
    let out = dir.join(format!("history-{from}.om"));
    let (from, to) = (
        Timestamp::from_second(from).unwrap().to_string(),
        Timestamp::from_second(to).unwrap().to_string(),
    );
    let what = format!("backfill {from} .. {to} every {interval}");
    let run = tokio::task::spawn_blocking({
        let out = out.clone();
        move || {
            Command::new(BIN)
                .arg("backfill")
                .arg("--config")
                .arg(&cfg)
                .args(["--from", &from, "--to", &to, "--output"])
                .arg(&out)
                .output()
        }
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_success(&what, &run);
    std::fs::read_to_string(&out).expect("backfill output")
}

/// Samples of the IVR families in OpenMetrics text, by series (`name{labels}`, with
/// `extra` labels first) and minute since `origin`.
fn samples(
    om: &str,
    extra: Option<&str>,
    origin: i64,
    into: &mut BTreeMap<String, BTreeMap<i64, String>>,
) {
    for line in om.lines().filter(|l| !l.starts_with('#')) {
        // Label values hold spaces; the value and the timestamp do not.
        let mut parts = line.rsplitn(3, ' ');
        let (Some(ts), Some(value), Some(series)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("not a sample: {line}");
        };
        let Some(name) = FAMILIES
            .iter()
            .find(|f| series.starts_with(&format!("{f}{{")))
        else {
            continue;
        };
        let series = match extra {
            Some(extra) => format!("{name}{{{extra},{}", &series[name.len() + 1..]),
            None => series.to_string(),
        };
        let ts: i64 = ts.parse().unwrap_or_else(|_| panic!("timestamp: {line}"));
        assert_eq!((ts - origin) % MIN, 0, "{line}");
        into.entry(series)
            .or_default()
            .insert((ts - origin) / MIN, value.to_string());
    }
}

/// promtool's `values`: one per minute `0..=last`, `_` where there is none.
fn values(points: &BTreeMap<i64, String>, last: i64) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut blanks = 0;
    for m in 0..=last {
        match points.get(&m) {
            Some(v) => {
                if blanks > 0 {
                    out.push(format!("_x{blanks}"));
                    blanks = 0;
                }
                out.push(v.clone());
            }
            None => blanks += 1,
        }
    }
    if blanks > 0 {
        out.push(format!("_x{blanks}"));
    }
    out.join(" ")
}

/// The rule files, and their groups recording first (as the Prometheus rule manager
/// runs them each step: alerts read the same step's recorded series).
fn rule_files() -> (Vec<PathBuf>, Vec<String>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules_dir())
        .expect("prometheus/rules")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    let mut groups: Vec<String> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("rule file");
        groups.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("  - name: "))
                .map(|n| n.trim().to_string()),
        );
    }
    groups.sort_by_key(|g| g.ends_with("-alerts"));
    (files, groups)
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_incident_alert_fires_and_resolves_in_prometheus_rules() {
    let begun = Instant::now();
    let promtool = tool("PROMTOOL", "promtool");
    let dir = tempdir();
    let started: Timestamp = STARTED.parse().unwrap();
    let s = started.as_second();
    let options = Options {
        listen: ListenAddr::parse("127.0.0.1:0").unwrap(),
        seed: simulate::DEFAULT_SEED,
        history: Duration::from_secs(8 * DAY as u64),
        write_config: None,
        faults: 0.0,
        daily_budget: None,
    };
    let plan = simulate::plan(&options, started).expect("plan");
    assert_eq!(plan.started, started);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = simulate::base_url(listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(plan.sim.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    let config = dir.path().join("sim.yaml");
    for op in &plan.operations {
        let token = simulate::token_file(&config, op.name);
        std::fs::write(&token, &op.token).expect("token");
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod token");
    }
    let yaml = simulate::config_yaml(&config, &plan.operations, &url, &options);

    let origin = s - 7 * DAY - BEFORE;
    let last = (s + AFTER - origin) / MIN;
    let mut series = BTreeMap::new();
    for d in (0..=7).rev() {
        let at = s - d * DAY;
        let to = if d == 0 { s } else { at + AFTER };
        let om = backfill(dir.path(), &yaml, "5m", at - BEFORE, to).await;
        samples(&om, None, origin, &mut series);
    }
    let om = backfill(dir.path(), &yaml, "1m", s, s + AFTER).await;
    samples(&om, Some(LIVE), origin, &mut series);
    let _ = stop.send(());
    let _ = served.await;
    for op in &plan.operations {
        let up: BTreeMap<i64, String> = ((s - origin) / MIN..=last)
            .map(|m| (m, "1".to_string()))
            .collect();
        series.insert(
            format!("wolkvox_up{{{LIVE},operation=\"{}\"}}", op.name),
            up,
        );
    }
    let backfilled = begun.elapsed();

    // The test file: the ALERTS of the IVR alerts at every minute checked.
    let (files, groups) = rule_files();
    let mut t = String::from("rule_files:\n");
    for f in &files {
        t.push_str(&format!("  - {}\n", quoted(&f.display().to_string())));
    }
    t.push_str("evaluation_interval: 1m\ngroup_eval_order:\n");
    for g in &groups {
        t.push_str(&format!("  - {}\n", quoted(g)));
    }
    t.push_str(&format!(
        "tests:\n  - name: {}\n    interval: 1m\n    input_series:\n",
        quoted(&format!("simulate started at {STARTED}"))
    ));
    for (name, points) in &series {
        t.push_str(&format!(
            "      - series: {}\n        values: '{}'\n",
            quoted(name),
            values(points, last)
        ));
    }
    t.push_str("    promql_expr_test:\n");
    let at_start = (s - origin) / MIN;
    for m in FROM_MIN..=TO_MIN {
        t.push_str(&format!(
            "      - expr: 'ALERTS{{alertname=~\"WolkvoxIVR.*\"}}'\n        eval_time: {}m\n        exp_samples:",
            at_start + m
        ));
        let expected: Vec<String> = EXPECTED
            .iter()
            .filter_map(|e| e.state(m).map(|state| (e, state)))
            .map(|(e, state)| {
                format!(
                    "\n          - labels: {}\n            value: 1",
                    quoted(&format!("ALERTS{{{},alertstate=\"{state}\"}}", e.labels))
                )
            })
            .collect();
        if expected.is_empty() {
            t.push_str(" []\n");
        } else {
            t.push_str(&expected.concat());
            t.push('\n');
        }
    }
    let test_file = dir.path().join("start_incident_test.yml");
    std::fs::write(&test_file, &t).expect("test file");

    let run = tokio::task::spawn_blocking({
        let test_file = test_file.clone();
        move || {
            Command::new(&promtool)
                .arg("test")
                .arg("rules")
                .arg(&test_file)
                .output()
        }
    })
    .await
    .unwrap()
    .expect("promtool test rules");
    let said = String::from_utf8_lossy(&run.stdout);
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        run.status.success(),
        "promtool test rules on the simulator's start ({STARTED}): the alerts are not what \
         EXPECTED says ({}):\n{}\n{}",
        run.status,
        lines[..lines.len().min(200)].join("\n"),
        String::from_utf8_lossy(&run.stderr)
    );

    // A Prometheus started at the start: the routing point alert pending at its first
    // evaluation, firing 10 minutes later, resolved after the incident ends.
    let incident_end = (start_incident_end(started) - s) / MIN;
    let [rp, op] = &EXPECTED;
    assert!(
        rp.pending <= 0 && rp.resolved > incident_end.max(10),
        "{}",
        rp.labels
    );
    assert!(
        op.pending >= 0 && op.resolved > incident_end,
        "{}",
        op.labels
    );
    eprintln!(
        "start incident (promtool test rules on the simulator's data, {} series, simulate \
         started at {STARTED}): WolkvoxIVRRoutingPointHangupRateAboveBaseline (acme, rp_id \
         1001) holds from {:+} min, so a Prometheus started then has it pending at its first \
         evaluation, firing at +10 min, resolved at +{} min ({} min after the incident ended \
         at +{incident_end} min); WolkvoxIVRHangupRateAboveBaseline (acme) pending at +{} \
         min, firing at +{} min, resolved at +{} min; no other IVR alert from {FROM_MIN:+} to \
         +{TO_MIN} min. Data in {backfilled:?}, total {:?}",
        series.len(),
        rp.pending,
        rp.resolved,
        rp.resolved - incident_end,
        op.pending,
        op.pending + 10,
        op.resolved,
        begun.elapsed()
    );
}

fn start_incident_end(started: Timestamp) -> i64 {
    wolkvox_exporter::simulator::incidents::start_incident(started)
        .end
        .as_second()
}
