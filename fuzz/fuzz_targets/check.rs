//! What must hold for any answer body, however hostile: decoding never panics, every
//! row reads into label values that are short, trimmed and non-empty where the
//! contract says so, durations are finite and non-negative, and the totals respect the
//! cardinality limits and count every row once. Shared by the cargo-fuzz target and
//! the stable proptest run (`tests/it/fuzz.rs`), so both check the same things.

use jiff::tz::TimeZone;
use wolkvox_exporter::calls::{CallKey, Calls};
use wolkvox_exporter::config::Limits;
use wolkvox_exporter::ingest::{
    Answer, Decoder, Ingested, apply_rows, ingest, ingest_answer, rows_of,
};
use wolkvox_exporter::ledger::Ledger;
use wolkvox_exporter::totals::{OTHER, Totals};
use wolkvox_exporter::window::{self, Range};
use wolkvox_exporter::wolkvox::ApiError;
use wolkvox_exporter::wolkvox::client::Receive;
use wolkvox_exporter::wolkvox::row::{MAX_LABEL_LEN, decode};

/// Small limits, so that fuzzed inputs reach the folding into `_other` quickly.
const LIMITS: Limits = Limits {
    routing_points: 3,
    options_per_routing_point: 2,
    transfers_per_routing_point: 2,
};

fn label_ok(what: &str, v: &str) {
    assert!(
        v.len() <= MAX_LABEL_LEN,
        "{what} longer than the cap: {v:?}"
    );
    assert_eq!(v, v.trim(), "{what} not trimmed: {v:?}");
}

/// Checks one body; panics (a finding) when something does not hold.
pub fn body(data: &[u8]) {
    let Ok(envelope) = decode(data) else {
        return;
    };
    if let Some(msg) = &envelope.msg {
        let _ = msg.as_str().len();
    }
    let rows = envelope.data.unwrap_or_default();
    let mut totals = Totals::default();
    for row in &rows {
        let r = row.read();
        label_ok("rp_id", r.rp_id);
        assert!(!r.rp_id.is_empty(), "empty rp_id must read as unknown");
        label_ok("rp_name", r.rp_name);
        if let Some(o) = &r.option {
            label_ok("option", o);
            assert!(!o.is_empty());
        }
        if let Some(t) = r.transfer {
            label_ok("dn_transfer", t);
            assert!(!t.is_empty());
        }
        if let Some(d) = r.duration {
            assert!(d.is_finite() && d >= 0.0, "duration {d}");
        }
        // Same row, same identity; the identity never depends on anything but the row.
        assert_eq!(row.identity(), row.clone().identity());
        totals.apply(&r, &LIMITS, &[5.0, 60.0]);
    }
    assert_eq!(totals.rows, rows.len() as u64);
    assert!(totals.routing_points.len() <= LIMITS.routing_points + 1);
    let mut interactions = 0;
    for ((id, _), rp) in &totals.routing_points {
        assert!(
            rp.options.len() <= LIMITS.options_per_routing_point + 1,
            "{id}"
        );
        assert!(
            rp.transfers.len() <= LIMITS.transfers_per_routing_point + 1,
            "{id}"
        );
        interactions += rp.interactions.iter().sum::<u64>();
        assert!(
            rp.options
                .keys()
                .all(|k| k == OTHER || k.len() <= MAX_LABEL_LEN)
        );
    }
    assert_eq!(interactions, rows.len() as u64, "each row counted once");
}

/// The answer decoded as the network hands it: a few bytes at a time (1 to 7, by the
/// body's length), so that rows, characters and tokens are cut everywhere.
fn in_pieces(data: &[u8], take: impl FnOnce(&Answer) -> Ingested) -> Result<Ingested, ApiError> {
    let mut d = Decoder::default();
    d.start();
    for piece in data.chunks(1 + data.len() % 7) {
        d.extend(piece)?;
    }
    d.finish().map(take)
}

/// The poll cycle's fast path (`ingest`: one pass from bytes to counts) against the
/// simple one (`rows_of`, then `apply_rows`), for the same body given twice (so the
/// second answer's rows are all copies): both refuse it for the same reason, or both
/// count the same totals and leave the same ledger. The fast path fed in pieces gives
/// exactly what it gives fed whole, errors included.
pub fn agrees(data: &[u8]) {
    let Ok(tz) = TimeZone::get("America/Santiago") else {
        panic!("zone data missing");
    };
    // Two hours around Santiago's 2026 fold, whose wall hour 23:00 comes twice.
    let range = Range::new(
        jiff::Timestamp::from_second(1_775_356_200).unwrap_or_default(),
        jiff::Timestamp::from_second(1_775_363_400).unwrap_or_default(),
    );
    let q = window::query_for(range, &tz);
    let bounds = [5.0, 60.0];
    let (mut fast_ledger, mut simple_ledger) = (Ledger::new(), Ledger::new());
    let (mut fast_batch, mut simple_batch) = (fast_ledger.begin(), simple_ledger.begin());
    let (mut fast, mut simple) = (Totals::default(), Totals::default());
    let key = CallKey::from_u128(1);
    let (mut fast_calls, mut simple_calls) = (Calls::with_key(key), Calls::with_key(key));
    let mut piece_ledger = Ledger::new();
    let mut piece_batch = piece_ledger.begin();
    let mut pieces = Totals::default();
    let mut piece_calls = Calls::with_key(key);
    for _ in 0..2 {
        let by_piece = in_pieces(data, |answer| {
            ingest_answer(
                answer,
                &q,
                &tz,
                &mut piece_batch,
                &mut pieces,
                &mut piece_calls,
                &LIMITS,
                &bounds,
            )
        });
        let got = ingest(
            data,
            &q,
            &tz,
            &mut fast_batch,
            &mut fast,
            &mut fast_calls,
            &LIMITS,
            &bounds,
        );
        match (&got, &by_piece) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "whole vs in pieces"),
            (Err(a), Err(b)) => assert_eq!(
                (a.reason, &a.detail),
                (b.reason, &b.detail),
                "whole vs in pieces"
            ),
            (a, b) => panic!("whole gave {a:?}, in pieces {b:?}"),
        }
        let want = rows_of(data).map(|rows| {
            apply_rows(
                &rows,
                &q,
                &mut simple_batch,
                &mut simple,
                &mut simple_calls,
                &LIMITS,
                &bounds,
            );
            rows.len()
        });
        match (got, want) {
            (Ok(Ingested::Applied { rows, .. }), Ok(n)) => assert_eq!(rows, n),
            (Err(a), Err(b)) => {
                assert_eq!(a.reason, b.reason, "{a:?} vs {b:?}");
                return;
            }
            (got, want) => panic!("ingest gave {got:?}, rows_of gave {want:?}"),
        }
    }
    assert_eq!(fast, simple);
    assert_eq!(fast, pieces);
    assert_eq!(fast_calls, simple_calls);
    assert_eq!(fast_calls, piece_calls);
    drop((fast_batch, simple_batch, piece_batch));
    assert_eq!(fast_ledger, simple_ledger);
    assert_eq!(fast_ledger, piece_ledger);
}
