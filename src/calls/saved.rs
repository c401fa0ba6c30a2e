//! Calls as the state file holds them: closed-call series, open calls and the ids of
//! recently closed ones, every id as its keyed hash in hex (no `conn_id` on disk). A
//! commit writes this layout from the live tables ([`crate::state::view`]); these types
//! read it back.

use std::sync::Arc;

use jiff::civil::DateTime;
use serde::{Deserialize, Serialize};

use super::{CallId, CallRules, CallTotals, Calls, OpenCall};
use crate::totals::Histogram;
use crate::wolkvox::row::Outcome;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedCallTotals {
    pub by_entry: Vec<SavedEntry>,
    pub steps: [Histogram; 4],
    pub durations: [Histogram; 4],
    pub late_rows: u64,
    pub rows_without_call: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEntry {
    pub rp_id: String,
    pub rp_name: String,
    /// By [`super::CallOutcome::index`].
    pub calls: [u64; 4],
}

impl From<SavedCallTotals> for CallTotals {
    fn from(s: SavedCallTotals) -> Self {
        CallTotals {
            by_entry: s
                .by_entry
                .into_iter()
                .map(|e| ((e.rp_id, e.rp_name), e.calls))
                .collect(),
            steps: s.steps,
            durations: s.durations,
            late_rows: s.late_rows,
            rows_without_call: s.rows_without_call,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedOpenCall {
    /// The keyed hash, 32 hex digits.
    pub id: String,
    pub rp_id: String,
    pub rp_name: String,
    pub first: DateTime,
    pub last: DateTime,
    pub last_result: Outcome,
    pub served: bool,
    pub steps: u32,
    pub duration: f64,
}

/// Open calls and recently closed ids, as saved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedCalls {
    pub open: Vec<SavedOpenCall>,
    /// `(keyed hash in hex, latest row's date)`.
    pub closed: Vec<(String, DateTime)>,
}

#[derive(Debug, thiserror::Error)]
#[error("calls: {0:?} is not a call id (32 hex digits)")]
pub struct BadCallId(pub String);

fn parse_id(s: &str) -> Result<CallId, BadCallId> {
    u128::from_str_radix(s, 16)
        .ok()
        .filter(|_| s.len() == 32)
        .ok_or_else(|| BadCallId(s.to_string()))
}

impl SavedCalls {
    pub fn restore(self, rules: Arc<CallRules>) -> Result<Calls, BadCallId> {
        let open = self
            .open
            .into_iter()
            .map(|o| {
                Ok((
                    parse_id(&o.id)?,
                    OpenCall {
                        entry: Arc::new((o.rp_id, o.rp_name)),
                        first: o.first,
                        last: o.last,
                        last_result: o.last_result,
                        served: o.served,
                        steps: o.steps,
                        duration: o.duration,
                    },
                ))
            })
            .collect::<Result<Vec<_>, BadCallId>>()?;
        let closed = self
            .closed
            .into_iter()
            .map(|(id, d)| Ok((parse_id(&id)?, d)))
            .collect::<Result<Vec<_>, BadCallId>>()?;
        Ok(Calls::restore(rules, open, closed))
    }
}
