//! One operation's business aggregate: plain data, pure (no `prometheus` here). A part
//! of a poll is applied to a copy and swapped in whole when it commits; the same values
//! are saved in the state file, rendered at scrape time by [`crate::metrics`], and
//! written as history by [`crate::backfill`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::calls::CallTotals;
use crate::config::Limits;
use crate::wolkvox::row::Reading;

mod sets;
pub use sets::{LabelSet, SetRow};

/// A map keyed by label values. foldhash, not std's SipHash: hashing the labels was
/// most of applying a row (5-6% of a catch-up's CPU), and every such map is capped by
/// [`Limits`], so flooding one with colliding keys buys nothing.
pub type LabelMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The value labels take past a cardinality limit.
pub const OTHER: &str = "_other";

/// `label` values of `wolkvox_label_overflow_total`, in [`Totals::overflow`] order.
pub const OVERFLOW_LABELS: [&str; 3] = ["rp_id", "option", "dn_transfer"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Per bucket (not cumulative); observations above the last bound are only in `count`.
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(n: usize) -> Histogram {
        Histogram {
            buckets: vec![0; n],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, bounds: &[f64], v: f64) {
        if let Some(i) = bounds.iter().position(|b| v <= *b)
            && let Some(slot) = self.buckets.get_mut(i)
        {
            *slot += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingPoint {
    /// By [`crate::wolkvox::row::Outcome::index`].
    pub interactions: [u64; 3],
    pub pulse: u64,
    pub options: LabelMap<String, u64>,
    pub transfers: LabelMap<String, u64>,
    /// By [`crate::wolkvox::row::Outcome::index`].
    pub durations: [Histogram; 3],
}

impl RoutingPoint {
    pub fn new(buckets: usize) -> RoutingPoint {
        RoutingPoint {
            interactions: [0; 3],
            pulse: 0,
            options: LabelMap::default(),
            transfers: LabelMap::default(),
            durations: std::array::from_fn(|_| Histogram::new(buckets)),
        }
    }
}

/// `(rp_id, rp_name)`.
pub type RpKey = (String, String);

/// One operation's business totals: plain data, cheap to clone per cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub rows: u64,
    pub invalid_time: u64,
    pub invalid_date: u64,
    pub duplicates: u64,
    /// By [`OVERFLOW_LABELS`].
    pub overflow: [u64; 3],
    pub routing_points: LabelMap<RpKey, RoutingPoint>,
    /// Closed calls, late and call-less rows.
    pub calls: CallTotals,
}

/// Counts a value in a capped map: past `limit` distinct keys, new ones go to `_other`.
fn bump(map: &mut LabelMap<String, u64>, key: &str, limit: usize) -> bool {
    if let Some(v) = map.get_mut(key) {
        *v += 1;
        return false;
    }
    let folded = map.len() >= limit && key != OTHER;
    let key = if folded { OTHER } else { key };
    *map.entry(key.to_string()).or_insert(0) += 1;
    folded
}

/// Looks a `(String, String)` key up by two `&str` without allocating: both forms hash
/// and compare through this trait exactly as a tuple of two strings does. `apply` runs
/// once per new row, and the routing point almost always exists already.
trait KeyPair {
    fn first(&self) -> &str;
    fn second(&self) -> &str;
}

impl KeyPair for (String, String) {
    fn first(&self) -> &str {
        &self.0
    }
    fn second(&self) -> &str {
        &self.1
    }
}

impl KeyPair for (&str, &str) {
    fn first(&self) -> &str {
        self.0
    }
    fn second(&self) -> &str {
        self.1
    }
}

impl<'a> std::borrow::Borrow<dyn KeyPair + 'a> for (String, String) {
    fn borrow(&self) -> &(dyn KeyPair + 'a) {
        self
    }
}

// As `(String, String)` derives it: each field's `str` hash in turn.
impl std::hash::Hash for dyn KeyPair + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.first().hash(state);
        self.second().hash(state);
    }
}

impl PartialEq for dyn KeyPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.first() == other.first() && self.second() == other.second()
    }
}

impl Eq for dyn KeyPair + '_ {}

impl Totals {
    /// Adds one new (not duplicate) row.
    pub fn apply(&mut self, r: &Reading<'_>, limits: &Limits, bounds: &[f64]) {
        self.rows += 1;
        let probe: &dyn KeyPair = &(r.rp_id, r.rp_name);
        // One lookup for a known routing point (nearly every row): the labels are
        // hashed once.
        let rp = match self.routing_points.get_mut(probe) {
            Some(rp) => rp,
            None => {
                let key = if self.routing_points.len() < limits.routing_points {
                    (r.rp_id.to_string(), r.rp_name.to_string())
                } else {
                    self.overflow[0] += 1;
                    (OTHER.to_string(), OTHER.to_string())
                };
                self.routing_points
                    .entry(key)
                    .or_insert_with(|| RoutingPoint::new(bounds.len()))
            }
        };
        let o = r.outcome.index();
        rp.interactions[o] += 1;
        if let Some(opt) = &r.option {
            if opt == "PULSE" {
                rp.pulse += 1;
            }
            if bump(&mut rp.options, opt, limits.options_per_routing_point) {
                self.overflow[1] += 1;
            }
        }
        if let Some(t) = r.transfer
            && bump(&mut rp.transfers, t, limits.transfers_per_routing_point)
        {
            self.overflow[2] += 1;
        }
        match r.duration {
            Some(d) => rp.durations[o].observe(bounds, d),
            None => self.invalid_time += 1,
        }
        if r.date.is_none() {
            self.invalid_date += 1;
        }
    }

    /// Sum of interactions over routing points and outcomes (equals `rows`).
    pub fn interactions(&self) -> u64 {
        self.routing_points
            .values()
            .map(|rp| rp.interactions.iter().sum::<u64>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wolkvox::row::{Field, RawRow};

    fn row(rp: &str, opt: &str, dn: &str, result: &str, time: &str, date: &str) -> RawRow<'static> {
        let f = |s: &str| Field(s.to_string().into());
        RawRow {
            rp_id: f(rp),
            rp_name: f("Menú \"A\"\n"),
            cod_opc_menu: f(opt),
            dn_transfer: f(dn),
            date: f(date),
            result: f(result),
            time: f(time),
            ..Default::default()
        }
    }

    #[test]
    fn apply_counts_every_field() {
        let limits = Limits::default();
        let b = [5.0, 10.0];
        let mut t = Totals::default();
        for r in [
            row("1", "PULSE", "", "ok", "3", "2026-11-27 10:00:00"),
            row("1", "pulse", "3001", "hung up", "7", "2026-11-27 10:00:01"),
            row("1", "2", "3001", "?", "x", "bad"),
            row("", "", "", "ok", "11", "2026-11-27 10:00:02"),
        ] {
            t.apply(&r.read(), &limits, &b);
        }
        assert_eq!((t.rows, t.invalid_time, t.invalid_date), (4, 1, 1));
        let rp = &t.routing_points[&("1".to_string(), "Menú \"A\"".to_string())];
        assert_eq!(rp.interactions, [1, 1, 1]);
        assert_eq!(rp.pulse, 2);
        assert_eq!(rp.options["PULSE"], 2);
        assert_eq!(rp.options["2"], 1);
        assert_eq!(rp.transfers["3001"], 2);
        assert_eq!(rp.durations[0].buckets, vec![1, 0]);
        assert_eq!(rp.durations[1].buckets, vec![0, 1]);
        assert_eq!(rp.durations[2].count, 0);
        let unknown = &t.routing_points[&("unknown".to_string(), "Menú \"A\"".to_string())];
        assert_eq!(unknown.durations[0].count, 1);
        assert_eq!(unknown.durations[0].buckets, vec![0, 0]);
        assert_eq!(t.interactions(), 4);
    }

    #[test]
    fn limits_fold_new_values_into_other() {
        let limits = Limits {
            routing_points: 2,
            options_per_routing_point: 1,
            transfers_per_routing_point: 1,
        };
        let mut t = Totals::default();
        for (rp, opt, dn) in [
            ("1", "a", "x"),
            ("2", "a", "x"),
            ("3", "a", "x"),
            ("1", "b", "y"),
            ("1", "a", "x"),
            ("4", "c", "z"),
        ] {
            t.apply(&row(rp, opt, dn, "ok", "1", "").read(), &limits, &[1.0]);
        }
        assert_eq!(t.routing_points.len(), 3);
        let other = &t.routing_points[&(OTHER.to_string(), OTHER.to_string())];
        assert_eq!(other.interactions[0], 2);
        // `_other` routing point: its first option takes its one slot, the next folds.
        assert_eq!(other.options.get("a"), Some(&1));
        assert_eq!(other.options.get(OTHER), Some(&1));
        assert_eq!(t.overflow, [2, 2, 2]);
    }
}
