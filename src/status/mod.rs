//! What `/` and `/-/ready` show about each operation: the [`Status`] a poller keeps up
//! to date, and the status page drawn from it. The page is built in two pure steps, a
//! model of plain values ([`page`]) and its HTML ([`render`], with [`svg`] charts), so
//! that both are tested with exact values; [`index`] is the I/O edge (locks, clock).

pub mod cycles;
pub mod history;
pub mod page;
pub mod redact;
pub mod render;
pub mod svg;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use cycles::{CycleRecord, Cycles, Tally};
pub use history::{Counts, History};

/// What `/` and `/-/ready` show about an operation.
#[derive(Debug, Clone)]
pub struct Status {
    pub name: String,
    pub zone: String,
    /// The operation's zone: the page shows its times as the operation's people read
    /// them.
    pub tz: TimeZone,
    pub first_cycle_done: bool,
    /// The last cycle's result; `None` until a cycle has run in this process.
    pub up: Option<bool>,
    pub watermark: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    /// The last failed cycle. A success does not clear it: only the next error
    /// replaces it, so a failure that fixed itself still shows what it was.
    pub last_error: Option<LastError>,
    pub requests_today: u64,
    pub ledger_rows: usize,
    /// The token's budget as `token_info` last reported it.
    pub token: Option<TokenBudget>,
    /// The last [`cycles::KEPT`] cycles.
    pub cycles: Cycles,
    /// Rows and hung-up rows per window, in memory only.
    pub history: History,
    /// When this process began keeping `cycles` and `history` for the operation.
    pub since: Timestamp,
}

impl Status {
    /// A status with nothing seen yet, for an operation polled in windows of
    /// `interval`.
    pub fn new(name: &str, zone: &str, tz: TimeZone, interval: Duration, now: Timestamp) -> Status {
        Status {
            name: name.to_string(),
            zone: zone.to_string(),
            tz,
            first_cycle_done: false,
            up: None,
            watermark: None,
            last_success: None,
            last_error: None,
            requests_today: 0,
            ledger_rows: 0,
            token: None,
            cycles: Cycles::default(),
            history: History::new(interval),
            since: now,
        }
    }
}

/// A failed cycle, as `/` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub at: Timestamp,
    /// The error's class: `invalid_token`, `http_5xx`, `state`...
    pub reason: String,
    /// What happened, through [`redact::safe_text`]: short, one line, with no token
    /// and nothing that looks like caller data.
    pub text: String,
}

/// What `token_info` reported, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBudget {
    pub limit: Option<u64>,
    pub used_today: Option<u64>,
    pub at: Timestamp,
}

pub type SharedStatus = Arc<Mutex<Status>>;

/// Every operation's status, in config order: replaced whole by a config reload.
#[derive(Debug, Default)]
pub struct Statuses(RwLock<Vec<SharedStatus>>);

impl Statuses {
    pub fn new(list: Vec<SharedStatus>) -> Statuses {
        Statuses(RwLock::new(list))
    }

    pub fn set(&self, list: Vec<SharedStatus>) {
        match self.0.write() {
            Ok(mut g) => *g = list,
            Err(p) => *p.into_inner() = list,
        }
    }

    pub fn list(&self) -> Vec<SharedStatus> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// A copy of every operation's status, in config order.
pub fn snapshot(statuses: &[SharedStatus]) -> Vec<Status> {
    statuses
        .iter()
        .map(|s| match s.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        })
        .collect()
}

/// The landing page, as of now.
pub fn index(statuses: &[SharedStatus], telemetry_path: &str) -> String {
    let model = page::build(
        &snapshot(statuses),
        Timestamp::now(),
        env!("CARGO_PKG_VERSION"),
        telemetry_path,
    );
    render::page(&model)
}
