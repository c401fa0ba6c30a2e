//! One answer's way into the totals, pure: decode the body, check the envelope, cut at
//! the row cap, de-duplicate against the cycle's batch and apply the new rows.
//!
//! [`ingest`] (the poller's path) decodes each row straight into a small [`Item`]: its
//! identity, date, duration and outcome, and its label values by number in a table of
//! the answer's distinct ones. A 60,000-row answer then costs about 64 bytes a row
//! beside the body instead of the ~400 of decoded rows plus their readings, and it runs
//! within 1.5x of a plain `serde_json` decode (see `benches/ingest.rs`).
//! [`rows_of`] and [`apply_rows`] give the rows themselves, for callers that need them.
//!
//! # An answer at the cap
//! The API silently cuts a range's answer at 60,000 rows. Its rows come in date order
//! (the simulator orders them so; inferred for the real API, and checked on every cut
//! answer), so the cut keeps the earliest rows: every row dated before the last row's
//! second is in the answer, complete. Those are applied, and the range is asked again
//! from that second (inclusive) to its end: one more request per 60,000 rows instead of
//! a tree of halves. Rows of the last second are not applied from the cut answer; the
//! next answer brings them all, including every copy of a true duplicate (copies share
//! their date, so none of them can fall before the cut). A row from the kept part that
//! comes back anyway (a DST fold can widen the second query) was seen whole in the
//! first answer, so the batch's max rule counts nothing more. When the rows are not in
//! date order or a date does not read, the range is halved instead, as before, and
//! nothing of the cut answer is applied.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use crate::config::Limits;
use crate::ledger::{Batch, IdHasherBuilder, RowId};
use crate::totals::Totals;
use crate::window::{self, Query, Range};
use crate::wolkvox::row::{Field, MAX_LABEL_LEN, Outcome, RawRow, Reading, decode, without_bom};
use crate::wolkvox::{ApiError, Reason, classify, excerpt};

/// The API's row cap: an answer this long is taken as cut off.
pub const ROW_CAP: usize = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Rows applied: how many in the answer and how many were new. `capped` when the
    /// answer was at the cap but its range (one second) cannot be split further.
    Applied {
        rows: usize,
        new: usize,
        capped: bool,
    },
    /// The answer was at the cap, in date order: its first `kept` rows (those dated
    /// before its last second) were applied, `new` of them new; ask `rest` next.
    Continue {
        rows: usize,
        kept: usize,
        new: usize,
        rest: Query,
    },
    /// The answer was at the cap: ask for these two halves instead; nothing applied.
    Split(Range, Range),
}

/// The rows of a 200 answer's body (an empty body is a 404: no rows).
pub fn rows_of(body: &[u8]) -> Result<Vec<RawRow<'_>>, ApiError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let env = decode(body).map_err(decode_error)?;
    check_code(env.code, env.msg.as_ref())?;
    Ok(env.data.unwrap_or_default())
}

fn decode_error(e: String) -> ApiError {
    ApiError {
        reason: Reason::Decode,
        status: Some(200),
        detail: format!("invalid report answer: {e}"),
    }
}

/// `Ok(true)` when the envelope's code says its rows are to be read, `Ok(false)` for a
/// 404 (no rows), the error otherwise.
fn check_code(code: Option<i64>, msg: Option<&Field<'_>>) -> Result<bool, ApiError> {
    match code {
        Some(200) | None => Ok(true),
        Some(404) => Ok(false),
        Some(code) => {
            let msg = msg.map(|m| m.as_str()).unwrap_or("");
            Err(ApiError {
                reason: classify(u16::try_from(code).unwrap_or(0), msg),
                status: Some(200),
                detail: format!("answer code {code}: {}", excerpt(msg)),
            })
        }
    }
}

/// Decodes one answer to `q` (in the operation's zone `tz`) and applies its new rows to
/// `next`; at the cap, applies what is complete and says what to ask next.
pub fn ingest(
    body: &[u8],
    q: &Query,
    tz: &TimeZone,
    batch: &mut Batch<'_>,
    next: &mut Totals,
    limits: &Limits,
    bounds: &[f64],
) -> Result<Ingested, ApiError> {
    let answer = if body.is_empty() {
        Answer::default()
    } else {
        Answer::decode(body)?
    };
    let items = &answer.items;
    let capped = items.len() >= ROW_CAP;
    if capped {
        if let Some((kept, rest)) = continuation(items.iter().map(|i| i.date), q, tz) {
            let new = answer.apply(&items[..kept], q, batch, next, limits, bounds);
            return Ok(Ingested::Continue {
                rows: items.len(),
                kept,
                new,
                rest,
            });
        }
        if let Some((a, b)) = window::bisect(q.range) {
            return Ok(Ingested::Split(a, b));
        }
    }
    let new = answer.apply(items, q, batch, next, limits, bounds);
    Ok(Ingested::Applied {
        rows: items.len(),
        new,
        capped,
    })
}

/// For an answer to `q` cut at the cap, given its rows' dates in order: how many
/// leading rows are complete (dated before the last row's second) and the query for
/// the rest (that second, inclusive, to the end of `q`). `None` when a date does not
/// read, the dates are not in order, or the cut would not move forward (the whole
/// answer is one second, or its last date lies outside `q`): halve the range instead.
pub fn continuation(
    dates: impl IntoIterator<Item = Option<DateTime>>,
    q: &Query,
    tz: &TimeZone,
) -> Option<(usize, Query)> {
    let mut last: Option<DateTime> = None;
    let mut kept = 0;
    for (i, d) in dates.into_iter().enumerate() {
        let d = d?;
        match last {
            Some(l) if d < l => return None,
            Some(l) if d == l => {}
            _ => kept = i,
        }
        last = Some(d);
    }
    let last = last?;
    if last <= q.date_ini || last > q.date_end {
        return None;
    }
    // The earliest instant with that wall time (the first pass of a DST fold), never
    // before the range: asking from too early only asks again for rows the batch
    // already holds. A wall time the zone skips names no instant to start from: halve.
    let amb = tz.to_ambiguous_timestamp(last);
    let at = [amb.earlier().ok(), amb.later().ok()]
        .into_iter()
        .flatten()
        .min()?;
    if tz.to_datetime(at) != last || at <= q.range.start || at >= q.range.end {
        return None;
    }
    Some((
        kept,
        Query {
            range: Range::new(at, q.range.end),
            // Exactly the wall times not yet complete, whatever the zone did in between.
            date_ini: last,
            date_end: q.date_end,
        },
    ))
}

/// De-duplicates `rows` (one answer to `q`) and applies the new ones; returns how many
/// were new. Copies already counted go to the duplicates counter.
pub fn apply_rows(
    rows: &[RawRow<'_>],
    q: &Query,
    batch: &mut Batch<'_>,
    next: &mut Totals,
    limits: &Limits,
    bounds: &[f64],
) -> usize {
    let readings: Vec<_> = rows.iter().map(|r| r.read()).collect();
    let fresh = batch.observe_each(
        rows.iter()
            .zip(&readings)
            .map(|(r, rd)| (r.identity(), keep_until(rd.date, q))),
        rows.len(),
    );
    let mut new = 0;
    for (reading, is_new) in readings.iter().zip(fresh) {
        if is_new {
            next.apply(reading, limits, bounds);
            new += 1;
        } else {
            next.duplicates += 1;
        }
    }
    new
}

/// How long the ledger keeps a row: until its own wall time; an undated row until the
/// end of its query.
fn keep_until(date: Option<DateTime>, q: &Query) -> DateTime {
    date.map_or(q.date_end, |d| d.clamp(q.date_ini, q.date_end))
}

/// One row of an answer, as [`ingest`] keeps it until it is applied.
#[derive(Debug)]
struct Item {
    id: RowId,
    date: Option<DateTime>,
    duration: Option<f64>,
    /// Index into [`Answer::labels`].
    labels: u32,
    outcome: Outcome,
}

/// A row's label values, as [`RawRow::read`] gives them.
#[derive(Debug, PartialEq)]
struct Labels {
    rp_id: String,
    rp_name: String,
    option: Option<String>,
    transfer: Option<String>,
}

/// A decoded answer: the envelope's code and message, and its rows as [`Item`]s.
#[derive(Debug, Default)]
struct Answer {
    items: Vec<Item>,
    labels: Vec<Labels>,
}

/// The envelope, exactly as [`crate::wolkvox::row::Envelope`] reads it, with the rows
/// read as they are decoded.
#[derive(Deserialize)]
struct LeanEnvelope<'a> {
    #[serde(default, deserialize_with = "crate::wolkvox::row::code")]
    code: Option<i64>,
    #[serde(default, borrow)]
    msg: Option<Field<'a>>,
    #[serde(default)]
    data: Option<Answer>,
}

impl Answer {
    fn decode(body: &[u8]) -> Result<Answer, ApiError> {
        let body = without_bom(body);
        // From bytes: strings are checked as UTF-8 as they are read, which saves the
        // whole pass `str::from_utf8` would make first. As `row::decode`, invalid UTF-8
        // is then replaced rather than refused.
        let env: LeanEnvelope<'_> = match serde_json::from_slice(body) {
            Ok(env) => env,
            Err(e) if std::str::from_utf8(body).is_ok() => {
                return Err(decode_error(e.to_string()));
            }
            Err(_) => {
                let text = String::from_utf8_lossy(body).into_owned();
                let env: LeanEnvelope<'_> =
                    serde_json::from_str(&text).map_err(|e| decode_error(e.to_string()))?;
                return Answer::from_envelope(env);
            }
        };
        Answer::from_envelope(env)
    }

    fn from_envelope(env: LeanEnvelope<'_>) -> Result<Answer, ApiError> {
        if check_code(env.code, env.msg.as_ref())? {
            Ok(env.data.unwrap_or_default())
        } else {
            Ok(Answer::default())
        }
    }

    fn apply(
        &self,
        items: &[Item],
        q: &Query,
        batch: &mut Batch<'_>,
        next: &mut Totals,
        limits: &Limits,
        bounds: &[f64],
    ) -> usize {
        let mut fresh = Vec::with_capacity(items.len());
        let dated_in_order = items
            .windows(2)
            .all(|w| w[0].date.is_some() && w[0].date <= w[1].date);
        if dated_in_order {
            // Copies share their date: count them second by second.
            for run in items.chunk_by(|a, b| a.date == b.date) {
                batch.observe_into(
                    run.iter().map(|i| (i.id, keep_until(i.date, q))),
                    &mut fresh,
                );
            }
        } else {
            batch.observe_into(
                items.iter().map(|i| (i.id, keep_until(i.date, q))),
                &mut fresh,
            );
        }
        let mut new = 0;
        for (item, is_new) in items.iter().zip(fresh) {
            if !is_new {
                next.duplicates += 1;
                continue;
            }
            let Some(l) = self.labels.get(item.labels as usize) else {
                continue; // every index comes from the table: cannot happen
            };
            let reading = Reading {
                rp_id: &l.rp_id,
                rp_name: &l.rp_name,
                outcome: item.outcome,
                option: l.option.as_deref().map(Cow::Borrowed),
                transfer: l.transfer.as_deref(),
                duration: item.duration,
                date: item.date,
            };
            next.apply(&reading, limits, bounds);
            new += 1;
        }
        new
    }
}

/// Finds a row's label values in the answer's table, adding them when new. An answer
/// has a few dozen distinct ones, so each is stored once.
#[derive(Default)]
struct Interner {
    /// Hash of the values to the first table index with that hash; collisions chain.
    first: HashMap<u64, u32, IdHasherBuilder>,
    chain: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Interner {
    fn hash(r: &Reading<'_>) -> u64 {
        // Label values are capped at 128 bytes, so the four fit on the stack, and one
        // call hashes them (the streaming hasher costs more to set up than to run).
        let mut buf = [0u8; 4 * (8 + MAX_LABEL_LEN)];
        let mut at = 0;
        for part in [
            Some(r.rp_id),
            Some(r.rp_name),
            r.option.as_deref(),
            r.transfer,
        ] {
            let (len, bytes) = match part {
                Some(s) => (s.len() as u64, s.as_bytes()),
                None => (u64::MAX, &b""[..]),
            };
            let end = at + 8 + bytes.len();
            if let Some(dst) = buf.get_mut(at..end) {
                dst[..8].copy_from_slice(&len.to_le_bytes());
                dst[8..].copy_from_slice(bytes);
            }
            at = end.min(buf.len());
        }
        xxhash_rust::xxh3::xxh3_64(&buf[..at])
    }

    fn index(&mut self, table: &mut Vec<Labels>, r: &Reading<'_>) -> u32 {
        let hash = Interner::hash(r);
        let same = |l: &Labels| {
            l.rp_id == r.rp_id
                && l.rp_name == r.rp_name
                && l.option.as_deref() == r.option.as_deref()
                && l.transfer.as_deref() == r.transfer
        };
        let mut at = self.first.get(&hash).copied().unwrap_or(NONE);
        let mut tail = NONE;
        while at != NONE {
            if table.get(at as usize).is_some_and(same) {
                return at;
            }
            tail = at;
            at = self.chain.get(at as usize).copied().unwrap_or(NONE);
        }
        let i = u32::try_from(table.len()).unwrap_or(NONE - 1);
        table.push(Labels {
            rp_id: r.rp_id.to_string(),
            rp_name: r.rp_name.to_string(),
            option: r.option.as_deref().map(str::to_string),
            transfer: r.transfer.map(str::to_string),
        });
        self.chain.push(NONE);
        match self.chain.get_mut(tail as usize) {
            Some(link) => *link = i,
            None => {
                self.first.insert(hash, i);
            }
        }
        i
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Answer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Answer, A::Error> {
                let mut answer = Answer::default();
                let mut interner = Interner::default();
                // Each row lives only while it is read: identity, reading, labels.
                while let Some(row) = seq.next_element::<RawRow<'de>>()? {
                    let r = row.read();
                    let labels = interner.index(&mut answer.labels, &r);
                    answer.items.push(Item {
                        id: row.identity(),
                        date: r.date,
                        duration: r.duration,
                        labels,
                        outcome: r.outcome,
                    });
                }
                Ok(answer)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use jiff::tz::TimeZone;

    fn q() -> Query {
        let r = Range::new(
            "2026-11-27T15:00:00Z".parse().unwrap(),
            "2026-11-27T15:05:00Z".parse().unwrap(),
        );
        window::query_for(r, &TimeZone::get("America/Bogota").unwrap())
    }

    fn bogota() -> TimeZone {
        TimeZone::get("America/Bogota").unwrap()
    }

    fn row_json(date: &str, conn: &str) -> String {
        format!(
            r#"{{"rp_id":"1","rp_name":"Menú","cod_opc_menu":"1","dn_transfer":"","date":"{date}","result":"ok","ani":"","time":"5","customer_id":"","conn_id":"{conn}"}}"#
        )
    }

    fn envelope(rows: &[String]) -> String {
        format!(
            r#"{{"code":200,"error":null,"msg":"{} records were found","data":[{}]}}"#,
            rows.len(),
            rows.join(",")
        )
    }

    fn body(n: usize) -> String {
        let rows: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"rp_id":"1","rp_name":"A","cod_opc_menu":"1","dn_transfer":"","date":"2026-11-27 10:00:00","result":"ok","ani":"","time":"5","customer_id":"","conn_id":"{i}"}}"#))
            .collect();
        format!(
            r#"{{"code":200,"error":null,"msg":"{n} records were found","data":[{}]}}"#,
            rows.join(",")
        )
    }

    #[test]
    fn applies_new_rows_and_counts_copies_as_duplicates() {
        let ledger = Ledger::new();
        let mut batch = ledger.begin();
        let mut t = Totals::default();
        let b = body(3);
        let got = ingest(
            b.as_bytes(),
            &q(),
            &bogota(),
            &mut batch,
            &mut t,
            &Limits::default(),
            &[5.0],
        )
        .unwrap();
        assert_eq!(
            got,
            Ingested::Applied {
                rows: 3,
                new: 3,
                capped: false
            }
        );
        let got = ingest(
            b.as_bytes(),
            &q(),
            &bogota(),
            &mut batch,
            &mut t,
            &Limits::default(),
            &[5.0],
        )
        .unwrap();
        assert_eq!(
            got,
            Ingested::Applied {
                rows: 3,
                new: 0,
                capped: false
            }
        );
        assert_eq!((t.rows, t.duplicates), (3, 3));
    }

    #[test]
    fn at_the_cap_asks_for_halves_and_applies_nothing() {
        let ledger = Ledger::new();
        let mut batch = ledger.begin();
        let mut t = Totals::default();
        let b = body(ROW_CAP);
        match ingest(
            b.as_bytes(),
            &q(),
            &bogota(),
            &mut batch,
            &mut t,
            &Limits::default(),
            &[5.0],
        )
        .unwrap()
        {
            Ingested::Split(a, c) => {
                assert_eq!(a.start, q().range.start);
                assert_eq!(a.end, c.start);
                assert_eq!(c.end, q().range.end);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t, Totals::default());
    }

    /// 300 rows a second from 10:00:00, and two extra copies of a row of second 199
    /// placed so the cut at 60,000 rows falls between its copies.
    fn over_the_cap() -> Vec<(String, String)> {
        let at = |i: usize| format!("2026-11-27 10:{:02}:{:02}", i / 300 / 60, i / 300 % 60);
        let mut rows: Vec<(String, String)> =
            (0..63_000).map(|i| (at(i), format!("c{i}"))).collect();
        let dup = rows[59_998].clone();
        rows.insert(59_999, dup.clone());
        rows.insert(59_999, dup);
        rows
    }

    /// What the API answers for wall times from `from` on: rows in date order, cut.
    fn answer(all: &[(String, String)], from: &str) -> String {
        let rows: Vec<String> = all
            .iter()
            .filter(|(d, _)| d.as_str() >= from)
            .take(ROW_CAP)
            .map(|(d, c)| row_json(d, c))
            .collect();
        envelope(&rows)
    }

    #[test]
    fn at_the_cap_in_date_order_keeps_what_is_complete_and_asks_from_the_last_second() {
        let all = over_the_cap();
        let ledger = Ledger::new();
        let mut batch = ledger.begin();
        let mut t = Totals::default();
        let limits = Limits::default();
        let first = answer(&all, "");
        let got = ingest(
            first.as_bytes(),
            &q(),
            &bogota(),
            &mut batch,
            &mut t,
            &limits,
            &[5.0],
        )
        .unwrap();
        let Ingested::Continue {
            rows,
            kept,
            new,
            rest,
        } = got
        else {
            panic!("{got:?}");
        };
        // Second 199 (10:03:19) is the last one: its rows wait for the next answer.
        assert_eq!((rows, kept, new), (ROW_CAP, 59_700, 59_700));
        assert_eq!(
            rest.date_ini,
            jiff::civil::date(2026, 11, 27).at(10, 3, 19, 0)
        );
        assert_eq!(rest.date_end, q().date_end);
        assert_eq!(rest.range.start, "2026-11-27T15:03:19Z".parse().unwrap());
        assert_eq!(rest.range.end, q().range.end);
        assert_eq!(t.rows, 59_700);
        // The rest: every copy of the duplicate, all of second 199 and after.
        let second = answer(&all, "2026-11-27 10:03:19");
        let got = ingest(
            second.as_bytes(),
            &rest,
            &bogota(),
            &mut batch,
            &mut t,
            &limits,
            &[5.0],
        )
        .unwrap();
        assert_eq!(
            got,
            Ingested::Applied {
                rows: 63_002 - 59_700,
                new: 63_002 - 59_700,
                capped: false
            }
        );
        // Each row once, each of the three copies once; nothing seen twice.
        assert_eq!((t.rows, t.duplicates), (63_002, 0));
        // Had the re-asked range started earlier, the kept rows would not count again.
        let again = answer(&all, "2026-11-27 10:03:00");
        ingest(
            again.as_bytes(),
            &rest,
            &bogota(),
            &mut batch,
            &mut t,
            &limits,
            &[5.0],
        )
        .unwrap();
        assert_eq!(t.rows, 63_002);
    }

    #[test]
    fn at_the_cap_out_of_order_or_undated_halves_and_applies_nothing() {
        let all = over_the_cap();
        let mut rows: Vec<String> = all[..ROW_CAP].iter().map(|(d, c)| row_json(d, c)).collect();
        rows.swap(10, 20_000);
        let mut undated: Vec<String> = all[..ROW_CAP].iter().map(|(d, c)| row_json(d, c)).collect();
        undated[5] = row_json("yesterday", "x");
        for b in [envelope(&rows), envelope(&undated)] {
            let ledger = Ledger::new();
            let mut batch = ledger.begin();
            let mut t = Totals::default();
            let got = ingest(
                b.as_bytes(),
                &q(),
                &bogota(),
                &mut batch,
                &mut t,
                &Limits::default(),
                &[5.0],
            )
            .unwrap();
            assert!(matches!(got, Ingested::Split(..)), "{got:?}");
            assert_eq!(t, Totals::default());
        }
    }

    #[test]
    fn continuation_starts_at_the_first_pass_of_a_folded_second() {
        let ny = TimeZone::get("America/New_York").unwrap();
        // 2026-11-01: 01:00-02:00 happens twice in New York.
        let r = Range::new(
            "2026-11-01T04:30:00Z".parse().unwrap(),
            "2026-11-01T07:00:00Z".parse().unwrap(),
        );
        let q = window::query_for(r, &ny);
        let d = |h, m| Some(jiff::civil::date(2026, 11, 1).at(h, m, 0, 0));
        let (kept, rest) = continuation([d(0, 40), d(1, 10), d(1, 30), d(1, 30)], &q, &ny).unwrap();
        assert_eq!(kept, 2);
        assert_eq!(rest.range.start, "2026-11-01T05:30:00Z".parse().unwrap());
        assert_eq!(rest.date_ini, d(1, 30).unwrap());
        assert_eq!(rest.date_end, q.date_end);
        // One second only, or nothing to go on: halve instead.
        assert_eq!(continuation([d(0, 30), d(0, 30)], &q, &ny), None);
        assert_eq!(continuation([d(1, 10), None], &q, &ny), None);
        assert_eq!(continuation([d(1, 10), d(0, 50)], &q, &ny), None);

        // 2026-03-08: 02:00-03:00 never happens in New York. A cut answer ending on a
        // skipped wall time names no instant to continue from.
        let r = Range::new(
            "2026-03-08T05:00:00Z".parse().unwrap(),
            "2026-03-08T09:00:00Z".parse().unwrap(),
        );
        let q = window::query_for(r, &ny);
        let d = |h, m| Some(jiff::civil::date(2026, 3, 8).at(h, m, 0, 0));
        assert_eq!(continuation([d(1, 10), d(2, 30)], &q, &ny), None);
        let (kept, rest) = continuation([d(1, 10), d(2, 30), d(3, 5)], &q, &ny).unwrap();
        assert_eq!(kept, 2);
        assert_eq!(rest.range.start, "2026-03-08T07:05:00Z".parse().unwrap());
    }

    /// The lean path reads, de-duplicates and applies exactly as the rows do.
    #[test]
    fn ingest_agrees_with_rows_of_and_apply_rows() {
        let mut b = br#"{"msg":"x","data":[
            {"rp_id":7,"rp_name":"Men\u00fa \"P\"","cod_opc_menu":" pulse ","dn_transfer":null,"date":"2026-11-27 10:00:00","result":"Hung_Up","ani":"300","time":"00:01:05","customer_id":"","conn_id":"c1","extra":{"x":1}},
            {"rp_id":7,"rp_name":"Men\u00fa \"P\"","cod_opc_menu":" pulse ","dn_transfer":null,"date":"2026-11-27 10:00:00","result":"Hung_Up","ani":"300","time":"00:01:05","customer_id":"","conn_id":"c1","extra":{"x":1}},
            {"rp_name":["odd"],"time":"n/a","date":"bad"},
            {"rp_id":"","rp_name":"  A  ","cod_opc_menu":"2","dn_transfer":"3001","date":"20261127100001","result":"ok","time":4.5,"conn_id":"c2"},
            {"rp_id":"2","rp_name":"B","cod_opc_menu":"3","dn_transfer":"3002","date":"2026112710","result":"OK","time":"7","conn_id":"c3"},
            {"rp_id":"3","rp_name":"C"#
            .to_vec();
        b.push(0xff);
        b.extend_from_slice(br#"","cod_opc_menu":"","time":"1","conn_id":"c4"}]}"#);
        let limits = Limits {
            routing_points: 3,
            options_per_routing_point: 1,
            transfers_per_routing_point: 1,
        };
        let (mut lean, mut plain) = (Totals::default(), Totals::default());
        let (l1, l2) = (Ledger::new(), Ledger::new());
        let (mut b1, mut b2) = (l1.begin(), l2.begin());
        for _ in 0..2 {
            ingest(
                &b,
                &q(),
                &bogota(),
                &mut b1,
                &mut lean,
                &limits,
                &[5.0, 60.0],
            )
            .unwrap();
            let rows = rows_of(&b).unwrap();
            apply_rows(&rows, &q(), &mut b2, &mut plain, &limits, &[5.0, 60.0]);
        }
        assert_eq!(lean, plain);
        assert_eq!((lean.rows, lean.duplicates), (6, 6));
        let (mut l1, mut l2) = (l1.clone(), l2.clone());
        l1.commit(b1.into_changes());
        l2.commit(b2.into_changes());
        assert_eq!(l1, l2);
    }

    #[test]
    fn ingest_reads_envelopes_as_rows_of_does() {
        let ledger = Ledger::new();
        let mut batch = ledger.begin();
        let mut t = Totals::default();
        let mut go = |b: &[u8]| {
            ingest(
                b,
                &q(),
                &bogota(),
                &mut batch,
                &mut t,
                &Limits::default(),
                &[5.0],
            )
        };
        let none = Ingested::Applied {
            rows: 0,
            new: 0,
            capped: false,
        };
        assert_eq!(go(b"").unwrap(), none);
        assert_eq!(
            go(br#"{"code":404,"msg":"Validate dates entered","data":null}"#).unwrap(),
            none
        );
        assert_eq!(go(br#"{"code":404,"data":[{"rp_id":"1"}]}"#).unwrap(), none);
        assert_eq!(go(br#"{"code":200,"data":null}"#).unwrap(), none);
        let e = go(br#"{"code":403,"msg":"TOKEN LIMIT EXCEEDED","data":[]}"#).unwrap_err();
        assert_eq!(e.reason, Reason::TokenLimit);
        for bad in [
            &b"<html>"[..],
            br#"{"code":200,"data":"nope"}"#,
            br#"{"code":200,"data":[{"rp_id":"1"#,
        ] {
            let want = rows_of(bad).unwrap_err();
            let got = go(bad).unwrap_err();
            assert_eq!((got.reason, got.detail), (want.reason, want.detail));
        }
    }

    #[test]
    fn envelopes() {
        assert!(rows_of(b"").unwrap().is_empty());
        assert!(
            rows_of(br#"{"code":404,"msg":"Validate dates entered","data":null}"#)
                .unwrap()
                .is_empty()
        );
        assert!(rows_of(br#"{"code":200,"data":null}"#).unwrap().is_empty());
        let e = rows_of(br#"{"code":403,"msg":"TOKEN LIMIT EXCEEDED","data":[]}"#).unwrap_err();
        assert_eq!(e.reason, Reason::TokenLimit);
        assert_eq!(rows_of(b"<html>").unwrap_err().reason, Reason::Decode);
    }

    /// The envelope as the vendor's own samples write it: `code` as a string, `msg`
    /// with a leading space; and a body behind a UTF-8 byte order mark.
    #[test]
    fn vendor_envelopes_read_as_rows() {
        let vendor = br#"{"code": "200", "error": null, "msg": " 3 records were found", "data": [
            {"rp_id": "1", "rp_name": "A", "cod_opc_menu": "1", "dn_transfer": "", "date": "2026-04-01 10:00:00", "result": "ok", "ani": "3001234567", "time": "12", "customer_id": "", "conn_id": "c1"},
            {"rp_id": "1", "rp_name": "A", "cod_opc_menu": "PULSE", "dn_transfer": "", "date": "2026-04-01 10:00:01", "result": "hung up", "ani": "3001234567", "time": "3", "customer_id": "", "conn_id": "c2"},
            {"rp_id": "2", "rp_name": "B", "cod_opc_menu": "", "dn_transfer": "3001", "date": "2026-04-01 10:00:02", "result": "ok", "ani": "3001234567", "time": "0:45", "customer_id": "", "conn_id": "c3"}
        ]}"#;
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(vendor);
        for (name, body) in [("string code", &vendor[..]), ("byte order mark", &bom[..])] {
            assert_eq!(rows_of(body).expect(name).len(), 3, "{name}");
            let ledger = Ledger::new();
            let mut batch = ledger.begin();
            let mut t = Totals::default();
            let got = ingest(
                body,
                &q(),
                &bogota(),
                &mut batch,
                &mut t,
                &Limits::default(),
                &[5.0],
            )
            .expect(name);
            assert_eq!(
                got,
                Ingested::Applied {
                    rows: 3,
                    new: 3,
                    capped: false
                },
                "{name}"
            );
            assert_eq!(t.rows, 3, "{name}");
        }
        // A string code other than 200 is classified as a number would be.
        let e = rows_of(br#"{"code":"403","msg":"TOKEN LIMIT EXCEEDED","data":[]}"#).unwrap_err();
        assert_eq!(e.reason, Reason::TokenLimit);
        assert!(
            rows_of(br#"{"code":" 404 ","msg":"Validate dates entered","data":null}"#)
                .unwrap()
                .is_empty()
        );
        // A code that is no number is not a report.
        let e = rows_of(br#"{"code":"OK","data":[]}"#).unwrap_err();
        assert_eq!(e.reason, Reason::Decode);
        assert!(e.detail.contains("code"), "{}", e.detail);
    }
}
