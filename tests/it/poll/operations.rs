//! Several operations at once: each in its own zone, two on one token within its
//! limit, a failing one that holds up no other, and the demo's two.

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::Fault;
use wolkvox_exporter::window::wolkvox_date;

use super::*;
use crate::helpers::*;

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
