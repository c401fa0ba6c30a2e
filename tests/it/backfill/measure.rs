//! Not a check: how long a busy quarter takes, and how much memory, through the
//! binary and promtool.

use std::path::Path;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::prom::{assert_success, tool};

/// Not a check: a measurement. Ninety days (`MEASURE_DAYS`) of a busy operation (about
/// 120 calls a minute at daytime) through the binary with its peak memory, then through
/// promtool for each `--max-block-duration` in `MEASURE_BLOCKS` (say `24h,168h`). Run it in
/// release: `cargo test --release --test it backfill::measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_busy_days() {
    let days: i64 = std::env::var("MEASURE_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(90);
    let bench = Bench::new().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    let z = tz("America/Bogota");
    bench.tenant("busy", "America/Bogota");
    sim.sim.set_traffic(
        "busy",
        wolkvox_exporter::simulator::Traffic {
            seed: 3,
            calls_per_minute: 120.0,
            date_format: wolkvox_exporter::simulator::DateFormat::Dashed,
            incidents: true,
        },
    );
    let today = Timestamp::now().to_zoned_datetime(z.clone()).date();
    let to = today.to_zoned_datetime(z.clone()).unwrap().timestamp();
    let from = to - SignedDuration::from_hours(days * 24);
    let cfg = bench.config_file(
        &[Op {
            name: "busy",
            token: "busy",
            zone: "America/Bogota",
            extra: "",
        }],
        "interval: 5m, timeout: 60s",
    );
    let out = dir.path().join("busy.om");
    let timed = |bin: &Path| {
        if Path::new("/usr/bin/time").exists() {
            let mut c = Command::new("/usr/bin/time");
            c.arg("-f").arg("%e s wall, %M KiB peak RSS").arg(bin);
            c
        } else {
            Command::new(bin)
        }
    };
    let mut cmd = timed(Path::new(BIN));
    cmd.arg("backfill")
        .arg("--config")
        .arg(&cfg)
        .args([
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--output",
        ])
        .arg(&out);
    let run = tokio::task::spawn_blocking(move || cmd.output().expect("run backfill"))
        .await
        .unwrap();
    assert_success("backfill", &run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    eprintln!("--- stdout\n{}", String::from_utf8_lossy(&run.stdout));
    eprintln!("--- stderr ({} lines), first and last:", lines.len());
    for l in lines.iter().take(2).chain(lines.iter().rev().take(3).rev()) {
        eprintln!("{l}");
    }
    eprintln!("simulator saw {} requests", sim.report_requests().len());
    let promtool = tool("PROMTOOL", "promtool");
    let blocks = std::env::var("MEASURE_BLOCKS").unwrap_or_default();
    for b in blocks.split(',').filter(|b| !b.is_empty()) {
        let dest = dir.path().join(format!("blocks-{b}"));
        let created = timed(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(format!("--max-block-duration={b}"))
            .arg(&out)
            .arg(&dest)
            .output()
            .expect("run promtool");
        assert_success("promtool", &created);
        let err = String::from_utf8_lossy(&created.stderr);
        let n = std::fs::read_dir(&dest).unwrap().count();
        eprintln!(
            "promtool --max-block-duration={b}: {n} blocks, {}",
            err.trim()
        );
    }
}
