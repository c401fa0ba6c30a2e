//! Ground truth of calls: the simulator's rows grouped by `conn_id` by the contract's
//! rules ("Calls"), written independently of the exporter's own code so that tests can
//! compare the exporter's call series with it.
//!
//! Rules, as the contract fixes them: rows with the same trimmed, non-empty `conn_id`
//! are one call; its entry routing point is that of its earliest row by date (ties: the
//! row served first); its outcome comes from its latest row (ties: the row served
//! last): `ok` -> agent; `hung up` -> self-service when any of its rows has an option
//! in `options` or a transfer in `transfers` (trimmed, compared exactly), else
//! abandoned; anything else -> other. Its steps are its rows (true duplicates
//! included), its duration the sum of its rows' readable `time` values.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::{SimRow, Simulator};

/// What the caller got, by the contract's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOutcome {
    Agent,
    SelfService,
    Abandoned,
    Other,
}

impl CallOutcome {
    /// The value of the `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Agent => "agent",
            CallOutcome::SelfService => "self_service",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Other => "other",
        }
    }
}

/// `calls.self_service`: the options and transfers that mean the IVR served the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelfService {
    pub options: Vec<String>,
    pub transfers: Vec<String>,
}

impl SelfService {
    /// The demo's: `SALDO` and `HORARIOS` ([`super::SELF_SERVICE_OPTIONS`]), no transfers.
    pub fn demo() -> SelfService {
        SelfService {
            options: super::SELF_SERVICE_OPTIONS
                .iter()
                .map(|o| o.to_string())
                .collect(),
            transfers: Vec::new(),
        }
    }

    fn serves(&self, row: &SimRow) -> bool {
        let option = row.cod_opc_menu.trim();
        let transfer = row.dn_transfer.trim();
        (!option.is_empty() && self.options.iter().any(|o| o == option))
            || (!transfer.is_empty() && self.transfers.iter().any(|t| t == transfer))
    }
}

/// One call as the exporter must count it.
#[derive(Clone, Debug, PartialEq)]
pub struct CallTruth {
    /// The trimmed `conn_id` (caller data: for tests only, never a label).
    pub conn_id: String,
    /// The entry routing point as labelled: trimmed, `unknown` when empty.
    pub entry_rp_id: String,
    /// The entry routing point's name, trimmed.
    pub entry_rp_name: String,
    pub outcome: CallOutcome,
    /// Rows of the call.
    pub steps: usize,
    /// Sum of its rows' readable `time` values, seconds.
    pub duration_secs: f64,
    /// Dates of its earliest and latest rows.
    pub first: Timestamp,
    pub last: Timestamp,
}

/// Every call of a set of rows, and the rows that belong to none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallsTruth {
    /// In order of their first row, then of `conn_id`.
    pub calls: Vec<CallTruth>,
    /// Rows with an empty (or blank) `conn_id`.
    pub rows_without_call: usize,
}

impl CallsTruth {
    /// Groups `rows` (each with its instant, in the order they are served) into calls.
    pub fn of(rows: &[(Timestamp, SimRow)], rule: &SelfService) -> CallsTruth {
        let mut rows_without_call = 0;
        let mut groups: HashMap<&str, Vec<(Timestamp, &SimRow)>> = HashMap::new();
        for (at, row) in rows {
            let conn = row.conn_id.trim();
            if conn.is_empty() {
                rows_without_call += 1;
            } else {
                groups.entry(conn).or_default().push((*at, row));
            }
        }
        let mut calls: Vec<CallTruth> = groups
            .into_iter()
            .map(|(conn, rows)| call(conn, &rows, rule))
            .collect();
        calls.sort_by(|a, b| (a.first, &a.conn_id).cmp(&(b.first, &b.conn_id)));
        CallsTruth {
            calls,
            rows_without_call,
        }
    }

    /// Calls by (entry `rp_id`, `outcome` label), as `wolkvox_ivr_calls_total` counts
    /// them, over the calls `keep` accepts (e.g. the closed ones).
    pub fn by_entry_and_outcome(
        &self,
        keep: impl Fn(&CallTruth) -> bool,
    ) -> BTreeMap<(String, &'static str), u64> {
        let mut counts = BTreeMap::new();
        for c in self.calls.iter().filter(|c| keep(c)) {
            *counts
                .entry((c.entry_rp_id.clone(), c.outcome.label()))
                .or_insert(0) += 1;
        }
        counts
    }
}

/// One call from its rows, in the order served.
fn call(conn: &str, rows: &[(Timestamp, &SimRow)], rule: &SelfService) -> CallTruth {
    // `rows` is never empty: a group exists because a row was put in it.
    let mut entry = rows[0];
    let mut latest = rows[0];
    for &(at, row) in rows {
        if at < entry.0 {
            entry = (at, row);
        }
        if at >= latest.0 {
            latest = (at, row);
        }
    }
    let outcome = match result_of(&latest.1.result) {
        Result3::Ok => CallOutcome::Agent,
        Result3::HungUp if rows.iter().any(|(_, r)| rule.serves(r)) => CallOutcome::SelfService,
        Result3::HungUp => CallOutcome::Abandoned,
        Result3::Other => CallOutcome::Other,
    };
    let rp_id = entry.1.rp_id.trim();
    CallTruth {
        conn_id: conn.to_string(),
        entry_rp_id: if rp_id.is_empty() { "unknown" } else { rp_id }.to_string(),
        entry_rp_name: entry.1.rp_name.trim().to_string(),
        outcome,
        steps: rows.len(),
        duration_secs: rows.iter().filter_map(|(_, r)| seconds(&r.time)).sum(),
        first: entry.0,
        last: latest.0,
    }
}

pub(crate) enum Result3 {
    Ok,
    HungUp,
    Other,
}

/// `result`: trimmed, lower-cased, `_` read as a space.
pub(crate) fn result_of(text: &str) -> Result3 {
    let norm = text.trim().to_lowercase().replace('_', " ");
    let words: Vec<&str> = norm.split_whitespace().collect();
    match words.as_slice() {
        ["ok"] => Result3::Ok,
        ["hung", "up"] | ["hungup"] => Result3::HungUp,
        _ => Result3::Other,
    }
}

/// `time`: integer or decimal seconds, `HH:MM:SS`, `H:MM:SS` or `MM:SS`; `None` when
/// unreadable or negative.
fn seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    let digits = |p: &str| -> Option<u64> {
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [secs] => {
            let ok = !secs.is_empty()
                && secs.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && secs.bytes().filter(|&b| b == b'.').count() <= 1
                && secs.bytes().any(|b| b.is_ascii_digit());
            if ok { secs.parse().ok() } else { None }
        }
        [m, s] if s.len() == 2 => {
            let (m, s) = (digits(m)?, digits(s)?);
            (s < 60).then_some((m * 60 + s) as f64)
        }
        [h, m, s] if m.len() == 2 && s.len() == 2 => {
            let (h, m, s) = (digits(h)?, digits(m)?, digits(s)?);
            (m < 60 && s < 60).then_some((h * 3600 + m * 60 + s) as f64)
        }
        _ => None,
    }
}

impl Simulator {
    /// Ground truth of calls: every row whose instant falls in `[from, to)` (as
    /// [`Simulator::rows_between`]: scripted and generated, visible yet or not) grouped
    /// into calls by the contract's rules, with `rule` deciding self-service. A call
    /// with rows on both sides of `from` or `to` is the part inside, as an exporter
    /// whose first range starts at `from` sees it.
    pub fn calls_between(
        &self,
        token: &str,
        from: Timestamp,
        to: Timestamp,
        rule: &SelfService,
    ) -> CallsTruth {
        let rows = self.rows_with_instants(token, from, to);
        CallsTruth::of(&rows, rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;

    fn row(at: &str, conn: &str, rp: &str, option: &str, result: &str, time: &str) -> SimRow {
        let at: DateTime = at.parse().unwrap();
        SimRow::new(at, rp, " Menú ", option, "", result, time, conn)
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_764_082_800 + secs).unwrap()
    }

    #[test]
    fn calls_follow_the_contract() {
        let t = "2026-11-25T10:00:00";
        let rows = vec![
            // Entered at 1001, went to 1002, reached an agent: 3 steps, 10 + 65 + 2 s.
            (ts(0), row(t, "a", "1001", "1", "ok", "10")),
            (ts(20), row(t, " a ", "1002", "2", "OK", "01:05")),
            (ts(90), row(t, "a", "1003", "", "ok", "0:00:02")),
            // Heard the balance and hung up: self-service, whatever the case of result.
            (ts(5), row(t, "b", "1004", "SALDO", "Hung_Up", "30")),
            // Asked for the balance, then went on and hung up at a menu: still served.
            (ts(6), row(t, "c", "1004", " SALDO ", "ok", "x")),
            (ts(50), row(t, "c", "1001", "PULSE", "hungup", "-3")),
            // Hung up with no self-service option: abandoned; the entry is the earliest
            // row even though it is served later.
            (ts(40), row(t, "d", "1002", "1", "hung up", "4.5")),
            (ts(30), row(t, "d", "", "PULSE", "ok", "1")),
            // An empty result: other.
            (ts(7), row(t, "e", "1001", "1", "", "3")),
            // Rows without a call.
            (ts(8), row(t, "", "1001", "1", "ok", "3")),
            (ts(9), row(t, "  ", "1001", "1", "ok", "3")),
            // A true duplicate counts as a step; equal dates: the first served enters,
            // the last served decides.
            (ts(60), row(t, "f", "1001", "1", "ok", "1")),
            (ts(60), row(t, "f", "1002", "1", "hung up", "1")),
            (ts(60), row(t, "f", "1002", "1", "hung up", "1")),
        ];
        let truth = CallsTruth::of(&rows, &SelfService::demo());
        assert_eq!(truth.rows_without_call, 2);
        let got: Vec<(&str, &str, &str, usize, f64)> = truth
            .calls
            .iter()
            .map(|c| {
                (
                    c.conn_id.as_str(),
                    c.entry_rp_id.as_str(),
                    c.outcome.label(),
                    c.steps,
                    c.duration_secs,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", "1001", "agent", 3, 77.0),
                ("b", "1004", "self_service", 1, 30.0),
                ("c", "1004", "self_service", 2, 0.0),
                ("e", "1001", "other", 1, 3.0),
                ("d", "unknown", "abandoned", 2, 5.5),
                ("f", "1001", "abandoned", 3, 3.0),
            ]
        );
        assert_eq!(truth.calls[0].entry_rp_name, "Menú");
        assert_eq!((truth.calls[0].first, truth.calls[0].last), (ts(0), ts(90)));
        let counts = truth.by_entry_and_outcome(|c| c.last <= ts(50));
        let want: BTreeMap<(String, &str), u64> = [
            (("1004".to_string(), "self_service"), 2),
            (("1001".to_string(), "other"), 1),
            (("unknown".to_string(), "abandoned"), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts, want);
        // Without self-service options, the balance calls are abandoned.
        let none = CallsTruth::of(&rows, &SelfService::default());
        assert_eq!(none.calls[1].outcome, CallOutcome::Abandoned);
        // A transfer can mean self-service too.
        let by_transfer = SelfService {
            options: vec![],
            transfers: vec!["7001".into()],
        };
        let mut r = row(t, "g", "1003", "BUZON", "hung up", "5");
        r.dn_transfer = " 7001".into();
        let g = CallsTruth::of(&[(ts(0), r)], &by_transfer);
        assert_eq!(g.calls[0].outcome, CallOutcome::SelfService);
    }

    #[test]
    fn durations_read_as_the_contract_says() {
        for (text, want) in [
            ("12", Some(12.0)),
            (" 7.5 ", Some(7.5)),
            ("01:05", Some(65.0)),
            ("75:00", Some(4500.0)),
            ("1:02:03", Some(3723.0)),
            ("01:02:03", Some(3723.0)),
            ("", None),
            ("-3", None),
            ("1e3", None),
            ("inf", None),
            ("1:2", None),
            ("1:60", None),
            ("1:60:00", None),
            ("1:02:03:04", None),
            ("a", None),
            (".", None),
        ] {
            assert_eq!(seconds(text), want, "{text:?}");
        }
    }
}
