//! One answer's way into the totals, pure: decode the body, check the envelope, split
//! at the row cap, de-duplicate against the cycle's batch and apply the new rows.

use jiff::civil::DateTime;

use crate::config::Limits;
use crate::ledger::Batch;
use crate::metrics::Totals;
use crate::window::{self, Query, Range};
use crate::wolkvox::row::{RawRow, decode};
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
    /// The answer was at the cap: ask for these two halves instead; nothing applied.
    Split(Range, Range),
}

/// The rows of a 200 answer's body (an empty body is a 404: no rows).
pub fn rows_of(body: &[u8]) -> Result<Vec<RawRow<'_>>, ApiError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let env = decode(body).map_err(|e| ApiError {
        reason: Reason::Decode,
        status: Some(200),
        detail: format!("invalid report answer: {e}"),
    })?;
    match env.code {
        Some(200) | None => Ok(env.data.unwrap_or_default()),
        Some(404) => Ok(Vec::new()),
        Some(code) => {
            let msg = env.msg.as_ref().map(|m| m.as_str()).unwrap_or("");
            Err(ApiError {
                reason: classify(u16::try_from(code).unwrap_or(0), msg),
                status: Some(200),
                detail: format!("answer code {code}: {}", excerpt(msg)),
            })
        }
    }
}

/// Decodes one answer to `q` and applies its new rows to `next`, or asks for a split.
pub fn ingest(
    body: &[u8],
    q: &Query,
    batch: &mut Batch<'_>,
    next: &mut Totals,
    limits: &Limits,
    bounds: &[f64],
) -> Result<Ingested, ApiError> {
    let rows = rows_of(body)?;
    let capped = rows.len() >= ROW_CAP;
    if capped && let Some((a, b)) = window::bisect(q.range) {
        return Ok(Ingested::Split(a, b));
    }
    let new = apply_rows(&rows, q, batch, next, limits, bounds);
    Ok(Ingested::Applied {
        rows: rows.len(),
        new,
        capped,
    })
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
    // Kept until the row's own wall time; an undated row until the end of its query.
    let keyed: Vec<(u128, DateTime)> = rows
        .iter()
        .zip(&readings)
        .map(|(r, rd)| {
            (
                r.identity(),
                rd.date
                    .map_or(q.date_end, |d| d.clamp(q.date_ini, q.date_end)),
            )
        })
        .collect();
    let fresh = batch.observe(&keyed);
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
}
