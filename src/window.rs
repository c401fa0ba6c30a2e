//! Pure time arithmetic: which range a poll cycle asks for, how it becomes the
//! operation's local `date_ini`/`date_end` strings, and how a range is cut to fit the
//! API's limits. No clock, no I/O: `now` is always an argument.
//!
//! Ranges are half-open instants `[start, end)`. The API only understands local wall
//! time without a zone, so a query asks for the smallest wall-clock interval that covers
//! every instant of the range. Across a DST fold that interval also covers the other
//! pass of the repeated hour; those extra rows are real rows and the ledger counts each
//! once, so asking a little more is safe while asking less would lose rows.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::config::Poll;

/// The API's longest range (`date_end - date_ini`, inclusive end) in civil time.
pub const MAX_SPAN: SignedDuration = SignedDuration::from_hours(31 * 24);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Range {
    pub fn new(start: Timestamp, end: Timestamp) -> Range {
        Range { start, end }
    }

    pub fn duration(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// One request's worth: a range and the wall-clock bounds sent for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub range: Range,
    pub date_ini: DateTime,
    /// Inclusive: the last second the query covers.
    pub date_end: DateTime,
}

impl Query {
    pub fn date_ini_string(&self) -> String {
        wolkvox_date(self.date_ini)
    }

    pub fn date_end_string(&self) -> String {
        wolkvox_date(self.date_end)
    }
}

/// `YYYYmmddHHiiss`, the API's date parameter format.
pub fn wolkvox_date(dt: DateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn sub(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(SignedDuration::from_secs(secs(d)))
        .unwrap_or(Timestamp::MIN)
}

/// `t` rounded down to a multiple of `interval` since the Unix epoch.
pub fn align_down(t: Timestamp, interval: Duration) -> Timestamp {
    let step = secs(interval).max(1);
    let s = t.as_second();
    let aligned = s - s.rem_euclid(step);
    Timestamp::from_second(aligned).unwrap_or(t)
}

/// Where history begins for an operation started for the first time at `first_start`.
pub fn origin(first_start: Timestamp, poll: &Poll) -> Timestamp {
    align_down(sub(first_start, poll.backfill), poll.interval)
}

/// The end of the newest complete window that may be asked for at `now`.
pub fn ready_end(now: Timestamp, poll: &Poll) -> Timestamp {
    align_down(sub(now, poll.delay), poll.interval)
}

/// The range one cycle asks for at `now`: from `max(watermark - settle, origin)` to the
/// newest ready window end. `None` while no new window has completed since the watermark.
pub fn cycle_range(
    now: Timestamp,
    watermark: Option<Timestamp>,
    origin: Timestamp,
    poll: &Poll,
) -> Option<Range> {
    let end = ready_end(now, poll);
    let start = match watermark {
        Some(w) if end <= w => return None,
        Some(w) => sub(w, poll.settle).max(origin),
        None => origin,
    };
    (start < end).then(|| Range::new(start, end))
}

/// When the next window becomes ready after `watermark` (or after `origin`).
pub fn next_ready_at(watermark: Option<Timestamp>, origin: Timestamp, poll: &Poll) -> Timestamp {
    let base = watermark.unwrap_or(origin);
    let next_end = base
        .checked_add(SignedDuration::from_secs(secs(poll.interval)))
        .unwrap_or(Timestamp::MAX);
    next_end
        .checked_add(SignedDuration::from_secs(secs(poll.delay)))
        .unwrap_or(Timestamp::MAX)
}

/// The first wall time a query starting at `t` asks for: `t`'s own, or, when `t` is a
/// DST gap's transition, the last second before the gap. A clock can still stamp a row
/// with a time the gap skips; asking from the second before covers those without naming
/// a nonexistent time, so the query holding the transition returns them (the one
/// before it ends at that second, and the overlap is one second of rows seen twice).
fn wall_from(t: Timestamp, tz: &TimeZone) -> DateTime {
    let here = tz.to_datetime(t);
    let Ok(before) = t.checked_sub(SignedDuration::from_secs(1)) else {
        return here;
    };
    let before = tz.to_datetime(before);
    match before.checked_add(SignedDuration::from_secs(1)) {
        Ok(next) if next < here => before,
        _ => here,
    }
}

/// The wall-clock bounds covering every instant of a non-empty `range` in `tz`.
pub fn query_for(range: Range, tz: &TimeZone) -> Query {
    let last = range.end - SignedDuration::from_secs(1);
    let mut lo = wall_from(range.start, tz);
    let mut hi = tz.to_datetime(last.max(range.start));
    // Wall time only runs backwards at a transition: check each one inside the range.
    for t in tz.following(range.start) {
        let at = t.timestamp();
        if at >= range.end {
            break;
        }
        lo = lo.min(tz.to_datetime(at));
        hi = hi.max(tz.to_datetime(at - SignedDuration::from_secs(1)));
    }
    Query {
        range,
        date_ini: lo,
        date_end: hi,
    }
}

/// The earliest wall time any query starting at or after `start` can ask for: the
/// ledger may forget identities dated before it. Looks two days ahead for a fold.
pub fn wall_floor(start: Timestamp, tz: &TimeZone) -> DateTime {
    let horizon = start + SignedDuration::from_hours(48);
    let mut lo = wall_from(start, tz);
    for t in tz.following(start) {
        if t.timestamp() > horizon {
            break;
        }
        lo = lo.min(tz.to_datetime(t.timestamp()));
    }
    lo
}

fn span(q: &Query) -> SignedDuration {
    q.date_end.duration_since(q.date_ini)
}

/// Cuts `range` into queries the API accepts: each covers less than 31 days of wall time.
pub fn plan(range: Range, tz: &TimeZone) -> Vec<Query> {
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let mut end = range
            .end
            .min(start.saturating_add(MAX_SPAN).unwrap_or(Timestamp::MAX));
        let mut q = query_for(Range::new(start, end), tz);
        // A spring-forward gap makes wall time longer than elapsed time: shrink to fit.
        while span(&q) >= MAX_SPAN && end > start + SignedDuration::from_hours(1) {
            end -= SignedDuration::from_hours(1);
            q = query_for(Range::new(start, end), tz);
        }
        out.push(q);
        start = end;
    }
    out
}

/// Halves of a range that came back at the row cap, split on a whole second; `None`
/// when the range is a single second and cannot be split further.
pub fn bisect(range: Range) -> Option<(Range, Range)> {
    let len = range.duration().as_secs();
    if len < 2 {
        return None;
    }
    let mid = range.start + SignedDuration::from_secs(len / 2);
    Some((Range::new(range.start, mid), Range::new(mid, range.end)))
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

    fn poll(interval: u64, delay: u64, settle: u64, backfill: u64) -> Poll {
        Poll {
            interval: Duration::from_secs(interval),
            delay: Duration::from_secs(delay),
            settle: Duration::from_secs(settle),
            backfill: Duration::from_secs(backfill),
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn alignment() {
        let i = Duration::from_secs(300);
        assert_eq!(
            align_down(ts("2026-11-27T10:04:59Z"), i),
            ts("2026-11-27T10:00:00Z")
        );
        assert_eq!(
            align_down(ts("2026-11-27T10:05:00Z"), i),
            ts("2026-11-27T10:05:00Z")
        );
        assert_eq!(
            align_down(ts("1969-12-31T23:59:59Z"), i),
            ts("1969-12-31T23:55:00Z")
        );
    }

    #[test]
    fn first_cycle_backfills_then_steady_state_resettles() {
        let p = poll(300, 120, 1800, 3600);
        let now = ts("2026-11-27T10:07:30Z");
        let o = origin(now, &p);
        assert_eq!(o, ts("2026-11-27T09:05:00Z"));
        // First cycle: from origin to now - delay rounded down.
        let r = cycle_range(now, None, o, &p).unwrap();
        assert_eq!(r, Range::new(o, ts("2026-11-27T10:05:00Z")));
        // Nothing new until the next window is ready.
        assert_eq!(
            cycle_range(ts("2026-11-27T10:11:59Z"), Some(r.end), o, &p),
            None
        );
        assert_eq!(
            next_ready_at(Some(r.end), o, &p),
            ts("2026-11-27T10:12:00Z")
        );
        let r2 = cycle_range(ts("2026-11-27T10:12:00Z"), Some(r.end), o, &p).unwrap();
        assert_eq!(
            r2,
            Range::new(ts("2026-11-27T09:35:00Z"), ts("2026-11-27T10:10:00Z"))
        );
        // Never before the origin.
        let r3 = cycle_range(
            ts("2026-11-27T09:17:00Z"),
            Some(ts("2026-11-27T09:10:00Z")),
            o,
            &p,
        )
        .unwrap();
        assert_eq!(r3.start, o);
    }

    #[test]
    fn after_downtime_the_range_covers_everything_missed() {
        let p = poll(300, 120, 1800, 3600);
        let o = ts("2026-11-01T00:00:00Z");
        let w = ts("2026-11-20T00:00:00Z");
        let r = cycle_range(ts("2026-11-27T00:02:00Z"), Some(w), o, &p).unwrap();
        assert_eq!(
            r,
            Range::new(ts("2026-11-19T23:30:00Z"), ts("2026-11-27T00:00:00Z"))
        );
    }

    #[test]
    fn bogota_dates_are_local_with_inclusive_end() {
        let q = query_for(
            Range::new(ts("2026-11-27T15:00:00Z"), ts("2026-11-27T15:05:00Z")),
            &tz("America/Bogota"),
        );
        assert_eq!(q.date_ini_string(), "20261127100000");
        assert_eq!(q.date_end_string(), "20261127100459");
    }

    #[test]
    fn santiago_fold_covers_both_passes() {
        // 2026-04-05 00:00 local (-03) clocks go back to 23:00 (-04) on April 4th.
        let z = tz("America/Santiago");
        let fold = z
            .following(ts("2026-04-01T00:00:00Z"))
            .next()
            .unwrap()
            .timestamp();
        assert_eq!(fold, ts("2026-04-05T03:00:00Z"));
        // 23:55 (first pass) to 23:05 (second pass): 70 minutes of instants.
        let r = Range::new(
            fold - SignedDuration::from_mins(5),
            fold + SignedDuration::from_mins(65),
        );
        let q = query_for(r, &z);
        assert_eq!(q.date_ini_string(), "20260404230000");
        assert_eq!(q.date_end_string(), "20260405000459");
        // A window entirely within the second pass.
        let q2 = query_for(
            Range::new(
                fold + SignedDuration::from_mins(5),
                fold + SignedDuration::from_mins(10),
            ),
            &z,
        );
        assert_eq!(
            (q2.date_ini_string().as_str(), q2.date_end_string().as_str()),
            ("20260404230500", "20260404230959")
        );
    }

    #[test]
    fn santiago_gap_never_names_a_missing_time() {
        // 2026-09-06 00:00 local (-04) jumps to 01:00 (-03).
        let z = tz("America/Santiago");
        let gap = z
            .following(ts("2026-09-01T00:00:00Z"))
            .next()
            .unwrap()
            .timestamp();
        assert_eq!(z.to_datetime(gap), date(2026, 9, 6).at(1, 0, 0, 0));
        let q = query_for(
            Range::new(
                gap - SignedDuration::from_mins(5),
                gap + SignedDuration::from_mins(5),
            ),
            &z,
        );
        assert_eq!(q.date_ini_string(), "20260905235500");
        assert_eq!(q.date_end_string(), "20260906010459");
        // Ranges that end exactly at the gap or start at it: the one starting there
        // asks from the last second before the gap, so rows stamped with a skipped
        // time (00:00-00:59) are asked for by it, without naming a time that does not
        // exist. Elsewhere a range asks from its own first second.
        let before = query_for(Range::new(gap - SignedDuration::from_mins(5), gap), &z);
        assert_eq!(before.date_end_string(), "20260905235959");
        let after = query_for(Range::new(gap, gap + SignedDuration::from_mins(5)), &z);
        assert_eq!(after.date_ini_string(), "20260905235959");
        assert_eq!(after.date_end_string(), "20260906010459");
        let later = query_for(
            Range::new(
                gap + SignedDuration::from_secs(1),
                gap + SignedDuration::from_mins(5),
            ),
            &z,
        );
        assert_eq!(later.date_ini_string(), "20260906010001");
        assert_eq!(wall_floor(gap, &z), date(2026, 9, 5).at(23, 59, 59, 0));
    }

    #[test]
    fn mexico_city_history_had_dst() {
        // Mexico City kept DST until 2022: 2022-10-30 02:00 CDT fell back to 01:00 CST.
        let z = tz("America/Mexico_City");
        let fold = ts("2022-10-30T07:00:00Z");
        assert_eq!(z.to_datetime(fold), date(2022, 10, 30).at(1, 0, 0, 0));
        let q = query_for(
            Range::new(
                fold - SignedDuration::from_mins(30),
                fold + SignedDuration::from_mins(30),
            ),
            &z,
        );
        assert_eq!(q.date_ini_string(), "20221030010000");
        assert_eq!(q.date_end_string(), "20221030015959");
        // And since then no transitions at all.
        assert!(z.following(ts("2023-01-01T00:00:00Z")).next().is_none());
    }

    #[test]
    fn wall_floor_sees_an_upcoming_fold() {
        let z = tz("America/Santiago");
        let fold = ts("2026-04-05T03:00:00Z");
        let floor = wall_floor(fold - SignedDuration::from_mins(20), &z);
        assert_eq!(floor, date(2026, 4, 4).at(23, 0, 0, 0));
        let b = tz("America/Bogota");
        assert_eq!(
            wall_floor(ts("2026-11-27T15:00:00Z"), &b),
            date(2026, 11, 27).at(10, 0, 0, 0)
        );
    }

    #[test]
    fn plan_cuts_at_31_days() {
        let z = tz("America/Bogota");
        let start = ts("2026-01-01T05:00:00Z");
        let exactly = plan(Range::new(start, start + MAX_SPAN), &z);
        assert_eq!(exactly.len(), 1);
        assert_eq!(exactly[0].date_end_string(), "20260131235959");
        let longer = plan(
            Range::new(start, start + MAX_SPAN + SignedDuration::from_secs(1)),
            &z,
        );
        assert_eq!(longer.len(), 2);
        assert_eq!(longer[1].range.duration(), SignedDuration::from_secs(1));
        let ninety = plan(
            Range::new(start, start + SignedDuration::from_hours(90 * 24)),
            &z,
        );
        assert_eq!(ninety.len(), 3);
        for w in ninety.windows(2) {
            assert_eq!(w[0].range.end, w[1].range.start);
        }
    }

    #[test]
    fn plan_respects_the_limit_across_a_gap() {
        // Across spring-forward, 31 days of instants would be 31 days and an hour of wall time.
        let z = tz("America/Santiago");
        let start = ts("2026-08-20T04:00:00Z");
        let parts = plan(
            Range::new(start, start + SignedDuration::from_hours(40 * 24)),
            &z,
        );
        for q in &parts {
            assert!(span(q) < MAX_SPAN, "{q:?}");
        }
        assert_eq!(parts.first().unwrap().range.start, start);
        assert_eq!(
            parts.last().unwrap().range.end,
            start + SignedDuration::from_hours(40 * 24)
        );
    }

    #[test]
    fn bisect_on_whole_seconds() {
        let r = Range::new(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:05Z"));
        let (a, b) = bisect(r).unwrap();
        assert_eq!(a.end, ts("2026-01-01T00:00:02Z"));
        assert_eq!(b, Range::new(a.end, r.end));
        assert_eq!(
            bisect(Range::new(r.start, ts("2026-01-01T00:00:01Z"))),
            None
        );
    }

    proptest::proptest! {
        /// Any range in any of these zones: the query covers the wall time of every
        /// instant in it, and never names a time that does not exist.
        #[test]
        fn query_covers_every_instant(start in 1_500_000_000i64..1_900_000_000, len in 1i64..200_000, zi in 0usize..4) {
            let zones = ["America/Santiago", "America/Mexico_City", "America/Bogota", "America/New_York"];
            let z = tz(zones[zi]);
            let r = Range::new(Timestamp::from_second(start).unwrap(), Timestamp::from_second(start + len).unwrap());
            let q = query_for(r, &z);
            for probe in [0, len / 3, len / 2, len - 1] {
                let w = z.to_datetime(r.start + SignedDuration::from_secs(probe));
                proptest::prop_assert!(q.date_ini <= w && w <= q.date_end);
            }
            proptest::prop_assert!(z.to_ambiguous_timestamp(q.date_ini).unambiguous().is_ok() || z.to_ambiguous_timestamp(q.date_ini).is_ambiguous());
            proptest::prop_assert!(z.to_ambiguous_timestamp(q.date_end).unambiguous().is_ok() || z.to_ambiguous_timestamp(q.date_end).is_ambiguous());
        }
    }
}
