//! A short memory of one operation's traffic for `/`: rows and hung-up rows per window,
//! fed at each commit from the totals' deltas. In memory only, bounded by [`KEEP`] and
//! [`MAX_WINDOWS`]: a restart begins it again, and the page says "since start" while it
//! is shorter than what it compares.
//!
//! A commit's rows are those the commit took in, not rows dated in its windows: in the
//! steady state a commit is one window and the two agree. A commit that covers several
//! windows (the first cycle, catching up after an outage) is spread evenly over them,
//! and those windows are marked `spread`.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

/// How far back windows are kept, from the newest.
pub const KEEP: i64 = 48 * 3600;

/// At most this many windows whatever the interval (48 h of 5-minute windows is 576).
pub const MAX_WINDOWS: usize = 2048;

/// Rows and hung-up rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rows: u64,
    pub hung_up: u64,
}

impl Counts {
    /// The hung-up share, when there are rows.
    pub fn share(&self) -> Option<f64> {
        (self.rows > 0).then(|| self.hung_up as f64 / self.rows as f64)
    }
}

/// One window `[end - interval, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub end: Timestamp,
    pub counts: Counts,
    /// Part of a commit that covered several windows, spread evenly over them.
    pub spread: bool,
}

/// What the kept windows say about a period `[from, to)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub counts: Counts,
    /// Where the kept windows begin to cover the period; `None` when they cover none
    /// of it. Later than `from` when the history is shorter than the period.
    pub covered_from: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Window length in seconds, at least 1.
    interval: i64,
    /// Oldest first, by `end`, each end once.
    windows: VecDeque<Window>,
}

impl History {
    pub fn new(interval: Duration) -> History {
        History {
            interval: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1),
            windows: VecDeque::new(),
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval as u64)
    }

    /// Oldest first.
    pub fn windows(&self) -> impl DoubleEndedIterator<Item = &Window> {
        self.windows.iter()
    }

    /// The end of the newest window.
    pub fn newest(&self) -> Option<Timestamp> {
        self.windows.back().map(|w| w.end)
    }

    /// The first instant the kept windows cover.
    pub fn since(&self) -> Option<Timestamp> {
        self.windows
            .front()
            .map(|w| at(w.end.as_second() - self.interval))
    }

    /// A commit that took in `counts` for `[from, through)`: each window it touches gets
    /// its share, in proportion to how much of the range falls in it (rounded so the
    /// shares add up to `counts` exactly). An empty range goes to the window that ends
    /// at or after `through`.
    pub fn record(&mut self, from: Timestamp, through: Timestamp, counts: Counts) {
        let iv = self.interval;
        let t = through.as_second();
        let f = from.as_second().min(t);
        let last = (t - 1).div_euclid(iv);
        let first = if f < t { f.div_euclid(iv) } else { last };
        let spread = first != last;
        // Windows older than the newest can keep are not made, nor their share.
        let cap = (KEEP / iv).clamp(1, MAX_WINDOWS as i64);
        let first_kept = first.max(last - cap + 1);
        let span = t - f;
        // Of the range, the seconds before window k's end (all of it when empty).
        let before = |k: i64| -> i64 {
            if span == 0 {
                if k >= last { 0 } else { -1 }
            } else {
                ((k + 1) * iv).min(t) - f
            }
        };
        let part = |n: u64, secs: i64| -> u64 {
            if span == 0 {
                return if secs >= 0 { n } else { 0 };
            }
            let secs = secs.clamp(0, span) as u128;
            (n as u128 * secs / span as u128) as u64
        };
        // Hung-up rows follow the rows' own rounding, so no window gets more of them
        // than rows.
        let rows_before = |secs: i64| part(counts.rows, secs);
        let hung_before = |secs: i64| match counts.rows {
            0 => part(counts.hung_up, secs),
            r => (counts.hung_up as u128 * rows_before(secs) as u128 / r as u128) as u64,
        };
        for k in first_kept..=last {
            let (lo, hi) = (before(k - 1), before(k));
            let c = Counts {
                rows: rows_before(hi) - rows_before(lo),
                hung_up: hung_before(hi) - hung_before(lo),
            };
            self.add(Window {
                end: at((k + 1) * iv),
                counts: c,
                spread,
            });
        }
        self.trim();
    }

    fn add(&mut self, w: Window) {
        match self.windows.back() {
            Some(b) if b.end < w.end => self.windows.push_back(w),
            None => self.windows.push_back(w),
            Some(_) => match self.windows.binary_search_by_key(&w.end, |x| x.end) {
                Ok(i) => {
                    if let Some(x) = self.windows.get_mut(i) {
                        x.counts.rows += w.counts.rows;
                        x.counts.hung_up += w.counts.hung_up;
                        x.spread |= w.spread;
                    }
                }
                Err(i) => self.windows.insert(i, w),
            },
        }
    }

    fn trim(&mut self) {
        let Some(newest) = self.newest() else {
            return;
        };
        let oldest_end = newest.as_second() - KEEP;
        while self
            .windows
            .front()
            .is_some_and(|w| w.end.as_second() <= oldest_end)
            || self.windows.len() > MAX_WINDOWS
        {
            self.windows.pop_front();
        }
    }

    /// The windows that lie in `[from, to)`, added up.
    pub fn between(&self, from: Timestamp, to: Timestamp) -> Period {
        let (f, t) = (from.as_second(), to.as_second());
        let mut counts = Counts::default();
        for w in &self.windows {
            let end = w.end.as_second();
            if end - self.interval >= f && end <= t {
                counts.rows += w.counts.rows;
                counts.hung_up += w.counts.hung_up;
            }
        }
        let covered_from = self
            .since()
            .filter(|s| s.as_second() < t)
            .map(|s| s.max(from));
        Period {
            counts,
            covered_from,
        }
    }
}

impl Default for History {
    fn default() -> History {
        History::new(Duration::from_secs(300))
    }
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// 2026-04-10 00:00:00 UTC.
    const T0: i64 = 1_775_779_200;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(T0 + secs).unwrap()
    }

    fn c(rows: u64, hung_up: u64) -> Counts {
        Counts { rows, hung_up }
    }

    fn five_min() -> History {
        History::new(Duration::from_secs(300))
    }

    /// `(end - T0, rows, hung_up, spread)` of every window.
    fn dump(h: &History) -> Vec<(i64, u64, u64, bool)> {
        h.windows()
            .map(|w| {
                (
                    w.end.as_second() - T0,
                    w.counts.rows,
                    w.counts.hung_up,
                    w.spread,
                )
            })
            .collect()
    }

    #[test]
    fn one_window_commits_each_make_a_window() {
        let mut h = five_min();
        h.record(t(0), t(300), c(10, 2));
        h.record(t(300), t(600), c(7, 0));
        assert_eq!(dump(&h), vec![(300, 10, 2, false), (600, 7, 0, false)]);
        assert_eq!(h.since(), Some(t(0)));
        assert_eq!(h.newest(), Some(t(600)));
    }

    #[test]
    fn a_commit_over_several_windows_is_spread_exactly() {
        let mut h = five_min();
        // An hour of catching up: 100 rows over 12 windows, 7 hung up.
        h.record(t(0), t(3600), c(100, 7));
        let d = dump(&h);
        assert_eq!(d.len(), 12);
        assert_eq!(d.iter().map(|w| w.1).sum::<u64>(), 100);
        assert_eq!(d.iter().map(|w| w.2).sum::<u64>(), 7);
        // floor(100 * k / 12) - floor(100 * (k-1) / 12)
        assert_eq!(
            d.iter().map(|w| w.1).collect::<Vec<_>>(),
            vec![8, 8, 9, 8, 8, 9, 8, 8, 9, 8, 8, 9]
        );
        assert_eq!(
            d.iter().map(|w| w.2).collect::<Vec<_>>(),
            vec![0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1]
        );
        assert!(d.iter().all(|w| w.3));
    }

    #[test]
    fn a_commit_inside_a_window_adds_to_it() {
        let mut h = five_min();
        // A part cut at the row cap commits mid-window, the rest of it later.
        h.record(t(0), t(120), c(4, 1));
        h.record(t(120), t(300), c(6, 1));
        assert_eq!(dump(&h), vec![(300, 10, 2, false)]);
    }

    #[test]
    fn a_range_off_the_grid_is_split_by_its_seconds() {
        let mut h = five_min();
        // 100 s in the first window, 300 in the second, 50 in the third: 450 s.
        h.record(t(200), t(650), c(9, 0));
        assert_eq!(
            dump(&h),
            vec![(300, 2, 0, true), (600, 6, 0, true), (900, 1, 0, true)]
        );
    }

    #[test]
    fn an_empty_range_goes_to_the_window_ending_at_or_after_it() {
        let mut h = five_min();
        h.record(t(300), t(300), c(3, 1));
        h.record(t(400), t(400), c(2, 0));
        assert_eq!(dump(&h), vec![(300, 3, 1, false), (600, 2, 0, false)]);
    }

    #[test]
    fn zero_rows_still_make_windows() {
        let mut h = five_min();
        h.record(t(0), t(600), c(0, 0));
        assert_eq!(dump(&h), vec![(300, 0, 0, true), (600, 0, 0, true)]);
    }

    #[test]
    fn a_late_commit_into_an_older_window_is_merged_or_inserted_in_order() {
        let mut h = five_min();
        h.record(t(0), t(300), c(1, 0));
        h.record(t(600), t(900), c(1, 0));
        // Out of order (never done by the poller, handled all the same).
        h.record(t(300), t(600), c(5, 1));
        h.record(t(0), t(300), c(2, 2));
        assert_eq!(
            dump(&h),
            vec![(300, 3, 2, false), (600, 5, 1, false), (900, 1, 0, false)]
        );
    }

    #[test]
    fn windows_older_than_48_hours_are_dropped() {
        let mut h = five_min();
        h.record(t(0), t(300), c(1, 0));
        h.record(t(300), t(600), c(2, 0));
        // Newest end 48 h after the first window's end: that one goes, not the next.
        h.record(t(KEEP), t(KEEP + 300), c(3, 0));
        assert_eq!(
            dump(&h),
            vec![(600, 2, 0, false), (KEEP + 300, 3, 0, false)]
        );
    }

    #[test]
    fn a_catch_up_longer_than_48_hours_keeps_only_its_last_48_hours() {
        let mut h = five_min();
        // Three days, 864 windows, one row per window: 576 windows are kept, one row
        // each; the older share is not made.
        h.record(t(0), t(3 * 86_400), c(864, 0));
        let d = dump(&h);
        assert_eq!(d.len(), 576);
        assert!(d.iter().all(|w| w.1 == 1 && w.3));
        assert_eq!(d[0].0, 86_400 + 300);
        assert_eq!(h.since(), Some(t(86_400)));
    }

    #[test]
    fn short_intervals_are_capped_in_count() {
        let mut h = History::new(Duration::from_secs(1));
        for i in 0..3000 {
            h.record(t(i), t(i + 1), c(1, 0));
        }
        let d = dump(&h);
        assert_eq!(d.len(), MAX_WINDOWS);
        assert_eq!(d[0].0, 3000 - MAX_WINDOWS as i64 + 1);
        assert_eq!(d[d.len() - 1].0, 3000);
    }

    #[test]
    fn between_adds_the_windows_inside_the_period() {
        let mut h = five_min();
        for k in 0..24 {
            h.record(t(300 * k), t(300 * (k + 1)), c(10 + k as u64, k as u64));
        }
        // The second hour: windows k = 12..23.
        let p = h.between(t(3600), t(7200));
        assert_eq!(p.counts, c((12..24).map(|k| 10 + k).sum(), (12..24).sum()));
        assert_eq!(p.covered_from, Some(t(3600)));
    }

    #[test]
    fn between_says_where_a_short_history_begins() {
        let mut h = five_min();
        h.record(t(1800), t(2100), c(4, 1));
        h.record(t(2100), t(2400), c(6, 2));
        let p = h.between(t(0), t(3600));
        assert_eq!(p.counts, c(10, 3));
        assert_eq!(p.covered_from, Some(t(1800)));
        // A period before the history: nothing, and not covered.
        let before = h.between(t(-86_400), t(-82_800));
        assert_eq!(before, Period::default());
        // A period that ends where the history begins is not covered either.
        assert_eq!(h.between(t(0), t(1800)).covered_from, None);
    }

    #[test]
    fn an_empty_history_covers_nothing() {
        let h = five_min();
        assert_eq!(h.between(t(0), t(3600)), Period::default());
        assert_eq!(h.since(), None);
        assert_eq!(h.newest(), None);
    }

    #[test]
    fn share() {
        assert_eq!(c(0, 0).share(), None);
        assert_eq!(c(8, 2).share(), Some(0.25));
    }

    proptest! {
        /// Whatever the ranges, the kept windows add up to every count recorded within
        /// the last 48 hours, and stay sorted, unique and bounded.
        #[test]
        fn counts_are_kept_exactly(
            interval in 1u64..900,
            steps in proptest::collection::vec((0i64..2000, 0u64..5000, 0u64..100), 1..40),
        ) {
            let mut h = History::new(Duration::from_secs(interval));
            let mut at_s = 0i64;
            let (mut rows, mut hung) = (0u64, 0u64);
            for (len, r, hu) in steps {
                let hu = hu.min(r);
                h.record(t(at_s), t(at_s + len), c(r, hu));
                at_s += len;
                rows += r;
                hung += hu;
            }
            let d = dump(&h);
            prop_assert!(d.len() <= MAX_WINDOWS);
            prop_assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
            // Nothing was dropped: every range here ends within 48 h of the first.
            if at_s < KEEP && d.len() < MAX_WINDOWS {
                prop_assert_eq!(d.iter().map(|w| w.1).sum::<u64>(), rows);
                prop_assert_eq!(d.iter().map(|w| w.2).sum::<u64>(), hung);
            }
            prop_assert!(d.iter().all(|w| w.2 <= w.1));
        }
    }
}
