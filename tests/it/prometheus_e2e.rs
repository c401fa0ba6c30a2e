//! End to end with a real Prometheus: the exporter in `--demo` mode scraped every second,
//! the project's rule files loaded, a week of the demo's traffic backfilled, and every
//! query of every dashboard run through Prometheus's HTTP API with the template variables
//! filled in the way Grafana fills them (`dashboards.rs`). Then: every rule healthy, every
//! recorded series present, `promtool check metrics` clean on the exporter's `/metrics`,
//! and one of the demo's hang-up incidents visible where the simulator's schedule puts it.
//!
//! History. The 7-day baselines (`offset 1d` .. `offset 7d`) and the "usual" series need a
//! week of data, so the test gives Prometheus one instead of accepting empty panels: the
//! demo's own simulator (`demo::start`, same tenants, seeds and names as `--demo`) is run
//! in-process, `wolkvox-exporter backfill` writes its traffic as OpenMetrics, and
//! `promtool tsdb create-blocks-from openmetrics` turns that into blocks in Prometheus's
//! data directory before Prometheus starts. Only what the rules read is backfilled, to
//! keep the test short: the last 25 hours in one piece (the 1-day baseline, the last hour
//! of the `$__range` panels, and a full day of incidents to choose from) and, for 2 to 7
//! days ago, the same hour and a bit. The backfilled series have no `job`/`instance`
//! labels, the live ones do: every query sums over them, as in a real backfilled setup.
//!
//! Needs `prometheus` and `promtool` (Debian: `apt-get install prometheus`) and `python3`;
//! fails, rather than skips, when one is missing. `PROMETHEUS` and `PROMTOOL` name others.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use wolkvox_exporter::simulator::Traffic;

use crate::dashboards::{self, Grafana, Totals, dashboards, run_dashboards};
use crate::helpers::{BIN, Exporter, tempdir};
use crate::prom::{Prometheus, assert_success, tool};

/// Prometheus's scrape and rule evaluation interval, seconds.
const SCRAPE_SECS: u64 = 1;
/// The backfill's window: one sample per 5 minutes resolves a 10-minute incident and
/// keeps the blocks small; every `[1h]` and `[5m]` range the rules use still holds at
/// least two samples.
const STEP: i64 = 300;
/// The dashboards as Grafana runs them here: "Last 1 hour"; `$__interval` without a
/// panel minimum is the range over the data points (about the panel width, 1000 px
/// here), 3.6 s, rounded by Grafana's table to 5 s.
const GRAFANA: Grafana = Grafana {
    scrape_secs: SCRAPE_SECS,
    range_secs: 3600,
    auto_interval_secs: 5,
};
/// Seeds of the demo's tenants, in the order of `demo::start`'s operations: `42 + i` in
/// src/demo.rs. Only the incident schedule needs them; if they drift, the incident check
/// fails (the schedule no longer matches the data), it does not pass silently.
const DEMO_SEED_BASE: u64 = 42;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command off the async workers: the in-process simulator the backfill talks to
/// is served by this test's runtime and must keep running meanwhile.
async fn output(what: &str, mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("timestamp")
}

fn rfc3339(secs: i64) -> String {
    at(secs).to_string()
}

fn floor_step(secs: i64) -> i64 {
    secs.div_euclid(STEP) * STEP
}

fn ceil_step(secs: i64) -> i64 {
    -(-secs).div_euclid(STEP) * STEP
}

impl Prometheus {
    /// Every rule of every group, as `/api/v1/rules` reports it.
    async fn rules(&self) -> Vec<Rule> {
        let data = self.api("/api/v1/rules", &[]).await;
        let mut out = Vec::new();
        for g in data["groups"].as_array().expect("groups") {
            for r in g["rules"].as_array().expect("rules") {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                out.push(Rule {
                    group: g["name"].as_str().unwrap_or_default().to_string(),
                    name: s("name"),
                    health: s("health"),
                    last_error: s("lastError"),
                    kind: s("type"),
                });
            }
        }
        out
    }
}

struct Rule {
    group: String,
    name: String,
    /// `ok`, `err`, or `unknown` before its first evaluation.
    health: String,
    last_error: String,
    /// `recording` or `alerting`.
    kind: String,
}

// ------------------------------------------------------------ the test

/// Backfills `[from, to)` of the demo's traffic and turns it into blocks in `data`.
async fn backfill(promtool: &Path, config: &Path, dir: &Path, data: &Path, from: i64, to: i64) {
    let out = dir.join(format!("history-{from}.om"));
    let what = format!("backfill {} .. {}", rfc3339(from), rfc3339(to));
    // The demo's simulator answers a few requests with a maintenance refusal, as Wolkvox
    // does during backups; the backfill gives up on those at once (it retries only
    // timeouts, network, 5xx, decode and concurrency errors), so the run is repeated.
    for attempt in 1.. {
        let mut cmd = Command::new(BIN);
        cmd.arg("backfill")
            .arg("--config")
            .arg(config)
            .args(["--from", &rfc3339(from), "--to", &rfc3339(to), "--output"])
            .arg(&out);
        let run = output(&what, cmd).await;
        if run.status.success() {
            break;
        }
        if attempt >= 4 || !String::from_utf8_lossy(&run.stderr).contains("maintenance") {
            assert_success(&what, &run);
        }
        eprintln!("{what}: maintenance answer, run again");
    }
    let mut cmd = Command::new(promtool);
    // One block per day at most: promtool reads the file once per block.
    cmd.args([
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--max-block-duration=24h",
    ])
    .arg(&out)
    .arg(data);
    let what = "promtool tsdb create-blocks-from openmetrics";
    assert_success(what, &output(what, cmd).await);
    let _ = std::fs::remove_file(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_demo_evaluates_the_rules_and_fills_every_dashboard_query() {
    let started = Instant::now();
    let promtool = tool("PROMTOOL", "promtool");
    let prometheus = tool("PROMETHEUS", "prometheus");
    let dashes = dashboards();
    let dir = tempdir();
    let data = dir.path().join("data");

    // The live part: the real binary in demo mode. It starts first: its own hour of
    // history is in before Prometheus's first scrape.
    let state = dir.path().join("state");
    let exporter = Exporter::spawn(&["--demo", "--state.dir", state.to_str().expect("utf-8")]);

    // The history: the demo's simulator, in-process, reached by the backfill by URL.
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (sim_addr, demo) = wolkvox_exporter::demo::start(dir.path().join("sim-state"), stop_rx)
        .await
        .expect("demo simulator");
    let mut yaml = String::from("operations:\n");
    for op in &demo.operations {
        let token = dir.path().join(format!("{}.token", op.name));
        std::fs::write(&token, op.token.expose()).expect("token file");
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod token");
        yaml.push_str(&format!(
            "  - name: {}\n    base_url: \"http://{sim_addr}\"\n    token_file: {}\n    timezone: {}\n",
            op.name,
            token.display(),
            op.zone_name
        ));
    }
    yaml.push_str(&format!(
        "poll: {{interval: {STEP}s, timeout: 30s}}\nstate_dir: {}\n",
        dir.path().join("backfill-state").display()
    ));
    let bf_config = dir.path().join("backfill.yaml");
    std::fs::write(&bf_config, yaml).expect("backfill config");

    // `end`: the last whole window before now. The rules evaluated during the test (up to
    // 15 minutes after `end`) read `[1h] offset Nd`: each day's piece covers that.
    let now = Timestamp::now().as_second();
    let end = floor_step(now);
    let day = 86_400;
    let recent_from = end - day - 70 * 60;
    backfill(&promtool, &bf_config, dir.path(), &data, recent_from, end).await;
    for d in 2..=7 {
        let mid = end - d * day;
        backfill(
            &promtool,
            &bf_config,
            dir.path(),
            &data,
            mid - 70 * 60,
            mid + 15 * 60,
        )
        .await;
    }
    let backfilled = started.elapsed();

    let rules: Vec<String> = {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("prometheus").join("rules"))
            .expect("prometheus/rules")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| format!("  - {}\n", p.display()))
            .collect()
    };
    assert!(!rules.is_empty(), "no rule file in prometheus/rules");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {SCRAPE_SECS}s\n  scrape_timeout: {SCRAPE_SECS}s\n  evaluation_interval: {SCRAPE_SECS}s\n\
             rule_files:\n{}\
             scrape_configs:\n  - job_name: wolkvox\n    static_configs:\n      - targets: [\"{}\"]\n",
            rules.concat(),
            exporter.addr
        ),
    )
    .expect("prometheus.yml");
    // The backfilled blocks are up to 8 days old; say so rather than rely on the 15-day
    // default.
    let prom = Prometheus::start(&prometheus, &config, &data, dir.path(), "30d").await;

    // Wait until every dashboard query has data, every rule has been evaluated without
    // error and every recorded series exists. Polled: under load this takes longer.
    let deadline = Instant::now() + Duration::from_secs(150);
    let (ran, rule_list) = loop {
        let rule_list = prom.rules().await;
        let broken: Vec<String> = rule_list
            .iter()
            .filter(|r| r.health == "err" || !r.last_error.is_empty())
            .map(|r| format!("{} / {}: {} {}", r.group, r.name, r.health, r.last_error))
            .collect();
        assert!(broken.is_empty(), "rules failing:\n{}", broken.join("\n"));
        let mut missing: Vec<String> = rule_list
            .iter()
            .filter(|r| r.health != "ok")
            .map(|r| {
                format!(
                    "rule {} / {}: health {:?}, not evaluated yet",
                    r.group, r.name, r.health
                )
            })
            .collect();
        let recorded: BTreeSet<&str> = rule_list
            .iter()
            .filter(|r| r.kind == "recording")
            .map(|r| r.name.as_str())
            .collect();
        for name in &recorded {
            if prom.query(name, None).await.is_empty() {
                missing.push(format!("recorded series {name}: none"));
            }
        }
        let ran = run_dashboards(&prom, GRAFANA, &dashes).await;
        missing.extend(dashboards::empty(&ran));
        if missing.is_empty() {
            break (ran, rule_list);
        }
        if Instant::now() > deadline {
            panic!(
                "after {:?}, still without data:\n{}\n--- prometheus log (tail) ---\n{}\n--- exporter log (tail) ---\n{}",
                started.elapsed(),
                missing.join("\n"),
                tail(&prom.log(), 30),
                tail(&exporter.log(), 30)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let waited = started.elapsed();
    let up = prom.query("up{job=\"wolkvox\"} == 1", None).await;
    assert_eq!(up.len(), 1, "the exporter is not up in Prometheus: {up:?}");

    // The exporter's /metrics, checked by promtool's linter: any line it prints is a
    // finding (it prints nothing when the exposition is clean).
    let (status, body) = exporter.get("/metrics").await;
    assert_eq!(status, 200);
    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool check metrics");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write /metrics to promtool");
    let lint = lint.wait_with_output().expect("promtool check metrics");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        lint.status.success() && said.trim().is_empty(),
        "promtool check metrics on the exporter's /metrics ({}):\n{said}",
        lint.status
    );

    let incident = incident(&prom, &demo.operations, recent_from, end).await;

    let t = Totals::of(&dashes, &ran);
    eprintln!(
        "prometheus e2e: {} dashboards, {} panels, {} queries; {} query runs \
         (variables All / one value / two values) and {} variable queries, all \
         with data; {} rules ({} recording) healthy, every recorded series present; promtool \
         check metrics clean; history backfilled in {backfilled:?}, data complete after \
         {waited:?}, total {:?}\n{incident}",
        t.dashboards,
        t.panels,
        t.queries,
        t.query_runs,
        t.variable_runs,
        rule_list.len(),
        rule_list.iter().filter(|r| r.kind == "recording").count(),
        started.elapsed()
    );
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One of the demo's hang-up incidents, found by the simulator's schedule in the
/// backfilled day and looked at through Prometheus: the one most visible in the data
/// (largest jump of the routing point's hang-up share, weighted by its calls). Asserts
/// that it shows, and describes it.
async fn incident(
    prom: &Prometheus,
    ops: &[wolkvox_exporter::config::Operation],
    from: i64,
    to: i64,
) -> String {
    let ratio = |op: &str, rp: Option<&str>, window: i64| {
        let sel = match rp {
            Some(rp) => format!("operation=\"{op}\", rp_id=\"{rp}\""),
            None => format!("operation=\"{op}\""),
        };
        (
            format!(
                "sum(increase(wolkvox_ivr_interactions_total{{{sel}, result=\"hung_up\"}}[{window}s])) \
                 / (sum(increase(wolkvox_ivr_interactions_total{{{sel}}}[{window}s])) > 0)"
            ),
            format!("sum(increase(wolkvox_ivr_interactions_total{{{sel}}}[{window}s]))"),
        )
    };
    struct Seen {
        op: String,
        rp: &'static str,
        start: i64,
        end: i64,
        scheduled: f64,
        calls: f64,
        during: f64,
        before: f64,
        score: f64,
    }
    let mut best: Option<Seen> = None;
    let mut scheduled = 0;
    for (i, op) in ops.iter().enumerate() {
        let traffic = Traffic::new(DEMO_SEED_BASE + i as u64);
        // Whole incidents with an hour of data before them.
        for inc in traffic.incidents_between(at(from + 3600 + STEP), at(to - 900)) {
            scheduled += 1;
            let (start, end) = (inc.start.as_second(), inc.end.as_second());
            let (w_from, w_to) = (floor_step(start), ceil_step(end));
            let (q_ratio, q_calls) = ratio(&op.name, Some(inc.rp_id), w_to - w_from);
            let calls = prom.value(&q_calls, w_to).await.unwrap_or(0.0);
            let during = prom.value(&q_ratio, w_to).await.unwrap_or(0.0);
            let (q_before, _) = ratio(&op.name, Some(inc.rp_id), 3600);
            let before = prom.value(&q_before, w_from).await.unwrap_or(0.0);
            let score = (during - before) * calls.sqrt();
            if best.as_ref().is_none_or(|b| score > b.score) {
                best = Some(Seen {
                    op: op.name.clone(),
                    rp: inc.rp_id,
                    start,
                    end,
                    scheduled: inc.hangup_rate,
                    calls,
                    during,
                    before,
                    score,
                });
            }
        }
    }
    let b = best.unwrap_or_else(|| {
        panic!("the demo's schedule has no incident in the backfilled day ({scheduled} found)")
    });
    let (w_from, w_to) = (floor_step(b.start), ceil_step(b.end));
    assert!(
        b.calls >= 30.0 && b.during >= 0.3 && b.during - b.before >= 0.2,
        "no incident of the demo's schedule shows in Prometheus: the most visible, operation {} \
         routing point {} {}..{}, had {} calls and a hang-up share of {:.2} against {:.2} the \
         hour before (src/demo.rs seeds no longer {DEMO_SEED_BASE}+i?)",
        b.op,
        b.rp,
        at(b.start),
        at(b.end),
        b.calls,
        b.during,
        b.before
    );
    // The routing point's share in 5-minute steps around it: when it rises, when it falls.
    let (q5, _) = ratio(&b.op, Some(b.rp), STEP);
    let mut steps: Vec<(i64, Option<f64>)> = Vec::new();
    let mut t = w_from - 30 * 60 + STEP;
    while t <= w_to + 30 * 60 {
        steps.push((t, prom.value(&q5, t).await));
        t += STEP;
    }
    let peak = steps
        .iter()
        .filter_map(|(t, v)| v.map(|v| (v, *t)))
        .fold((0.0, 0), |m, x| if x.0 > m.0 { x } else { m });
    let shown: Vec<String> = steps
        .iter()
        .map(|(t, v)| {
            let hm = &at(*t).to_string()[11..16];
            v.map_or(format!("{hm} -"), |v| format!("{hm} {:.0}%", v * 100.0))
        })
        .collect();
    assert!(
        peak.1 > w_from && peak.1 <= w_to,
        "routing point {} of {}: the highest 5-minute hang-up share ({:.2} at {}) is outside \
         the incident {}..{}: {}",
        b.rp,
        b.op,
        peak.0,
        at(peak.1),
        at(b.start),
        at(b.end),
        shown.join(", ")
    );
    // Windows (ending at) whose share is clearly up: how long it looks on a 5m graph.
    let elevated = steps
        .iter()
        .filter(|(_, v)| v.is_some_and(|v| v >= b.before + 0.2))
        .count();
    let (q_op, q_op_calls) = ratio(&b.op, None, w_to - w_from);
    let op_during = prom.value(&q_op, w_to).await.unwrap_or(f64::NAN);
    let op_calls = prom.value(&q_op_calls, w_to).await.unwrap_or(f64::NAN);
    let (q_op_before, _) = ratio(&b.op, None, 3600);
    let op_before = prom.value(&q_op_before, w_from).await.unwrap_or(f64::NAN);
    // What the alert rules' windows make of it: the routing point's share over the hour
    // ending with the incident (the 1h rules) and the operation's over 15 minutes.
    let (q_rp_1h, _) = ratio(&b.op, Some(b.rp), 3600);
    let rp_1h = prom.value(&q_rp_1h, w_to).await.unwrap_or(f64::NAN);
    let (q_op_15m, _) = ratio(&b.op, None, 900);
    let op_15m = prom.value(&q_op_15m, w_to).await.unwrap_or(f64::NAN);
    let rp_name = prom
        .query(
            &format!(
                "max by (rp_name) (last_over_time(wolkvox_ivr_interactions_total{{operation=\"{}\", rp_id=\"{}\"}}[1h]))",
                b.op, b.rp
            ),
            Some(w_to),
        )
        .await
        .first()
        .and_then(|(l, _)| l.get("rp_name").cloned())
        .unwrap_or_default();
    format!(
        "incident ({scheduled} scheduled in the backfilled day): operation {}, routing point {} \
         ({rp_name}), {} to {} (10 min, scheduled hang-up probability {:.2}): {:.0} calls there, \
         {:.0}% hung up against {:.0}% in the hour before; whole operation {:.0}% of {:.0} calls \
         against {:.0}% before; 5-minute hang-up share at the routing point (UTC, window ends): \
         {} (peak {:.0}% at {}; {elevated} windows of 5 min clearly up); over the hour ending \
         with it the routing point shows {:.0}%, over 15 minutes the operation {:.0}%",
        b.op,
        b.rp,
        at(b.start),
        at(b.end),
        b.scheduled,
        b.calls,
        b.during * 100.0,
        b.before * 100.0,
        op_during * 100.0,
        op_calls,
        op_before * 100.0,
        shown.join(", "),
        peak.0 * 100.0,
        at(peak.1),
        rp_1h * 100.0,
        op_15m * 100.0
    )
}
