//! A first start with a whole day of history in the first range: the release binary
//! against the in-process simulator, one operation with 200 routing points and
//! `poll.backfill: 1d`. Measures the exporter process's peak resident memory and CPU
//! for the catch-up, the requests it took, and the plain `serde_json` decode of the same
//! answers for comparison. With `--kill-after K`, it `kill -9`s the exporter once K parts
//! are committed, restarts it, and counts the requests the restart needs.
//!
//! ```sh
//! cargo build --release && cargo run --release --example catch_up -- ROWS [--kill-after K]
//! ```
//!
//! Only the exporter's own process is measured (`/proc/PID/stat`, `/proc/PID/status`).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use wolkvox_exporter::simulator::{RequestRecord, SimRow, Simulator};

mod common;
use common::{
    clock_ticks, cpu_split, get_with, metric_sum, mib, sample, serve_simulator, start_exporter,
    terminate,
};

const ZONE: &str = "America/Bogota";
const ROUTING_POINTS: usize = 200;

fn write_config(dir: &Path, sim: &str) -> Result<PathBuf, String> {
    let token = dir.join("acme.token");
    std::fs::write(&token, "tok").map_err(|e| e.to_string())?;
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let y = format!(
        "operations:\n  - name: acme\n    base_url: \"{sim}\"\n    token_file: {}\n    timezone: {ZONE}\npoll: {{backfill: 1d}}\nstate_dir: {}\n",
        token.display(),
        dir.join("state").display()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, y).map_err(|e| e.to_string())?;
    Ok(path)
}

/// `n` rows spread evenly over `[from, to)`: 200 routing points, a few options each,
/// both results, durations in seconds.
fn rows(zone: &TimeZone, from: Timestamp, to: Timestamp, n: usize) -> Vec<SimRow> {
    let span = to.duration_since(from).as_millis();
    let opts = ["1", "2", "3", "PULSE", "AGENTE", "BUZON", ""];
    (0..n)
        .map(|i| {
            let at = from + SignedDuration::from_millis((i as i128 * span / n as i128) as i64);
            let rp = i % ROUTING_POINTS;
            let opt = opts[(i / ROUTING_POINTS) % opts.len()];
            SimRow::new(
                zone.to_datetime(at),
                &format!("{}", 1000 + rp),
                &format!("Menú {rp}"),
                opt,
                if opt == "AGENTE" { "3001" } else { "" },
                if i % 5 == 0 { "hung up" } else { "ok" },
                &format!("{}", i % 300),
                &format!("c{i}"),
            )
        })
        .collect()
}

fn report_requests(sim: &Simulator) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path_api == "diagram_1")
        .collect()
}

#[allow(dead_code)] // read by serde, never by us
#[derive(Deserialize)]
struct PlainRow {
    rp_id: String,
    rp_name: String,
    cod_opc_menu: String,
    dn_transfer: String,
    date: String,
    result: String,
    ani: String,
    time: String,
    customer_id: String,
    conn_id: String,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct PlainEnvelope {
    code: i64,
    msg: String,
    data: Vec<PlainRow>,
}

/// Asks the simulator the same queries again and times a plain decode of each body.
async fn plain_decode(sim_url: &str, reqs: &[RequestRecord]) -> Result<(f64, usize), String> {
    let client = reqwest::Client::new();
    let (mut secs, mut rows, mut rows_before) = (0.0, 0, 0);
    for r in reqs.iter().filter(|r| r.status == 200) {
        let (Some(ini), Some(end)) = (&r.date_ini, &r.date_end) else {
            continue;
        };
        let url = format!(
            "{sim_url}/api/v2/reports_manager.php?api=diagram_1&date_ini={ini}&date_end={end}"
        );
        let body = client
            .get(&url)
            .header("wolkvox-token", "tok")
            .send()
            .await
            .map_err(|e| e.to_string())?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        // The best of three: a steadier floor on a busy machine.
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let env: PlainEnvelope = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            best = best.min(t.elapsed().as_secs_f64());
            if rows_before == rows {
                rows += env.data.len();
            }
        }
        secs += best;
        rows_before = rows;
    }
    Ok((secs, rows))
}

/// Waits until the exporter has counted `rows` rows; returns the last scrape and the
/// peak resident memory seen. `stop_after_parts`: return early once the watermark moved
/// that many times.
async fn wait_done(
    addr: &str,
    pid: u32,
    state_file: &Path,
    rows: f64,
    stop_after_parts: Option<usize>,
) -> Result<(String, u64, usize, Vec<u64>), String> {
    let started = Instant::now();
    let (mut peak, mut parts, mut last_mark) = (0u64, 0usize, -1.0);
    // The high-water mark as each part is committed: flat when memory is bounded by a
    // part, rising when something grows with the range.
    let mut by_part = Vec::new();
    // The measurement should cost the exporter little of the CPU it measures: memory
    // is read from /proc, and /metrics (plain text) is scraped only when the state file
    // changed (a part was committed), or once a second.
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .map_err(|e| e.to_string())?;
    let written = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let (mut seen, mut scraped, mut again) = (None, Instant::now(), true);
    let mut text = String::new();
    loop {
        let now_written = written(state_file);
        // The file is saved just before the metrics move: look again once after a
        // change too.
        let changed = now_written != seen;
        if changed || again || scraped.elapsed() >= Duration::from_secs(1) {
            again = changed;
            seen = now_written;
            scraped = Instant::now();
            text = get_with(&client, &format!("http://{addr}/metrics"))
                .await?
                .1;
        }
        let mark = metric_sum(&text, "wolkvox_last_window_end_timestamp_seconds");
        if mark != last_mark {
            if last_mark >= 0.0 {
                parts += 1;
            }
            last_mark = mark;
            if let Ok((_, _, hwm)) = sample(pid, 1.0) {
                by_part.push(hwm);
            }
        }
        if let Ok((_, _, hwm)) = sample(pid, 1.0) {
            peak = peak.max(hwm);
        }
        let done = metric_sum(&text, "wolkvox_ivr_rows_total") >= rows
            && metric_sum(&text, "wolkvox_up") == 1.0;
        if done || stop_after_parts.is_some_and(|k| parts >= k) {
            return Ok((text, peak, parts, by_part));
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err("the catch-up took over 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("usage: catch_up ROWS [--kill-after K]")?;
    let kill_after: Option<usize> = args
        .iter()
        .position(|a| a == "--kill-after")
        .and_then(|i| args.get(i + 1))
        .and_then(|k| k.parse().ok());
    let bin = std::env::var_os("WOLKVOX_EXPORTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/wolkvox-exporter"));

    let zone = TimeZone::get(ZONE).map_err(|e| e.to_string())?;
    let sim = Simulator::new();
    sim.add_tenant("tok", zone.clone());
    // Inside the first range: from the origin (a day back, aligned) to before the delay.
    let now = Timestamp::now();
    let from = now - SignedDuration::from_hours(23);
    let to = now - SignedDuration::from_mins(15);
    sim.add_rows("tok", rows(&zone, from, to, n));
    let (sim_url, stop_tx) = serve_simulator(&sim).await?;

    let dir = std::env::temp_dir().join(format!("wolkvox-catch-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = write_config(&dir, &sim_url)?;
    let ticks = clock_ticks();
    let quiet: [&str; 0] = [];

    let started = Instant::now();
    let mut exp = start_exporter(&bin, &config, &quiet)?;
    let pid = exp.child.id();
    let state_file = dir.join("state").join("acme.json");
    let (text, peak, parts, by_part) =
        wait_done(&exp.addr, pid, &state_file, n as f64, kill_after).await?;
    let (user, system) = cpu_split(pid, ticks)?;
    let cpu = user + system;
    let first_requests = report_requests(&sim);
    if let Some(k) = kill_after {
        let _ = exp.child.kill(); // SIGKILL
        let _ = exp.child.wait();
        let committed = metric_sum(&text, "wolkvox_ivr_rows_total");
        println!(
            "kill -9 after {k} committed parts: {} report requests sent, {committed} rows committed",
            first_requests.len()
        );
        let mut again = start_exporter(&bin, &config, &quiet)?;
        let (text, peak2, parts2, _) =
            wait_done(&again.addr, again.child.id(), &state_file, n as f64, None).await?;
        let all = report_requests(&sim);
        println!(
            "after the restart: {} report requests, {parts2} parts; rows {} (duplicates {}), peak RSS {:.1} MiB",
            all.len() - first_requests.len(),
            metric_sum(&text, "wolkvox_ivr_rows_total"),
            metric_sum(&text, "wolkvox_ivr_rows_duplicate_total"),
            mib(peak2)
        );
        terminate(&mut again);
    } else {
        let elapsed = started.elapsed();
        let (plain, plain_rows) = plain_decode(&sim_url, &first_requests).await?;
        let state_bytes = std::fs::metadata(&state_file).map(|m| m.len()).unwrap_or(0);
        println!(
            "{n} rows: {} report requests, {parts} parts seen, rows counted {}, identities remembered {}, peak RSS {:.1} MiB, exporter CPU {cpu:.2} s (user {user:.2}, system {system:.2}), {:.1} s wall",
            first_requests.len(),
            metric_sum(&text, "wolkvox_ivr_rows_total"),
            metric_sum(&text, "wolkvox_ledger_rows"),
            mib(peak),
            elapsed.as_secs_f64()
        );
        let marks: Vec<String> = by_part.iter().map(|b| format!("{:.0}", mib(*b))).collect();
        println!(
            "peak RSS (MiB) as each part committed: {}; state file {:.1} MiB",
            marks.join(" "),
            mib(state_bytes)
        );
        println!(
            "plain serde_json decode of the same {} answers ({plain_rows} rows): {plain:.2} s; exporter CPU / plain decode = {:.2}",
            first_requests.iter().filter(|r| r.status == 200).count(),
            cpu / plain
        );
    }
    if kill_after.is_none() {
        terminate(&mut exp);
    }
    let _ = stop_tx.send(());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("catch_up: {e}");
            ExitCode::FAILURE
        }
    }
}
