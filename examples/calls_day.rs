//! Memory of the call grouping over a simulated day: 1,000 calls a minute (by default),
//! each 1 to 6 rows a few seconds to two minutes apart, fed window by window (5 min) as
//! the poller commits them, with the default `close_after` (30 min). Prints, every
//! simulated hour, the open calls, the closed ids still remembered for late rows, and
//! the process's resident memory; then the peak. Memory must stay flat: it holds only
//! calls that can still grow, not the day.
//!
//! `cargo run --release --example calls_day [-- CALLS_PER_MINUTE]`

use std::borrow::Cow;
use std::sync::Arc;

use jiff::civil::{DateTime, date};
use jiff::{SignedDuration, ToSpan};
use wolkvox_exporter::calls::{CallKey, CallRules, Calls, SelfService, key};
use wolkvox_exporter::config::DEFAULT_BUCKETS;
use wolkvox_exporter::totals::{RoutingPoint, Totals};
use wolkvox_exporter::wolkvox::row::{Outcome, Reading};

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A generated row: date, call, routing point (index in [`RPS`]), result, self-service.
type GenRow = (DateTime, u64, usize, Outcome, bool);

const RPS: [&str; 6] = ["MAIN", "VENTAS", "SOPORTE", "SALDO", "HORARIOS", "QUEUE"];

fn main() {
    let per_minute: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000);
    let close_after = SignedDuration::from_mins(30);
    let window = SignedDuration::from_mins(5);
    let rules = Arc::new(CallRules {
        key: CallKey::from_u128(0x5eed),
        self_service: SelfService {
            options: ["SALDO".to_string()].into(),
            transfers: Default::default(),
        },
    });
    let mut calls = Calls::new(rules);
    let mut totals = Totals::default();
    for rp in RPS {
        totals.routing_points.insert(
            (rp.into(), rp.into()),
            RoutingPoint::new(DEFAULT_BUCKETS.len()),
        );
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let day: DateTime = date(2026, 3, 3).at(0, 0, 0, 0);
    // Rows generated for later windows (calls that straddle them), by window index.
    let mut pending: Vec<Vec<GenRow>> = vec![Vec::new(); 24 * 12 + 2];
    let (mut rows, mut peak_kib, mut peak_open) = (0u64, 0u64, 0usize);
    println!("hour  open_calls  closed_kept  rss_MiB  calls_counted");
    let base_kib = status_kib("VmRSS:");
    for w in 0..24 * 12 {
        let start = day + window * w;
        // The calls that start in this window.
        for _ in 0..per_minute * 5 {
            let id = rng.next();
            let mut at = start + SignedDuration::from_secs(rng.below(300) as i64);
            let steps = 1 + rng.below(6) as usize;
            for s in 0..steps {
                let last = s + 1 == steps;
                let rp = if s == 0 { 0 } else { 1 + rng.below(5) as usize };
                let result = match (last, rng.below(10)) {
                    (false, _) => Outcome::Other,
                    (true, 0..=5) => Outcome::Ok,
                    (true, 6..=8) => Outcome::HungUp,
                    _ => Outcome::Other,
                };
                let slot = (at.duration_since(day).as_secs() / window.as_secs()) as usize;
                if let Some(p) = pending.get_mut(slot) {
                    p.push((at, id, rp, result, rp == 3));
                }
                at += SignedDuration::from_secs(3 + rng.below(40) as i64);
            }
        }
        for (at, id, rp, result, served) in std::mem::take(&mut pending[w as usize]) {
            let conn = format!("6736.4628.1040.{id}.1814");
            let reading = Reading {
                rp_id: RPS[rp],
                rp_name: RPS[rp],
                outcome: result,
                option: served.then_some(Cow::Borrowed("SALDO")),
                transfer: None,
                duration: Some(12.0),
                date: Some(at),
            };
            totals.apply(&reading, &Default::default(), &DEFAULT_BUCKETS);
            calls.observe(key::digest(&conn), &reading, at, &mut totals.calls);
            rows += 1;
        }
        // The commit of this window: the watermark is its end; the next query starts
        // `settle` (30 min) before it.
        let end = start + window;
        calls.close(
            end - close_after,
            end - 30.minutes() - close_after,
            &mut totals,
            &DEFAULT_BUCKETS,
        );
        let kib = status_kib("VmRSS:");
        peak_kib = peak_kib.max(kib);
        peak_open = peak_open.max(calls.open_len());
        if (w + 1) % 12 == 0 {
            println!(
                "{:>4}  {:>10}  {:>11}  {:>7.1}  {:>13}",
                (w + 1) / 12,
                calls.open_len(),
                calls.closed_len(),
                kib as f64 / 1024.0,
                totals.calls.calls()
            );
        }
    }
    println!(
        "\nSUMMARY {per_minute} calls/min over 24 h: {rows} rows, {} calls counted, peak {peak_open} open calls, peak RSS {:.1} MiB ({:.1} MiB at start)",
        totals.calls.calls(),
        peak_kib as f64 / 1024.0,
        base_kib as f64 / 1024.0
    );
}
