//! Exactly-once counting. A row's identity is the hash of its ten fields; the ledger
//! remembers, per identity, the most copies of it seen in any one response, and counts
//! only copies beyond that. Overlapping ranges therefore count a row once, while true
//! duplicates inside one response each count.
//!
//! Pure: no clock, no I/O. Rows are observed in place, each change journaled until
//! [`Ledger::commit`] keeps it or [`Ledger::roll_back`] undoes it, so a failed part
//! leaves no trace and needs no copy of the ledger.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher};

use jiff::civil::DateTime;
use serde::{Deserialize, Serialize};

use crate::journal::Journal;

pub type RowId = u128;

/// Hashing for maps keyed by [`RowId`] (or by another hash). Identities are already 128-bit hashes, so
/// SipHash (std's default, a third of the cost of a whole cycle's de-duplication) buys
/// nothing; one folded multiply of the two halves with per-process random keys spreads
/// them as well, and the random keys keep bucket positions unpredictable to whoever
/// writes the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdHasherBuilder {
    keys: (u64, u64),
}

impl Default for IdHasherBuilder {
    fn default() -> Self {
        static KEYS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
        let keys = *KEYS.get_or_init(|| {
            let r = std::collections::hash_map::RandomState::new();
            (r.hash_one(1u64) | 1, r.hash_one(2u64) | 1)
        });
        IdHasherBuilder { keys }
    }
}

impl BuildHasher for IdHasherBuilder {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            keys: self.keys,
            state: 0,
        }
    }
}

pub struct IdHasher {
    keys: (u64, u64),
    state: u64,
}

fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.state
    }
    fn write_u128(&mut self, v: u128) {
        let (lo, hi) = (v as u64, (v >> 64) as u64);
        self.state = folded_multiply(lo ^ self.keys.0 ^ self.state, hi ^ self.keys.1);
    }
    fn write_u64(&mut self, v: u64) {
        self.state = folded_multiply(v ^ self.keys.0 ^ self.state, self.keys.1);
    }
    // Anything else (never used by the ledger's maps) still hashes correctly.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(b));
        }
    }
}

/// A map keyed by identities (or other values that are hashes already).
pub type IdMap<V> = HashMap<RowId, V, IdHasherBuilder>;

/// What the ledger keeps per identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The most copies seen in one response.
    pub count: u32,
    /// The row's local wall time (or, for an undated row, the latest wall time of a
    /// query that returned it): once every future query starts after it, the row can
    /// no longer come back and is forgotten.
    pub keep_until: DateTime,
}

#[derive(Debug, Default)]
pub struct Ledger {
    seen: IdMap<Seen>,
    journal: Journal<Seen>,
}

/// Equal when they remember the same identities (pending changes included).
impl PartialEq for Ledger {
    fn eq(&self, other: &Ledger) -> bool {
        self.seen == other.seen
    }
}

/// The committed ledger and its pending changes alike; the copy has nothing pending.
impl Clone for Ledger {
    fn clone(&self) -> Ledger {
        Ledger {
            seen: self.seen.clone(),
            journal: Journal::default(),
        }
    }
}

/// Gives back most of a table that a commit emptied: a catch-up's part fills the
/// ledger with its rows (and the calls with a call per row) and forgets nearly all of
/// them at its commit. (Keeping the room for the next part was tried: the tables then
/// grow past a part's size, 56 MiB at 900,000 rows against 45.)
pub(crate) fn shrink_emptied<K: Eq + std::hash::Hash, V>(
    table: &mut HashMap<K, V, IdHasherBuilder>,
) {
    if table.capacity() > 4 * table.len().max(256) {
        table.shrink_to(table.len());
    }
}

/// One or more responses being observed into the ledger.
#[derive(Debug)]
pub struct Batch<'l> {
    ledger: &'l mut Ledger,
    /// Copies of each identity in the rows being observed; kept between calls only to
    /// reuse its allocation.
    in_response: IdMap<u32>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Observes responses; their changes are pending until [`Ledger::commit`].
    pub fn begin(&mut self) -> Batch<'_> {
        Batch {
            ledger: self,
            in_response: IdMap::default(),
        }
    }

    /// Keeps the pending changes, and forgets identities that no query starting at
    /// wall time `floor` or later can return. Returns how many were forgotten.
    pub fn commit(&mut self, floor: DateTime) -> usize {
        self.journal.forget();
        let before = self.seen.len();
        self.seen.retain(|_, s| s.keep_until >= floor);
        shrink_emptied(&mut self.seen);
        before - self.seen.len()
    }

    /// Undoes the changes since the last commit.
    pub fn roll_back(&mut self) {
        self.journal.undo(&mut self.seen);
    }

    /// Whether changes wait for a commit.
    pub fn pending(&self) -> bool {
        !self.journal.is_empty()
    }

    /// Every identity remembered, pending changes included.
    pub fn iter(&self) -> impl Iterator<Item = (&RowId, &Seen)> {
        self.seen.iter()
    }

    pub fn from_entries(entries: impl IntoIterator<Item = (RowId, Seen)>) -> Ledger {
        Ledger {
            seen: entries.into_iter().collect(),
            journal: Journal::default(),
        }
    }
}

impl Batch<'_> {
    /// Room for `additional` more identities at once: growing by doublings rehashed the
    /// table at each (3% of a catch-up's CPU), and each doubling held both tables.
    pub fn reserve(&mut self, additional: usize) {
        self.ledger.seen.reserve(additional);
    }

    /// Takes one response's rows as `(identity, keep_until)` in order, and returns for
    /// each whether it is new (to be counted) or a copy already counted.
    pub fn observe(&mut self, rows: &[(RowId, DateTime)]) -> Vec<bool> {
        self.observe_each(rows.iter().copied(), rows.len())
    }

    /// [`Batch::observe`] over an iterator of about `len` rows, so callers need not
    /// gather the pairs first.
    pub fn observe_each(
        &mut self,
        rows: impl IntoIterator<Item = (RowId, DateTime)>,
        len: usize,
    ) -> Vec<bool> {
        let mut fresh = Vec::with_capacity(len);
        self.reserve(len);
        self.observe_into(rows, &mut fresh);
        fresh
    }

    /// [`Batch::observe`], appending to `fresh`. `rows` may also be one run of a
    /// response's rows that holds every copy of each identity in it (a run of rows with
    /// one date, when the response is in date order: copies share their date): the
    /// copies are counted within the run, which keeps that count small and in cache.
    pub fn observe_into(
        &mut self,
        rows: impl IntoIterator<Item = (RowId, DateTime)>,
        fresh: &mut Vec<bool>,
    ) {
        let Ledger { seen, journal } = &mut *self.ledger;
        for (id, keep_until) in rows {
            let k = self.in_response.entry(id).or_insert(0);
            *k += 1;
            let k = *k;
            match seen.entry(id) {
                Entry::Occupied(mut e) => {
                    let prior = *e.get();
                    fresh.push(k > prior.count);
                    let entry = Seen {
                        count: prior.count.max(k),
                        keep_until: prior.keep_until.max(keep_until),
                    };
                    if entry != prior {
                        journal.changed(id, prior);
                        e.insert(entry);
                    }
                }
                Entry::Vacant(e) => {
                    fresh.push(true);
                    journal.added(id);
                    e.insert(Seen {
                        count: k,
                        keep_until,
                    });
                }
            }
        }
        // Clearing costs the map's capacity: after a large response start afresh, so
        // many small runs that follow stay cheap.
        if self.in_response.capacity() > 4096 {
            self.in_response = IdMap::default();
        } else {
            self.in_response.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn at(m: i8) -> DateTime {
        date(2026, 11, 27).at(10, m, 0, 0)
    }

    fn run(ledger: &mut Ledger, responses: &[&[(RowId, DateTime)]]) -> usize {
        let mut b = ledger.begin();
        let mut n = 0;
        for r in responses {
            n += b.observe(r).iter().filter(|f| **f).count();
        }
        ledger.commit(DateTime::MIN);
        n
    }

    #[test]
    fn overlapping_responses_count_once() {
        let mut l = Ledger::new();
        assert_eq!(run(&mut l, &[&[(1, at(0)), (2, at(1))]]), 2);
        assert_eq!(run(&mut l, &[&[(1, at(0)), (2, at(1)), (3, at(6))]]), 1);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn duplicates_inside_one_response_each_count() {
        let mut l = Ledger::new();
        assert_eq!(run(&mut l, &[&[(7, at(0)), (7, at(0))]]), 2);
        // Seen again with the same two copies: nothing new.
        assert_eq!(run(&mut l, &[&[(7, at(0)), (7, at(0))]]), 0);
        // A third copy appears later (a late duplicate): one more.
        assert_eq!(run(&mut l, &[&[(7, at(0)), (7, at(0)), (7, at(0))]]), 1);
        // Copies spread over two responses of one cycle are not added up.
        assert_eq!(run(&mut l, &[&[(8, at(1))], &[(8, at(1))]]), 1);
    }

    fn entries(l: &Ledger) -> Vec<(RowId, Seen)> {
        let mut v: Vec<_> = l.iter().map(|(id, s)| (*id, *s)).collect();
        v.sort_by_key(|e| e.0);
        v
    }

    #[test]
    fn a_rolled_back_batch_changes_nothing() {
        let mut l = Ledger::new();
        run(&mut l, &[&[(1, at(0)), (3, at(0)), (3, at(0))]]);
        let before = entries(&l);
        let mut b = l.begin();
        // A new identity, a third copy of one, a later sighting of another; twice.
        assert_eq!(
            b.observe(&[(1, at(4)), (2, at(0)), (3, at(0)), (3, at(0)), (3, at(0))]),
            vec![false, true, false, false, true]
        );
        assert_eq!(b.observe(&[(2, at(9)), (2, at(9))]), vec![false, true]);
        assert!(l.pending());
        l.roll_back();
        assert!(!l.pending());
        assert_eq!(entries(&l), before);
        // And what was rolled back counts again.
        assert_eq!(run(&mut l, &[&[(2, at(0))]]), 1);
    }

    #[test]
    fn a_commit_keeps_what_a_later_roll_back_cannot_undo() {
        let mut l = Ledger::new();
        run(&mut l, &[&[(1, at(0))]]);
        let kept = entries(&l);
        l.begin().observe(&[(2, at(1))]);
        l.roll_back();
        l.roll_back();
        assert_eq!(entries(&l), kept);
        assert!(!l.pending());
    }

    #[test]
    fn forgets_only_what_cannot_come_back() {
        let mut l = Ledger::new();
        run(&mut l, &[&[(1, at(0)), (2, at(5)), (3, at(10))]]);
        assert_eq!(l.commit(at(5)), 1);
        assert_eq!(l.len(), 2);
        // A later sighting keeps an identity by its latest wall time.
        run(&mut l, &[&[(2, at(20))]]);
        assert_eq!(l.commit(at(15)), 1);
        assert_eq!(l.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![2]);
    }

    proptest! {
        /// The rule exactly: distinct rows (no true duplicates), any overlaps: each
        /// covered row counts once.
        #[test]
        fn distinct_rows_count_once_whatever_the_overlaps(
            n in 1usize..150,
            ranges in proptest::collection::vec((0usize..150, 0usize..150), 1..15),
        ) {
            let mut l = Ledger::new();
            let mut total = 0;
            let mut covered = vec![false; n];
            for (a, b) in ranges {
                let (a, b) = (a.min(b).min(n - 1), a.max(b).min(n - 1));
                let resp: Vec<_> = (a..=b).map(|i| (i as u128, at(0))).collect();
                total += run(&mut l, &[&resp]);
                for c in covered.iter_mut().take(b + 1).skip(a) { *c = true; }
            }
            prop_assert_eq!(total, covered.iter().filter(|c| **c).count());
        }

        /// Rolling back leaves exactly what the last commit kept, whatever the parts
        /// held: the ledger against a copy taken at each commit.
        #[test]
        fn a_roll_back_returns_to_the_last_commit(
            parts in proptest::collection::vec(
                (proptest::collection::vec((0u128..20, 0i8..30), 0..12), 0u8..3),
                1..12,
            ),
        ) {
            let mut l = Ledger::new();
            let mut committed = entries(&l);
            for (rows, what) in parts {
                let rows: Vec<_> = rows.into_iter().map(|(id, m)| (id, at(m))).collect();
                l.begin().observe(&rows);
                match what {
                    0 => {
                        l.roll_back();
                        prop_assert_eq!(entries(&l), committed.clone());
                    }
                    1 => {
                        l.commit(at(10));
                        committed = entries(&l);
                    }
                    _ => {} // still pending: the next part adds to it
                }
            }
            l.roll_back();
            prop_assert_eq!(entries(&l), committed);
        }

        /// With true duplicates: when every range that contains a copy contains all of
        /// them (whole windows of time), each copy counts exactly once.
        #[test]
        fn whole_window_duplicates_count_exactly(
            copies in proptest::collection::vec(1u32..4, 1..30),
            polls in proptest::collection::vec((0usize..30, 0usize..30), 1..10),
        ) {
            let mut l = Ledger::new();
            let mut total = 0u32;
            let mut covered = vec![false; copies.len()];
            for (a, b) in polls {
                let (a, b) = (a.min(b).min(copies.len() - 1), a.max(b).min(copies.len() - 1));
                let resp: Vec<_> = (a..=b).flat_map(|i| std::iter::repeat_n((i as u128, at(0)), copies[i] as usize)).collect();
                total += run(&mut l, &[&resp]) as u32;
                for c in covered.iter_mut().take(b + 1).skip(a) { *c = true; }
            }
            let want: u32 = copies.iter().zip(&covered).filter(|(_, c)| **c).map(|(n, _)| *n).sum();
            prop_assert_eq!(total, want);
        }
    }
}
