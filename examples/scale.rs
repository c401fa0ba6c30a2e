//! Many operations in one exporter: the release binary against one simulator with a
//! tenant per operation, measuring the exporter process's resident memory and CPU.
//!
//! ```sh
//! cargo build --release && cargo run --release --example scale -- [OPERATIONS] [SECONDS] [SHARD] [CALLS_PER_MINUTE]
//! ```
//!
//! Defaults: 200 operations, 120 seconds of steady state after every operation's first
//! cycle. Each tenant has the demo's traffic (CALLS_PER_MINUTE, default 12, at an
//! ordinary daytime hour, scaled by the time of day; several rows per call; a different
//! seed per tenant). Polling is compressed in time so a couple of
//! minutes hold many cycles: interval 10s, delay 2s, settle 2m, backfill 1h; a cycle
//! therefore re-reads about 13 windows, as the defaults (5m, 30m settle) re-read 7. CPU
//! is reported per operation and per 1,000 rows the API served, the figure that carries
//! over to other settings. `SHARD` (`I/N`, or empty) runs one shard of the same config.
//!
//! The simulator runs in this process; only the exporter's own process is measured
//! (`/proc/PID/stat` and `/proc/PID/status`).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use wolkvox_exporter::simulator::{Simulator, Traffic};

mod common;
use common::{
    clock_ticks, get, get_with, metric_sum, mib, sample, serve_simulator, start_exporter,
};

const ZONE: &str = "America/Bogota";

fn write_config(dir: &Path, sim: &str, ops: usize) -> Result<PathBuf, String> {
    let mut y = String::from("operations:\n");
    for i in 0..ops {
        let token = dir.join(format!("op{i:03}.token"));
        std::fs::write(&token, format!("tok{i}")).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        y.push_str(&format!(
            "  - name: op{i:03}\n    base_url: \"{sim}\"\n    token_file: {}\n    timezone: {ZONE}\n",
            token.display()
        ));
    }
    y.push_str("poll: {interval: 10s, delay: 2s, settle: 2m, backfill: 1h, timeout: 30s}\n");
    y.push_str(&format!("state_dir: {}\n", dir.join("state").display()));
    let path = dir.join("config.yaml");
    std::fs::write(&path, y).map_err(|e| e.to_string())?;
    Ok(path)
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ops: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(120);
    let shard = args.get(2).map(String::as_str).filter(|s| !s.is_empty());
    // The demo's dozen calls a minute at an ordinary daytime hour; the daily curve
    // scales it from 0.25x at night to 1.8x at the morning peak.
    let calls_per_minute: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(12.0);
    let bin = std::env::var_os("WOLKVOX_EXPORTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/wolkvox-exporter"));

    let sim = Simulator::new();
    let zone = TimeZone::get(ZONE).map_err(|e| e.to_string())?;
    for i in 0..ops {
        sim.add_tenant(&format!("tok{i}"), zone.clone());
        let mut traffic = Traffic::new(1000 + i as u64);
        traffic.calls_per_minute = calls_per_minute;
        sim.set_traffic(&format!("tok{i}"), traffic);
    }
    let (sim_url, stop_tx) = serve_simulator(&sim).await?;

    let dir = std::env::temp_dir().join(format!("wolkvox-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = write_config(&dir, &sim_url, ops)?;
    let ticks = clock_ticks();
    let started = Instant::now();
    let exp = start_exporter(
        &bin,
        &config,
        &shard.map_or(Vec::new(), |s| vec!["--shard", s]),
    )?;
    let pid = exp.child.id();
    let base = format!("http://{}", exp.addr);

    // The first cycle of every operation backfills an hour.
    loop {
        if let Ok((200, _)) = get(&format!("{base}/-/ready")).await {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err("not ready after 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready_after = started.elapsed();
    let (cpu0, rss0, _) = sample(pid, ticks)?;
    let rows0: usize = sim.requests().iter().map(|r| r.rows).sum();
    let reqs0 = sim.requests().len();
    println!(
        "{ops} operations{}: all ready (first cycle, 1h backfill each) after {:.1} s, {:.1} CPU s, RSS {:.1} MiB, {rows0} rows served",
        shard.map(|s| format!(" (shard {s})")).unwrap_or_default(),
        ready_after.as_secs_f64(),
        cpu0,
        mib(rss0)
    );

    let t0 = Instant::now();
    let mut max_rss = rss0;
    let mut samples = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (_, rss, _) = sample(pid, ticks)?;
        max_rss = max_rss.max(rss);
        samples += 1;
        // A line a minute: memory between polls should stay flat once the ledger
        // forgets as fast as it learns (after `settle`).
        if samples.is_multiple_of(12) {
            let (_, text) = get(&format!("{base}/metrics")).await?;
            println!(
                "t={:>5.0} s  RSS {:6.1} MiB  ledger rows {:>8}  rows counted {:>9}",
                t0.elapsed().as_secs_f64(),
                mib(rss),
                metric_sum(&text, "wolkvox_ledger_rows"),
                metric_sum(&text, "wolkvox_ivr_rows_total"),
            );
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, rss1, hwm) = sample(pid, ticks)?;
    let requests = sim.requests();
    let rows: usize = requests.iter().map(|r| r.rows).sum::<usize>() - rows0;
    let reqs = requests.len() - reqs0;

    let plain = reqwest::Client::builder()
        .no_gzip()
        .build()
        .map_err(|e| e.to_string())?;
    let scrape_started = Instant::now();
    let (status, text) = get_with(&plain, &format!("{base}/metrics")).await?;
    let scrape = scrape_started.elapsed();
    let gzip_started = Instant::now();
    get(&format!("{base}/metrics")).await?;
    let gzip = gzip_started.elapsed();
    if status != 200 {
        return Err(format!("/metrics answered {status}"));
    }
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    let up = metric_sum(&text, "wolkvox_up");
    let counted = metric_sum(&text, "wolkvox_ivr_rows_total");
    // With --shard, this instance polls only part of the configured operations.
    let polled = text
        .lines()
        .filter(|l| l.starts_with("wolkvox_up{"))
        .count()
        .max(1);
    let cpu = cpu1 - cpu0;
    let per_op = cpu / polled as f64;
    println!(
        "steady state over {wall:.0} s: {polled} operations polled, {reqs} requests, {rows} rows served ({:.0} rows a minute per operation), {:.2} CPU s ({:.1}% of one core)",
        rows as f64 / polled as f64 / (wall / 60.0),
        cpu,
        100.0 * cpu / wall
    );
    println!(
        "SUMMARY per operation: {:.1} KiB resident, {:.2} ms CPU per second of polling, {:.3} CPU s per 1000 rows served",
        rss1 as f64 / 1024.0 / polled as f64,
        1000.0 * per_op / wall,
        if rows > 0 {
            1000.0 * cpu / rows as f64
        } else {
            0.0
        }
    );
    println!(
        "SUMMARY process: RSS {:.1} MiB now, {:.1} MiB at most while sampled, peak (VmHWM) {:.1} MiB",
        mib(rss1),
        mib(max_rss),
        mib(hwm)
    );
    println!(
        "/metrics: {series} series, {} bytes, answered in {:.0} ms ({:.0} ms with gzip); wolkvox_up sum {up}, rows counted {counted}; log lines {}",
        text.len(),
        scrape.as_secs_f64() * 1000.0,
        gzip.as_secs_f64() * 1000.0,
        exp.log_lines.lock().map(|n| *n).unwrap_or(0)
    );
    drop(exp);
    let _ = stop_tx.send(());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scale: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale: {e}");
            ExitCode::FAILURE
        }
    }
}
