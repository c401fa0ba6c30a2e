//! The poll cycle from outside: the exporter in-process against the simulator, exact
//! counts.
//!
//! The tests, by what they check: [`counting`] (every row once: the row cap, settle
//! re-polls, window edges, empty ranges, DST), [`failures`] (faults classified and
//! retried, a failed part, a spent budget), [`operations`] (several operations: zones,
//! a shared token, one failing, the demo's two).

mod counting;
mod failures;
mod operations;

use jiff::SignedDuration;

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}
