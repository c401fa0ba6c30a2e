//! The pieces of the Prometheus text formats that `/metrics` and `backfill` write by
//! hand: label-value escaping, sample values, sample lines and family headers. Pure (no
//! `prometheus` here), so the OpenMetrics writer of `backfill` uses the same escaper as
//! the scrape.

use std::fmt::Write;

/// Appends `v` escaped as a label value: backslash, newline and double quote, as
/// `escape_string(v, true)` of the `prometheus` text encoder does, and as OpenMetrics
/// wants label values (and `# HELP` texts) escaped.
pub fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `v` escaped as by [`escape_label`], as a new string: for label text made once and
/// written many times.
pub fn escaped(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    escape_label(&mut out, v);
    out
}

/// A sample value as the `prometheus` text encoder writes it (`f64` Display).
pub(super) fn push_f64(out: &mut String, v: f64) {
    let _ = write!(out, "{v}");
}

/// A counter value: `u64` as `f64`, written as the encoder would; integers up to
/// 2^53 read the same either way, and integer formatting is several times faster.
pub(super) fn push_count(out: &mut String, v: u64) {
    if v <= (1u64 << 53) {
        let _ = write!(out, "{v}");
    } else {
        push_f64(out, v as f64);
    }
}

/// One sample line: `name{labels[,extra]} value`.
pub(super) fn sample(
    out: &mut String,
    name: &str,
    labels: &str,
    extra: Option<(&str, &str)>,
    v: impl FnOnce(&mut String),
) {
    out.push_str(name);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        out.push_str(labels);
        if let Some((k, val)) = extra {
            if !labels.is_empty() {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label(out, val);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    v(out);
    out.push('\n');
}

/// `# HELP` and `# TYPE` lines of text format 0.0.4 (the help as given: every help
/// text here is fixed and needs no escaping).
pub(super) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_backslash_quote_and_newline_only() {
        assert_eq!(escaped("a\\b\"c\nd\té"), "a\\\\b\\\"c\\nd\té");
        let mut out = String::from("x=");
        escape_label(&mut out, "\"\n");
        assert_eq!(out, "x=\\\"\\n");
    }
}
