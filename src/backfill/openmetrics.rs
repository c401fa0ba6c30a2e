//! The OpenMetrics writer of `backfill`: the business families' names and headers
//! as OpenMetrics wants them, the [`Renderer`] that writes one operation's totals as
//! cumulative samples at window ends, and the order of the families in the output
//! ([`assemble`] joins them in memory; `output.rs` does the same through files).

use std::collections::HashSet;
use std::io::{self, Write};

use jiff::Timestamp;

use super::calls::CallSeries;
use super::dates::Windows;
use super::span::Recent;
use crate::metrics::text::escaped;
use crate::metrics::{CALL_FAMILIES, FAMILIES};
use crate::totals::{RpKey, Totals};
use crate::wolkvox::row::Outcome;

/// Number of business families: [`FAMILIES`], then [`CALL_FAMILIES`].
pub const FAMILY_COUNT: usize = FAMILIES.len() + CALL_FAMILIES.len();
/// The first call family's index.
pub(super) const F_CALLS: usize = FAMILIES.len();

/// Family `i` of the output: name, help, type, labels.
fn family(
    i: usize,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
) {
    match i.checked_sub(F_CALLS) {
        Some(c) => CALL_FAMILIES[c],
        None => FAMILIES[i],
    }
}
const F_INTERACTIONS: usize = 0;
const F_PULSE: usize = 1;
const F_OPTIONS: usize = 2;
const F_TRANSFERS: usize = 3;
const F_DURATION: usize = 4;
pub(super) const F_ROWS: usize = 5;
const F_INVALID: usize = 6;

/// The OpenMetrics family name and type of `FAMILIES[i]`: a counter family is named
/// without `_total`, which its samples carry.
pub fn family_name(i: usize) -> (&'static str, &'static str) {
    let name = family(i).0;
    match name.strip_suffix("_total") {
        Some(base) => (base, "counter"),
        None => (name, "histogram"),
    }
}

/// `# HELP` and `# TYPE` of family `i`.
pub fn family_header(i: usize) -> String {
    let (name, kind) = family_name(i);
    // OpenMetrics escapes `# HELP` texts as label values.
    let help = escaped(family(i).1);
    format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")
}

/// One routing point's series, with their label text made once.
#[derive(Debug)]
struct RpLayout {
    key: RpKey,
    /// `operation="…",rp_id="…",rp_name="…"`
    labels: String,
    /// `(option, escaped)`, sorted.
    options: Vec<(String, String)>,
    /// `(dn_transfer, escaped)`, sorted.
    transfers: Vec<(String, String)>,
}

/// Writes one operation's totals as samples at window ends, in time order. Series
/// appear with a 0 at the start of the window where they are first seen (at `from`
/// for those known from the start), so `increase()` over any range counts every row.
#[derive(Debug)]
pub struct Renderer {
    operation: String,
    /// `le` values as the live exporter writes them.
    le: Vec<String>,
    windows: Windows,
    /// The last window end written (`from` before the first).
    last: Timestamp,
    layout: Vec<RpLayout>,
    /// Routing points, options and transfers in `layout`: keys are only ever added, so
    /// a change of these counts is a new series.
    shape: (usize, usize, usize),
    known: HashSet<String>,
    windows_done: u64,
    recent: Recent,
    calls: CallSeries,
}

fn shape(t: &Totals) -> (usize, usize, usize) {
    t.routing_points
        .values()
        .fold((t.routing_points.len(), 0, 0), |(r, o, d), rp| {
            (r, o + rp.options.len(), d + rp.transfers.len())
        })
}

impl Renderer {
    pub fn new(operation: &str, bounds: &[f64], windows: Windows) -> Renderer {
        Renderer {
            operation: escaped(operation),
            le: bounds.iter().map(|b| b.to_string()).collect(),
            windows,
            last: windows.from,
            layout: Vec::new(),
            shape: (0, 0, 0),
            known: HashSet::new(),
            windows_done: 0,
            recent: Recent::default(),
            calls: CallSeries::new(&escaped(operation), bounds),
        }
    }

    pub fn windows_done(&self) -> u64 {
        self.windows_done
    }

    /// Rows counted before the recent window ends.
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// The operation's own series (rows, invalid rows), known from the start: 0 at `from`.
    pub fn start<W: Write>(&mut self, out: &mut [W]) -> io::Result<()> {
        let from = self.windows.from;
        self.recent.record(from, 0);
        self.calls.start(out, from.as_second())?;
        self.write_operation(out, 0, 0, 0, from.as_second())
    }

    fn write_operation<W: Write>(
        &self,
        out: &mut [W],
        rows: u64,
        invalid_date: u64,
        invalid_time: u64,
        ts: i64,
    ) -> io::Result<()> {
        let op = &self.operation;
        let rows_name = FAMILIES[F_ROWS].0;
        let invalid_name = FAMILIES[F_INVALID].0;
        writeln!(out[F_ROWS], "{rows_name}{{operation=\"{op}\"}} {rows} {ts}")?;
        let w = &mut out[F_INVALID];
        writeln!(
            w,
            "{invalid_name}{{operation=\"{op}\",field=\"date\"}} {invalid_date} {ts}"
        )?;
        writeln!(
            w,
            "{invalid_name}{{operation=\"{op}\",field=\"time\"}} {invalid_time} {ts}"
        )
    }

    /// The next window end to write, when it is at or before `t`.
    pub fn next_end(&self, t: Timestamp) -> Option<Timestamp> {
        let end = self.windows.end_of(self.last);
        (self.last < self.windows.to && end <= t).then_some(end)
    }

    /// Writes every window end up to and including `t`, with `totals` as they are now
    /// (the caller has applied exactly the rows dated before each of those ends).
    pub fn emit_through<W: Write>(
        &mut self,
        totals: &Totals,
        t: Timestamp,
        out: &mut [W],
    ) -> io::Result<()> {
        while self.last < self.windows.to {
            let end = self.windows.end_of(self.last);
            if end > t {
                break;
            }
            self.emit(totals, end, out)?;
        }
        Ok(())
    }

    fn emit<W: Write>(&mut self, totals: &Totals, end: Timestamp, out: &mut [W]) -> io::Result<()> {
        let s = shape(totals);
        if s != self.shape {
            self.relayout(totals, out)?;
            self.shape = s;
        }
        let ts = end.as_second();
        for l in &self.layout {
            let Some(rp) = totals.routing_points.get(&l.key) else {
                continue;
            };
            write_rp(out, l, &self.le, rp, ts)?;
        }
        self.write_operation(
            out,
            totals.rows,
            totals.invalid_date,
            totals.invalid_time,
            ts,
        )?;
        self.calls
            .emit(out, &totals.calls, self.last.as_second(), ts)?;
        self.last = end;
        self.windows_done += 1;
        self.recent.record(end, totals.rows);
        Ok(())
    }

    /// Rebuilds the sorted layout and writes a 0 at the window start for new series.
    fn relayout<W: Write>(&mut self, totals: &Totals, out: &mut [W]) -> io::Result<()> {
        let op = &self.operation;
        let mut keys: Vec<&RpKey> = totals.routing_points.keys().collect();
        keys.sort();
        let mut layout = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(rp) = totals.routing_points.get(key) else {
                continue;
            };
            let sorted = |m: &crate::totals::LabelMap<String, u64>| {
                let mut v: Vec<(String, String)> =
                    m.keys().map(|k| (k.clone(), escaped(k))).collect();
                v.sort();
                v
            };
            layout.push(RpLayout {
                key: key.clone(),
                labels: format!(
                    "operation=\"{op}\",rp_id=\"{}\",rp_name=\"{}\"",
                    escaped(&key.0),
                    escaped(&key.1)
                ),
                options: sorted(&rp.options),
                transfers: sorted(&rp.transfers),
            });
        }
        let ts = self.last.as_second();
        let zero = crate::totals::RoutingPoint {
            interactions: [0; 3],
            pulse: 0,
            options: Default::default(),
            transfers: Default::default(),
            durations: Default::default(),
        };
        for l in &layout {
            if self.known.insert(format!("rp|{}", l.labels)) {
                // The rp's own series; its options and transfers follow below.
                let bare = RpLayout {
                    key: l.key.clone(),
                    labels: l.labels.clone(),
                    options: Vec::new(),
                    transfers: Vec::new(),
                };
                write_rp(out, &bare, &self.le, &zero, ts)?;
            }
            for (_, o) in &l.options {
                if self.known.insert(format!("opt|{}|{o}", l.labels)) {
                    let name = FAMILIES[F_OPTIONS].0;
                    writeln!(
                        out[F_OPTIONS],
                        "{name}{{{},option=\"{o}\"}} 0 {ts}",
                        l.labels
                    )?;
                }
            }
            for (_, d) in &l.transfers {
                if self.known.insert(format!("dn|{}|{d}", l.labels)) {
                    let name = FAMILIES[F_TRANSFERS].0;
                    writeln!(
                        out[F_TRANSFERS],
                        "{name}{{{},dn_transfer=\"{d}\"}} 0 {ts}",
                        l.labels
                    )?;
                }
            }
        }
        self.layout = layout;
        Ok(())
    }
}

/// Every series of one routing point at `ts`.
fn write_rp<W: Write>(
    out: &mut [W],
    l: &RpLayout,
    le: &[String],
    rp: &crate::totals::RoutingPoint,
    ts: i64,
) -> io::Result<()> {
    let labels = &l.labels;
    let interactions = FAMILIES[F_INTERACTIONS].0;
    let duration = FAMILIES[F_DURATION].0;
    for o in Outcome::ALL {
        let r = o.label();
        let i = o.index();
        writeln!(
            out[F_INTERACTIONS],
            "{interactions}{{{labels},result=\"{r}\"}} {} {ts}",
            rp.interactions[i]
        )?;
        let w = &mut out[F_DURATION];
        let (count, sum, buckets) = match rp.durations.get(i) {
            Some(h) => (h.count, h.sum, h.buckets.as_slice()),
            None => (0, 0.0, &[][..]),
        };
        let mut cumulative = 0;
        for (j, bound) in le.iter().enumerate() {
            cumulative += buckets.get(j).copied().unwrap_or(0);
            writeln!(
                w,
                "{duration}_bucket{{{labels},result=\"{r}\",le=\"{bound}\"}} {cumulative} {ts}"
            )?;
        }
        writeln!(
            w,
            "{duration}_bucket{{{labels},result=\"{r}\",le=\"+Inf\"}} {count} {ts}"
        )?;
        writeln!(
            w,
            "{duration}_count{{{labels},result=\"{r}\"}} {count} {ts}"
        )?;
        writeln!(w, "{duration}_sum{{{labels},result=\"{r}\"}} {sum} {ts}")?;
    }
    let pulse = FAMILIES[F_PULSE].0;
    writeln!(out[F_PULSE], "{pulse}{{{labels}}} {} {ts}", rp.pulse)?;
    let options = FAMILIES[F_OPTIONS].0;
    for (k, o) in &l.options {
        let v = rp.options.get(k).copied().unwrap_or(0);
        writeln!(
            out[F_OPTIONS],
            "{options}{{{labels},option=\"{o}\"}} {v} {ts}"
        )?;
    }
    let transfers = FAMILIES[F_TRANSFERS].0;
    for (k, d) in &l.transfers {
        let v = rp.transfers.get(k).copied().unwrap_or(0);
        writeln!(
            out[F_TRANSFERS],
            "{transfers}{{{labels},dn_transfer=\"{d}\"}} {v} {ts}"
        )?;
    }
    Ok(())
}

/// Joins per-family texts into one OpenMetrics document (for tests and small outputs;
/// [`run`] streams the same through files).
pub fn assemble(families: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in output_order() {
        out.extend_from_slice(family_header(i).as_bytes());
        if let Some(f) = families.get(i) {
            out.extend_from_slice(f);
        }
    }
    out.extend_from_slice(b"# EOF\n");
    out
}

/// The order of families in the output. The histogram, by far the largest, comes
/// first so it can be written straight into the output file: only the others need
/// temporary space.
pub(super) fn output_order() -> [usize; FAMILY_COUNT] {
    [
        F_DURATION,
        F_INTERACTIONS,
        F_PULSE,
        F_OPTIONS,
        F_TRANSFERS,
        F_ROWS,
        F_INVALID,
        F_CALLS + 2,
        F_CALLS + 1,
        F_CALLS,
        F_CALLS + 3,
        F_CALLS + 4,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    // The one escaper, under the name this writer's tests have always used.
    use crate::config::Limits;
    use crate::metrics::text::escaped as escape;
    use crate::window::Range;
    use crate::wolkvox::row::{Field, RawRow};
    use std::time::Duration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn reading_row(
        rp: &str,
        name: &str,
        opt: &str,
        dn: &str,
        result: &str,
        time: &str,
    ) -> RawRow<'static> {
        let f = |s: &str| Field(s.to_string().into());
        RawRow {
            rp_id: f(rp),
            rp_name: f(name),
            cod_opc_menu: f(opt),
            dn_transfer: f(dn),
            date: f("2026-04-01 10:00:00"),
            result: f(result),
            time: f(time),
            ..Default::default()
        }
    }

    fn text(families: &[Vec<u8>]) -> String {
        String::from_utf8(assemble(families)).unwrap()
    }

    #[test]
    fn renders_cumulative_samples_with_zeros_where_series_begin() {
        let w = Windows::new(
            Range::new(ts("2026-04-01T00:00:00Z"), ts("2026-04-01T00:15:00Z")),
            Duration::from_secs(300),
        );
        let bounds = [5.0, 10.5];
        let limits = Limits::default();
        let mut r = Renderer::new("acme", &bounds, w);
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); FAMILY_COUNT];
        let mut t = Totals::default();
        r.start(&mut out).unwrap();
        // First window: nothing. Second: one row. Third: a row with a new option.
        r.emit_through(&t, ts("2026-04-01T00:05:00Z"), &mut out)
            .unwrap();
        t.apply(
            &reading_row("1", "Menú \"A\"\\\n", "PULSE", "", "ok", "7").read(),
            &limits,
            &bounds,
        );
        r.emit_through(&t, ts("2026-04-01T00:10:00Z"), &mut out)
            .unwrap();
        t.apply(
            &reading_row("1", "Menú \"A\"\\\n", "2", "3001", "hung up", "x").read(),
            &limits,
            &bounds,
        );
        // Past `to`: stops at `to`.
        r.emit_through(&t, ts("2026-04-01T01:00:00Z"), &mut out)
            .unwrap();
        assert_eq!(r.windows_done(), 3);
        let om = text(&out);
        let l = r#"operation="acme",rp_id="1",rp_name="Menú \"A\"\\""#;
        let expected = format!(
            r#"# HELP wolkvox_ivr_interaction_duration_seconds Duration of IVR interactions.
# TYPE wolkvox_ivr_interaction_duration_seconds histogram
wolkvox_ivr_interaction_duration_seconds_bucket{{{l},result="ok",le="5"}} 0 1775001900
wolkvox_ivr_interaction_duration_seconds_bucket{{{l},result="ok",le="10.5"}} 0 1775001900
"#
        );
        // Label value trimmed by the reader: the trailing newline is gone.
        assert!(om.starts_with(&expected), "{om}");
        for line in [
            // Zero at the start of the window where the routing point first shows.
            format!("wolkvox_ivr_interactions_total{{{l},result=\"ok\"}} 0 1775001900"),
            format!("wolkvox_ivr_interactions_total{{{l},result=\"ok\"}} 1 1775002200"),
            format!("wolkvox_ivr_interactions_total{{{l},result=\"hung_up\"}} 1 1775002500"),
            format!("wolkvox_ivr_interaction_duration_seconds_bucket{{{l},result=\"ok\",le=\"10.5\"}} 1 1775002200"),
            format!("wolkvox_ivr_interaction_duration_seconds_bucket{{{l},result=\"ok\",le=\"+Inf\"}} 1 1775002200"),
            format!("wolkvox_ivr_interaction_duration_seconds_sum{{{l},result=\"ok\"}} 7 1775002200"),
            format!("wolkvox_ivr_interaction_duration_seconds_count{{{l},result=\"hung_up\"}} 0 1775002500"),
            format!("wolkvox_ivr_pulse_total{{{l}}} 1 1775002500"),
            format!("wolkvox_ivr_menu_option_total{{{l},option=\"PULSE\"}} 0 1775001900"),
            format!("wolkvox_ivr_menu_option_total{{{l},option=\"2\"}} 0 1775002200"),
            format!("wolkvox_ivr_menu_option_total{{{l},option=\"2\"}} 1 1775002500"),
            format!("wolkvox_ivr_transfers_total{{{l},dn_transfer=\"3001\"}} 0 1775002200"),
            "# TYPE wolkvox_ivr_rows counter".to_string(),
            "wolkvox_ivr_rows_total{operation=\"acme\"} 0 1775001600".to_string(),
            "wolkvox_ivr_rows_total{operation=\"acme\"} 0 1775001900".to_string(),
            "wolkvox_ivr_rows_total{operation=\"acme\"} 2 1775002500".to_string(),
            "wolkvox_ivr_rows_invalid_total{operation=\"acme\",field=\"time\"} 1 1775002500".to_string(),
            "# TYPE wolkvox_ivr_menu_option counter".to_string(),
            "# HELP wolkvox_ivr_rows_invalid Rows with a field that could not be read; they still count everywhere else.".to_string(),
        ] {
            assert!(om.lines().any(|x| x == line), "missing {line}\n{om}");
        }
        assert!(om.ends_with("\n# EOF\n"));
        // Every family once, each one's samples together.
        let types: Vec<&str> = om.lines().filter(|x| x.starts_with("# TYPE")).collect();
        assert_eq!(types.len(), FAMILY_COUNT);
        let mut seen = HashSet::new();
        let mut current = "";
        for line in om.lines().filter(|x| !x.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            let fam = FAMILIES
                .iter()
                .chain(CALL_FAMILIES.iter())
                .map(|f| family_name_of(f.0))
                .find(|f| {
                    ["", "_total", "_bucket", "_count", "_sum"]
                        .iter()
                        .any(|s| name == format!("{f}{s}"))
                })
                .unwrap();
            if fam != current {
                assert!(seen.insert(fam), "{fam} is split\n{om}");
                current = fam;
            }
        }
        // Series have non-decreasing timestamps and values.
        let mut last: std::collections::HashMap<&str, (i64, f64)> = Default::default();
        for line in om.lines().filter(|x| !x.starts_with('#')) {
            let (series, rest) = line.rsplit_once("} ").unwrap();
            let mut it = rest.split(' ');
            let v: f64 = it.next().unwrap().parse().unwrap();
            let at: i64 = it.next().unwrap().parse().unwrap();
            if let Some((pt, pv)) = last.insert(series, (at, v)) {
                assert!(at > pt && v >= pv, "{line}");
            }
        }
    }

    fn family_name_of(name: &str) -> &str {
        name.strip_suffix("_total").unwrap_or(name)
    }

    #[test]
    fn headers_follow_openmetrics_naming() {
        assert_eq!(family_name(F_ROWS), ("wolkvox_ivr_rows", "counter"));
        assert_eq!(
            family_name(F_DURATION),
            ("wolkvox_ivr_interaction_duration_seconds", "histogram")
        );
        assert_eq!(escape("a\\b\"c\nd\té"), "a\\\\b\\\"c\\nd\té");
    }
}
