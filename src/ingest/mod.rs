//! One answer's way into the totals, pure: decode the body, check the envelope, cut at
//! the row cap, de-duplicate against the cycle's batch and apply the new rows.
//!
//! [`ingest`] (the poller's path) decodes each row straight into a small
//! [`answer::Item`]: its identity, date, duration and outcome, and its label values by
//! number in a table of the answer's distinct ones. A 60,000-row answer then costs about 100 bytes a row
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

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::calls::Calls;
use crate::config::Limits;
use crate::ledger::Batch;
use crate::totals::Totals;
use crate::window::{self, Query, Range};
use crate::wolkvox::row::{Field, RawRow, decode};
use crate::wolkvox::{ApiError, Reason, classify, excerpt};

mod answer;
mod decoder;
mod plain_row;
#[cfg(test)]
mod tests;

pub use answer::Answer;
pub use decoder::Decoder;

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
    if !check_code(env.code, env.msg.as_ref())? {
        return Ok(Vec::new()); // a 404 envelope has no rows, whatever its `data` says
    }
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
#[allow(clippy::too_many_arguments)]
pub fn ingest(
    body: &[u8],
    q: &Query,
    tz: &TimeZone,
    batch: &mut Batch<'_>,
    next: &mut Totals,
    calls: &mut Calls,
    limits: &Limits,
    bounds: &[f64],
) -> Result<Ingested, ApiError> {
    let answer = Decoder::whole(body)?;
    Ok(ingest_answer(
        &answer, q, tz, batch, next, calls, limits, bounds,
    ))
}

/// [`ingest`] for an answer already decoded (by a [`Decoder`] fed as the body came).
#[allow(clippy::too_many_arguments)]
pub fn ingest_answer(
    answer: &Answer,
    q: &Query,
    tz: &TimeZone,
    batch: &mut Batch<'_>,
    next: &mut Totals,
    calls: &mut Calls,
    limits: &Limits,
    bounds: &[f64],
) -> Ingested {
    let items = &answer.items;
    let capped = items.len() >= ROW_CAP;
    if capped {
        if let Some((kept, rest)) = continuation(items.iter().map(|i| i.date), q, tz) {
            let new = answer.apply(&items[..kept], q, batch, next, calls, limits, bounds);
            return Ingested::Continue {
                rows: items.len(),
                kept,
                new,
                rest,
            };
        }
        if let Some((a, b)) = window::bisect(q.range) {
            return Ingested::Split(a, b);
        }
    }
    let new = answer.apply(items, q, batch, next, calls, limits, bounds);
    Ingested::Applied {
        rows: items.len(),
        new,
        capped,
    }
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
    calls: &mut Calls,
    limits: &Limits,
    bounds: &[f64],
) -> usize {
    let readings: Vec<_> = rows.iter().map(|r| r.read()).collect();
    let mut scratch = Vec::new();
    let fresh = batch.observe_each(
        rows.iter()
            .zip(&readings)
            .map(|(r, rd)| (r.identity_in(&mut scratch), keep_until(rd.date, q))),
        rows.len(),
    );
    let mut new = 0;
    for ((row, reading), is_new) in rows.iter().zip(&readings).zip(fresh) {
        if is_new {
            next.apply(reading, limits, bounds);
            let conn = crate::calls::key::digest(row.conn_id.as_str());
            calls.observe(conn, reading, keep_until(reading.date, q), &mut next.calls);
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
