//! Shared by the benches and the memory example: a realistic report answer, made by the
//! built-in simulator's traffic generator (the rows the demo serves: accented routing
//! point names, some with quotes and backslashes, menus, PULSE, transfers, 10-digit
//! callers, clock and seconds durations), serialized as the simulator's server does.

#![allow(dead_code)] // each bench uses a different part

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::{SimRow, Simulator, Traffic};
use wolkvox_exporter::window::{self, Query, Range};

/// The largest answer that is complete: one more row and it is taken as cut at the cap.
pub const FULL_ANSWER_ROWS: usize = wolkvox_exporter::ingest::ROW_CAP - 1;

pub const ZONE: &str = "America/Bogota";

pub fn zone() -> TimeZone {
    TimeZone::get(ZONE).unwrap_or(TimeZone::UTC)
}

/// `n` generated rows, in date order, from a busy weekday morning in the past, and the
/// query whose answer they are.
pub fn rows(n: usize) -> (Vec<SimRow>, Query) {
    let sim = Simulator::new();
    let tz = zone();
    sim.add_tenant("bench", tz.clone());
    let mut traffic = Traffic::new(7);
    // A large contact center: about 400 calls a minute at the morning peak, several
    // rows per call.
    traffic.calls_per_minute = 220.0;
    sim.set_traffic("bench", traffic);
    let start: Timestamp = "2026-03-03T13:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let mut end = start + SignedDuration::from_mins(30);
    loop {
        let mut rows = sim.rows_between("bench", start, end);
        if rows.len() >= n {
            rows.truncate(n);
            // The query ends after the last row's second, as an answer under the cap would.
            let last = rows.last().map(|r| r.at);
            let q_end = last
                .and_then(|at| tz.to_ambiguous_timestamp(at).later().ok())
                .map_or(end, |t| t + SignedDuration::from_secs(1));
            let q = window::query_for(Range::new(start, q_end.min(end)), &tz);
            return (rows, q);
        }
        end += SignedDuration::from_mins(30);
    }
}

/// The 200 answer's body for `rows`, exactly as the simulator's server writes it.
pub fn body(rows: &[SimRow]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        code: u16,
        error: Option<&'a str>,
        msg: String,
        data: &'a [SimRow],
    }
    serde_json::to_vec(&Envelope {
        code: 200,
        error: None,
        msg: format!("{} records were found", rows.len()),
        data: rows,
    })
    .unwrap_or_default()
}

/// One full answer (59,999 rows; a small one when only testing) and its query.
pub fn full_answer() -> (Vec<u8>, Query) {
    let (rows, q) = rows(if measuring() { FULL_ANSWER_ROWS } else { 1_000 });
    (body(&rows), q)
}

/// `cargo bench` measures; `cargo test --all-targets` runs each bench once as a smoke
/// test, in a debug build, where the full sizes would only cost time.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `full` when measuring, `small` when only testing.
pub fn size(full: usize, small: usize) -> usize {
    if measuring() { full } else { small }
}

/// Criterion's median estimate (nanoseconds) of `group/id`, if it was written by this
/// run (not left over from an earlier one).
pub fn estimate(group: &str, id: &str, since: std::time::SystemTime) -> Option<f64> {
    let dir = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|d| std::path::PathBuf::from(d).join("criterion"))
        })
        .unwrap_or_else(|| std::path::PathBuf::from("target/criterion"));
    let path = dir.join(group).join(id).join("new").join("estimates.json");
    let meta = std::fs::metadata(&path).ok()?;
    if meta.modified().ok()? < since {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}
