//! The poll cycle from outside: the exporter in-process against the simulator, exact
//! counts.

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::{Fault, SimRow};
use wolkvox_exporter::window::wolkvox_date;

use crate::helpers::*;

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

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

/// Two operations in their own zones, each with its own token: date strings in each
/// zone's wall time, exact counts for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operations_in_different_zones() {
    let bench = Bench::new().await;
    let sim = &bench.sim;
    let ops = [
        ("bogota", "tok-b", "America/Bogota"),
        ("kolkata", "tok-k", "Asia/Kolkata"),
    ];
    let now = Timestamp::now();
    let mut all = Vec::new();
    for (name, token, zone) in ops {
        let z = bench.tenant(token, zone);
        let mut data = rows(
            &z,
            now - SignedDuration::from_mins(50),
            now - secs(10),
            300,
            name,
        );
        for r in &mut data {
            r.customer_id = format!("cust-{name}");
        }
        sim.sim.add_rows(token, data.clone());
        all.push((name, zone, data));
    }
    let exp = bench.app(
        &[
            Op {
                name: "bogota",
                token: "tok-b",
                zone: "America/Bogota",
                extra: "    customer_id: cust-bogota\n",
            },
            Op {
                name: "kolkata",
                token: "tok-k",
                zone: "Asia/Kolkata",
                extra: "    customer_id: cust-kolkata\n",
            },
        ],
        "backfill: 1h",
    );
    let s = exp
        .wait_for(30, "both operations", |s| {
            s.sum("wolkvox_ivr_rows_total", &[("operation", "bogota")]) >= 300.0
                && s.sum("wolkvox_ivr_rows_total", &[("operation", "kolkata")]) >= 300.0
        })
        .await;
    for (name, zone, data) in &all {
        assert_eq!(
            s.sum("wolkvox_ivr_rows_total", &[("operation", name)]),
            300.0
        );
        assert_eq!(shown_by_rp_result(&s, name), expected_by_rp_result(data));
        // Every request's date_end is the window end minus one second, on the wall
        // clock of this operation's zone, not another's.
        let z = tz(zone);
        let reqs: Vec<_> = sim
            .report_requests()
            .into_iter()
            .filter(|r| r.customer_id.as_deref() == Some(&format!("cust-{name}")))
            .collect();
        assert!(!reqs.is_empty());
        for r in reqs {
            let end = r.date_end.clone().unwrap();
            let local_ready = wolkvox_date(wall(&z, r.at - secs(1)));
            let earliest = wolkvox_date(wall(&z, r.at - secs(4)));
            assert!(
                end <= local_ready && end >= earliest,
                "{name}: date_end {end} for a request at {} (expected about {local_ready})",
                r.at
            );
        }
    }
}

/// Two operations on one token with max_concurrent_requests 1 never overlap requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_token_never_overlap_beyond_the_limit() {
    let bench = Bench::new().await;
    let sim = &bench.sim;
    let z = bench.tenant("shared", "America/Bogota");
    let now = Timestamp::now();
    sim.sim.add_rows(
        "shared",
        rows(
            &z,
            now - SignedDuration::from_mins(20),
            now - secs(5),
            100,
            "c",
        ),
    );
    sim.sim.push_faults(
        "shared",
        (0..8).map(|_| Fault::Slow(std::time::Duration::from_millis(300))),
    );
    let exp = bench.app(
        &[
            Op {
                name: "one",
                token: "shared",
                zone: "America/Bogota",
                extra: "    max_concurrent_requests: 1\n",
            },
            Op {
                name: "two",
                token: "shared",
                zone: "America/Bogota",
                extra: "    max_concurrent_requests: 1\n",
            },
        ],
        "backfill: 30m",
    );
    exp.wait_for(30, "several requests", |s| {
        s.sum("wolkvox_api_requests_total", &[]) >= 10.0
    })
    .await;
    assert_eq!(sim.sim.max_in_flight("shared"), 1);
    let s = exp.scrape().await;
    assert_eq!(
        s.sum(
            "wolkvox_poll_errors_total",
            &[("reason", "concurrency_limit")]
        ),
        0.0
    );
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

/// The demo shows data for both of its operations soon after the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_data() {
    let dir = tempdir();
    let started = std::time::Instant::now();
    let exp = Exporter::spawn(&["--demo", "--state.dir", dir.path().to_str().unwrap()]);
    let s = exp
        .wait_for(30, "demo data", |s| {
            s.sum("wolkvox_ivr_rows_total", &[("operation", "acme")]) > 0.0
                && s.sum("wolkvox_ivr_rows_total", &[("operation", "andina")]) > 0.0
        })
        .await;
    println!("demo data after {:?}", started.elapsed());
    assert!(s.sum("wolkvox_ivr_pulse_total", &[]) > 0.0);
    assert!(s.by("wolkvox_ivr_interactions_total", &[], "rp_id").len() >= 5);
    let (status, page) = exp.get("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("acme") && page.contains("America/Santiago") && page.contains("/metrics"),
        "{page}"
    );
    assert!(!page.contains("demo-token"), "the token never shows");
    assert!(!s.text.contains("demo-token"));
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

/// A failing operation never holds up the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_operation_does_not_hold_up_the_others() {
    let bench = Bench::new().await;
    let sim = &bench.sim;
    let z = bench.tenant("good", "America/Bogota");
    let now = Timestamp::now();
    sim.sim.add_rows(
        "good",
        rows(
            &z,
            now - SignedDuration::from_mins(30),
            now - secs(5),
            120,
            "g",
        ),
    );
    // A slow, failing upstream for the other operation.
    bench.tenant("slow", "America/Bogota");
    sim.sim.push_faults(
        "slow",
        (0..20).map(|_| Fault::Slow(std::time::Duration::from_secs(30))),
    );
    let exp = bench.app(
        &[
            Op {
                name: "good",
                token: "good",
                zone: "America/Bogota",
                extra: "",
            },
            Op {
                name: "bad",
                token: "not-a-token",
                zone: "America/Bogota",
                extra: "",
            },
            Op {
                name: "slow",
                token: "slow",
                zone: "America/Bogota",
                extra: "",
            },
        ],
        "backfill: 1h",
    );
    let s = exp
        .wait_for(30, "the good operation", |s| {
            s.sum("wolkvox_ivr_rows_total", &[("operation", "good")]) == 120.0
                && s.sum(
                    "wolkvox_poll_errors_total",
                    &[("operation", "bad"), ("reason", "invalid_token")],
                ) >= 1.0
        })
        .await;
    assert_eq!(s.sum("wolkvox_up", &[("operation", "good")]), 1.0);
    assert_eq!(s.sum("wolkvox_up", &[("operation", "bad")]), 0.0);
    assert_eq!(
        s.sum("wolkvox_ivr_rows_total", &[("operation", "slow")]),
        0.0
    );
}
