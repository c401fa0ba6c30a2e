//! The API budget: a history over the row cap costs close to the fewest requests that
//! can fetch it, and the steady state costs one request per cycle.

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::SimRow;
use wolkvox_exporter::window::wolkvox_date;

use crate::helpers::*;

const CAP: usize = 60_000;

/// The fewest requests that can fetch `rows` rows spread over `days` days: one per
/// 60,000 rows, and at least one per 31 days.
fn minimum(rows: usize, days: f64) -> usize {
    rows.div_ceil(CAP).max((days / 31.0).ceil() as usize).max(1)
}

/// 250,000 rows over three days, in busy hours of a dozen rows a second, so cuts at the
/// cap fall inside seconds; true duplicates among them. The issue asks for at most 1.5x
/// the minimum number of requests; the split at the last row's second needs about 1x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_over_the_cap_costs_close_to_the_minimum_of_requests() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    let hours = SignedDuration::from_hours;
    let mut data: Vec<SimRow> = Vec::new();
    for (day, n) in [(0i64, 83_334usize), (1, 83_333), (2, 83_333)] {
        let from = now - hours(71) + hours(24 * day);
        data.extend(rows(&z, from, from + hours(2), n, &format!("d{day}")));
    }
    // True duplicates, one of them next to where the first answer is cut.
    for i in [CAP - 2, 1_000, 170_000] {
        let copy = data[i].clone();
        data.push(copy);
    }
    let total = data.len();
    sim.sim.add_rows("tok", data.clone());
    let exp = bench.app(
        &[ACME],
        // A debug-build simulator takes a while to cut 60,000 rows out of 250,000.
        "backfill: 3d, timeout: 30s",
    );
    let s = exp
        .wait_for(180, "all history counted", |s| {
            s.sum("wolkvox_ivr_rows_total", &[]) >= total as f64
        })
        .await;
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), total as f64);
    assert_eq!(shown_by_rp_result(&s, "acme"), expected_by_rp_result(&data));

    // The history's requests all start before its last hour; steady-state ones start
    // at the watermark minus settle.
    let history_ends = wolkvox_date(wall(&z, now - hours(1)));
    let reqs = sim.report_requests();
    let history: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.date_ini
                .as_deref()
                .is_some_and(|d| d < history_ends.as_str())
        })
        .collect();
    let min = minimum(total, 3.0);
    let used = history.len();
    println!(
        "budget: {total} rows over 3 days: {used} requests, minimum {min}, ratio {:.2} (limit 1.5)",
        used as f64 / min as f64
    );
    for r in &history {
        println!(
            "  {} .. {}: {} rows",
            r.date_ini.as_deref().unwrap_or("?"),
            r.date_end.as_deref().unwrap_or("?"),
            r.rows
        );
    }
    assert!(
        used as f64 <= 1.5 * min as f64,
        "{used} requests for a minimum of {min}"
    );
    // Every answer at the cap was split (continued), and counted as such.
    let capped = history.iter().filter(|r| r.rows >= CAP).count();
    assert_eq!(s.sum("wolkvox_window_splits_total", &[]), capped as f64);

    // Steady state: one request per cycle, each cycle a new range end.
    let before = sim.report_requests().len();
    exp.wait_for(30, "five more cycles", |s| {
        s.sum("wolkvox_api_requests_total", &[("operation", "acme")]) as usize >= before + 5
    })
    .await;
    let steady: Vec<_> = sim.report_requests().into_iter().skip(before).collect();
    let mut ends: Vec<_> = steady.iter().map(|r| r.date_end.clone()).collect();
    ends.dedup();
    assert_eq!(ends.len(), steady.len(), "more than one request in a cycle");
    assert!(steady.iter().all(|r| r.status == 404 && r.rows == 0));

    // What was spent shows on `/metrics` and `/`.
    let s = exp.scrape().await;
    let today = s.sum("wolkvox_api_requests_today", &[("operation", "acme")]);
    let sent = sim.sim.requests().len() as f64;
    assert!(
        today >= (used + 5) as f64 && (today - sent).abs() <= 1.0,
        "wolkvox_api_requests_today {today}, simulator saw {sent}"
    );
    let (status, page) = exp.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("API requests today"), "{page}");
    // Total stays exact after the settle re-polls.
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), total as f64);
}
