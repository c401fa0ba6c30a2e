//! Config reload (contract, "Command line"): SIGHUP and `POST /-/reload` with
//! `--web.enable-lifecycle`. Under scrape load, a token is rotated and an operation
//! added, then removed; no counter of the unchanged or changed operations resets, and a
//! bad config keeps the last good one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::SimRow;

use crate::helpers::*;

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

async fn post(exp: &Exporter, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("http://{}{path}", exp.addr))
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r.text().await.expect("body"))
}

fn hup(exp: &Exporter) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &exp.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rotates_a_token_and_adds_and_removes_operations_without_a_reset() {
    let sim = Sim::start().await;
    let z = tz("America/Bogota");
    // One tenant's rows behind two tokens: the old one and the one it is rotated to.
    for t in ["old-token", "new-token", "beta-token"] {
        sim.sim.add_tenant(t, z.clone());
    }
    let t0 = Timestamp::from_second(Timestamp::now().as_second() + 1).unwrap();
    let rows = |prefix: &str| -> Vec<SimRow> {
        (0..24)
            .flat_map(|s| (0..2).map(move |k| (s, k)))
            .map(|(s, k)| {
                SimRow::new(
                    wall(&z, t0 + secs(s)),
                    "2001",
                    "Ventas",
                    "1",
                    "",
                    "ok",
                    "5",
                    &format!("{prefix}-{s}-{k}"),
                )
            })
            .collect()
    };
    let acme = rows("acme");
    sim.sim.add_rows("old-token", acme.clone());
    sim.sim.add_rows("new-token", acme.clone());
    sim.sim.add_rows("beta-token", rows("beta"));
    let dir = tempdir();
    let op = |name, token| Op {
        name,
        token,
        zone: "America/Bogota",
        extra: "",
    };
    let poll = "backfill: 60s";
    let first = config(&sim, dir.path(), &[op("acme", "old-token")], poll);
    let exp = Exporter::start(dir.path(), &first, &["--web.enable-lifecycle"]);

    // Scrape load for the whole test: no counter of acme ever goes down.
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, halt) = (exp.addr, Arc::clone(&stop));
    let load = tokio::spawn(async move {
        let mut last = (0.0, 0.0);
        let mut scrapes = 0;
        while !halt.load(Ordering::Relaxed) {
            if let Ok(r) = reqwest::get(format!("http://{addr}/metrics")).await
                && let Ok(text) = r.text().await
            {
                let s = Scrape::parse(&text);
                let acme = [("operation", "acme")];
                let now = (
                    s.sum("wolkvox_ivr_rows_total", &acme),
                    s.sum("wolkvox_api_requests_total", &acme),
                );
                // Once acme is removed its series are gone: nothing to compare.
                if s.has("wolkvox_ivr_rows_total", &acme) {
                    assert!(
                        now.0 >= last.0 && now.1 >= last.1,
                        "a counter went down: {last:?} -> {now:?}"
                    );
                    last = now;
                }
                scrapes += 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        scrapes
    });

    let rows_of = |s: &Scrape, op: &str| s.sum("wolkvox_ivr_rows_total", &[("operation", op)]);
    exp.wait_for(30, "some of acme's rows", |s| rows_of(s, "acme") >= 10.0)
        .await;
    let s = exp.scrape().await;
    assert_eq!(s.sum("wolkvox_config_last_reload_successful", &[]), 1.0);
    let started = s.sum("wolkvox_config_last_reload_success_timestamp_seconds", &[]);

    // Rotate acme's token and add beta, by SIGHUP. The old token is refused from now
    // on: only the new one can bring the rest of acme's rows.
    let second = config(
        &sim,
        dir.path(),
        &[op("acme", "new-token"), op("beta", "beta-token")],
        poll,
    );
    std::fs::write(dir.path().join("config.yaml"), &second).unwrap();
    sim.sim.set_daily_budget("old-token", Some(0));
    hup(&exp);
    let s = exp
        .wait_for(40, "every row of both operations", |s| {
            rows_of(s, "acme") == acme.len() as f64 && rows_of(s, "beta") == 48.0
        })
        .await;
    assert!(s.sum("wolkvox_config_last_reload_success_timestamp_seconds", &[]) >= started);
    // Every request counted once, across the reload (a few may be in flight).
    let sent = sim.sim.requests().len() as f64;
    let counted = s.sum("wolkvox_api_requests_total", &[]);
    assert!(
        counted <= sent && counted >= sent - 3.0,
        "{counted} requests counted, {sent} received"
    );
    assert_eq!(
        s.sum(
            "wolkvox_poll_errors_total",
            &[("operation", "acme"), ("reason", "token_limit")]
        ),
        0.0,
        "acme asked with the old token after the reload\n{}",
        exp.log()
    );
    assert!(
        exp.log().contains("msg=\"config reloaded\""),
        "{}",
        exp.log()
    );

    // A broken config: refused with its reason, the last good one keeps running.
    std::fs::write(dir.path().join("config.yaml"), "operations: [").unwrap();
    let (status, body) = post(&exp, "/-/reload").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("failed to reload config: "), "{body}");
    assert!(body.contains("config.yaml"), "{body}");
    let s = exp.scrape().await;
    assert_eq!(s.sum("wolkvox_config_last_reload_successful", &[]), 0.0);
    assert_eq!(rows_of(&s, "acme"), acme.len() as f64);
    assert_eq!(s.sum("wolkvox_up", &[("operation", "beta")]), 1.0);

    // Remove acme by POST /-/reload: its series leave /metrics, beta's stay.
    let third = config(&sim, dir.path(), &[op("beta", "beta-token")], poll);
    std::fs::write(dir.path().join("config.yaml"), &third).unwrap();
    let (status, body) = post(&exp, "/-/reload").await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    stop.store(true, Ordering::Relaxed);
    let scrapes = load.await.expect("scrape load");
    assert!(scrapes > 20, "only {scrapes} scrapes");
    let s = exp.scrape().await;
    assert_eq!(s.sum("wolkvox_config_last_reload_successful", &[]), 1.0);
    assert!(!s.has("wolkvox_ivr_rows_total", &[("operation", "acme")]));
    assert!(!s.has("wolkvox_up", &[("operation", "acme")]));
    assert_eq!(rows_of(&s, "beta"), 48.0);
    // Its state stays on disk for the day it comes back.
    assert!(state_file(dir.path(), "acme").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_endpoint_needs_the_lifecycle_flag() {
    let sim = Sim::start().await;
    sim.sim.add_tenant("tok", tz("America/Bogota"));
    let dir = tempdir();
    let yaml = config(
        &sim,
        dir.path(),
        &[Op {
            name: "acme",
            token: "tok",
            zone: "America/Bogota",
            extra: "",
        }],
        "backfill: 1s",
    );
    let exp = Exporter::start(dir.path(), &yaml, &[]);
    let (status, body) = post(&exp, "/-/reload").await;
    assert_eq!(
        (status, body.as_str()),
        (403, "Lifecycle API is not enabled.\n")
    );
    let (status, _) = exp.get("/-/reload").await;
    assert_eq!(status, 405);
    // SIGHUP works without the flag.
    hup(&exp);
    exp.wait_for(20, "the reload by SIGHUP", |_| {
        exp.log().contains("msg=\"config reloaded\"")
    })
    .await;
}
