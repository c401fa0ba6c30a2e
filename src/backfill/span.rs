//! How long the next request of a backfill may be: sized from the rows the same hours
//! had yesterday ([`Recent`]), so that a busy range is not split from 31 days down at
//! every request and a quiet one is not asked for hour by hour.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};

use crate::ingest::ROW_CAP;
use crate::window::Range;

/// Rows an answer is aimed at while cut-off answers have to be halved: a quarter under
/// the cap leaves room for the hour being busier than predicted.
pub(super) const TARGET_ROWS: i64 = (ROW_CAP as i64) * 3 / 4;
/// ... and once a cut-off answer came in date order: over the cap, as an answer at
/// the cap loses nothing (its complete rows are kept and the rest asked next), so
/// nearly every request brings a full 60,000 rows.
pub(super) const TARGET_ROWS_ORDERED: i64 = (ROW_CAP as i64) * 2;
const DAY: SignedDuration = SignedDuration::from_hours(24);

/// The rows counted before each recent window end, over the last two days: enough to
/// size the next query from the same hours yesterday.
#[derive(Debug, Default, Clone)]
pub struct Recent {
    ends: VecDeque<(Timestamp, u64)>,
}

impl Recent {
    /// `rows` were counted before `end`; ends come in time order.
    pub fn record(&mut self, end: Timestamp, rows: u64) {
        self.ends.push_back((end, rows));
        // Two days: yesterday's hours of a query up to a day long.
        let horizon = end - DAY - DAY;
        while self.ends.len() > 1 && self.ends.get(1).is_some_and(|(t, _)| *t <= horizon) {
            self.ends.pop_front();
        }
    }

    /// Rows counted before the last recorded end at or before `t`.
    pub fn rows_at(&self, t: Timestamp) -> Option<u64> {
        let i = self.ends.partition_point(|(e, _)| *e <= t);
        i.checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .map(|(_, n)| *n)
    }

    /// The next query's length in seconds, after the query over `last` answered `rows`
    /// rows. IVR traffic follows the clock (quiet nights, busy mornings), so the best
    /// guess is the same hours yesterday, scaled by how today compares so far; without
    /// a day behind, the last answer's density. It grows at most fourfold at a time;
    /// [`crate::window::plan`]'s parts bound it from above and a capped answer still splits.
    pub fn next_span(&self, last: Range, rows: usize, target: i64) -> i64 {
        let span = last.duration().as_secs().max(1);
        let grown = span.saturating_mul(4);
        let n = i64::try_from(rows).unwrap_or(i64::MAX);
        let by_density = if n > 0 {
            span.saturating_mul(target) / n
        } else {
            grown
        };
        let fallback = by_density.min(grown).max(1);
        let yesterday =
            |a: Timestamp, b: Timestamp| Some(self.rows_at(b)?.saturating_sub(self.rows_at(a)?));
        let (Some(before), Some(then)) = (
            yesterday(last.start - DAY, last.end - DAY),
            self.rows_at(last.end - DAY),
        ) else {
            return fallback;
        };
        if before == 0 {
            return fallback;
        }
        let scale = n as f64 / before as f64;
        let from = last.end - DAY;
        let mut best = None;
        for (end, cum) in self
            .ends
            .iter()
            .filter(|(e, _)| *e > from && *e <= last.end)
        {
            if scale * cum.saturating_sub(then) as f64 > target as f64 {
                break;
            }
            best = Some(end.duration_since(from).as_secs());
        }
        best.map_or(fallback, |b| b.min(grown).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn query_length_follows_the_traffic() {
        let day = 86_400;
        let t0 = ts("2026-04-01T00:00:00Z");
        let at = |h: i64| t0 + SignedDuration::from_hours(h);
        let hours = |a: i64, b: i64| Range::new(at(a), at(b));
        // No history: the last answer's density, aimed at 45,000 rows.
        let none = Recent::default();
        assert_eq!(none.next_span(hours(0, 24), 90_000, TARGET_ROWS), day / 2);
        // Quiet: grow, but at most fourfold.
        assert_eq!(none.next_span(hours(0, 24), 10, TARGET_ROWS), 4 * day);
        assert_eq!(none.next_span(hours(0, 24), 0, TARGET_ROWS), 4 * day);
        assert_eq!(
            none.next_span(
                Range::new(t0, t0 + SignedDuration::from_secs(1)),
                59_999,
                TARGET_ROWS
            ),
            1
        );
        // Yesterday: 1,000 rows an hour at night (0-6 h), 10,000 by day (6-24 h).
        let mut r = Recent::default();
        let mut total = 0;
        r.record(at(0), 0);
        for h in 1..=30 {
            total += if (h - 1) % 24 < 6 { 1_000 } else { 10_000 };
            r.record(at(h), total);
        }
        // Today so far (24-30 h) went like yesterday: at 06:00 the morning is coming,
        // and 45,000 rows is four and a half busy hours, not the 45 quiet ones the
        // last answer's density says.
        assert_eq!(r.next_span(hours(24, 30), 6_000, TARGET_ROWS), 4 * 3600);
        // Today twice as busy: half as long.
        assert_eq!(r.next_span(hours(24, 30), 12_000, TARGET_ROWS), 2 * 3600);
        assert_eq!(r.rows_at(at(4)), Some(4_000));
        assert_eq!(
            r.rows_at(at(4) + SignedDuration::from_mins(30)),
            Some(4_000)
        );
        // Old ends are dropped: two days are kept.
        for h in 31..=60 {
            total += 1_000;
            r.record(at(h), total);
        }
        assert_eq!(r.rows_at(at(11)), None);
        assert_eq!(r.rows_at(at(12)), Some(66_000));
    }
}
