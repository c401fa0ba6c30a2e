//! Calls (rows grouped by `conn_id`) counted by the real binary against scripted
//! traffic, with exact ground truth: by entry and outcome, steps and durations, late
//! and call-less rows, across a `kill -9` and a restart with calls open.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::SimRow;

use crate::helpers::*;

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// The contract's rules, applied to a call's rows (in the order the report serves
/// them; no ties on dates here): entry of the earliest, outcome of the latest.
fn truth(rows: &[&SimRow]) -> BTreeMap<(String, &'static str), (u64, u64, f64)> {
    let mut calls: BTreeMap<&str, Vec<&SimRow>> = BTreeMap::new();
    for r in rows {
        if !r.conn_id.trim().is_empty() {
            calls.entry(r.conn_id.as_str()).or_default().push(r);
        }
    }
    let mut out = BTreeMap::new();
    for rs in calls.values() {
        let first = rs.iter().min_by_key(|r| r.at).unwrap();
        let last = rs.iter().max_by_key(|r| r.at).unwrap();
        let served = rs
            .iter()
            .any(|r| r.cod_opc_menu == "SALDO" || r.dn_transfer == "9999");
        let outcome = match last.result.as_str() {
            "ok" => "agent",
            "hung up" if served => "self_service",
            "hung up" => "abandoned",
            _ => "other",
        };
        let duration: f64 = rs.iter().filter_map(|r| r.time.parse::<f64>().ok()).sum();
        let e = out
            .entry((first.rp_id.clone(), outcome))
            .or_insert((0, 0, 0.0));
        e.0 += 1;
        e.1 += rs.len() as u64;
        e.2 += duration;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_once_by_entry_and_outcome_across_kill9_and_restart() {
    let sim = Sim::start().await;
    let z = tz("America/Bogota");
    sim.sim.add_tenant("tok", z.clone());
    let t0 = Timestamp::from_second(Timestamp::now().as_second() + 2).unwrap();
    let row = |t: i64, rp: &str, opt: &str, dn: &str, result: &str, time: &str, conn: &str| {
        SimRow::new(wall(&z, t0 + secs(t)), rp, rp, opt, dn, result, time, conn)
    };
    let on_time = vec![
        row(0, "MAIN", "1", "", "", "5", "a1"),
        row(2, "VENTAS", "", "", "ok", "7", "a1"),
        row(1, "MAIN", "SALDO", "", "", "4", "a2"),
        row(3, "SALDO", "", "", "hung up", "30", "a2"),
        row(1, "MAIN", "PULSE", "", "hung up", "9", "a3"),
        row(2, "SOPORTE", "2", "", "", "3", "a4"),
        row(4, "SUB", "", "9999", "", "2", "a4"),
        row(5, "END", "", "", "hung up", "1", "a4"),
        // Straddles the kill -9 below: open while the exporter dies.
        row(3, "MAIN", "1", "", "", "6", "a5"),
        row(5, "SUB", "3", "", "", "6", "a5"),
        row(8, "QUEUE", "", "", "ok", "6", "a5"),
        row(6, "MAIN", "", "", "hung up", "2", "c2"),
        row(4, "MAIN", "", "", "weird", "2", "x1"),
        row(0, "MAIN", "", "", "hung up", "8", "c1"),
        // Two copies in one answer: both are steps of the call.
        row(2, "MAIN", "7", "", "hung up", "5", "a6"),
        row(2, "MAIN", "7", "", "hung up", "5", "a6"),
        // A duration that does not read: a step, no seconds.
        row(3, "MAIN", "", "", "ok", "x", "a7"),
        row(1, "MAIN", "", "", "ok", "5", ""),
        row(5, "MAIN", "", "", "hung up", "5", "  "),
    ];
    // Late within close_after: c2 is still open, and its outcome becomes `agent`.
    let late_open = row(7, "QUEUE", "", "", "ok", "4", "c2").with_visible_from(t0 + secs(9));
    // Late after c1 closed (its latest row + 6 s passed long before): counted apart.
    let late_closed = row(2, "QUEUE", "", "", "ok", "4", "c1").with_visible_from(t0 + secs(22));
    sim.sim.add_rows(
        "tok",
        on_time
            .iter()
            .cloned()
            .chain([late_open.clone(), late_closed.clone()]),
    );
    let dir = tempdir();
    let yaml = config(
        &sim,
        dir.path(),
        &[Op {
            name: "acme",
            token: "tok",
            zone: "America/Bogota",
            extra: "    calls:\n      close_after: 6s\n      self_service: {options: [SALDO], transfers: [\"9999\"]}\n",
        }],
        "backfill: 5s, settle: 30s",
    );
    let mut exp = Exporter::start(dir.path(), &yaml, &[]);
    let w = |s: &Scrape| s.sum("wolkvox_last_window_end_timestamp_seconds", &[]);
    exp.wait_for(40, "watermark at t0 + 8 s", |s| {
        w(s) >= (t0 + secs(8)).as_second() as f64
    })
    .await;
    // Some calls are closed, a5 and c2 among the open ones: the state file has them,
    // keyed, and no conn_id in clear.
    let saved = std::fs::read_to_string(state_file(dir.path(), "acme")).unwrap();
    for conn in ["\"a5\"", "\"c2\"", "\"a1\""] {
        assert!(!saved.contains(conn), "{conn} in clear in the state file");
    }
    exp.kill9();
    let mut exp = Exporter::start(dir.path(), &yaml, &[]);
    exp.wait_for(40, "watermark at t0 + 16 s", |s| {
        w(s) >= (t0 + secs(16)).as_second() as f64
    })
    .await;
    assert_eq!(exp.terminate(10).map(|s| s.code()), Some(Some(0)));
    let exp = Exporter::start(dir.path(), &yaml, &[]);
    let s = exp
        .wait_for(60, "the late row of c1", |s| {
            s.sum("wolkvox_ivr_call_rows_late_total", &[]) >= 1.0
                && w(s) >= (t0 + secs(23)).as_second() as f64
        })
        .await;

    let counted: Vec<&SimRow> = on_time.iter().chain([&late_open]).collect();
    let want = truth(&counted);
    // The same, in the contract's words, for the reader: 10 calls.
    assert_eq!(want.values().map(|v| v.0).sum::<u64>(), 10);
    assert_eq!(want[&("MAIN".to_string(), "agent")].0, 4);
    assert_eq!(want[&("MAIN".to_string(), "abandoned")].0, 3);
    assert_eq!(want[&("SOPORTE".to_string(), "self_service")].0, 1);
    let log = exp.log();
    for ((rp, outcome), (calls, _, _)) in &want {
        assert_eq!(
            s.sum(
                "wolkvox_ivr_calls_total",
                &[("operation", "acme"), ("rp_id", rp), ("outcome", outcome)]
            ),
            *calls as f64,
            "{rp} {outcome}\n{log}"
        );
    }
    assert_eq!(s.sum("wolkvox_ivr_calls_total", &[]), 10.0);
    for outcome in ["agent", "self_service", "abandoned", "other"] {
        let (calls, steps, duration) = want
            .iter()
            .filter(|((_, o), _)| *o == outcome)
            .fold((0, 0, 0.0), |a, (_, v)| (a.0 + v.0, a.1 + v.1, a.2 + v.2));
        let l = [("outcome", outcome)];
        assert_eq!(s.sum("wolkvox_ivr_call_steps_count", &l), calls as f64);
        assert_eq!(s.sum("wolkvox_ivr_call_steps_sum", &l), steps as f64);
        assert_eq!(
            s.sum("wolkvox_ivr_call_duration_seconds_sum", &l),
            duration,
            "{outcome}"
        );
    }
    // a6's two copies: 2 steps, in the `le="2"` bucket of the abandoned calls.
    assert_eq!(
        s.sum(
            "wolkvox_ivr_call_steps_bucket",
            &[("outcome", "abandoned"), ("le", "1")]
        ),
        2.0
    );
    assert_eq!(s.sum("wolkvox_ivr_call_rows_late_total", &[]), 1.0);
    assert_eq!(s.sum("wolkvox_ivr_rows_without_call_total", &[]), 2.0);
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), 21.0);
    assert!(s.sum("wolkvox_ivr_rows_duplicate_total", &[]) > 0.0, "re-asked rows");
}
