//! The range and the sample grid of a backfill, pure: the `--from`/`--to` forms
//! ([`DateArg`]) and the range they name in an operation's zone ([`resolve_range`]),
//! the window ends samples are written at ([`Windows`]), and the instant a row counts
//! at ([`row_instant`]), DST folds and gaps included.

use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use crate::window::Range;

/// A `--from`/`--to` value: a calendar day (midnight in each operation's zone) or an
/// instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateArg {
    Day(Date),
    Instant(Timestamp),
}

impl DateArg {
    /// `YYYY-mm-dd` or an RFC 3339 instant; `flag` names the option in the error.
    pub fn parse(flag: &str, s: &str) -> Result<DateArg, String> {
        let t = s.trim();
        // A bare date is exactly ten characters; anything longer must carry an offset.
        if t.len() == 10
            && let Ok(d) = t.parse::<Date>()
        {
            return Ok(DateArg::Day(d));
        }
        t.parse::<Timestamp>().map(DateArg::Instant).map_err(|_| {
            format!(
                "{flag}: {s:?} is neither a date (YYYY-mm-dd) nor an RFC 3339 instant (2026-04-01T00:00:00Z or 2026-04-01T00:00:00-05:00)"
            )
        })
    }

    /// The instant in `tz`, on a whole second: report dates have no fractions, and a
    /// bound inside a second would split that second's rows between two runs.
    pub fn resolve(self, tz: &TimeZone) -> Result<Timestamp, String> {
        let t = match self {
            // In a DST gap at midnight, the day starts when the clock jumps (01:00).
            DateArg::Day(d) => d
                .to_zoned_datetime(tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| format!("{d}: {e}"))?,
            DateArg::Instant(t) => t,
        };
        let whole = t.as_second() - i64::from(t.subsec_nanosecond() < 0);
        Timestamp::from_second(whole).map_err(|e| format!("{t}: {e}"))
    }
}

impl fmt::Display for DateArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateArg::Day(d) => write!(f, "{d}"),
            DateArg::Instant(t) => write!(f, "{t}"),
        }
    }
}

/// The range `[from, to)` for one operation: both resolved in its zone, in order, and
/// not in the future (the report has no rows there yet).
pub fn resolve_range(
    from: DateArg,
    to: DateArg,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Range, String> {
    let start = from.resolve(tz).map_err(|e| format!("--from: {e}"))?;
    let end = to.resolve(tz).map_err(|e| format!("--to: {e}"))?;
    let local = |t: Timestamp| tz.to_datetime(t).strftime("%Y-%m-%d %H:%M:%S").to_string();
    if start >= end {
        return Err(format!(
            "--from ({from}, {}) must be before --to ({to}, {})",
            local(start),
            local(end)
        ));
    }
    if end > now {
        return Err(format!(
            "--to ({to}, {}) is in the future; the report has no rows there yet",
            local(end)
        ));
    }
    Ok(Range::new(start, end))
}

/// The sample grid: one sample per window end. Windows align to multiples of the
/// poll interval since the epoch, as the live exporter's do; the first starts at
/// `from` and the last ends at `to`, whatever their alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Seconds, at least 1.
    pub step: i64,
}

impl Windows {
    pub fn new(range: Range, interval: Duration) -> Windows {
        Windows {
            from: range.start,
            to: range.end,
            step: i64::try_from(interval.as_secs())
                .unwrap_or(i64::MAX / 4)
                .max(1),
        }
    }

    /// The end of the window holding `t` (for `from <= t < to`); also the first window
    /// end after `t` when `t` is itself a window end.
    pub fn end_of(&self, t: Timestamp) -> Timestamp {
        let s = t.as_second();
        let next = s - s.rem_euclid(self.step) + self.step;
        Timestamp::from_second(next).map_or(self.to, |n| n.min(self.to))
    }

    /// How many window ends lie in `(from, to]`.
    pub fn count(&self) -> u64 {
        if self.to <= self.from {
            return 0;
        }
        let first = self.from.as_second().div_euclid(self.step);
        let last = (self.to.as_second() - 1).div_euclid(self.step);
        u64::try_from(last - first + 1).unwrap_or(0)
    }
}

/// The instant a row is counted at, or `None` when that instant lies outside `range`
/// (the query it came back for). A dated row is at its wall time in `tz`; inside a DST
/// fold that wall time names two instants and the earlier is taken, whatever the
/// query: the report cannot tell the passes apart, and one fixed choice means that two
/// queries (or two runs) whose wall-clock bounds both cover the repeated hour never
/// both count a row. A wall time the zone skips (a DST gap) is at the transition that
/// skips it: the one instant inside every query whose wall-clock bounds cover it. An
/// undated row goes to its query's last second.
pub fn row_instant(date: Option<DateTime>, range: Range, tz: &TimeZone) -> Option<Timestamp> {
    let Some(d) = date else {
        let last = range.end - SignedDuration::from_secs(1);
        return Some(last.max(range.start));
    };
    let amb = tz.to_ambiguous_timestamp(d);
    let t = match amb.offset() {
        AmbiguousOffset::Gap { .. } => tz
            .following(amb.earlier().ok()?)
            .next()
            .map(|tr| tr.timestamp())?,
        _ => amb.compatible().ok()?,
    };
    (range.start <= t && t < range.end).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn dates_and_instants() {
        assert_eq!(
            DateArg::parse("--from", "2026-04-01").unwrap(),
            DateArg::Day(date(2026, 4, 1))
        );
        assert_eq!(
            DateArg::parse("--from", " 2026-04-01T03:00:00Z ").unwrap(),
            DateArg::Instant(ts("2026-04-01T03:00:00Z"))
        );
        assert_eq!(
            DateArg::parse("--to", "2026-04-01T00:00:00-05:00").unwrap(),
            DateArg::Instant(ts("2026-04-01T05:00:00Z"))
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-4-1",
            "20260401",
            "2026-04-01T00:00:00",
            "2026-04-01 10:00",
        ] {
            let e = DateArg::parse("--from", bad).unwrap_err();
            assert!(e.starts_with("--from: "), "{e}");
            assert!(e.contains("YYYY-mm-dd"), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn days_are_local_midnights() {
        let day = DateArg::Day(date(2026, 4, 1));
        assert_eq!(
            day.resolve(&tz("America/Bogota")).unwrap(),
            ts("2026-04-01T05:00:00Z")
        );
        assert_eq!(
            day.resolve(&tz("America/Santiago")).unwrap(),
            ts("2026-04-01T03:00:00Z")
        );
        // Santiago skips 2026-09-06 00:00-00:59: that day starts at 01:00 (-03).
        let gap = DateArg::Day(date(2026, 9, 6));
        assert_eq!(
            gap.resolve(&tz("America/Santiago")).unwrap(),
            ts("2026-09-06T04:00:00Z")
        );
        // The fold day (2026-04-05) starts once, after the repeated hour of the 4th.
        let fold = DateArg::Day(date(2026, 4, 5));
        assert_eq!(
            fold.resolve(&tz("America/Santiago")).unwrap(),
            ts("2026-04-05T04:00:00Z")
        );
        // Instants ignore the zone and drop sub-second parts.
        let i = DateArg::Instant(ts("2026-04-01T00:00:00.75Z"));
        assert_eq!(
            i.resolve(&tz("Asia/Tokyo")).unwrap(),
            ts("2026-04-01T00:00:00Z")
        );
    }

    #[test]
    fn ranges_must_be_ordered_and_past() {
        let z = tz("America/Bogota");
        let now = ts("2026-05-01T00:00:00Z");
        let r = resolve_range(
            DateArg::Day(date(2026, 4, 1)),
            DateArg::Day(date(2026, 4, 2)),
            &z,
            now,
        )
        .unwrap();
        assert_eq!(r.duration(), SignedDuration::from_hours(24));
        let e = resolve_range(
            DateArg::Day(date(2026, 4, 2)),
            DateArg::Day(date(2026, 4, 2)),
            &z,
            now,
        )
        .unwrap_err();
        assert!(e.starts_with("--from (2026-04-02"), "{e}");
        let e = resolve_range(
            DateArg::Day(date(2026, 4, 2)),
            DateArg::Day(date(2026, 6, 1)),
            &z,
            now,
        )
        .unwrap_err();
        assert!(e.contains("in the future"), "{e}");
    }

    #[test]
    fn windows_align_to_the_interval_and_end_at_to() {
        let w = Windows::new(
            Range::new(ts("2026-04-01T00:02:00Z"), ts("2026-04-01T00:17:30Z")),
            Duration::from_secs(300),
        );
        // Ends: 00:05, 00:10, 00:15, 00:17:30.
        assert_eq!(w.count(), 4);
        assert_eq!(w.end_of(w.from), ts("2026-04-01T00:05:00Z"));
        assert_eq!(
            w.end_of(ts("2026-04-01T00:04:59Z")),
            ts("2026-04-01T00:05:00Z")
        );
        // A row at a window end belongs to the next window.
        assert_eq!(
            w.end_of(ts("2026-04-01T00:05:00Z")),
            ts("2026-04-01T00:10:00Z")
        );
        assert_eq!(w.end_of(ts("2026-04-01T00:16:00Z")), w.to);
        let aligned = Windows::new(
            Range::new(ts("2026-04-01T00:00:00Z"), ts("2026-04-02T00:00:00Z")),
            Duration::from_secs(300),
        );
        assert_eq!(aligned.count(), 288);
        let one = Windows::new(
            Range::new(ts("2026-04-01T00:00:00Z"), ts("2026-04-01T00:00:01Z")),
            Duration::from_secs(300),
        );
        assert_eq!(one.count(), 1);
        assert_eq!(one.end_of(one.from), one.to);
    }

    #[test]
    fn rows_in_a_fold_go_to_the_earlier_pass_and_skipped_ones_to_the_gap() {
        // 2026-04-05 00:00 (-03) falls back to 2026-04-04 23:00 (-04) in Santiago.
        let z = tz("America/Santiago");
        let fold = ts("2026-04-05T03:00:00Z");
        let wall = date(2026, 4, 4).at(23, 30, 0, 0);
        let first = fold - SignedDuration::from_mins(30);
        let both = Range::new(
            first - SignedDuration::from_hours(1),
            fold + SignedDuration::from_hours(2),
        );
        assert_eq!(row_instant(Some(wall), both, &z), Some(first));
        // Two ranges split inside the second pass both ask for wall time 23:30; only the
        // one holding the earlier pass counts the row.
        let split = fold + SignedDuration::from_mins(10);
        let before = Range::new(first - SignedDuration::from_hours(1), split);
        let after = Range::new(split, fold + SignedDuration::from_hours(2));
        assert_eq!(row_instant(Some(wall), before, &z), Some(first));
        assert_eq!(row_instant(Some(wall), after, &z), None);
        // A skipped wall time (2026-09-06 00:00-00:59): at the transition that skips it,
        // so in exactly one of two ranges that meet anywhere.
        let gap = ts("2026-09-06T04:00:00Z");
        let skipped = Some(date(2026, 9, 6).at(0, 30, 0, 0));
        let half = SignedDuration::from_mins(30);
        let around = Range::new(gap - half, gap + half);
        assert_eq!(row_instant(skipped, around, &z), Some(gap));
        assert_eq!(row_instant(skipped, Range::new(gap - half, gap), &z), None);
        assert_eq!(
            row_instant(skipped, Range::new(gap, gap + half), &z),
            Some(gap)
        );
        // Undated rows: the query's last second.
        assert_eq!(
            row_instant(None, after, &z),
            Some(after.end - SignedDuration::from_secs(1))
        );
        // Plain hours: the one instant, inside or not.
        let b = tz("America/Bogota");
        let r = Range::new(ts("2026-04-01T05:00:00Z"), ts("2026-04-02T05:00:00Z"));
        assert_eq!(
            row_instant(Some(date(2026, 4, 1).at(10, 0, 0, 0)), r, &b),
            Some(ts("2026-04-01T15:00:00Z"))
        );
        assert_eq!(
            row_instant(Some(date(2026, 4, 2).at(0, 0, 0, 0)), r, &b),
            None
        );
    }
}
