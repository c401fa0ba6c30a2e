//! `wolkvox-exporter simulate` from outside: the binary serving the simulated Wolkvox,
//! its `--write-config`, and `check`, `backfill` and the exporter run against it, with
//! their outputs compared to ground truth from the same simulator rebuilt in-process
//! (`simulate::plan` with the same options and start minute gives the same rows).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::cli::ListenAddr;
use wolkvox_exporter::simulate::{self, Options, Plan};

use crate::helpers::{BIN, Exporter, tempdir};

/// The binary's `simulate` on a free loopback port, with `args`; waits for its
/// "listening" line.
fn spawn(args: &[&str]) -> Exporter {
    Exporter::spawn(&[&["simulate", "--web.listen-address", "127.0.0.1:0"], args].concat())
}

/// The start minute the running simulator logged.
fn started(sim: &Exporter) -> Timestamp {
    let log = sim.log();
    let field = log
        .split(" started=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no started= in the log:\n{log}"));
    field.parse().expect("started= is an instant")
}

/// The in-process twin of a `simulate` run with these flags.
fn twin(seed: u64, history: Duration, faults: f64, budget: Option<u32>, at: Timestamp) -> Plan {
    let options = Options {
        listen: ListenAddr::parse("127.0.0.1:0").unwrap(),
        seed,
        history,
        write_config: None,
        faults,
        daily_budget: budget,
    };
    simulate::plan(&options, at).expect("plan")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("WOLKVOX_EXPORTER_CONFIG")
        .output()
        .expect("run binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The wall-clock time of an instant in operation `op`'s zone.
fn local(plan: &Plan, op: usize, t: Timestamp) -> DateTime {
    plan.operations[op].zone.to_datetime(t)
}

/// The last value of a series in OpenMetrics text (`name{labels}` exactly).
fn last_sample(om: &str, series: &str) -> Option<f64> {
    om.lines()
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|v| v.parse().ok())
        .next_back()
}

/// Waits for the start of a fresh second, so a short command runs inside one.
async fn at_second_start() {
    let now = Timestamp::now();
    let into = now.subsec_nanosecond();
    tokio::time::sleep(Duration::from_nanos(
        (1_000_000_000 - into) as u64 + 20_000_000,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_config_then_check_and_backfill_give_exact_answers() {
    let dir = tempdir();
    let cfg = dir.path().join("sim.yaml");
    let cfg_s = cfg.to_str().unwrap();
    let mut sim = spawn(&["--write-config", cfg_s, "--faults", "0", "--seed", "42"]);
    let plan = twin(
        42,
        Duration::from_secs(8 * 86_400),
        0.0,
        Some(10_000),
        started(&sim),
    );
    let d = dir.path().display();

    // The config, exactly; the tokens beside it, readable by the owner only.
    let port = sim.addr.port();
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        format!(
            "# Written by `wolkvox-exporter simulate --seed 42 --history 8days`: an exporter config\n\
             # for the simulated Wolkvox at http://127.0.0.1:{port}/ (it accepts the tokens in the files below).\n\
             operations:\n\
             \x20 - name: acme\n\
             \x20   base_url: \"http://127.0.0.1:{port}/\"\n\
             \x20   token_file: \"{d}/sim.acme.token\"\n\
             \x20   timezone: America/Bogota\n\
             \x20 - name: andina\n\
             \x20   base_url: \"http://127.0.0.1:{port}/\"\n\
             \x20   token_file: \"{d}/sim.andina.token\"\n\
             \x20   timezone: America/Santiago\n\
             poll:\n\
             \x20 interval: 15s\n\
             \x20 delay: 5s\n\
             \x20 # the simulator serves some rows up to 10 minutes late\n\
             \x20 settle: 11m\n\
             \x20 # on a first start; demo/stack.sh sets 0s, as it backfills Prometheus itself\n\
             \x20 backfill: 1h\n\
             \x20 timeout: 30s\n\
             calls:\n\
             \x20 # the options of the simulated IVR that serve a caller by themselves\n\
             \x20 self_service: {{options: [SALDO, HORARIOS]}}\n\
             state_dir: \"{d}/state\"\n"
        )
    );
    for (name, token) in [("acme", "sim42-acme"), ("andina", "sim42-andina")] {
        let path = dir.path().join(format!("sim.{name}.token"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    // `check`: one request per operation for the last 10 whole minutes (and the next 20,
    // empty in the right zone). Its answer is
    // the twin's for the same range at the same second (rows become visible by the
    // second); a run that straddles two seconds is done again.
    let mut checked = None;
    for _ in 0..5 {
        at_second_start().await;
        let t0 = Timestamp::now();
        let out = tokio::task::spawn_blocking({
            let cfg = cfg_s.to_string();
            move || run(&["check", "--config", &cfg])
        })
        .await
        .unwrap();
        let t1 = Timestamp::now();
        if t0.as_second() == t1.as_second() {
            checked = Some((t0, out));
            break;
        }
    }
    let (t, out) = checked.expect("a check within one second");
    let end = Timestamp::from_second(t.as_second().div_euclid(60) * 60).unwrap();
    let mut want = String::from("config: OK (2 operation(s))\n");
    for (i, op) in plan.operations.iter().enumerate() {
        let ini = local(&plan, i, end - SignedDuration::from_mins(10));
        let last = local(&plan, i, end - SignedDuration::from_secs(1));
        let n = plan.sim.served_at(&op.token, ini, last, None, t).len();
        assert!(n > 0, "{}", op.name);
        // The call start times in conn_id say the zone, from the same request.
        let offset = op.zone.to_offset(t).seconds();
        want.push_str(&format!(
            "{name}: OK: {n} rows in the last 10 minutes ({zone})\n\
             {name}: zone OK: the call start times in conn_id put the report's dates at UTC-{:02}:{:02}, {zone}'s offset\n",
            -offset / 3600,
            -offset / 60 % 60,
            name = op.name,
            zone = op.zone_name
        ));
    }
    assert_eq!(text(&out.stdout), want, "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));

    // `backfill` of an hour that ended an hour before the start: every row visible.
    let to = plan.started - SignedDuration::from_hours(1);
    let from = to - SignedDuration::from_hours(1);
    let om = dir.path().join("hour.om");
    let out = tokio::task::spawn_blocking({
        let (cfg, om) = (cfg_s.to_string(), om.clone());
        move || {
            run(&[
                "backfill",
                "--config",
                &cfg,
                "--from",
                &from.to_string(),
                "--to",
                &to.to_string(),
                "--output",
                om.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let om_text = std::fs::read_to_string(&om).unwrap();
    let mut total = 0;
    for op in &plan.operations {
        let truth = plan.sim.rows_between(&op.token, from, to);
        total += truth.len();
        assert_eq!(
            last_sample(
                &om_text,
                &format!("wolkvox_ivr_rows_total{{operation=\"{}\"}}", op.name)
            ),
            Some(truth.len() as f64),
            "{}",
            op.name
        );
        // Hung-up interactions by routing point, as the rows say.
        let mut hung: BTreeMap<String, u64> = BTreeMap::new();
        for r in &truth {
            let res = r.result.trim().to_lowercase().replace('_', " ");
            if res == "hung up" || res == "hungup" {
                *hung.entry(r.rp_id.clone()).or_default() += 1;
            }
        }
        for (rp, n) in hung {
            let name = &truth.iter().find(|r| r.rp_id == rp).unwrap().rp_name;
            let series = format!(
                "wolkvox_ivr_interactions_total{{operation=\"{}\",rp_id=\"{rp}\",rp_name=\"{}\",result=\"hung_up\"}}",
                op.name,
                name.replace('\\', "\\\\").replace('"', "\\\"")
            );
            assert_eq!(last_sample(&om_text, &series), Some(n as f64), "{series}");
        }
    }
    let stdout = text(&out.stdout);
    let want = format!(
        "backfill done: acme, andina ({from} to {to}), 480 windows, {total} rows counted, 2 requests \
         (0 answers at the 60000-row cap continued, 0 halved, 0 retries) in "
    );
    assert!(stdout.starts_with(&want), "{stdout}\nwanted: {want}");

    // SIGTERM: a clean exit.
    assert_eq!(
        sim.terminate(10).and_then(|s| s.code()),
        Some(0),
        "{}",
        sim.log()
    );
}

/// `backfill --operation OP` of `[from, to)` against the config `cfg`, off the async
/// workers; the output goes to `DIR/OP.om`.
async fn backfill(cfg: &Path, op: &'static str, from: Timestamp, to: Timestamp) -> Output {
    let cfg = cfg.to_path_buf();
    let om = cfg.with_file_name(format!("{op}.om"));
    tokio::task::spawn_blocking(move || {
        run(&[
            "backfill",
            "--config",
            cfg.to_str().unwrap(),
            "--operation",
            op,
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--output",
            om.to_str().unwrap(),
        ])
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_and_ranges_before_the_history_are_empty() {
    let dir = tempdir();
    let cfg = dir.path().join("sim.yaml");
    // Most report requests fail; two hours of history. The failures are drawn per
    // token from the seed: with seed 9, andina's first answers are a maintenance 403, a
    // 502 and a 503, then a slow one; acme's a 503 and a maintenance 403, then a slow one.
    let sim = spawn(&[
        "--write-config",
        cfg.to_str().unwrap(),
        "--faults",
        "0.6",
        "--history",
        "2h",
        "--seed",
        "9",
    ]);
    let plan = twin(
        9,
        Duration::from_secs(7200),
        0.6,
        Some(10_000),
        started(&sim),
    );
    // Before the history: the API's 404, no rows, no error.
    let to = plan.started - SignedDuration::from_hours(3);
    let from = to - SignedDuration::from_hours(1);
    let out = backfill(&cfg, "andina", from, to).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!(
            "backfill done: andina ({from} to {to}), 240 windows, 0 rows counted, 4 requests \
             (0 answers at the 60000-row cap continued, 0 halved, 3 retries)"
        )),
        "{stdout}"
    );
    // Inside it: retried until every row is in.
    let to = plan.started - SignedDuration::from_mins(30);
    let from = to - SignedDuration::from_mins(30);
    let out = backfill(&cfg, "acme", from, to).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let rows = plan
        .sim
        .rows_between(&plan.operations[0].token, from, to)
        .len();
    assert!(rows > 0);
    assert!(
        stdout.starts_with(&format!(
            "backfill done: acme ({from} to {to}), 120 windows, {rows} rows counted, 3 requests \
             (0 answers at the 60000-row cap continued, 0 halved, 2 retries)"
        )),
        "{stdout}"
    );
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_runs_out() {
    let dir = tempdir();
    let cfg = dir.path().join("sim.yaml");
    let sim = spawn(&[
        "--write-config",
        cfg.to_str().unwrap(),
        "--faults",
        "0",
        "--daily-budget",
        "2",
    ]);
    let to = started(&sim) - SignedDuration::from_hours(1);
    let from = to - SignedDuration::from_mins(10);
    // Two requests a token: two backfills of acme, one each; the third is refused.
    for _ in 0..2 {
        let out = backfill(&cfg, "acme", from, to).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let out = backfill(&cfg, "acme", from, to).await;
    assert_eq!(out.status.code(), Some(1));
    let last = text(&out.stderr).lines().last().unwrap_or("").to_string();
    let zone = jiff::tz::TimeZone::get("America/Bogota").unwrap();
    let fmt = |t: Timestamp| zone.to_datetime(t).strftime("%Y%m%d%H%M%S").to_string();
    assert_eq!(
        last,
        format!(
            "wolkvox-exporter: backfill failed: operation acme: the report for {} to {} \
             (America/Bogota) failed: the token's daily request budget is spent (token_limit (HTTP \
             403): TOKEN LIMIT EXCEEDED); run it again after midnight; no output was written",
            fmt(from),
            fmt(to - SignedDuration::from_secs(1))
        )
    );
    // The other token has its own budget.
    let out = backfill(&cfg, "andina", from, to).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn bad_flags_and_a_busy_port_exit_2_with_one_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    for (args, want) in [
        (
            vec!["simulate", "--history", "soon"],
            "wolkvox-exporter: simulate: --history: \"soon\" is not a duration like 8d or 36h\n"
                .to_string(),
        ),
        (
            vec!["simulate", "--faults", "2"],
            "wolkvox-exporter: simulate: --faults: 2 must be between 0 and 1\n".to_string(),
        ),
        (
            vec!["simulate", "--web.listen-address", &addr],
            format!(
                "wolkvox-exporter: simulate: --web.listen-address: cannot listen on {addr}: Address already in use (os error 98)\n"
            ),
        ),
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .env_remove("WOLKVOX_SIMULATE_LISTEN_ADDRESS")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stderr), want, "{args:?}");
    }
    // --write-config into a directory that does not exist: named, before serving.
    let out = Command::new(BIN)
        .args([
            "simulate",
            "--web.listen-address",
            "127.0.0.1:0",
            "--write-config",
        ])
        .arg(Path::new("/nonexistent-dir/sim.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(
            "wolkvox-exporter: simulate: --write-config: cannot write /nonexistent-dir/sim.yaml: No such file or directory (os error 2)\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn every_flag_reads_its_own_environment_variable() {
    let out = Command::new(BIN)
        .args(["simulate", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout);
    for var in [
        "WOLKVOX_SIMULATE_LISTEN_ADDRESS",
        "WOLKVOX_SIMULATE_SEED",
        "WOLKVOX_SIMULATE_HISTORY",
        "WOLKVOX_SIMULATE_WRITE_CONFIG",
        "WOLKVOX_SIMULATE_FAULTS",
        "WOLKVOX_SIMULATE_DAILY_BUDGET",
    ] {
        assert!(
            help.contains(var),
            "{var} missing from simulate --help:\n{help}"
        );
    }
    // The exporter's own listen variable does not move the simulator.
    let out = Command::new(BIN)
        .args(["simulate", "--history", "soon"])
        .env("WOLKVOX_EXPORTER_LISTEN_ADDRESS", "nowhere")
        .env("WOLKVOX_SIMULATE_HISTORY", "1h")
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stderr),
        "wolkvox-exporter: simulate: --history: \"soon\" is not a duration like 8d or 36h\n"
    );
    let out = Command::new(BIN)
        .args(["simulate"])
        .env("WOLKVOX_SIMULATE_LISTEN_ADDRESS", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("wolkvox-exporter: --web.listen-address: \"nowhere\" is not an address"),
        "{}",
        text(&out.stderr)
    );
    // `check` and `backfill` no longer list the exporter's listen and web flags.
    for sub in ["check", "backfill"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        let help = text(&out.stdout);
        assert!(
            !help.contains("--web.listen-address") && !help.contains("--web.config.file"),
            "{sub} --help:\n{help}"
        );
    }
}

/// The exporter, run with the written config, polls the simulator: every operation up,
/// and its row count between what had to be in by its watermark (rows old enough that
/// none can still be late) and everything dated before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_polls_it_with_the_written_config() {
    let dir = tempdir();
    let cfg = dir.path().join("sim.yaml");
    let sim = spawn(&["--write-config", cfg.to_str().unwrap(), "--faults", "0"]);
    let plan = twin(
        42,
        Duration::from_secs(8 * 86_400),
        0.0,
        Some(10_000),
        started(&sim),
    );
    let begun = Timestamp::now();
    let exporter = Exporter::spawn(&["--config", cfg.to_str().unwrap()]);
    let s = exporter
        .wait_for(60, "both operations polled", |s| {
            ["acme", "andina"]
                .iter()
                .all(|op| s.sum("wolkvox_up", &[("operation", op)]) == 1.0)
        })
        .await;
    for op in &plan.operations {
        let labels = [("operation", op.name)];
        let rows = s.sum("wolkvox_ivr_rows_total", &labels) as usize;
        let watermark = s.sum("wolkvox_last_window_end_timestamp_seconds", &labels) as i64;
        let watermark = Timestamp::from_second(watermark).unwrap();
        // The first cycle went back `poll.backfill` (1h) from the start, on a 15 s window.
        let hour = SignedDuration::from_hours(1);
        let window = SignedDuration::from_secs(15);
        let surely = plan.sim.rows_between(
            &op.token,
            begun - hour + window,
            watermark - SignedDuration::from_secs(wolkvox_exporter::simulator::MAX_LATENESS_SECS),
        );
        let at_most = plan
            .sim
            .rows_between(&op.token, begun - hour - window, watermark);
        assert!(
            surely.len() <= rows && rows <= at_most.len(),
            "{}: {rows} rows, not within {}..={}",
            op.name,
            surely.len(),
            at_most.len()
        );
        assert!(rows > 100, "{}: {rows}", op.name);
    }
    drop(exporter);
    drop(sim);
}
