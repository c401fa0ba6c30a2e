//! What must hold for any answer body, however hostile: decoding never panics, every
//! row reads into label values that are short, trimmed and non-empty where the
//! contract says so, durations are finite and non-negative, and the totals respect the
//! cardinality limits and count every row once. Shared by the cargo-fuzz target and
//! the stable proptest run (`tests/it/fuzz.rs`), so both check the same things.

use wolkvox_exporter::config::Limits;
use wolkvox_exporter::metrics::{OTHER, Totals};
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
