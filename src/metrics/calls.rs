//! The call families on `/metrics` (the contract's "Calls"), written from each
//! operation's [`CallTotals`] as text format 0.0.4, byte for byte as the `prometheus`
//! encoder would (held to that in `tests.rs`, as the row families are).

use std::sync::Arc;

use super::text::{escape_label, header, push_count, push_f64, sample};
use crate::calls::{CallOutcome, CallTotals, STEP_BUCKETS};
use crate::totals::{Histogram, Totals};

/// The call families: name, help, `# TYPE` word, labels.
pub const CALL_FAMILIES: [(&str, &str, &str, &[&str]); 5] = [
    (
        "wolkvox_ivr_calls_total",
        "IVR calls, counted once closed, by entry routing point and outcome.",
        "counter",
        &["operation", "rp_id", "rp_name", "outcome"],
    ),
    (
        "wolkvox_ivr_call_steps",
        "Rows (routing points and menus passed) per closed call.",
        "histogram",
        &["operation", "outcome"],
    ),
    (
        "wolkvox_ivr_call_duration_seconds",
        "Duration of closed calls: the sum of their rows' durations.",
        "histogram",
        &["operation", "outcome"],
    ),
    (
        "wolkvox_ivr_call_rows_late_total",
        "Rows of calls already closed: counted as rows, in no call.",
        "counter",
        &["operation"],
    ),
    (
        "wolkvox_ivr_rows_without_call_total",
        "Rows with an empty conn_id: counted as rows, in no call.",
        "counter",
        &["operation"],
    ),
];

/// Outcomes in the order of their label values, as the registry sorts them.
pub(super) const OUTCOMES_BY_LABEL: [CallOutcome; 4] = [
    CallOutcome::Abandoned,
    CallOutcome::Agent,
    CallOutcome::Other,
    CallOutcome::SelfService,
];

/// Appends the call family `name` (nothing when it has no series); `ops` in name
/// order with their `operation="…"` labels.
pub(super) fn write_family(
    ops: &[(&str, Arc<Totals>)],
    op_labels: &[String],
    duration_bounds: &[f64],
    name: &str,
    out: &mut String,
) {
    let Some(&(_, help, kind, _)) = CALL_FAMILIES.iter().find(|f| f.0 == name) else {
        return;
    };
    if ops.is_empty() {
        return;
    }
    let per_op = ops.iter().map(|(_, t)| &t.calls).zip(op_labels);
    match name {
        "wolkvox_ivr_calls_total" => {
            let mut lines = Vec::new();
            for (c, op) in per_op {
                let mut entries: Vec<_> = c.by_entry.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for ((rp_id, rp_name), counts) in entries {
                    let mut labels = op.clone();
                    labels.push_str(",rp_id=\"");
                    escape_label(&mut labels, rp_id);
                    labels.push_str("\",rp_name=\"");
                    escape_label(&mut labels, rp_name);
                    labels.push('"');
                    lines.push((labels, *counts));
                }
            }
            if lines.is_empty() {
                return;
            }
            header(out, name, help, kind);
            for (labels, counts) in lines {
                for o in OUTCOMES_BY_LABEL {
                    sample(out, name, &labels, Some(("outcome", o.label())), |w| {
                        push_count(w, counts[o.index()])
                    });
                }
            }
        }
        "wolkvox_ivr_call_steps" | "wolkvox_ivr_call_duration_seconds" => {
            header(out, name, help, kind);
            let steps = name == "wolkvox_ivr_call_steps";
            let bounds: &[f64] = if steps {
                &STEP_BUCKETS
            } else {
                duration_bounds
            };
            for (c, op) in per_op {
                let hists = if steps { &c.steps } else { &c.durations };
                for o in OUTCOMES_BY_LABEL {
                    let mut labels = op.clone();
                    labels.push_str(",outcome=\"");
                    labels.push_str(o.label());
                    labels.push('"');
                    write_histogram(out, name, &labels, bounds, &hists[o.index()]);
                }
            }
        }
        _ => {
            header(out, name, help, kind);
            let value = |c: &CallTotals| {
                if name == "wolkvox_ivr_call_rows_late_total" {
                    c.late_rows
                } else {
                    c.rows_without_call
                }
            };
            for (c, op) in per_op {
                sample(out, name, op, None, |w| push_count(w, value(c)));
            }
        }
    }
}

/// One histogram's `_bucket`, `_sum` and `_count` lines.
fn write_histogram(out: &mut String, name: &str, labels: &str, bounds: &[f64], h: &Histogram) {
    let bucket = format!("{name}_bucket");
    let mut cumulative: u64 = 0;
    for (b, n) in bounds
        .iter()
        .zip(h.buckets.iter().chain(std::iter::repeat(&0)))
    {
        cumulative += n;
        sample(out, &bucket, labels, Some(("le", &b.to_string())), |w| {
            push_count(w, cumulative)
        });
    }
    if !bounds
        .iter()
        .any(|b| b.is_sign_positive() && b.is_infinite())
    {
        sample(out, &bucket, labels, Some(("le", "+Inf")), |w| {
            push_count(w, h.count)
        });
    }
    sample(out, &format!("{name}_sum"), labels, None, |w| {
        push_f64(w, h.sum)
    });
    sample(out, &format!("{name}_count"), labels, None, |w| {
        push_count(w, h.count)
    });
}
