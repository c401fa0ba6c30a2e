use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::civil::{DateTime, date};
use proptest::prelude::*;

use super::*;
use crate::totals::RoutingPoint;

const BOUNDS: [f64; 3] = [10.0, 60.0, 300.0];

fn rules() -> Arc<CallRules> {
    Arc::new(CallRules {
        key: CallKey::from_u128(0x5eed),
        self_service: SelfService {
            options: ["SALDO".to_string(), "HORARIOS".to_string()].into(),
            transfers: ["9999".to_string()].into(),
        },
    })
}

fn at(min: i8, sec: i8) -> DateTime {
    date(2026, 12, 2).at(10, min, sec, 0)
}

/// One row as the tracker sees it.
#[derive(Debug, Clone)]
struct Row {
    conn: &'static str,
    rp: &'static str,
    option: Option<&'static str>,
    transfer: Option<&'static str>,
    result: Outcome,
    time: Option<f64>,
    date: DateTime,
}

fn row(conn: &'static str, rp: &'static str, result: Outcome, date: DateTime) -> Row {
    Row {
        conn,
        rp,
        option: None,
        transfer: None,
        result,
        time: Some(5.0),
        date,
    }
}

fn feed(calls: &mut Calls, t: &mut Totals, rows: &[Row]) -> Vec<Observed> {
    rows.iter()
        .map(|r| {
            let reading = Reading {
                rp_id: r.rp,
                rp_name: r.rp,
                outcome: r.result,
                option: r.option.map(Cow::Borrowed),
                transfer: r.transfer,
                duration: r.time,
                date: Some(r.date),
            };
            // The row totals hold every routing point a call can enter by.
            t.routing_points
                .entry((r.rp.to_string(), r.rp.to_string()))
                .or_insert_with(|| RoutingPoint::new(BOUNDS.len()));
            calls.observe(key::digest(r.conn), &reading, r.date, &mut t.calls)
        })
        .collect()
}

fn counts(t: &Totals) -> BTreeMap<(String, &'static str), u64> {
    let mut m = BTreeMap::new();
    for ((id, _), v) in &t.calls.by_entry {
        for o in CallOutcome::ALL {
            if v[o.index()] > 0 {
                m.insert((id.clone(), o.label()), v[o.index()]);
            }
        }
    }
    m
}

fn far() -> DateTime {
    date(2030, 1, 1).at(0, 0, 0, 0)
}

#[test]
fn entry_is_the_earliest_row_and_outcome_the_latest() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    // Seen out of date order: the entry is still MAIN, the outcome the 10:03 row's.
    let seen = feed(
        &mut calls,
        &mut t,
        &[
            row("c1", "SUB", Outcome::HungUp, at(1, 0)),
            row("c1", "MAIN", Outcome::Other, at(0, 0)),
            row("c1", "QUEUE", Outcome::Ok, at(3, 0)),
            row("c1", "SUB", Outcome::HungUp, at(2, 0)),
        ],
    );
    assert_eq!(
        seen,
        [
            Observed::Opened,
            Observed::Grew,
            Observed::Grew,
            Observed::Grew
        ]
    );
    assert_eq!(calls.close(far(), at(0, 0), &mut t, &BOUNDS), 1);
    assert_eq!(
        counts(&t),
        BTreeMap::from([(("MAIN".to_string(), "agent"), 1)])
    );
    let agent = CallOutcome::Agent.index();
    assert_eq!(t.calls.steps[agent].count, 1);
    assert_eq!(t.calls.steps[agent].sum, 4.0);
    // 4 steps: the bucket `le=4` (index 3).
    assert_eq!(
        t.calls.steps[agent].buckets,
        vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(t.calls.durations[agent].sum, 20.0);
    assert_eq!(t.calls.durations[agent].buckets, vec![0, 1, 0]);
    assert_eq!(calls.open_len(), 0);
}

#[test]
fn ties_take_the_entry_seen_first_and_the_outcome_seen_last() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    feed(
        &mut calls,
        &mut t,
        &[
            row("c1", "A", Outcome::Ok, at(0, 0)),
            row("c1", "B", Outcome::HungUp, at(0, 0)),
        ],
    );
    calls.close(far(), at(0, 0), &mut t, &BOUNDS);
    assert_eq!(
        counts(&t),
        BTreeMap::from([(("A".to_string(), "abandoned"), 1)])
    );
}

#[test]
fn every_outcome() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    let with = |mut r: Row, option: Option<&'static str>, transfer: Option<&'static str>| {
        r.option = option;
        r.transfer = transfer;
        r
    };
    feed(
        &mut calls,
        &mut t,
        &[
            row("agent", "M", Outcome::Ok, at(0, 0)),
            // A self-service option early in the call, then a hang-up elsewhere.
            with(
                row("saldo", "M", Outcome::Other, at(0, 0)),
                Some("SALDO"),
                None,
            ),
            row("saldo", "S", Outcome::HungUp, at(0, 30)),
            with(
                row("transfer", "M", Outcome::HungUp, at(0, 0)),
                None,
                Some("9999"),
            ),
            // An option not in the list, and a transfer not in it: abandoned.
            with(
                row("gave_up", "M", Outcome::HungUp, at(0, 0)),
                Some("1"),
                Some("3001"),
            ),
            // Option names are compared as read: `saldo` is not `SALDO`.
            with(
                row("lower", "M", Outcome::HungUp, at(0, 0)),
                Some("saldo"),
                None,
            ),
            row("other", "M", Outcome::Other, at(0, 0)),
            // Served by the menu, but the last row reached the queue: agent.
            with(
                row("both", "M", Outcome::HungUp, at(0, 0)),
                Some("HORARIOS"),
                None,
            ),
            row("both", "Q", Outcome::Ok, at(0, 5)),
        ],
    );
    assert_eq!(calls.close(far(), at(0, 0), &mut t, &BOUNDS), 7);
    assert_eq!(
        counts(&t),
        BTreeMap::from([
            (("M".to_string(), "agent"), 2),
            (("M".to_string(), "self_service"), 2),
            (("M".to_string(), "abandoned"), 2),
            (("M".to_string(), "other"), 1),
        ])
    );
    assert_eq!(t.calls.calls(), 7);
}

#[test]
fn a_call_closes_only_once_the_watermark_passed_its_latest_row() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    feed(
        &mut calls,
        &mut t,
        &[
            row("c1", "M", Outcome::HungUp, at(0, 0)),
            row("c2", "M", Outcome::HungUp, at(5, 0)),
        ],
    );
    // Strictly before: a row dated exactly at the threshold keeps its call open.
    assert_eq!(calls.close(at(0, 0), at(0, 0), &mut t, &BOUNDS), 0);
    assert_eq!(calls.close(at(0, 1), at(0, 0), &mut t, &BOUNDS), 1);
    assert_eq!((calls.open_len(), calls.closed_len()), (1, 1));
    // c2 grows while open; closing again never counts c1 twice.
    feed(&mut calls, &mut t, &[row("c2", "M", Outcome::Ok, at(6, 0))]);
    assert_eq!(calls.close(at(6, 1), at(0, 0), &mut t, &BOUNDS), 1);
    assert_eq!(
        counts(&t),
        BTreeMap::from([
            (("M".to_string(), "agent"), 1),
            (("M".to_string(), "abandoned"), 1)
        ])
    );
}

#[test]
fn a_row_of_a_closed_call_is_late_until_the_call_is_forgotten() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    feed(
        &mut calls,
        &mut t,
        &[row("c1", "M", Outcome::HungUp, at(0, 0))],
    );
    calls.close(at(1, 0), at(0, 0), &mut t, &BOUNDS);
    let before = t.calls.clone();
    let late = feed(
        &mut calls,
        &mut t,
        &[row("c1", "Q", Outcome::Ok, at(0, 30))],
    );
    assert_eq!(late, [Observed::Late]);
    assert_eq!(t.calls.late_rows, 1);
    assert_eq!(t.calls.by_entry, before.by_entry);
    assert_eq!(t.calls.steps, before.steps);
    // Forgotten once no query can ask for its rows: the same id is a new call.
    calls.close(at(1, 0), at(0, 1), &mut t, &BOUNDS);
    assert_eq!(calls.closed_len(), 0);
    let again = feed(
        &mut calls,
        &mut t,
        &[row("c1", "Q", Outcome::Ok, at(0, 30))],
    );
    assert_eq!(again, [Observed::Opened]);
    // A call closed with its latest row already past the forget line is not kept at all.
    calls.close(at(2, 0), at(1, 0), &mut t, &BOUNDS);
    assert_eq!(calls.closed_len(), 0);
}

#[test]
fn rows_without_conn_id_belong_to_no_call() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    let seen = feed(
        &mut calls,
        &mut t,
        &[
            row("", "M", Outcome::HungUp, at(0, 0)),
            row("   ", "M", Outcome::HungUp, at(0, 0)),
        ],
    );
    assert_eq!(seen, [Observed::NoCall, Observed::NoCall]);
    assert_eq!(t.calls.rows_without_call, 2);
    assert_eq!(calls.open_len(), 0);
}

#[test]
fn an_entry_folded_in_the_row_totals_is_labelled_other() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    feed(
        &mut calls,
        &mut t,
        &[row("c1", "NEW", Outcome::Ok, at(0, 0))],
    );
    // As if the routing-point limit had folded NEW's rows into `_other`.
    t.routing_points.clear();
    calls.close(far(), at(0, 0), &mut t, &BOUNDS);
    assert_eq!(
        counts(&t),
        BTreeMap::from([((OTHER.to_string(), "agent"), 1)])
    );
}

#[test]
fn invalid_durations_add_nothing_and_steps_count_every_row() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    let mut bad = row("c1", "M", Outcome::HungUp, at(0, 1));
    bad.time = None;
    let copy = row("c1", "M", Outcome::HungUp, at(0, 0));
    feed(&mut calls, &mut t, &[copy.clone(), copy, bad]);
    calls.close(far(), at(0, 0), &mut t, &BOUNDS);
    let a = CallOutcome::Abandoned.index();
    assert_eq!(
        (t.calls.steps[a].sum, t.calls.durations[a].sum),
        (3.0, 10.0)
    );
}

#[test]
fn ids_are_keyed_and_restore_gives_the_same_calls() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    feed(
        &mut calls,
        &mut t,
        &[
            row("c1", "M", Outcome::HungUp, at(0, 0)),
            row("c2", "M", Outcome::HungUp, at(9, 0)),
        ],
    );
    calls.close(at(5, 0), at(0, 0), &mut t, &BOUNDS);
    let digest = key::digest("c2").unwrap_or_default();
    let (id, _) = calls.open().next().map(|(i, c)| (*i, c.clone())).unwrap();
    assert_eq!(id, rules().key.id(digest));
    assert_ne!(id, digest);
    let restored = Calls::restore(
        rules(),
        calls.open().map(|(i, c)| (*i, c.clone())),
        calls.closed().map(|(i, d)| (*i, *d)),
    );
    assert_eq!(restored, calls);
    let mut copy = Calls::new(rules());
    copy.clone_from(&calls);
    assert_eq!(copy, calls);
}

/// Ground truth for a set of rows, straight from the contract's words.
fn truth(rows: &[Row]) -> BTreeMap<(String, &'static str), u64> {
    let ss = rules().self_service.clone();
    let mut by_call: BTreeMap<&str, Vec<(usize, &Row)>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        if !r.conn.trim().is_empty() {
            by_call.entry(r.conn).or_default().push((i, r));
        }
    }
    let mut m = BTreeMap::new();
    for rs in by_call.values() {
        let entry = rs
            .iter()
            .min_by_key(|(i, r)| (r.date, *i))
            .map(|(_, r)| r.rp);
        let last = rs.iter().max_by_key(|(i, r)| (r.date, *i)).map(|(_, r)| r);
        let served = rs.iter().any(|(_, r)| {
            r.option.is_some_and(|o| ss.options.contains(o))
                || r.transfer.is_some_and(|d| ss.transfers.contains(d))
        });
        let outcome = match last.map(|r| r.result) {
            Some(Outcome::Ok) => "agent",
            Some(Outcome::HungUp) if served => "self_service",
            Some(Outcome::HungUp) => "abandoned",
            _ => "other",
        };
        *m.entry((entry.unwrap_or_default().to_string(), outcome))
            .or_insert(0) += 1;
    }
    m
}

fn arb_row() -> impl Strategy<Value = Row> {
    let conns = prop::sample::select(vec!["", "a", "b", "c", "d", "e"]);
    let rps = prop::sample::select(vec!["M", "S", "Q"]);
    let options = prop::option::of(prop::sample::select(vec!["SALDO", "1", "PULSE"]));
    let transfers = prop::option::of(prop::sample::select(vec!["9999", "3001"]));
    let results = prop::sample::select(vec![Outcome::Ok, Outcome::HungUp, Outcome::Other]);
    (conns, rps, options, transfers, results, 0i8..5, 0i8..3).prop_map(
        |(conn, rp, option, transfer, result, min, sec)| Row {
            conn,
            rp,
            option,
            transfer,
            result,
            time: Some(1.0),
            date: at(min, sec),
        },
    )
}

proptest! {
    /// However the rows are cut into parts, with closes in between that cannot yet close
    /// any call, the closed calls at the end are the ground truth.
    #[test]
    fn parts_and_closes_do_not_change_the_calls(rows in prop::collection::vec(arb_row(), 0..40), cuts in prop::collection::vec(0usize..40, 0..5)) {
        let mut calls = Calls::new(rules());
        let mut t = Totals::default();
        let mut cuts = cuts;
        cuts.push(rows.len());
        cuts.sort_unstable();
        let mut from = 0;
        for c in cuts {
            let c = c.min(rows.len());
            feed(&mut calls, &mut t, &rows[from..c.max(from)]);
            from = from.max(c);
            // Every row is dated at or after 10:00: nothing closes before it.
            calls.close(at(0, 0), at(0, 0), &mut t, &BOUNDS);
        }
        calls.close(far(), at(0, 0), &mut t, &BOUNDS);
        prop_assert_eq!(counts(&t), truth(&rows));
        let with_call = rows.iter().filter(|r| !r.conn.is_empty()).count() as f64;
        let steps: f64 = t.calls.steps.iter().map(|h| h.sum).sum();
        prop_assert_eq!(steps, with_call);
        prop_assert_eq!(t.calls.rows_without_call as usize, rows.len() - with_call as usize);
        prop_assert_eq!(t.calls.late_rows, 0);
    }
}

proptest! {
    /// A part rolled back leaves exactly the calls of the last commit, and the next
    /// commit counts as if the part had never come: against a copy taken at each
    /// commit, with closes that do close calls in between.
    #[test]
    fn a_roll_back_returns_to_the_last_commit(
        parts in prop::collection::vec((prop::collection::vec(arb_row(), 0..10), 0u8..3, 0i8..6), 1..10),
    ) {
        let mut calls = Calls::new(rules());
        // The totals a cycle works on, and the last committed calls and totals.
        let mut work = Totals::default();
        let mut committed = (calls.clone(), work.clone());
        for (rows, what, min) in parts {
            feed(&mut calls, &mut work, &rows);
            match what {
                0 => {
                    calls.roll_back();
                    work = committed.1.clone();
                    prop_assert!(!calls.pending());
                    prop_assert_eq!(&calls, &committed.0);
                }
                1 => {
                    let closing = calls.count_closing(at(min, 0), &mut work, &BOUNDS);
                    let open = calls.open_len();
                    calls.commit(at(min, 0), at(0, 0));
                    prop_assert!(!calls.pending());
                    prop_assert_eq!(calls.open_len(), open - closing);
                    committed = (calls.clone(), work.clone());
                }
                _ => {} // pending: the next part's rows go on top
            }
        }
        calls.roll_back();
        prop_assert_eq!(&calls, &committed.0);
        // What was committed is what the ground truth says of the committed rows.
        calls.close(far(), at(0, 0), &mut committed.1, &BOUNDS);
        prop_assert_eq!(calls.open_len(), 0);
    }
}

/// What a part observed and a commit closed is undone by a roll back before the
/// commit, including calls that grew, and a late row of a closed call stays late.
#[test]
fn a_roll_back_undoes_opened_and_grown_calls() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    feed(
        &mut calls,
        &mut t,
        &[
            row("a", "M", Outcome::HungUp, at(0, 0)),
            row("b", "M", Outcome::Ok, at(0, 1)),
        ],
    );
    calls.close(at(0, 1), at(0, 0), &mut t, &BOUNDS);
    let before = calls.clone();
    assert_eq!((before.open_len(), before.closed_len()), (1, 1));
    let seen = feed(
        &mut calls,
        &mut t,
        &[
            row("b", "S", Outcome::HungUp, at(0, 0)),
            row("c", "Q", Outcome::Ok, at(0, 2)),
            row("a", "Q", Outcome::Ok, at(0, 3)),
        ],
    );
    assert_eq!(seen, vec![Observed::Grew, Observed::Opened, Observed::Late]);
    assert!(calls.pending());
    calls.roll_back();
    assert_eq!(calls, before);
    let b = calls.open().map(|(_, c)| c.clone()).next();
    assert_eq!(
        b.map(|c| (c.entry.0.clone(), c.first, c.steps, c.last_result)),
        Some(("M".to_string(), at(0, 1), 1, Outcome::Ok))
    );
}

/// [`Calls::count_closing`] as it was first written, call by call: the reference the
/// count by entry must agree with.
fn count_call_by_call(calls: &Calls, close_before: DateTime, t: &mut Totals) -> usize {
    let mut closing = 0;
    let other: RpKey = (OTHER.to_string(), OTHER.to_string());
    for c in calls.open.values().filter(|c| c.last < close_before) {
        let o = c.outcome().index();
        let known =
            t.calls.by_entry.contains_key(&*c.entry) || t.routing_points.contains_key(&*c.entry);
        let label = if known {
            (*c.entry).clone()
        } else {
            other.clone()
        };
        t.calls.by_entry.entry(label).or_insert([0; 4])[o] += 1;
        observe(&mut t.calls.steps[o], &STEP_BUCKETS, f64::from(c.steps));
        observe(&mut t.calls.durations[o], &BOUNDS, c.duration);
        closing += 1;
    }
    closing
}

proptest! {
    /// Counted by entry or call by call, the closing calls add the same: with entries
    /// folded in the row totals, some counted before, and `_other` a routing point too.
    #[test]
    fn closing_by_entry_is_closing_call_by_call(
        rows in prop::collection::vec(arb_row(), 0..60),
        folded in prop::collection::vec(prop::sample::select(vec!["M", "S", "Q", OTHER]), 0..3),
        counted in prop::collection::vec(prop::sample::select(vec!["M", "S", "Q", OTHER]), 0..3),
        min in 0i8..6,
    ) {
        let mut calls = Calls::new(rules());
        let mut t = Totals::default();
        feed(&mut calls, &mut t, &rows);
        for rp in folded {
            t.routing_points.remove(&(rp.to_string(), rp.to_string()));
        }
        for rp in counted {
            t.calls.by_entry.insert((rp.to_string(), rp.to_string()), [1, 0, 2, 0]);
        }
        let mut reference = t.clone();
        let expected = count_call_by_call(&calls, at(min, 0), &mut reference);
        prop_assert_eq!(calls.count_closing(at(min, 0), &mut t, &BOUNDS), expected);
        prop_assert_eq!(t, reference);
    }
}

#[test]
fn closing_counts_each_entry_once_with_every_call_of_it() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    let rows: Vec<Row> = ["c1", "c2", "c3", "c4", "c5"]
        .iter()
        .zip(["M", "S", "M", "Q", "M"])
        .enumerate()
        .map(|(i, (c, rp))| {
            let result = if i % 2 == 0 {
                Outcome::Ok
            } else {
                Outcome::HungUp
            };
            row(c, rp, result, at(0, i as i8))
        })
        .collect();
    feed(&mut calls, &mut t, &rows);
    // Q's rows were folded into `_other`.
    t.routing_points.remove(&("Q".to_string(), "Q".to_string()));
    assert_eq!(calls.count_closing(far(), &mut t, &BOUNDS), 5);
    assert_eq!(
        counts(&t),
        BTreeMap::from([
            (("M".to_string(), "agent"), 3),
            ((OTHER.to_string(), "abandoned"), 1),
            (("S".to_string(), "abandoned"), 1),
        ])
    );
    assert_eq!(t.calls.steps.iter().map(|h| h.count).sum::<u64>(), 5);
}

#[test]
fn a_call_saved_both_open_and_closed_stays_open() {
    let mut calls = Calls::new(rules());
    let mut t = Totals::default();
    feed(&mut calls, &mut t, &[row("c1", "M", Outcome::Ok, at(0, 0))]);
    let open: Vec<_> = calls.open().map(|(i, c)| (*i, c.clone())).collect();
    let closed = open.iter().map(|(i, c)| (*i, c.last));
    let mut restored = Calls::restore(rules(), open.clone(), closed);
    assert_eq!((restored.open_len(), restored.closed_len()), (1, 0));
    let seen = feed(
        &mut restored,
        &mut t,
        &[row("c1", "M", Outcome::HungUp, at(0, 1))],
    );
    assert_eq!((seen, t.calls.late_rows), (vec![Observed::Grew], 0));
}
