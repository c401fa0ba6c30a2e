//! Every row counted once: history over the row cap, settle re-polls and window edges,
//! empty ranges, and history across Santiago's DST changes.

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::SimRow;

use super::*;
use crate::helpers::*;

/// History larger than the 60,000-row cap: split until every part fits, each row once,
/// and later settle re-polls count nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_over_the_row_cap_is_counted_exactly() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    // The newest rows lie a few seconds ahead, so settle re-polls serve them again.
    let mut data = rows(
        &z,
        now - SignedDuration::from_hours(2),
        now + secs(6),
        130_000,
        "h",
    );
    // True duplicates inside one response: the same row three times counts three times.
    let dup = data[500].clone();
    data.push(dup.clone());
    data.push(dup);
    sim.sim.add_rows("tok", data.clone());
    let exp = bench.app(&[ACME], "backfill: 3h");
    let total = data.len() as f64;
    let s = exp
        .wait_for(120, "all history counted", |s| {
            s.sum("wolkvox_ivr_rows_total", &[]) >= total
        })
        .await;
    assert_eq!(
        s.sum("wolkvox_ivr_rows_total", &[("operation", "acme")]),
        total
    );
    assert_eq!(shown_by_rp_result(&s, "acme"), expected_by_rp_result(&data));
    assert!(
        s.sum("wolkvox_window_splits_total", &[]) >= 2.0,
        "{}",
        s.text
    );
    // No request got more than the cap... except those that were split.
    let reqs = sim.report_requests();
    let capped = reqs.iter().filter(|r| r.rows >= 60_000).count() as f64;
    assert_eq!(capped, s.sum("wolkvox_window_splits_total", &[]));
    // Rows keep coming after the history: settle re-polls serve them several times,
    // and each counts once.
    let t = Timestamp::now();
    let more = rows(&z, t + secs(1), t + secs(4), 20, "more");
    sim.sim.add_rows("tok", more.clone());
    let past = (t + secs(4 + 5 + 2)).as_second() as f64;
    let s = exp
        .wait_for(60, "re-polls past the new rows", |s| {
            s.sum("wolkvox_last_window_end_timestamp_seconds", &[]) >= past
        })
        .await;
    let total = total + more.len() as f64;
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), total);
    assert!(s.sum("wolkvox_ivr_rows_duplicate_total", &[]) > 0.0);
    let data: Vec<_> = data.into_iter().chain(more).collect();
    let invalid_time = data.iter().filter(|r| r.time == "n/a").count() as f64;
    assert_eq!(
        s.sum("wolkvox_ivr_rows_invalid_total", &[("field", "time")]),
        invalid_time
    );
    assert_eq!(
        s.sum("wolkvox_ivr_rows_invalid_total", &[("field", "date")]),
        0.0
    );
    println!("rows: {total}, requests: {}", sim.report_requests().len());
}

/// Rows arriving second by second, polled every second with a 5 s settle: each row is
/// served about five times and counted once, including rows exactly on window edges
/// and rows that show up late (inside settle). Fails if de-duplication is switched off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_repolls_and_window_edges_count_each_row_once() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let start = Timestamp::from_second(Timestamp::now().as_second() + 1).unwrap();
    let mut data = Vec::new();
    for s in 0..8 {
        let at = start + secs(s);
        // Three rows on the window edge (second :00 of each 1 s window), one late by 3 s.
        for k in 0..3 {
            data.push(SimRow::new(
                wall(&z, at),
                "2001",
                "Ventas",
                "1",
                "",
                "ok",
                "12",
                &format!("e-{s}-{k}"),
            ));
        }
        data.push(
            SimRow::new(
                wall(&z, at),
                "2001",
                "Ventas",
                "PULSE",
                "",
                "hung up",
                "4",
                &format!("late-{s}"),
            )
            .with_visible_from(at + secs(3)),
        );
    }
    sim.sim.add_rows("tok", data.clone());
    let exp = bench.app(&[ACME], "backfill: 10s");
    let last = start + secs(8 + 5 + 1);
    let s = exp
        .wait_for(40, "watermark past the last row plus settle", |s| {
            s.sum("wolkvox_last_window_end_timestamp_seconds", &[]) >= last.as_second() as f64
        })
        .await;
    assert_eq!(
        s.sum("wolkvox_ivr_rows_total", &[]),
        data.len() as f64,
        "{}",
        exp.log()
    );
    assert_eq!(s.sum("wolkvox_ivr_pulse_total", &[]), 8.0);
    assert_eq!(
        s.sum("wolkvox_ivr_interactions_total", &[("result", "hung_up")]),
        8.0
    );
    let served: usize = sim.report_requests().iter().map(|r| r.rows).sum();
    assert!(
        served >= 3 * data.len(),
        "each row should have been served several times, got {served}"
    );
    assert_eq!(
        s.sum("wolkvox_ivr_rows_duplicate_total", &[]),
        (served - data.len()) as f64
    );
}

/// No records in the range: the API's 404 is zero rows, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_ranges_are_not_errors() {
    let bench = Bench::acme().await;
    let exp = bench.app(&[ACME], "backfill: 1h");
    let s = exp
        .wait_for(20, "a few empty cycles", |s| {
            s.sum("wolkvox_api_requests_total", &[("code", "404")]) >= 3.0
        })
        .await;
    assert_eq!(s.sum("wolkvox_up", &[]), 1.0);
    assert_eq!(s.sum("wolkvox_poll_errors_total", &[]), 0.0);
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), 0.0);
    // gzip when the scraper asks for it, and the same text inside.
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let r = client
        .get(format!("http://{}/metrics", exp.addr))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&r.bytes().await.unwrap()[..]),
        &mut text,
    )
    .unwrap();
    assert!(
        text.contains("wolkvox_ivr_rows_total{operation=\"acme\"} 0"),
        "{text}"
    );
}

/// History across Santiago's DST changes of 2026 (the April fold, when 23:00-23:59 runs
/// twice, and the September gap, when 00:00-00:59 never happens), fetched in 31-day
/// parts: each row of both passes of the repeated hour is counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn santiago_dst_history_counts_each_row_once() {
    let bench = Bench::new().await;
    let sim = &bench.sim;
    let z = bench.tenant("tok", "America/Santiago");
    let fold: Timestamp = "2026-04-05T03:00:00Z".parse().unwrap();
    let gap: Timestamp = "2026-09-06T04:00:00Z".parse().unwrap();
    let mut placed = Vec::new();
    for (name, center) in [("fold", fold), ("gap", gap)] {
        // Every 5 minutes from two hours before to two hours after, at exact instants.
        for i in 0..48 {
            let at = center - SignedDuration::from_hours(2) + SignedDuration::from_mins(5 * i);
            let row = SimRow::new(
                wall(&z, at),
                "3001",
                "Menú Principal",
                "1",
                "",
                if i % 4 == 0 { "hung up" } else { "ok" },
                "30",
                &format!("{name}-{i}"),
            );
            placed.push((at, row));
        }
    }
    let data: Vec<SimRow> = placed.iter().map(|(_, r)| r.clone()).collect();
    sim.sim.add_rows_at("tok", placed);
    let days = Timestamp::now().duration_since(fold).as_hours() / 24 + 2;
    let exp = bench.app(
        &[Op {
            name: "scl",
            token: "tok",
            zone: "America/Santiago",
            extra: "",
        }],
        &format!("backfill: {days}d"),
    );
    let s = exp
        .wait_for(60, "the history", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    assert_eq!(
        s.sum("wolkvox_ivr_rows_total", &[]),
        data.len() as f64,
        "{}",
        exp.log()
    );
    assert_eq!(shown_by_rp_result(&s, "scl"), expected_by_rp_result(&data));
    // The fold's query named the repeated hour's wall times, never a missing one.
    let reqs = sim.report_requests();
    assert!(reqs.len() as i64 >= days / 31, "31-day parts");
    for r in &reqs {
        for d in [
            r.date_ini.as_deref().unwrap(),
            r.date_end.as_deref().unwrap(),
        ] {
            assert!(
                !d.starts_with("20260906") || d[8..10] != *"00",
                "nonexistent local time {d}"
            );
        }
    }
}
