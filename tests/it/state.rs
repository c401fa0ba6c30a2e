//! Counters that survive restarts and crashes.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::Fault;
use wolkvox_exporter::window::wolkvox_date;

use crate::helpers::*;

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// A tiny deterministic generator for the kill schedule.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Killed with SIGKILL at many moments (before, during and after fetches and saves) and
/// restarted on the same state: in the end every counter equals what was served, and
/// no first scrape after a restart is lower than the last scrape before the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_and_doubles_nothing() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    // History, plus rows arriving over the next 25 s while the kills go on.
    let data = rows(
        &z,
        now - SignedDuration::from_mins(20),
        now + secs(25),
        3000,
        "k",
    );
    sim.sim.add_rows("tok", data.clone());
    let dir = &bench.dir;
    let yaml = bench.yaml(&[ACME], "backfill: 30m");
    let mut rng = SplitMix(20261127);
    let mut last_before_kill = 0.0;
    let kills = 24;
    for i in 0..kills {
        // Slow answers now and then widen the window in which a kill lands mid-fetch.
        if rng.next().is_multiple_of(3) {
            sim.sim.push_faults(
                "tok",
                [Fault::Slow(Duration::from_millis(rng.next() % 400))],
            );
        }
        let mut exp = Exporter::start(dir.path(), &yaml, &[]);
        let first = exp.scrape().await.sum("wolkvox_ivr_rows_total", &[]);
        assert!(
            first >= last_before_kill,
            "restart {i}: first scrape {first} < {last_before_kill} before the kill"
        );
        let wait = Duration::from_millis(rng.next() % 1500);
        tokio::time::sleep(wait).await;
        if rng.next().is_multiple_of(2) {
            last_before_kill = exp.scrape().await.sum("wolkvox_ivr_rows_total", &[]);
        } else {
            last_before_kill = first;
        }
        // Sometimes right after a scrape, sometimes a moment later.
        tokio::time::sleep(Duration::from_millis(rng.next() % 50)).await;
        exp.kill9();
    }
    let exp = Exporter::start(dir.path(), &yaml, &[]);
    let done = now + secs(25 + 5 + 2);
    let s = exp
        .wait_for(60, "all rows after the kills", |s| {
            s.sum("wolkvox_last_window_end_timestamp_seconds", &[]) >= done.as_second() as f64
        })
        .await;
    assert_eq!(
        s.sum("wolkvox_ivr_rows_total", &[]),
        data.len() as f64,
        "{}",
        exp.log()
    );
    assert_eq!(shown_by_rp_result(&s, "acme"), expected_by_rp_result(&data));
    let pulse = data.iter().filter(|r| r.cod_opc_menu == "PULSE").count() as f64;
    assert_eq!(s.sum("wolkvox_ivr_pulse_total", &[]), pulse);
    let hist_count = s.sum("wolkvox_ivr_interaction_duration_seconds_count", &[]);
    assert_eq!(
        hist_count,
        data.iter().filter(|r| r.time != "n/a").count() as f64
    );
    println!("{kills} kills, {} requests", sim.report_requests().len());
}

/// After a restart, polling resumes at the saved watermark minus settle, not from the
/// backfill, and the first scrape already shows the saved totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_at_the_watermark_minus_settle() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    let data = rows(
        &z,
        now - SignedDuration::from_mins(30),
        now - secs(5),
        400,
        "r",
    );
    sim.sim.add_rows("tok", data.clone());
    let dir = &bench.dir;
    let yaml = bench.yaml(&[ACME], "backfill: 1h");
    let mut exp = Exporter::start(dir.path(), &yaml, &[]);
    exp.wait_for(20, "history", |s| {
        s.sum("wolkvox_ivr_rows_total", &[]) >= 400.0
    })
    .await;
    let exit = tokio::task::spawn_blocking(move || exp.terminate(10))
        .await
        .unwrap();
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_file(dir.path(), "acme")).unwrap()).unwrap();
    let watermark: Timestamp = saved["watermark"].as_str().unwrap().parse().unwrap();
    assert!(
        !String::from_utf8_lossy(&std::fs::read(state_file(dir.path(), "acme")).unwrap())
            .contains("r-1"),
        "no conn_id in clear in the state file"
    );
    let before = sim.report_requests().len();
    // Wait a little so the restart has new windows to fetch.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let exp = Exporter::start(dir.path(), &yaml, &[]);
    let first = exp.scrape().await;
    assert_eq!(
        first.sum("wolkvox_ivr_rows_total", &[]),
        400.0,
        "restored before /metrics is served"
    );
    exp.wait_for(20, "a request after the restart", |_| {
        sim.report_requests().len() > before
    })
    .await;
    let req = &sim.report_requests()[before];
    assert_eq!(
        req.date_ini.as_deref(),
        Some(wolkvox_date(wall(&z, watermark - secs(5))).as_str())
    );
    let s = exp
        .wait_for(20, "a committed cycle", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), 400.0);
}

/// Unreadable state stops the start with one line; --state.reset moves it aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_state_and_state_reset() {
    let bench = Bench::acme().await;
    let dir = &bench.dir;
    let yaml = bench.yaml(&[ACME], "backfill: 1h");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let state = state_file(dir.path(), "acme");
    std::fs::write(&state, b"{\"version\": 1, \"truncated").unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "error",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}: state file is unreadable", state.display()))
            && stderr.contains("--state.reset"),
        "{stderr}"
    );
    // Reset: moved aside, kept, and a fresh start.
    let exp = Exporter::start(dir.path(), &yaml, &["--state.reset"]);
    exp.wait_for(20, "a fresh cycle", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("acme.json.reset-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(exp.log().contains("state reset: old state moved aside"));
}

/// Changed histogram buckets: refused with the reason, not silently mixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_buckets_are_refused_and_orphans_left_alone() {
    let bench = Bench::acme().await;
    let dir = &bench.dir;
    let yaml = bench.yaml(&[ACME], "backfill: 1h");
    let config = bench.config(&[ACME], "backfill: 1h");
    let exp = spawn_app(config.clone());
    exp.wait_for(20, "a cycle", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    exp.crash();
    // An operation no longer configured: its state is left alone, with a warning.
    std::fs::write(dir.path().join("state").join("retired.json"), b"{}").unwrap();
    let exp = spawn_app(config);
    exp.wait_for(20, "a cycle", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    assert!(
        exp.log()
            .contains("state file for an operation that is not configured"),
        "{}",
        exp.log()
    );
    assert!(dir.path().join("state").join("retired.json").exists());
    drop(exp);
    let changed = format!("{yaml}duration_buckets: [1, 2, 3]\n");
    let cfg = dir.path().join("changed.yaml");
    std::fs::write(&cfg, changed).unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "error",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("saved histograms use buckets") && stderr.contains("--state.reset"),
        "{stderr}"
    );
}

/// A state file that cannot be written: the exporter keeps serving, counts the
/// failure, never advances the watermark it could not save, and catches up once the
/// disk is writable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_save_never_advances_the_watermark() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    let data = rows(
        &z,
        now - SignedDuration::from_mins(10),
        now - secs(3),
        200,
        "w",
    );
    sim.sim.add_rows("tok", data.clone());
    let dir = &bench.dir;
    // A directory where the temporary file must go makes every save fail (root ignores
    // file modes, so a read-only directory would not).
    let blocker = dir.path().join("state").join("acme.json.tmp");
    std::fs::create_dir_all(&blocker).unwrap();
    let exp = bench.app(&[ACME], "backfill: 1h");
    let s = exp
        .wait_for(20, "save failures", |s| {
            s.sum("wolkvox_state_save_failures_total", &[]) >= 2.0
        })
        .await;
    assert_eq!(s.sum("wolkvox_last_window_end_timestamp_seconds", &[]), 0.0);
    assert_eq!(
        s.sum("wolkvox_ivr_rows_total", &[]),
        0.0,
        "nothing counted that is not saved"
    );
    assert_eq!(s.sum("wolkvox_up", &[]), 0.0);
    assert!(exp.log().contains("cannot save state"));
    std::fs::remove_dir(&blocker).unwrap();
    let s = exp
        .wait_for(30, "recovery", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), 200.0);
    assert!(s.sum("wolkvox_state_last_save_timestamp_seconds", &[]) > 0.0);
}

/// Restored up to date (the next window is an hour away), the exporter is ready at
/// once: nothing is missing, and a rollout must not wait a whole interval per pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_up_to_date_is_ready_before_the_next_window() {
    let bench = Bench::acme().await;
    let dir = &bench.dir;
    let yaml = bench.yaml(&[ACME], "interval: 1h, backfill: 2h");
    let mut exp = Exporter::start(dir.path(), &yaml, &[]);
    exp.wait_for(20, "the first cycle", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    let exit = tokio::task::spawn_blocking(move || exp.terminate(10))
        .await
        .unwrap();
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
    let exp = Exporter::start(dir.path(), &yaml, &[]);
    let mut ready = (0, String::new());
    for _ in 0..50 {
        ready = exp.get("/-/ready").await;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, (200, "OK\n".to_string()), "{}", exp.log());
    // And up: the API answered for the token, and nothing is missing.
    let s = exp.scrape().await;
    assert_eq!(s.sum("wolkvox_up", &[]), 1.0, "{}", exp.log());
    assert!(s.sum("wolkvox_last_success_timestamp_seconds", &[]) > 0.0);
}
