//! The call families in `backfill`'s OpenMetrics: cumulative samples at each window
//! end, as [`super::openmetrics::Renderer`] writes the row families. A call counts at
//! the first window end at which it is closed, as the live exporter counts it at the
//! commit that closes it.

use std::collections::HashSet;
use std::io::{self, Write};

use super::openmetrics::F_CALLS;
use crate::calls::{CallOutcome, CallTotals, STEP_BUCKETS};
use crate::metrics::CALL_FAMILIES;
use crate::metrics::text::escaped;
use crate::totals::{Histogram, RpKey};

const CALLS: usize = F_CALLS;
const STEPS: usize = F_CALLS + 1;
const DURATION: usize = F_CALLS + 2;
const LATE: usize = F_CALLS + 3;
const WITHOUT: usize = F_CALLS + 4;

/// One operation's call series.
#[derive(Debug)]
pub(super) struct CallSeries {
    /// `operation="…"`
    op: String,
    step_le: Vec<String>,
    duration_le: Vec<String>,
    /// Entries written so far: a new one gets a 0 at the previous window end.
    entries: HashSet<RpKey>,
}

impl CallSeries {
    pub(super) fn new(operation_label: &str, duration_bounds: &[f64]) -> CallSeries {
        CallSeries {
            op: format!("operation=\"{operation_label}\""),
            step_le: STEP_BUCKETS.iter().map(|b| b.to_string()).collect(),
            duration_le: duration_bounds.iter().map(|b| b.to_string()).collect(),
            entries: HashSet::new(),
        }
    }

    /// The series known from the start (histograms and per-operation counters), at `ts`.
    pub(super) fn start<W: Write>(&self, out: &mut [W], ts: i64) -> io::Result<()> {
        self.write_operation(out, &CallTotals::default(), ts)
    }

    /// Every call series at `ts`; entries first seen now start at 0 at `prev`.
    pub(super) fn emit<W: Write>(
        &mut self,
        out: &mut [W],
        calls: &CallTotals,
        prev: i64,
        ts: i64,
    ) -> io::Result<()> {
        let name = CALL_FAMILIES[0].0;
        let mut entries: Vec<_> = calls.by_entry.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, counts) in entries {
            let labels = format!(
                "{},rp_id=\"{}\",rp_name=\"{}\"",
                self.op,
                escaped(&key.0),
                escaped(&key.1)
            );
            let new = self.entries.insert(key.clone());
            for o in CallOutcome::ALL {
                let l = o.label();
                if new {
                    writeln!(out[CALLS], "{name}{{{labels},outcome=\"{l}\"}} 0 {prev}")?;
                }
                let v = counts[o.index()];
                writeln!(out[CALLS], "{name}{{{labels},outcome=\"{l}\"}} {v} {ts}")?;
            }
        }
        self.write_operation(out, calls, ts)
    }

    fn write_operation<W: Write>(
        &self,
        out: &mut [W],
        calls: &CallTotals,
        ts: i64,
    ) -> io::Result<()> {
        for o in CallOutcome::ALL {
            let labels = format!("{},outcome=\"{}\"", self.op, o.label());
            let i = o.index();
            let (steps, duration) = (CALL_FAMILIES[1].0, CALL_FAMILIES[2].0);
            write_histogram(
                &mut out[STEPS],
                steps,
                &labels,
                &self.step_le,
                &calls.steps[i],
                ts,
            )?;
            write_histogram(
                &mut out[DURATION],
                duration,
                &labels,
                &self.duration_le,
                &calls.durations[i],
                ts,
            )?;
        }
        let op = &self.op;
        let (late, without) = (CALL_FAMILIES[3].0, CALL_FAMILIES[4].0);
        writeln!(out[LATE], "{late}{{{op}}} {} {ts}", calls.late_rows)?;
        writeln!(
            out[WITHOUT],
            "{without}{{{op}}} {} {ts}",
            calls.rows_without_call
        )
    }
}

fn write_histogram<W: Write>(
    w: &mut W,
    name: &str,
    labels: &str,
    le: &[String],
    h: &Histogram,
    ts: i64,
) -> io::Result<()> {
    let mut cumulative = 0;
    for (j, bound) in le.iter().enumerate() {
        cumulative += h.buckets.get(j).copied().unwrap_or(0);
        writeln!(
            w,
            "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative} {ts}"
        )?;
    }
    let count = h.count;
    writeln!(w, "{name}_bucket{{{labels},le=\"+Inf\"}} {count} {ts}")?;
    writeln!(w, "{name}_count{{{labels}}} {count} {ts}")?;
    writeln!(w, "{name}_sum{{{labels}}} {} {ts}", h.sum)
}
