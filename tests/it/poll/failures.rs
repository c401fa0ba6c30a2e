//! Failures from upstream: every fault kind classified and retried, a failed part that
//! commits nothing, and a spent token budget.

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::Fault;

use super::*;
use crate::helpers::*;

/// Every fault kind: classified into its reason, retried, and in the end every row
/// counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_classified_retried_and_lose_nothing() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    let data = rows(
        &z,
        now - SignedDuration::from_mins(30),
        now - secs(20),
        500,
        "f",
    );
    sim.sim.add_rows("tok", data.clone());
    sim.sim.push_faults(
        "tok",
        [
            // Cycle 1: three transient failures in a row (the first try and two retries).
            Fault::ServerErrorHtml(502),
            Fault::MalformedBody,
            Fault::TruncatedBody,
            // Cycle 2: more transient ones, ending in timeouts.
            Fault::WrongShape,
            Fault::ConcurrencyLimit,
            Fault::Slow(std::time::Duration::from_secs(8)),
            // Cycles 3 and 4: not worth retrying within the cycle.
            Fault::Maintenance,
            Fault::BadRequest,
            // Cycle 5: a request that never finishes, then a good one.
            Fault::Hang,
        ],
    );
    let exp = bench.app(&[ACME], "backfill: 1h");
    let s = exp
        .wait_for(90, "recovery", |s| {
            s.sum("wolkvox_ivr_rows_total", &[]) >= data.len() as f64
                && s.sum("wolkvox_up", &[]) == 1.0
        })
        .await;
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), data.len() as f64);
    assert_eq!(shown_by_rp_result(&s, "acme"), expected_by_rp_result(&data));
    let errors = s.by(
        "wolkvox_poll_errors_total",
        &[("operation", "acme")],
        "reason",
    );
    let want = [
        ("bad_request", 1.0),
        ("concurrency_limit", 1.0),
        ("decode", 3.0),
        ("http_5xx", 1.0),
        ("invalid_token", 0.0),
        ("maintenance", 1.0),
        ("missing_token", 0.0),
        ("network", 0.0),
        ("other", 0.0),
        ("timeout", 2.0),
        ("token_limit", 0.0),
    ];
    let want: std::collections::BTreeMap<String, f64> =
        want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(errors, want, "{}", exp.log());
    let codes = s.by(
        "wolkvox_api_requests_total",
        &[("operation", "acme")],
        "code",
    );
    assert_eq!(codes.get("502"), Some(&1.0));
    // The slow answer timed out before its headers; the hung one had sent a 200.
    assert_eq!(codes.get("error"), Some(&1.0));
    assert_eq!(codes.get("403"), Some(&2.0));
    assert_eq!(codes.get("400"), Some(&1.0));
}

/// A cycle whose first part succeeds and whose second part fails commits the first
/// part (rows, watermark, saved state) and nothing of the second; after a restart the
/// exporter asks again from the failed part only (less the settle window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_changes_no_business_counter_and_resumes_there() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    // 40 days of backfill: two parts (31-day cut), rows in both.
    let old = rows(
        &z,
        now - SignedDuration::from_hours(39 * 24),
        now - SignedDuration::from_hours(38 * 24),
        50,
        "old",
    );
    let new = rows(
        &z,
        now - SignedDuration::from_hours(2),
        now - SignedDuration::from_hours(1),
        50,
        "new",
    );
    sim.sim.add_rows("tok", old.iter().chain(&new).cloned());
    // The first part answers; the second is refused with a non-transient error.
    sim.sim.push_faults(
        "tok",
        [Fault::Slow(std::time::Duration::ZERO), Fault::InvalidToken],
    );
    let config = bench.config(&[ACME], "backfill: 40d");
    let exp = spawn_app(config.clone());
    let s = exp
        .wait_for(30, "the failed cycle", |s| {
            s.sum("wolkvox_poll_errors_total", &[("reason", "invalid_token")]) == 1.0
        })
        .await;
    let reqs = sim.report_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].rows, 50, "the first part was served");
    // The second part starts where the first ends: that is the watermark now.
    let part_end = z
        .to_ambiguous_timestamp(
            jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", reqs[1].date_ini.as_deref().unwrap())
                .unwrap(),
        )
        .compatible()
        .unwrap();
    // The first part and the hourly token_info: exactly what the simulator answered 200.
    let answered_200 = sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .count() as f64;
    assert_eq!(
        s.sum("wolkvox_api_requests_total", &[("code", "200")]),
        answered_200
    );
    assert!(s.sum("wolkvox_api_token_limit", &[]) > 0.0);
    assert_eq!(s.sum("wolkvox_up", &[]), 0.0);
    // The first part is committed; the failed second one added nothing.
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), 50.0);
    assert_eq!(s.sum("wolkvox_ivr_interactions_total", &[]), 50.0);
    assert_eq!(
        s.sum("wolkvox_last_window_end_timestamp_seconds", &[]),
        part_end.as_second() as f64
    );
    let (status, _) = exp.get("/-/ready").await;
    assert_eq!(
        status, 200,
        "ready once the first cycle has finished, even failed"
    );
    let (_, page) = exp.get("/").await;
    assert!(page.contains("invalid_token"), "{page}");
    // A refused token waits five minutes: restart instead, as an operator would.
    exp.crash();
    let exp = spawn_app(config);
    let s = exp
        .wait_for(30, "the rest of the range", |s| {
            s.sum("wolkvox_ivr_rows_total", &[]) == 100.0 && s.sum("wolkvox_up", &[]) == 1.0
        })
        .await;
    assert_eq!(s.sum("wolkvox_ivr_rows_duplicate_total", &[]), 0.0);
    let reqs = sim.report_requests();
    // Asked again from the failed part (less the 5 s settle), never from the origin.
    let resumed = wolkvox_exporter::window::wolkvox_date(
        z.to_datetime(part_end - SignedDuration::from_secs(5)),
    );
    assert_eq!(reqs[2].date_ini.as_deref(), Some(resumed.as_str()));
    assert_eq!(reqs[2].rows, 50, "the second part's rows");
}

/// A spent daily budget: counted as token_limit, and the exporter backs off for a long
/// time instead of retrying every few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_token_budget_backs_off_for_long() {
    let bench = Bench::acme().await;
    let sim = &bench.sim;
    sim.sim.push_faults("tok", [Fault::TokenLimit]);
    let exp = bench.app(&[ACME], "backfill: 1h");
    exp.wait_for(20, "token_limit", |s| {
        s.sum("wolkvox_poll_errors_total", &[("reason", "token_limit")]) == 1.0
    })
    .await;
    // With 1 s windows an ordinary failure is retried within a second or two.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        sim.report_requests().len(),
        1,
        "no retry within seconds after TOKEN LIMIT EXCEEDED"
    );
    let s = exp.scrape().await;
    assert_eq!(s.sum("wolkvox_up", &[]), 0.0);
}
