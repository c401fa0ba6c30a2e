//! Applying an answer's rows by label set: an answer has a few dozen to a few thousand
//! distinct label sets and up to 60,000 rows, so each set's routing point, option and
//! transfer are looked up once, not once per row (three hash lookups a row were a tenth
//! of a catch-up's CPU). Exactly what [`Totals::apply`] of each row in turn gives.

use super::{LabelMap, OTHER, RoutingPoint, Totals};
use crate::config::Limits;
use crate::wolkvox::row::Outcome;

/// One distinct set of a row's label values, as [`crate::wolkvox::row::Reading`] has them.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSet {
    pub rp_id: String,
    pub rp_name: String,
    pub option: Option<String>,
    pub transfer: Option<String>,
}

/// A new row whose label values are `sets[set]`.
#[derive(Debug, Clone, Copy)]
pub struct SetRow {
    pub set: u32,
    pub outcome: Outcome,
    pub duration: Option<f64>,
    pub dated: bool,
}

/// Where a label set's rows go, found at its first row.
#[derive(Clone, Copy)]
struct Slot<'s> {
    /// Index into the routing points held out of the map.
    rp: usize,
    /// The routing point was folded into `_other`: each row counts an overflow.
    rp_folded: bool,
    /// The option's key (its own value or `_other`) and whether it was folded.
    option: Option<(&'s str, bool)>,
    transfer: Option<(&'s str, bool)>,
    pulse: bool,
    /// Rows of the set so far: added to its option and transfer at the end.
    rows: u64,
}

impl Totals {
    /// Adds new rows in order, as [`Totals::apply`] of each would. A row whose `set` is
    /// not in `sets` is skipped. Per row only its routing point's counts and histogram
    /// change (in row order, so sums round as they always did); each set's option and
    /// transfer counts are added at the end. Keys enter the maps in the order of each
    /// set's first row, which is the order `apply` would add them in, so the
    /// cardinality limits fold the same values.
    pub fn apply_sets(
        &mut self,
        sets: &[LabelSet],
        rows: impl IntoIterator<Item = SetRow>,
        limits: &Limits,
        bounds: &[f64],
    ) {
        // The routing points these rows reach, out of the map while they are applied,
        // so that a row reaches its own by index.
        let mut held: Vec<((String, String), RoutingPoint)> = Vec::new();
        let mut held_at: LabelMap<(&str, &str), usize> = LabelMap::default();
        let mut slots: Vec<Option<Slot<'_>>> = vec![None; sets.len()];
        for row in rows {
            let (Some(set), Some(slot)) =
                (sets.get(row.set as usize), slots.get_mut(row.set as usize))
            else {
                continue;
            };
            let slot = match slot {
                Some(s) => s,
                None => slot.insert(self.resolve(set, &mut held, &mut held_at, limits, bounds)),
            };
            self.rows += 1;
            slot.rows += 1;
            if slot.rp_folded {
                self.overflow[0] += 1;
            }
            let Some((_, rp)) = held.get_mut(slot.rp) else {
                continue; // every slot points into `held`: cannot happen
            };
            let o = row.outcome.index();
            rp.interactions[o] += 1;
            if slot.pulse {
                rp.pulse += 1;
            }
            match row.duration {
                Some(d) => rp.durations[o].observe(bounds, d),
                None => self.invalid_time += 1,
            }
            if !row.dated {
                self.invalid_date += 1;
            }
        }
        for slot in slots.into_iter().flatten() {
            let Some((_, rp)) = held.get_mut(slot.rp) else {
                continue;
            };
            for ((key, folded), map, overflow) in [
                (slot.option, &mut rp.options, 1),
                (slot.transfer, &mut rp.transfers, 2),
            ]
            .into_iter()
            .filter_map(|(k, m, o)| Some((k?, m, o)))
            {
                *map.entry(key.to_string()).or_insert(0) += slot.rows;
                if folded {
                    self.overflow[overflow] += slot.rows;
                }
            }
        }
        self.routing_points.extend(held);
    }

    /// A set's slot, at its first row: its routing point held (taken out of the map,
    /// or created, or `_other` past the limit), and its option and transfer keys
    /// entered with no count yet, so that later sets see the maps' sizes `apply` would
    /// leave.
    fn resolve<'s>(
        &mut self,
        set: &'s LabelSet,
        held: &mut Vec<((String, String), RoutingPoint)>,
        held_at: &mut LabelMap<(&'s str, &'s str), usize>,
        limits: &Limits,
        bounds: &[f64],
    ) -> Slot<'s> {
        let own = (set.rp_id.as_str(), set.rp_name.as_str());
        let (rp, rp_folded) = match hold(own, &mut self.routing_points, held, held_at) {
            Some(i) => (i, false),
            None => {
                // Held ones are out of the map but count towards the limit.
                let room = self.routing_points.len() + held.len() < limits.routing_points;
                let key = if room { own } else { (OTHER, OTHER) };
                let i = match hold(key, &mut self.routing_points, held, held_at) {
                    Some(i) => i,
                    None => {
                        held.push((
                            (key.0.to_string(), key.1.to_string()),
                            RoutingPoint::new(bounds.len()),
                        ));
                        held_at.insert(key, held.len() - 1);
                        held.len() - 1
                    }
                };
                (i, !room)
            }
        };
        let (option, transfer) = match held.get_mut(rp) {
            Some((_, r)) => (
                set.option
                    .as_deref()
                    .map(|v| enter(&mut r.options, v, limits.options_per_routing_point)),
                set.transfer
                    .as_deref()
                    .map(|v| enter(&mut r.transfers, v, limits.transfers_per_routing_point)),
            ),
            None => (None, None),
        };
        Slot {
            rp,
            rp_folded,
            option,
            transfer,
            pulse: set.option.as_deref() == Some("PULSE"),
            rows: 0,
        }
    }
}

/// The index in `held` of the routing point `key`, when it is held already or is in
/// `rps` (then moved out of it).
fn hold<'s>(
    key: (&'s str, &'s str),
    rps: &mut LabelMap<(String, String), RoutingPoint>,
    held: &mut Vec<((String, String), RoutingPoint)>,
    held_at: &mut LabelMap<(&'s str, &'s str), usize>,
) -> Option<usize> {
    if let Some(&i) = held_at.get(&key) {
        return Some(i);
    }
    let probe: &dyn super::KeyPair = &key;
    let entry = rps.remove_entry(probe)?;
    held.push(entry);
    held_at.insert(key, held.len() - 1);
    Some(held.len() - 1)
}

/// The key a value counts under in a capped map, as `bump` would choose it, entered
/// with no count; and whether it was folded into `_other`.
fn enter<'s>(map: &mut LabelMap<String, u64>, value: &'s str, limit: usize) -> (&'s str, bool) {
    if map.contains_key(value) {
        return (value, false);
    }
    let folded = map.len() >= limit && value != OTHER;
    let key = if folded { OTHER } else { value };
    map.entry(key.to_string()).or_insert(0);
    (key, folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wolkvox::row::Reading;
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn reading<'a>(set: &'a LabelSet, row: &SetRow) -> Reading<'a> {
        Reading {
            rp_id: &set.rp_id,
            rp_name: &set.rp_name,
            outcome: row.outcome,
            option: set.option.as_deref().map(Cow::Borrowed),
            transfer: set.transfer.as_deref(),
            duration: row.duration,
            date: row
                .dated
                .then(|| jiff::civil::date(2026, 12, 2).at(10, 0, 0, 0)),
        }
    }

    /// `apply` of each row in turn: what `apply_sets` must give.
    fn one_by_one(t: &mut Totals, sets: &[LabelSet], rows: &[SetRow], limits: &Limits, b: &[f64]) {
        for row in rows {
            if let Some(set) = sets.get(row.set as usize) {
                t.apply(&reading(set, row), limits, b);
            }
        }
    }

    fn set(rp: &str, opt: Option<&str>, dn: Option<&str>) -> LabelSet {
        LabelSet {
            rp_id: rp.to_string(),
            rp_name: format!("name {rp}"),
            option: opt.map(str::to_string),
            transfer: dn.map(str::to_string),
        }
    }

    fn row(set: u32, outcome: Outcome, duration: Option<f64>) -> SetRow {
        SetRow {
            set,
            outcome,
            duration,
            dated: true,
        }
    }

    #[test]
    fn limits_fold_the_values_apply_folds() {
        let limits = Limits {
            routing_points: 2,
            options_per_routing_point: 1,
            transfers_per_routing_point: 1,
        };
        let sets = [
            set("1", Some("a"), Some("x")),
            set("2", Some("a"), Some("x")),
            set("3", Some("a"), Some("x")),
            set("1", Some("b"), Some("y")),
            set("4", Some("PULSE"), None),
        ];
        let rows: Vec<SetRow> = [0, 1, 2, 3, 0, 4, 2, 9]
            .into_iter()
            .map(|s| row(s, Outcome::Ok, Some(1.5)))
            .collect();
        let mut by_sets = Totals::default();
        by_sets.apply_sets(&sets, rows.iter().copied(), &limits, &[1.0, 2.0]);
        let mut each = Totals::default();
        one_by_one(&mut each, &sets, &rows, &limits, &[1.0, 2.0]);
        assert_eq!(by_sets, each);
        // Set 9 does not exist: skipped. The three rows of "3" and "4" go to `_other`;
        // "1" has room for one option and one transfer, so "b" and "y" fold; so does
        // `PULSE` in `_other`, whose one option is "a".
        assert_eq!(by_sets.rows, 7);
        assert_eq!(by_sets.overflow, [3, 2, 1]);
        let other = &by_sets.routing_points[&(OTHER.to_string(), OTHER.to_string())];
        assert_eq!((other.interactions[0], other.pulse), (3, 1));
        assert_eq!(other.options.get("a"), Some(&2));
        assert_eq!(other.options.get(OTHER), Some(&1));
    }

    fn label() -> impl Strategy<Value = Option<&'static str>> {
        prop::sample::select(vec![
            None,
            Some("a"),
            Some("b"),
            Some("c"),
            Some("PULSE"),
            Some(OTHER),
        ])
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop::sample::select(Outcome::ALL.to_vec())
    }

    proptest! {
        /// Any sets, rows and limits, on top of totals that already hold some: the
        /// same totals as `apply` row by row, to the last bit of every sum.
        #[test]
        fn apply_sets_is_apply_row_by_row(
            sets in prop::collection::vec(
                (prop::sample::select(vec!["1", "2", "3", "4", OTHER]), label(), label()),
                1..12,
            ),
            earlier in prop::collection::vec((0u32..14, outcome(), prop::option::of(0.0f64..100.0), any::<bool>()), 0..20),
            rows in prop::collection::vec((0u32..14, outcome(), prop::option::of(0.0f64..100.0), any::<bool>()), 0..80),
            limits in (1usize..5, 1usize..4, 1usize..4),
        ) {
            let sets: Vec<LabelSet> = sets.into_iter().map(|(rp, o, t)| set(rp, o, t)).collect();
            let to_rows = |v: &[(u32, Outcome, Option<f64>, bool)]| -> Vec<SetRow> {
                v.iter().map(|&(set, outcome, duration, dated)| SetRow { set, outcome, duration, dated }).collect()
            };
            let (earlier, rows) = (to_rows(&earlier), to_rows(&rows));
            let limits = Limits {
                routing_points: limits.0,
                options_per_routing_point: limits.1,
                transfers_per_routing_point: limits.2,
            };
            let b = [1.0, 10.0, 50.0];
            let mut start = Totals::default();
            one_by_one(&mut start, &sets, &earlier, &limits, &b);
            let mut each = start.clone();
            one_by_one(&mut each, &sets, &rows, &limits, &b);
            let mut by_sets = start;
            by_sets.apply_sets(&sets, rows.iter().copied(), &limits, &b);
            prop_assert_eq!(by_sets, each);
        }
    }
}
