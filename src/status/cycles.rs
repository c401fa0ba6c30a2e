//! The last poll cycles of an operation, as blackbox_exporter lists its recent probes:
//! what each asked for, what it took in and how it ended.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

/// How many cycles `/` lists.
pub const KEPT: usize = 20;

/// What one cycle did, counted as it goes (a failed cycle keeps what it did before the
/// failure): every request sent, and what each committed part added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    /// Parts committed.
    pub parts: u64,
    /// Rows committed that were new, and copies of rows already counted.
    pub new_rows: u64,
    pub duplicates: u64,
}

/// One finished cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRecord {
    pub started: Timestamp,
    /// The range it asked for, `[start, end)`.
    pub start: Timestamp,
    pub end: Timestamp,
    pub tally: Tally,
    pub took: Duration,
    /// `None` for a cycle that reached the end of its range; else the error's class and
    /// its safe text (see [`super::LastError`]).
    pub error: Option<(String, String)>,
}

/// The last [`KEPT`] cycles, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cycles(VecDeque<CycleRecord>);

impl Cycles {
    pub fn push(&mut self, record: CycleRecord) {
        if self.0.len() == KEPT {
            self.0.pop_front();
        }
        self.0.push_back(record);
    }

    /// Newest first, as the page lists them.
    pub fn newest_first(&self) -> impl Iterator<Item = &CycleRecord> {
        self.0.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64) -> CycleRecord {
        let t = Timestamp::from_second(1_700_000_000 + i).unwrap();
        CycleRecord {
            started: t,
            start: t,
            end: t,
            tally: Tally::default(),
            took: Duration::ZERO,
            error: None,
        }
    }

    #[test]
    fn keeps_the_last_twenty_newest_first() {
        let mut c = Cycles::default();
        assert!(c.is_empty());
        for i in 0..25 {
            c.push(record(i));
        }
        assert_eq!(c.len(), KEPT);
        let order: Vec<i64> = c
            .newest_first()
            .map(|r| r.started.as_second() - 1_700_000_000)
            .collect();
        assert_eq!(order, (5..25).rev().collect::<Vec<_>>());
    }

    #[test]
    fn fewer_than_twenty_are_all_kept() {
        let mut c = Cycles::default();
        for i in 0..3 {
            c.push(record(i));
        }
        let order: Vec<i64> = c
            .newest_first()
            .map(|r| r.started.as_second() - 1_700_000_000)
            .collect();
        assert_eq!(order, vec![2, 1, 0]);
    }
}
