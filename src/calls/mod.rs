//! Calls: an operation's rows grouped by `conn_id` (the contract's "Calls").
//!
//! Pure, like the ledger: no clock, no I/O. New rows (after de-duplication) are
//! [`Calls::observe`]d into open calls, in place and journaled, so that
//! [`Calls::roll_back`] undoes a part that fails. When a part commits,
//! [`Calls::count_closing`] counts every call whose latest row the watermark has passed
//! by `close_after`, once, into [`CallTotals`], and [`Calls::commit`] then closes them
//! and remembers each id for as long as a late row of it can still come, so that such a
//! row counts as late instead of opening a second call. Between the two the state is
//! saved (`state::CallsView` writes what the commit will leave), so a failed save
//! changes nothing.
//!
//! A row whose date does not read is placed at the end of the range it came in (as the
//! ledger keeps it), so it can neither be a call's entry by accident nor close it early.

pub mod key;
pub mod saved;
pub mod totals;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::civil::DateTime;

pub use key::{CallId, CallKey};
pub use totals::{CallOutcome, CallTotals, STEP_BUCKETS};

use crate::journal::Journal;
use crate::ledger::{IdHasherBuilder, shrink_emptied};
use crate::totals::{Histogram, LabelMap, OTHER, RpKey, Totals};
use crate::wolkvox::row::{Outcome, Reading};

/// What makes a hung-up call `self_service`: one of its rows has one of these options
/// or transfers (compared as read: trimmed, `PULSE` upper-cased).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfService {
    pub options: HashSet<String>,
    pub transfers: HashSet<String>,
}

/// An operation's call rules, shared by every copy of its [`Calls`].
#[derive(Debug, Clone, PartialEq)]
pub struct CallRules {
    pub key: CallKey,
    pub self_service: SelfService,
}

/// A call that can still grow.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCall {
    /// Routing point of the earliest row (ties: the row seen first), shared with
    /// every other call that entered there.
    pub entry: Arc<RpKey>,
    pub first: DateTime,
    /// Date of the latest row (ties: the row seen last), whose result is `last_result`.
    pub last: DateTime,
    pub last_result: Outcome,
    /// A row had a self-service option or transfer.
    pub served: bool,
    pub steps: u32,
    /// Sum of the rows' valid durations, in seconds.
    pub duration: f64,
}

impl OpenCall {
    pub fn outcome(&self) -> CallOutcome {
        match self.last_result {
            Outcome::Ok => CallOutcome::Agent,
            Outcome::HungUp if self.served => CallOutcome::SelfService,
            Outcome::HungUp => CallOutcome::Abandoned,
            Outcome::Other => CallOutcome::Other,
        }
    }
}

type IdMap<V> = HashMap<CallId, V, IdHasherBuilder>;

/// Open calls, and the ids of recently closed ones with their latest row's date.
#[derive(Debug)]
pub struct Calls {
    rules: Arc<CallRules>,
    open: IdMap<OpenCall>,
    closed: IdMap<DateTime>,
    entries: Entries,
    /// What [`Calls::observe`] changed in `open` since the last commit.
    journal: Journal<OpenCall>,
}

/// The calls with their pending changes; the copy has nothing pending.
impl Clone for Calls {
    fn clone(&self) -> Self {
        Calls {
            rules: Arc::clone(&self.rules),
            open: self.open.clone(),
            closed: self.closed.clone(),
            entries: self.entries.clone(),
            journal: Journal::default(),
        }
    }
}

/// Equal when they hold the same calls, however their labels are shared.
impl PartialEq for Calls {
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules && self.open == other.open && self.closed == other.closed
    }
}

/// The entry labels of open calls, one copy each: a catch-up's part can hold 100,000
/// open calls entering at a few hundred routing points.
#[derive(Debug, Clone, Default)]
struct Entries(LabelMap<String, Vec<Arc<RpKey>>>);

impl Entries {
    fn get(&mut self, rp_id: &str, rp_name: &str) -> Arc<RpKey> {
        // One lookup when the routing point is known (a local borrow: a helper
        // returning it would need two).
        let names = match self.0.get_mut(rp_id) {
            Some(names) => names,
            None => self.0.entry(rp_id.to_string()).or_default(),
        };
        match names.iter().find(|e| e.1 == rp_name) {
            Some(e) => Arc::clone(e),
            None => {
                let e = Arc::new((rp_id.to_string(), rp_name.to_string()));
                names.push(Arc::clone(&e));
                e
            }
        }
    }

    /// Only the labels that open calls hold: what closed calls entered with goes.
    fn keep_only<'c>(&mut self, open: impl Iterator<Item = &'c OpenCall>) {
        self.0.clear();
        for c in open {
            let names = match self.0.get_mut(&c.entry.0) {
                Some(names) => names,
                None => self.0.entry(c.entry.0.clone()).or_default(),
            };
            if !names.iter().any(|e| Arc::ptr_eq(e, &c.entry)) {
                names.push(Arc::clone(&c.entry));
            }
        }
    }
}

/// What one [`Calls::observe`] did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    NoCall,
    Late,
    Opened,
    Grew,
}

impl Calls {
    pub fn new(rules: Arc<CallRules>) -> Calls {
        Calls {
            rules,
            open: IdMap::default(),
            closed: IdMap::default(),
            entries: Entries::default(),
            journal: Journal::default(),
        }
    }

    /// Calls under `key` with no self-service options, for callers that only need the
    /// grouping (benchmarks, the fuzz target, tests).
    pub fn with_key(key: CallKey) -> Calls {
        Calls::new(Arc::new(CallRules {
            key,
            self_service: SelfService::default(),
        }))
    }

    /// Calls as saved: open ones and closed ids, both already keyed.
    pub fn restore(
        rules: Arc<CallRules>,
        open: impl IntoIterator<Item = (CallId, OpenCall)>,
        closed: impl IntoIterator<Item = (CallId, DateTime)>,
    ) -> Calls {
        let mut entries = Entries::default();
        let open: IdMap<OpenCall> = open
            .into_iter()
            .map(|(id, mut c)| {
                c.entry = entries.get(&c.entry.0, &c.entry.1);
                (id, c)
            })
            .collect();
        // A call is open or closed, never both ([`Calls::observe`] relies on it); a
        // file that says both keeps it open.
        let closed = closed
            .into_iter()
            .filter(|(id, _)| !open.contains_key(id))
            .collect();
        Calls {
            rules,
            open,
            closed,
            entries,
            journal: Journal::default(),
        }
    }

    /// Other self-service options and transfers from now on (a config reload); calls
    /// already open keep what their rows had.
    pub fn set_self_service(&mut self, self_service: SelfService) {
        if self.rules.self_service != self_service {
            self.rules = Arc::new(CallRules {
                key: self.rules.key,
                self_service,
            });
        }
    }

    pub fn rules(&self) -> &CallRules {
        &self.rules
    }

    pub fn open(&self) -> impl Iterator<Item = (&CallId, &OpenCall)> {
        self.open.iter()
    }

    pub fn closed(&self) -> impl Iterator<Item = (&CallId, &DateTime)> {
        self.closed.iter()
    }

    /// Room for `additional` more open calls.
    pub fn reserve(&mut self, additional: usize) {
        self.open.reserve(additional);
    }

    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    pub fn closed_len(&self) -> usize {
        self.closed.len()
    }

    /// Adds one new (not duplicate) row, dated `date` (see the module's note on rows
    /// whose date does not read), whose `conn_id` has the [`key::digest`] `conn`.
    pub fn observe(
        &mut self,
        conn: Option<u128>,
        r: &Reading<'_>,
        date: DateTime,
        t: &mut CallTotals,
    ) -> Observed {
        let Some(digest) = conn else {
            t.rows_without_call += 1;
            return Observed::NoCall;
        };
        let id = self.rules.key.id(digest);
        let ss = &self.rules.self_service;
        let served = || {
            r.option.as_deref().is_some_and(|o| ss.options.contains(o))
                || r.transfer.is_some_and(|d| ss.transfers.contains(d))
        };
        let duration = r.duration.unwrap_or(0.0);
        // One probe of the table, whether the call is new or not.
        match self.open.entry(id) {
            Entry::Occupied(mut e) => {
                let c = e.get_mut();
                self.journal.changed(id, c.clone());
                if date < c.first {
                    c.first = date;
                    if c.entry.0 != r.rp_id || c.entry.1 != r.rp_name {
                        c.entry = self.entries.get(r.rp_id, r.rp_name);
                    }
                }
                if date >= c.last {
                    c.last = date;
                    c.last_result = r.outcome;
                }
                c.served |= served();
                c.steps = c.steps.saturating_add(1);
                c.duration += duration;
                Observed::Grew
            }
            // Open and closed ids never overlap: only a call not open can be closed.
            Entry::Vacant(_) if self.closed.contains_key(&id) => {
                t.late_rows += 1;
                Observed::Late
            }
            Entry::Vacant(e) => {
                e.insert(OpenCall {
                    entry: self.entries.get(r.rp_id, r.rp_name),
                    first: date,
                    last: date,
                    last_result: r.outcome,
                    served: served(),
                    steps: 1,
                    duration,
                });
                self.journal.added(id);
                Observed::Opened
            }
        }
    }

    /// Counts into `t.calls` every open call whose latest row is dated before
    /// `close_before` (the watermark minus `close_after`, as a wall time), as
    /// [`Calls::commit`] with the same `close_before` will close them. Returns how many.
    ///
    /// The entry's labels are those the routing point has in the row totals, which
    /// already hold every row of the call: `_other` when the routing point was folded.
    pub fn count_closing(
        &self,
        close_before: DateTime,
        t: &mut Totals,
        duration_bounds: &[f64],
    ) -> usize {
        // Counted by entry first, labels resolved once per entry after: a catch-up's
        // part closes tens of thousands of calls that entered at a few hundred.
        let mut by_entry: HashMap<usize, (&RpKey, [u64; 4]), IdHasherBuilder> = HashMap::default();
        let calls = &mut t.calls;
        let mut closing = 0;
        for c in self.open.values().filter(|c| c.last < close_before) {
            let o = c.outcome().index();
            by_entry
                .entry(Arc::as_ptr(&c.entry).addr())
                .or_insert((&*c.entry, [0; 4]))
                .1[o] += 1;
            observe(&mut calls.steps[o], &STEP_BUCKETS, f64::from(c.steps));
            observe(&mut calls.durations[o], duration_bounds, c.duration);
            closing += 1;
        }
        let known = &t.routing_points;
        let other: RpKey = (OTHER.to_string(), OTHER.to_string());
        for (entry, n) in by_entry.into_values() {
            // Adding to `_other` never makes an entry known: each resolves as it would
            // call by call.
            let label = if calls.by_entry.contains_key(entry) || known.contains_key(entry) {
                entry
            } else {
                &other
            };
            let counts = match calls.by_entry.get_mut(label) {
                Some(counts) => counts,
                None => calls.by_entry.entry(label.clone()).or_default(),
            };
            for (total, add) in counts.iter_mut().zip(n) {
                *total += add;
            }
        }
        closing
    }

    /// Keeps what was observed since the last commit, closes every open call whose
    /// latest row is dated before `close_before` (counted by [`Calls::count_closing`]),
    /// and forgets closed ids whose latest row is before `forget_before` (no late row
    /// of theirs can be asked for any more).
    pub fn commit(&mut self, close_before: DateTime, forget_before: DateTime) {
        self.journal.forget();
        self.closed.retain(|_, last| *last >= forget_before);
        let closed = &mut self.closed;
        self.open.retain(|id, c| {
            if c.last >= close_before {
                return true;
            }
            if c.last >= forget_before {
                closed.insert(*id, c.last);
            }
            false
        });
        shrink_emptied(&mut self.open);
        shrink_emptied(&mut self.closed);
        self.entries.keep_only(self.open.values());
    }

    /// [`Calls::count_closing`] and [`Calls::commit`] at once, where nothing can fail
    /// between them. Returns how many calls closed.
    pub fn close(
        &mut self,
        close_before: DateTime,
        forget_before: DateTime,
        t: &mut Totals,
        duration_bounds: &[f64],
    ) -> usize {
        let closed = self.count_closing(close_before, t, duration_bounds);
        self.commit(close_before, forget_before);
        closed
    }

    /// Undoes what was observed since the last commit.
    pub fn roll_back(&mut self) {
        self.journal.undo(&mut self.open);
    }

    /// Whether observed rows wait for a commit.
    pub fn pending(&self) -> bool {
        !self.journal.is_empty()
    }
}

/// Observes into a histogram sized for `bounds` (one restored or made before the
/// bounds were known has no buckets yet).
fn observe(h: &mut Histogram, bounds: &[f64], v: f64) {
    if h.buckets.len() != bounds.len() {
        h.buckets.resize(bounds.len(), 0);
    }
    h.observe(bounds, v);
}

#[cfg(test)]
mod tests;
