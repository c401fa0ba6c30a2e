//! The call series of one operation: plain data, saved with the rest of the totals and
//! rendered at scrape time.

use serde::{Deserialize, Serialize};

use crate::totals::{Histogram, LabelMap, RpKey};

/// Bounds of `wolkvox_ivr_call_steps` (fixed by the contract).
pub const STEP_BUCKETS: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0];

/// How a closed call ended, from its latest row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CallOutcome {
    Agent,
    SelfService,
    Abandoned,
    Other,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Agent,
        CallOutcome::SelfService,
        CallOutcome::Abandoned,
        CallOutcome::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Agent => "agent",
            CallOutcome::SelfService => "self_service",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallTotals {
    /// Closed calls by entry routing point, by [`CallOutcome::index`].
    pub by_entry: LabelMap<RpKey, [u64; 4]>,
    /// By [`CallOutcome::index`], over [`STEP_BUCKETS`].
    pub steps: [Histogram; 4],
    /// By [`CallOutcome::index`], over the operation's `duration_buckets`.
    pub durations: [Histogram; 4],
    /// Rows of calls already closed: counted as rows, not in any call.
    pub late_rows: u64,
    /// Rows with an empty `conn_id`.
    pub rows_without_call: u64,
}

impl CallTotals {
    pub fn new(duration_buckets: usize) -> CallTotals {
        CallTotals {
            by_entry: LabelMap::default(),
            steps: std::array::from_fn(|_| Histogram::new(STEP_BUCKETS.len())),
            durations: std::array::from_fn(|_| Histogram::new(duration_buckets)),
            late_rows: 0,
            rows_without_call: 0,
        }
    }

    /// Closed calls in all.
    pub fn calls(&self) -> u64 {
        self.by_entry.values().flatten().sum()
    }
}

impl Default for CallTotals {
    fn default() -> Self {
        CallTotals::new(0)
    }
}
