//! The state file as a commit writes it: the layout of [`super::OpState`], serialised
//! straight from the live totals, ledger and calls. Copying them into the owned form
//! first (a `String` per identity and per open call) cost a third of a catch-up's CPU
//! and left megabytes of short-lived allocations behind every part. Its `Serialize`
//! is the layout's definition; a save writes the same bytes faster (`super::json`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use serde::ser::{Error as _, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::calls::{CallId, CallTotals, Calls, OpenCall};
use crate::ledger::{Ledger, RowId, Seen};
use crate::totals::{Histogram, RoutingPoint, Totals};
use crate::wolkvox::row::Outcome;

/// Field for field what [`super::OpState`] reads back.
#[derive(Serialize)]
pub struct StateView<'a> {
    pub version: u32,
    pub operation: &'a str,
    pub origin: Timestamp,
    pub watermark: Option<Timestamp>,
    pub saved_at: Timestamp,
    pub buckets: &'a [f64],
    pub totals: TotalsView<'a>,
    pub ledger: LedgerView<'a>,
    pub api_requests: BTreeMap<String, u64>,
    pub poll_errors: BTreeMap<String, u64>,
    pub window_splits: u64,
    pub state_save_failures: u64,
    pub requests_day: Option<Date>,
    pub requests_today: u64,
    pub calls: CallsView<'a>,
}

/// An identity or call id as its 32 lowercase hex digits.
#[derive(Clone, Copy)]
pub(super) struct Hex(pub(super) u128);

impl Hex {
    pub(super) fn digits(self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 32];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = DIGITS[((self.0 >> (124 - 4 * i)) & 0xf) as usize];
        }
        buf
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.digits()).map_err(S::Error::custom)?)
    }
}

/// A date and time as jiff writes it (`2026-12-02T10:00:00`), without the formatting
/// machinery for the common case: every open call and closed id has one or two, and
/// jiff's `Display` was a quarter of writing the state file. Anything with a fraction
/// of a second or a year outside 0..=9999 goes through `Display` as before.
#[derive(Clone, Copy)]
pub(super) struct Civil(pub(super) DateTime);

impl Civil {
    /// The 19 characters, or `None` where only `Display` writes it right.
    pub(super) fn digits(self) -> Option<[u8; 19]> {
        let d = self.0;
        let year = u16::try_from(d.year()).ok()?;
        if year > 9999 || d.subsec_nanosecond() != 0 {
            return None;
        }
        let mut buf = *b"0000-00-00T00:00:00";
        let mut put = |at: usize, v: u16, digits: usize| {
            let mut v = v;
            for i in (at..at + digits).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year, 4);
        // jiff's components are in range (month 1..=12 and so on): never negative.
        put(5, d.month().unsigned_abs().into(), 2);
        put(8, d.day().unsigned_abs().into(), 2);
        put(11, d.hour().unsigned_abs().into(), 2);
        put(14, d.minute().unsigned_abs().into(), 2);
        put(17, d.second().unsigned_abs().into(), 2);
        Some(buf)
    }
}

impl Serialize for Civil {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.digits() {
            Some(buf) => s.serialize_str(std::str::from_utf8(&buf).map_err(S::Error::custom)?),
            None => self.0.serialize(s),
        }
    }
}

/// [`super::SavedTotals`]: routing points sorted by `(rp_id, rp_name)`.
pub struct TotalsView<'a>(pub &'a Totals);

#[derive(Serialize)]
struct RoutingPointView<'a> {
    rp_id: &'a str,
    rp_name: &'a str,
    #[serde(flatten)]
    totals: &'a RoutingPoint,
}

impl Serialize for TotalsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let rps = by_key(t.routing_points.iter());
        let mut st = s.serialize_struct("SavedTotals", 7)?;
        st.serialize_field("rows", &t.rows)?;
        st.serialize_field("invalid_time", &t.invalid_time)?;
        st.serialize_field("invalid_date", &t.invalid_date)?;
        st.serialize_field("duplicates", &t.duplicates)?;
        st.serialize_field("overflow", &t.overflow)?;
        st.serialize_field(
            "routing_points",
            &Seq(rps.iter().map(|((id, name), rp)| RoutingPointView {
                rp_id: id,
                rp_name: name,
                totals: rp,
            })),
        )?;
        st.serialize_field("calls", &CallTotalsView(&t.calls))?;
        st.end()
    }
}

/// [`crate::calls::saved::SavedCallTotals`]: entries sorted by `(rp_id, rp_name)`.
struct CallTotalsView<'a>(&'a CallTotals);

#[derive(Serialize)]
struct EntryView<'a> {
    rp_id: &'a str,
    rp_name: &'a str,
    calls: &'a [u64; 4],
}

impl Serialize for CallTotalsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let entries = by_key(t.by_entry.iter());
        let mut st = s.serialize_struct("SavedCallTotals", 5)?;
        st.serialize_field(
            "by_entry",
            &Seq(entries.iter().map(|((id, name), calls)| EntryView {
                rp_id: id,
                rp_name: name,
                calls,
            })),
        )?;
        st.serialize_field::<[Histogram; 4]>("steps", &t.steps)?;
        st.serialize_field::<[Histogram; 4]>("durations", &t.durations)?;
        st.serialize_field("late_rows", &t.late_rows)?;
        st.serialize_field("rows_without_call", &t.rows_without_call)?;
        st.end()
    }
}

/// `(identity, copies, keep_until)` sorted by identity (as the hex digits sort).
pub struct LedgerView<'a> {
    ledger: &'a Ledger,
    floor: DateTime,
}

impl<'a> LedgerView<'a> {
    /// Every identity the ledger remembers.
    pub fn new(ledger: &'a Ledger) -> LedgerView<'a> {
        LedgerView::committing(ledger, DateTime::MIN)
    }

    /// The ledger as [`Ledger::commit`] with `floor` will leave it.
    pub fn committing(ledger: &'a Ledger, floor: DateTime) -> LedgerView<'a> {
        LedgerView { ledger, floor }
    }
}

impl LedgerView<'_> {
    /// What the file lists: `(identity, copies, keep_until)` by identity.
    pub(super) fn entries(&self) -> Vec<(&RowId, &Seen)> {
        by_key(
            self.ledger
                .iter()
                .filter(|(_, seen)| seen.keep_until >= self.floor),
        )
    }
}

impl Serialize for LedgerView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let seen = self.entries();
        Seq(seen
            .iter()
            .map(|(id, Seen { count, keep_until })| (Hex(**id), count, Civil(*keep_until))))
        .serialize(s)
    }
}

/// [`crate::calls::saved::SavedCalls`]: open calls and closed ids sorted by id.
pub struct CallsView<'a> {
    calls: &'a Calls,
    close_before: DateTime,
    forget_before: DateTime,
}

impl<'a> CallsView<'a> {
    /// Every open call and closed id.
    pub fn new(calls: &'a Calls) -> CallsView<'a> {
        CallsView::committing(calls, DateTime::MIN, DateTime::MIN)
    }

    /// The calls as [`Calls::commit`] with the same arguments will leave them.
    pub fn committing(
        calls: &'a Calls,
        close_before: DateTime,
        forget_before: DateTime,
    ) -> CallsView<'a> {
        CallsView {
            calls,
            close_before,
            forget_before,
        }
    }
}

#[derive(Serialize)]
struct OpenCallView<'a> {
    id: Hex,
    rp_id: &'a str,
    rp_name: &'a str,
    first: Civil,
    last: Civil,
    last_result: Outcome,
    served: bool,
    steps: u32,
    duration: f64,
}

/// Open calls and closed ids, each sorted by id, as the file lists them.
pub(super) type CallLists<'a> = (
    Vec<(&'a CallId, &'a OpenCall)>,
    Vec<(&'a CallId, &'a DateTime)>,
);

impl CallsView<'_> {
    pub(super) fn lists(&self) -> CallLists<'_> {
        let (close_before, forget_before) = (self.close_before, self.forget_before);
        // One walk over the open calls (before a catch-up's commit, a part's worth):
        // those that stay open, and those that close but are still remembered.
        let (mut open, mut closed) = (Vec::new(), Vec::new());
        for (id, c) in self.calls.open() {
            if c.last >= close_before {
                open.push((id, c));
            } else if c.last >= forget_before {
                closed.push((id, &c.last));
            }
        }
        closed.extend(
            self.calls
                .closed()
                .filter(|(_, last)| **last >= forget_before),
        );
        (sorted(open), sorted(closed))
    }
}

impl Serialize for CallsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (open, closed) = self.lists();
        let mut st = s.serialize_struct("SavedCalls", 2)?;
        st.serialize_field(
            "open",
            &Seq(open.iter().map(|(id, c): &(_, &OpenCall)| OpenCallView {
                id: Hex(**id),
                rp_id: &c.entry.0,
                rp_name: &c.entry.1,
                first: Civil(c.first),
                last: Civil(c.last),
                last_result: c.last_result,
                served: c.served,
                steps: c.steps,
                duration: c.duration,
            })),
        )?;
        st.serialize_field(
            "closed",
            &Seq(closed.iter().map(|(id, last)| (Hex(**id), Civil(**last)))),
        )?;
        st.end()
    }
}

/// A map's entries in key order: the same tables always give the same file (keys are
/// unique, so an unstable sort is enough).
fn by_key<'a, K: Ord, V>(entries: impl Iterator<Item = (&'a K, &'a V)>) -> Vec<(&'a K, &'a V)> {
    sorted(entries.collect())
}

fn sorted<'a, K: Ord, V>(mut v: Vec<(&'a K, &'a V)>) -> Vec<(&'a K, &'a V)> {
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    v
}

/// A JSON array of what an iterator yields, written as it is walked.
struct Seq<I>(I);

impl<I, T> Serialize for Seq<I>
where
    I: Iterator<Item = T> + Clone + ExactSizeIterator,
    T: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0.clone() {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn civil_writes_what_jiff_writes() {
        let mut times = vec![
            DateTime::MIN,
            DateTime::MAX,
            date(0, 1, 1).at(0, 0, 0, 0),
            date(-1, 12, 31).at(23, 59, 59, 0),
            date(9999, 12, 31).at(23, 59, 59, 0),
            date(999, 2, 3).at(4, 5, 6, 0),
            date(2026, 12, 2).at(10, 0, 0, 0),
            date(2026, 12, 2).at(10, 0, 0, 1),
            date(2026, 12, 2).at(10, 0, 0, 500_000_000),
        ];
        // Every second of a day, at every month's ends, over a leap year.
        let mut t = date(2024, 1, 1).at(0, 0, 0, 0);
        while t < date(2025, 1, 2).at(0, 0, 0, 0) {
            times.push(t);
            t = t
                .checked_add(jiff::SignedDuration::from_secs(86_400 + 3_599))
                .unwrap();
        }
        let day = date(2026, 3, 8).at(0, 0, 0, 0);
        times.extend((0..86_400).map(|s| day + jiff::SignedDuration::from_secs(s)));
        for t in times {
            assert_eq!(
                serde_json::to_string(&Civil(t)).unwrap(),
                serde_json::to_string(&t).unwrap()
            );
        }
    }

    #[test]
    fn hex_is_32_lowercase_digits_as_format_writes_them() {
        for id in [
            0,
            1,
            0xabc,
            u128::MAX,
            u128::MAX - 5,
            1 << 127,
            0x0123_4567_89ab_cdef,
        ] {
            assert_eq!(
                serde_json::to_string(&Hex(id)).unwrap(),
                format!("\"{id:032x}\"")
            );
        }
    }
}
