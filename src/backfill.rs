//! `wolkvox-exporter backfill`: history for Prometheus. Fetches a past range with the
//! poller's rules (31-day cut, split at the row cap, 404 as no rows, retries, the
//! ledger) and writes the business counters as OpenMetrics text, one sample per window
//! end, for `promtool tsdb create-blocks-from openmetrics`.
//!
//! Memory stays bounded whatever the range: the range is fetched part by part (each at
//! most 31 days and under the row cap), in time order, and only the running totals, the
//! ledger entries a following part can still return and two days of row counts (to size
//! the next request from the same hours yesterday) are kept. Samples go straight to
//! disk. OpenMetrics wants each family's samples together, while going through time
//! produces every family at each window end, so the largest family goes straight into
//! `OUTPUT.tmp` and every other one into its own temporary file (unlinked at once, so
//! nothing is left behind whatever happens); they are appended at the end and
//! `OUTPUT.tmp` is renamed to `OUTPUT`.
//!
//! Pure parts: [`DateArg`] (the `--from`/`--to` forms), [`Windows`] (which window a row
//! belongs to), [`row_instant`] (a row's wall-clock date as an instant) and [`Renderer`]
//! (the OpenMetrics lines). [`run`] does the I/O and takes the config, so tests can aim
//! it at the simulator.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Semaphore;

use crate::config::{Config, Limits, Operation, ProcessEnv};
use crate::fetch::{Engine, FetchError, Jitter, RetryPolicy, Sink, TakeError};
use crate::ingest::{Ingested, ROW_CAP, apply_rows, continuation, rows_of};
use crate::ledger::Ledger;
use crate::metrics::FAMILIES;
use crate::metrics::text::escaped;
use crate::totals::{RpKey, Totals};
use crate::window::{self, Query, Range};
use crate::wolkvox::client::{Attempt, Client};
use crate::wolkvox::row::{Outcome, RawRow, parse_date};
use crate::wolkvox::{ApiError, Reason};

// ---------------------------------------------------------------- dates

/// A `--from`/`--to` value: a calendar day (midnight in each operation's zone) or an
/// instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateArg {
    Day(Date),
    Instant(Timestamp),
}

impl DateArg {
    /// `YYYY-mm-dd` or an RFC 3339 instant; `flag` names the option in the error.
    pub fn parse(flag: &str, s: &str) -> Result<DateArg, String> {
        let t = s.trim();
        // A bare date is exactly ten characters; anything longer must carry an offset.
        if t.len() == 10
            && let Ok(d) = t.parse::<Date>()
        {
            return Ok(DateArg::Day(d));
        }
        t.parse::<Timestamp>().map(DateArg::Instant).map_err(|_| {
            format!(
                "{flag}: {s:?} is neither a date (YYYY-mm-dd) nor an RFC 3339 instant (2026-04-01T00:00:00Z or 2026-04-01T00:00:00-05:00)"
            )
        })
    }

    /// The instant in `tz`, on a whole second: report dates have no fractions, and a
    /// bound inside a second would split that second's rows between two runs.
    pub fn resolve(self, tz: &TimeZone) -> Result<Timestamp, String> {
        let t = match self {
            // In a DST gap at midnight, the day starts when the clock jumps (01:00).
            DateArg::Day(d) => d
                .to_zoned_datetime(tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| format!("{d}: {e}"))?,
            DateArg::Instant(t) => t,
        };
        let whole = t.as_second() - i64::from(t.subsec_nanosecond() < 0);
        Timestamp::from_second(whole).map_err(|e| format!("{t}: {e}"))
    }
}

impl fmt::Display for DateArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateArg::Day(d) => write!(f, "{d}"),
            DateArg::Instant(t) => write!(f, "{t}"),
        }
    }
}

/// The range `[from, to)` for one operation: both resolved in its zone, in order, and
/// not in the future (the report has no rows there yet).
pub fn resolve_range(
    from: DateArg,
    to: DateArg,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Range, String> {
    let start = from.resolve(tz).map_err(|e| format!("--from: {e}"))?;
    let end = to.resolve(tz).map_err(|e| format!("--to: {e}"))?;
    let local = |t: Timestamp| tz.to_datetime(t).strftime("%Y-%m-%d %H:%M:%S").to_string();
    if start >= end {
        return Err(format!(
            "--from ({from}, {}) must be before --to ({to}, {})",
            local(start),
            local(end)
        ));
    }
    if end > now {
        return Err(format!(
            "--to ({to}, {}) is in the future; the report has no rows there yet",
            local(end)
        ));
    }
    Ok(Range::new(start, end))
}

// ---------------------------------------------------------------- windows

/// The sample grid: one sample per window end. Windows align to multiples of the
/// poll interval since the epoch, as the live exporter's do; the first starts at
/// `from` and the last ends at `to`, whatever their alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Seconds, at least 1.
    pub step: i64,
}

impl Windows {
    pub fn new(range: Range, interval: Duration) -> Windows {
        Windows {
            from: range.start,
            to: range.end,
            step: i64::try_from(interval.as_secs())
                .unwrap_or(i64::MAX / 4)
                .max(1),
        }
    }

    /// The end of the window holding `t` (for `from <= t < to`); also the first window
    /// end after `t` when `t` is itself a window end.
    pub fn end_of(&self, t: Timestamp) -> Timestamp {
        let s = t.as_second();
        let next = s - s.rem_euclid(self.step) + self.step;
        Timestamp::from_second(next).map_or(self.to, |n| n.min(self.to))
    }

    /// How many window ends lie in `(from, to]`.
    pub fn count(&self) -> u64 {
        if self.to <= self.from {
            return 0;
        }
        let first = self.from.as_second().div_euclid(self.step);
        let last = (self.to.as_second() - 1).div_euclid(self.step);
        u64::try_from(last - first + 1).unwrap_or(0)
    }
}

/// The instant a row is counted at, or `None` when that instant lies outside `range`
/// (the query it came back for). A dated row is at its wall time in `tz`; inside a DST
/// fold that wall time names two instants and the earlier is taken, whatever the
/// query: the report cannot tell the passes apart, and one fixed choice means that two
/// queries (or two runs) whose wall-clock bounds both cover the repeated hour never
/// both count a row. A wall time the zone skips (a DST gap) is at the transition that
/// skips it: the one instant inside every query whose wall-clock bounds cover it. An
/// undated row goes to its query's last second.
pub fn row_instant(date: Option<DateTime>, range: Range, tz: &TimeZone) -> Option<Timestamp> {
    let Some(d) = date else {
        let last = range.end - SignedDuration::from_secs(1);
        return Some(last.max(range.start));
    };
    let amb = tz.to_ambiguous_timestamp(d);
    let t = match amb.offset() {
        AmbiguousOffset::Gap { .. } => tz
            .following(amb.earlier().ok()?)
            .next()
            .map(|tr| tr.timestamp())?,
        _ => amb.compatible().ok()?,
    };
    (range.start <= t && t < range.end).then_some(t)
}

// ---------------------------------------------------------------- OpenMetrics

/// Number of business families, in [`FAMILIES`] order.
pub const FAMILY_COUNT: usize = FAMILIES.len();
const F_INTERACTIONS: usize = 0;
const F_PULSE: usize = 1;
const F_OPTIONS: usize = 2;
const F_TRANSFERS: usize = 3;
const F_DURATION: usize = 4;
const F_ROWS: usize = 5;
const F_INVALID: usize = 6;

/// The OpenMetrics family name and type of `FAMILIES[i]`: a counter family is named
/// without `_total`, which its samples carry.
pub fn family_name(i: usize) -> (&'static str, &'static str) {
    let name = FAMILIES[i].0;
    match name.strip_suffix("_total") {
        Some(base) => (base, "counter"),
        None => (name, "histogram"),
    }
}

/// `# HELP` and `# TYPE` of family `i`.
pub fn family_header(i: usize) -> String {
    let (name, kind) = family_name(i);
    // OpenMetrics escapes `# HELP` texts as label values.
    let help = escaped(FAMILIES[i].1);
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
            let sorted = |m: &std::collections::HashMap<String, u64>| {
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
fn output_order() -> [usize; FAMILY_COUNT] {
    [
        F_DURATION,
        F_INTERACTIONS,
        F_PULSE,
        F_OPTIONS,
        F_TRANSFERS,
        F_ROWS,
        F_INVALID,
    ]
}

// ---------------------------------------------------------------- query lengths

/// Rows an answer is aimed at while cut-off answers have to be halved: a quarter under
/// the cap leaves room for the hour being busier than predicted.
const TARGET_ROWS: i64 = (ROW_CAP as i64) * 3 / 4;
/// ... and once a cut-off answer came in date order: over the cap, as an answer at
/// the cap loses nothing (its complete rows are kept and the rest asked next), so
/// nearly every request brings a full 60,000 rows.
const TARGET_ROWS_ORDERED: i64 = (ROW_CAP as i64) * 2;
const DAY: SignedDuration = SignedDuration::from_hours(24);

/// The rows counted before each recent window end, over the last two days: enough to
/// size the next query from the same hours yesterday.
#[derive(Debug, Default, Clone)]
pub struct Recent {
    ends: VecDeque<(Timestamp, u64)>,
}

impl Recent {
    /// `rows` were counted before `end`; ends come in time order.
    pub fn record(&mut self, end: Timestamp, rows: u64) {
        self.ends.push_back((end, rows));
        // Two days: yesterday's hours of a query up to a day long.
        let horizon = end - DAY - DAY;
        while self.ends.len() > 1 && self.ends.get(1).is_some_and(|(t, _)| *t <= horizon) {
            self.ends.pop_front();
        }
    }

    /// Rows counted before the last recorded end at or before `t`.
    pub fn rows_at(&self, t: Timestamp) -> Option<u64> {
        let i = self.ends.partition_point(|(e, _)| *e <= t);
        i.checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .map(|(_, n)| *n)
    }

    /// The next query's length in seconds, after the query over `last` answered `rows`
    /// rows. IVR traffic follows the clock (quiet nights, busy mornings), so the best
    /// guess is the same hours yesterday, scaled by how today compares so far; without
    /// a day behind, the last answer's density. It grows at most fourfold at a time;
    /// [`window::plan`]'s parts bound it from above and a capped answer still splits.
    pub fn next_span(&self, last: Range, rows: usize, target: i64) -> i64 {
        let span = last.duration().as_secs().max(1);
        let grown = span.saturating_mul(4);
        let n = i64::try_from(rows).unwrap_or(i64::MAX);
        let by_density = if n > 0 {
            span.saturating_mul(target) / n
        } else {
            grown
        };
        let fallback = by_density.min(grown).max(1);
        let yesterday =
            |a: Timestamp, b: Timestamp| Some(self.rows_at(b)?.saturating_sub(self.rows_at(a)?));
        let (Some(before), Some(then)) = (
            yesterday(last.start - DAY, last.end - DAY),
            self.rows_at(last.end - DAY),
        ) else {
            return fallback;
        };
        if before == 0 {
            return fallback;
        }
        let scale = n as f64 / before as f64;
        let from = last.end - DAY;
        let mut best = None;
        for (end, cum) in self
            .ends
            .iter()
            .filter(|(e, _)| *e > from && *e <= last.end)
        {
            if scale * cum.saturating_sub(then) as f64 > target as f64 {
                break;
            }
            best = Some(end.duration_since(from).as_secs());
        }
        best.map_or(fallback, |b| b.min(grown).max(1))
    }
}

// ---------------------------------------------------------------- output file

/// `OUTPUT.tmp` with the first family, plus one unlinked temporary file per other
/// family; [`Output::finish`] joins them and renames. Dropped unfinished, it removes
/// `OUTPUT.tmp`: an interrupted run leaves no half file.
struct Output {
    path: PathBuf,
    tmp: PathBuf,
    writers: Vec<BufWriter<File>>,
    /// Temporary files that could not be unlinked while open (not on Unix).
    leftovers: Vec<PathBuf>,
    finished: bool,
}

/// `OUTPUT.tmp`, the file written before the rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

impl Output {
    fn create(path: &Path) -> io::Result<Output> {
        let Some(name) = path.file_name() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            ));
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tmp_path(path);
        let first = output_order()[0];
        let mut writers = Vec::with_capacity(FAMILY_COUNT);
        let mut leftovers = Vec::new();
        let mut made = Output {
            path: path.to_path_buf(),
            tmp: tmp.clone(),
            writers: Vec::new(),
            leftovers: Vec::new(),
            finished: false,
        };
        for i in 0..FAMILY_COUNT {
            let file = if i == first {
                let mut f = File::create(&tmp)?;
                f.write_all(family_header(i).as_bytes())?;
                f
            } else {
                let mut part_name = std::ffi::OsString::from(".");
                part_name.push(name);
                part_name.push(format!(".family{i}.tmp"));
                let part = dir.join(part_name);
                let f = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&part)?;
                // Unlinked while open (Unix): the space comes back however the run ends.
                if fs::remove_file(&part).is_err() {
                    leftovers.push(part);
                }
                f
            };
            writers.push(BufWriter::with_capacity(256 * 1024, file));
        }
        made.writers = writers;
        made.leftovers = leftovers;
        Ok(made)
    }

    /// Joins the families into `OUTPUT.tmp`, ends it with `# EOF`, syncs and renames it
    /// to `OUTPUT`. Returns the size in bytes.
    fn finish(mut self) -> io::Result<u64> {
        let order = output_order();
        let mut writers: Vec<Option<BufWriter<File>>> = std::mem::take(&mut self.writers)
            .into_iter()
            .map(Some)
            .collect();
        let mut main = writers[order[0]]
            .take()
            .ok_or_else(|| io::Error::other("output writer missing"))?;
        for &i in &order[1..] {
            let w = writers[i]
                .take()
                .ok_or_else(|| io::Error::other("family writer missing"))?;
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.rewind()?;
            main.write_all(family_header(i).as_bytes())?;
            io::copy(&mut f, &mut main)?;
        }
        main.write_all(b"# EOF\n")?;
        let file = main.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        self.finished = true;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            // The rename is durable once the directory entry is; failing that is harmless.
            let _ = d.sync_all();
        }
        Ok(fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        for p in &self.leftovers {
            let _ = fs::remove_file(p);
        }
        if !self.finished {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

// ---------------------------------------------------------------- the run

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub from: DateArg,
    pub to: DateArg,
    pub output: PathBuf,
    pub operation: Option<String>,
}

/// How patient to be, and whether to show progress.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Retries of one request after a transient error, before giving up.
    pub retries: u32,
    /// The first retry's wait; each next one doubles (with jitter).
    pub retry_base: Duration,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Settings {
    /// The engine's retry policy: maintenance is ridden out too, so one run survives
    /// the vendor's backups.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            base: self.retry_base,
            max: self.retry_base.saturating_mul(1024),
            retry_maintenance: true,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        // 1 + 2 + ... + 32 s: about a minute, long enough for a gateway hiccup or a
        // busy token, short enough that a real outage ends the run with a clear error.
        Settings {
            retries: 6,
            retry_base: Duration::from_secs(1),
            progress: true,
        }
    }
}

/// Why a backfill did not complete.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments, config or output path: exit code 2.
    Usage(String),
    /// The API or the disk failed: exit code 1. Nothing was written to OUTPUT.
    Run(String),
    /// Ctrl-C: exit code 130.
    Interrupted,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Run(_) => 1,
            Failure::Interrupted => 130,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) => write!(f, "backfill: {m}"),
            Failure::Run(m) => write!(f, "backfill failed: {m}; no output was written"),
            Failure::Interrupted => write!(f, "backfill interrupted; no output was written"),
        }
    }
}

/// What a completed run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub operations: Vec<String>,
    pub windows: u64,
    /// Rows counted (each once).
    pub rows: u64,
    /// Copies seen again in another answer and not counted.
    pub duplicates: u64,
    /// Rows dated outside the range their query covers: a query's wall-clock bounds
    /// can take in the repeated hour of a DST fold, whose rows count at the first pass.
    pub outside: u64,
    pub requests: u64,
    /// Answers cut at the cap and halved (their rows not in date order).
    pub splits: u64,
    /// Answers cut at the cap in date order: kept up to their last second, which was
    /// asked again.
    pub continued: u64,
    pub retries: u64,
    /// Answers at the row cap whose range (one second) could not be split.
    pub capped: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub output: PathBuf,
    /// The earliest and latest instants covered, over every operation.
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

/// Progress on stderr: a line redrawn in place on a terminal, plain lines otherwise,
/// and only once a run has taken more than a moment.
struct Progress {
    enabled: bool,
    tty: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
    total_secs: f64,
    done_secs: f64,
    windows_total: u64,
}

impl Progress {
    fn new(enabled: bool, total_secs: f64, windows_total: u64) -> Progress {
        Progress {
            enabled,
            tty: io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            drawn: false,
            total_secs,
            done_secs: 0.0,
            windows_total,
        }
    }

    fn show(&mut self, op: &str, s: &Summary, windows_done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        let every = if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        if elapsed < Duration::from_secs(1) || self.last.is_some_and(|l| now - l < every) {
            return;
        }
        self.last = Some(now);
        let left = if self.done_secs > 0.0 && self.total_secs > self.done_secs {
            let rest = elapsed.as_secs_f64() * (self.total_secs - self.done_secs) / self.done_secs;
            format!(", about {} left", human(Duration::from_secs_f64(rest)))
        } else {
            String::new()
        };
        let line = format!(
            "backfill {op}: {windows_done}/{} windows, {} rows, {} requests, {} elapsed{left}",
            self.windows_total,
            s.rows,
            s.requests,
            human(elapsed)
        );
        let mut err = io::stderr().lock();
        let _ = if self.tty {
            self.drawn = true;
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn done(&mut self) {
        if self.drawn {
            let _ = write!(io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// One operation's pass through its range.
struct OpRun<'a> {
    op: &'a Operation,
    limits: Limits,
    bounds: &'a [f64],
    windows: Windows,
    totals: Totals,
    ledger: Ledger,
    renderer: Renderer,
}

impl OpRun<'_> {
    /// Applies one answer to `q`: rows in time order, window by window, writing each
    /// window end once every row before it is in.
    fn take<W: Write>(
        &mut self,
        body: &[u8],
        q: &Query,
        out: &mut [W],
        summary: &mut Summary,
    ) -> Result<Ingested, TakeError<io::Error>> {
        let mut rows = rows_of(body).map_err(TakeError::Api)?;
        let answered = rows.len();
        let capped = answered >= ROW_CAP;
        let tz = &self.op.zone;
        // Each row's date read once: the cut, the check on it and the placement use it.
        let dates: Vec<Option<DateTime>> =
            rows.iter().map(|r| parse_date(r.date.as_str())).collect();
        let mut instants: Vec<Option<Timestamp>> =
            dates.iter().map(|d| row_instant(*d, q.range, tz)).collect();
        // What is complete once this answer is applied: window ends up to `through`.
        let mut through = q.range.end;
        let mut rest = None;
        if capped {
            match continuation(dates.iter().copied(), q, tz) {
                // Every kept row must lie before the cut, or its window would be
                // written before the rest's rows are in: a row at a wall time the zone
                // skips counts at the transition, which can be the cut itself.
                Some((kept, next))
                    if instants[..kept]
                        .iter()
                        .all(|t| t.is_none_or(|t| t < next.range.start)) =>
                {
                    rows.truncate(kept);
                    instants.truncate(kept);
                    through = next.range.start;
                    rest = Some(next);
                }
                _ => {
                    if let Some((a, b)) = window::bisect(q.range) {
                        return Ok(Ingested::Split(a, b));
                    }
                }
            }
        }
        let mut placed: Vec<(Timestamp, RawRow<'_>)> = Vec::with_capacity(rows.len());
        for (r, t) in rows.into_iter().zip(instants) {
            match t {
                Some(t) => placed.push((t, r)),
                None => summary.outside += 1,
            }
        }
        // Stable: copies of one row (same date) stay together in one window.
        placed.sort_by_key(|(t, _)| *t);
        let (instants, rows): (Vec<Timestamp>, Vec<RawRow<'_>>) = placed.into_iter().unzip();
        let mut batch = self.ledger.begin();
        let before = self.totals.duplicates;
        let mut new = 0;
        let mut i = 0;
        while i < rows.len() {
            let end = self.windows.end_of(instants[i]);
            let mut j = i + 1;
            while j < rows.len() && self.windows.end_of(instants[j]) == end {
                j += 1;
            }
            // Window ends before this group's window are complete: write them first.
            self.renderer
                .emit_through(&self.totals, end - SignedDuration::from_secs(1), out)
                .map_err(TakeError::Sink)?;
            // One call per window keeps the multiset rule: a row's copies share its
            // date, hence its window.
            new += apply_rows(
                &rows[i..j],
                q,
                &mut batch,
                &mut self.totals,
                &self.limits,
                self.bounds,
            );
            i = j;
        }
        let changes = batch.into_changes();
        self.ledger.commit(changes);
        summary.rows += new as u64;
        summary.duplicates += self.totals.duplicates - before;
        debug_assert!(rest.is_none_or(|r: Query| r.range.start == through));
        Ok(match rest {
            Some(rest) => Ingested::Continue {
                rows: answered,
                kept: rows.len(),
                new,
                rest,
            },
            None => Ingested::Applied {
                rows: answered,
                new,
                capped,
            },
        })
    }

    /// Every row before `through` is in: writes the window ends up to it.
    fn commit<W: Write>(&mut self, through: Timestamp, out: &mut [W]) -> io::Result<()> {
        self.renderer.emit_through(&self.totals, through, out)?;
        // Parts never overlap in time, but across a DST fold their wall-clock queries
        // do. `row_instant` already gives such a row to one part only; the ledger is
        // the second guard, and keeps only what a following query can still return.
        self.ledger
            .forget_before(window::wall_floor(through, &self.op.zone));
        Ok(())
    }
}

/// One operation's run as the engine's sink: answers into the run, progress on stderr,
/// and the next request sized from the traffic seen so far.
struct BackfillSink<'r, 'a, W: Write> {
    run: &'r mut OpRun<'a>,
    out: &'r mut [W],
    summary: &'r mut Summary,
    progress: &'r mut Progress,
    windows_before: u64,
    /// Whether answers cut at the cap came in date order, so that one can be taken in
    /// part and continued rather than halved and asked again.
    ordered: bool,
}

impl<W: Write> BackfillSink<'_, '_, W> {
    fn show(&mut self) {
        let done = self.windows_before + self.run.renderer.windows_done();
        self.progress.show(&self.run.op.name, self.summary, done);
    }
}

impl<W: Write> Sink for BackfillSink<'_, '_, W> {
    type Error = io::Error;

    fn take(&mut self, body: &[u8], q: &Query) -> Result<Ingested, TakeError<io::Error>> {
        self.run.take(body, q, self.out, self.summary)
    }

    async fn commit(&mut self, through: Timestamp) -> io::Result<()> {
        self.run.commit(through, self.out)
    }

    fn requested(&mut self, _attempt: &Attempt) {
        self.summary.requests += 1;
    }

    fn failed(&mut self, _error: &ApiError, _q: &Query, retry_in: Option<Duration>) {
        if retry_in.is_some() {
            self.summary.retries += 1;
            self.show();
        }
    }

    /// How long a query may be, learned from the answers, so that a busy range is not
    /// split from 31 days down every time.
    fn next_span(&mut self, q: &Query, taken: &Ingested) -> Option<i64> {
        let target = if self.ordered {
            TARGET_ROWS_ORDERED
        } else {
            TARGET_ROWS
        };
        let recent = self.run.renderer.recent();
        let span = match taken {
            Ingested::Split(a, _) => {
                self.summary.splits += 1;
                self.ordered = false;
                a.duration().as_secs()
            }
            Ingested::Continue { rest, kept, .. } => {
                self.summary.continued += 1;
                self.ordered = true;
                let done = Range::new(q.range.start, rest.range.start);
                self.progress.done_secs += done.duration().as_secs_f64();
                recent.next_span(done, *kept, TARGET_ROWS_ORDERED)
            }
            Ingested::Applied { rows, capped, .. } => {
                self.summary.capped += u64::from(*capped);
                self.progress.done_secs += q.range.duration().as_secs_f64();
                recent.next_span(q.range, *rows, target)
            }
        };
        self.show();
        Some(span)
    }
}

/// Fetches `config`'s operations (or the one `req.operation` names) over the range and
/// writes `req.output`. Never writes the exporter's state.
pub async fn run(
    config: &Config,
    req: &Request,
    settings: &Settings,
    now: Timestamp,
) -> Result<Summary, Failure> {
    let started = Instant::now();
    let ops: Vec<&Operation> = match &req.operation {
        None => config.operations.iter().collect(),
        Some(name) => match config.operations.iter().find(|o| &o.name == name) {
            Some(op) => vec![op],
            None => {
                let names: Vec<&str> = config.operations.iter().map(|o| o.name.as_str()).collect();
                return Err(Failure::Usage(format!(
                    "--operation: no operation named {name:?} in the config (it has: {})",
                    names.join(", ")
                )));
            }
        },
    };
    let mut plans = Vec::with_capacity(ops.len());
    for op in &ops {
        let range = resolve_range(req.from, req.to, &op.zone, now).map_err(|e| {
            Failure::Usage(format!("{e} (operation {}, {})", op.name, op.zone_name))
        })?;
        plans.push((*op, range, Windows::new(range, op.poll.interval)));
    }
    for (op, range, _) in &plans {
        warn_about_live_overlap(config, op, *range, now);
    }
    let mut output = Output::create(&req.output).map_err(|e| {
        Failure::Usage(format!(
            "--output: cannot write {}: {e}",
            tmp_path(&req.output).display()
        ))
    })?;
    let total_secs: f64 = plans
        .iter()
        .map(|(_, r, _)| r.duration().as_secs_f64())
        .sum();
    let windows_total: u64 = plans.iter().map(|(_, _, w)| w.count()).sum();
    let mut progress = Progress::new(settings.progress, total_secs, windows_total);
    let mut summary = Summary {
        output: req.output.clone(),
        ..Summary::default()
    };
    let io_fail = |e: io::Error| {
        Failure::Run(format!(
            "cannot write {}: {e}",
            tmp_path(&req.output).display()
        ))
    };
    let mut jitter = Jitter::new(now.as_nanosecond() as u64);
    let mut windows_before = 0;
    for (op, range, windows) in plans {
        summary.operations.push(op.name.clone());
        summary.start = Some(summary.start.map_or(range.start, |s| s.min(range.start)));
        summary.end = Some(summary.end.map_or(range.end, |e| e.max(range.end)));
        // One request at a time: the API counts simultaneous requests per token, and a
        // running exporter may be using the same token.
        let client = Client::for_operation(op, Arc::new(Semaphore::new(1)))
            .map_err(|e| Failure::Run(format!("operation {}: {e}", op.name)))?;
        let mut run = OpRun {
            op,
            limits: config.limits,
            bounds: &config.buckets,
            windows,
            totals: Totals::default(),
            ledger: Ledger::new(),
            renderer: Renderer::new(&op.name, &config.buckets, windows),
        };
        run.renderer.start(&mut output.writers).map_err(io_fail)?;
        let mut sink = BackfillSink {
            run: &mut run,
            out: &mut output.writers,
            summary: &mut summary,
            progress: &mut progress,
            windows_before,
            ordered: false,
        };
        let mut engine = Engine::new(&client, &op.zone, settings.policy(), &mut jitter);
        match engine.run(range, &mut sink).await {
            Ok(_) => {}
            Err(FetchError::Api {
                error,
                query,
                attempts,
            }) => {
                return Err(Failure::Run(request_failure(op, &query, &error, attempts)));
            }
            Err(FetchError::Sink(e)) => return Err(io_fail(e)),
            Err(FetchError::Shutdown) => return Err(Failure::Interrupted),
        }
        windows_before += run.renderer.windows_done();
    }
    summary.windows = windows_before;
    progress.done();
    summary.bytes = output.finish().map_err(io_fail)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn request_failure(op: &Operation, q: &Query, e: &ApiError, attempts: u32) -> String {
    let what = format!(
        "operation {}: the report for {} to {} ({}) failed",
        op.name,
        q.date_ini_string(),
        q.date_end_string(),
        op.zone_name
    );
    match e.reason {
        Reason::TokenLimit => format!(
            "{what}: the token's daily request budget is spent ({e}); run it again after midnight"
        ),
        Reason::InvalidToken | Reason::MissingToken => {
            format!("{what}: the token was refused ({e}); check the operation's token")
        }
        r if r.is_transient() || r == Reason::Maintenance => {
            format!("{what} {attempts} times; last error: {e}")
        }
        _ => format!("{what}: {e}"),
    }
}

/// Backfilled and live series differ only by the `job` and `instance` labels Prometheus
/// adds to scraped ones, so sums over both count the overlap twice. Reads (never writes)
/// the exporter's state to find where its own history begins.
fn warn_about_live_overlap(config: &Config, op: &Operation, range: Range, now: Timestamp) {
    let path = crate::state::path(&config.state_dir, &op.name);
    match crate::state::load(&path) {
        Ok(Some(s)) if s.origin < range.end => {
            eprintln!(
                "warning: operation {}: the live exporter's counters (state {}) begin at {}; this backfill reaches {}. Sums over both would count those rows twice: use --to {} or earlier",
                op.name,
                path.display(),
                s.origin,
                range.end,
                s.origin
            );
        }
        Ok(Some(_)) => {}
        _ if now.duration_since(range.end) < SignedDuration::from_hours(24) => {
            eprintln!(
                "warning: operation {}: the range ends less than a day ago; do not backfill the hours a running exporter already counts (it starts at its first start minus poll.backfill)",
                op.name
            );
        }
        _ => {}
    }
}

/// The summary for people: what was written and how to load it.
pub fn report(s: &Summary) -> String {
    let rate = if s.elapsed.as_secs_f64() > 0.0 {
        s.rows as f64 / s.elapsed.as_secs_f64()
    } else {
        0.0
    };
    let mut out = format!(
        "backfill done: {} ({}), {} windows, {} rows counted, {} requests ({} answers at the {ROW_CAP}-row cap continued, {} halved, {} retries) in {} ({:.0} rows/s)\n",
        s.operations.join(", "),
        match (s.start, s.end) {
            (Some(a), Some(b)) => format!("{a} to {b}"),
            _ => "empty range".to_string(),
        },
        s.windows,
        s.rows,
        s.requests,
        s.continued,
        s.splits,
        s.retries,
        human(s.elapsed),
        rate
    );
    if s.duplicates > 0 || s.outside > 0 {
        out.push_str(&format!(
            "  {} copies seen in more than one answer were counted once; {} rows dated outside the range their query covers (the repeated hour of a clock change counts at its first pass) were left out\n",
            s.duplicates, s.outside
        ));
    }
    if s.capped > 0 {
        out.push_str(&format!(
            "  warning: {} one-second ranges returned the whole {ROW_CAP}-row cap; rows may be missing there\n",
            s.capped
        ));
    }
    let file = s.output.display();
    out.push_str(&format!(
        "wrote {file} ({})\n\
         load it into Prometheus (promtool holds the whole file in memory and reads it once per block: week-long blocks mean one pass per week):\n  \
         promtool tsdb create-blocks-from openmetrics --max-block-duration=168h {file} ./wolkvox-blocks\n\
         then move the directories in ./wolkvox-blocks into Prometheus's data directory (--storage.tsdb.path, e.g. /var/lib/prometheus/metrics2),\n\
         owned by the user Prometheus runs as; it picks them up within a minute or two, or at its next start.\n\
         Blocks older than --storage.tsdb.retention.time are deleted at once: raise it first if the range is older.\n",
        bytes(s.bytes)
    ));
    out
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The `backfill` subcommand: parses the arguments, loads the config, runs (Ctrl-C
/// stops it and removes `OUTPUT.tmp`) and prints the summary.
pub async fn command(
    config: &Path,
    from: &str,
    to: &str,
    output: &Path,
    operation: Option<&str>,
) -> Result<(), Failure> {
    let from = DateArg::parse("--from", from).map_err(Failure::Usage)?;
    let to = DateArg::parse("--to", to).map_err(Failure::Usage)?;
    let (config, warnings) =
        Config::from_file(config, &ProcessEnv).map_err(|e| Failure::Usage(e.to_string()))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let req = Request {
        from,
        to,
        output: output.to_path_buf(),
        operation: operation.map(str::to_string),
    };
    let settings = Settings::default();
    let summary = tokio::select! {
        r = run(&config, &req, &settings, Timestamp::now()) => r?,
        // Dropping the run removes OUTPUT.tmp; the family files are already unlinked.
        _ = tokio::signal::ctrl_c() => return Err(Failure::Interrupted),
    };
    print!("{}", report(&summary));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    // The one escaper, under the name this writer's tests have always used.
    use crate::metrics::text::escaped as escape;
    use crate::wolkvox::row::Field;
    use jiff::civil::date;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn dates_and_instants() {
        assert_eq!(
            DateArg::parse("--from", "2026-04-01").unwrap(),
            DateArg::Day(date(2026, 4, 1))
        );
        assert_eq!(
            DateArg::parse("--from", " 2026-04-01T03:00:00Z ").unwrap(),
            DateArg::Instant(ts("2026-04-01T03:00:00Z"))
        );
        assert_eq!(
            DateArg::parse("--to", "2026-04-01T00:00:00-05:00").unwrap(),
            DateArg::Instant(ts("2026-04-01T05:00:00Z"))
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-4-1",
            "20260401",
            "2026-04-01T00:00:00",
            "2026-04-01 10:00",
        ] {
            let e = DateArg::parse("--from", bad).unwrap_err();
            assert!(e.starts_with("--from: "), "{e}");
            assert!(e.contains("YYYY-mm-dd"), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn days_are_local_midnights() {
        let day = DateArg::Day(date(2026, 4, 1));
        assert_eq!(
            day.resolve(&tz("America/Bogota")).unwrap(),
            ts("2026-04-01T05:00:00Z")
        );
        assert_eq!(
            day.resolve(&tz("America/Santiago")).unwrap(),
            ts("2026-04-01T03:00:00Z")
        );
        // Santiago skips 2026-09-06 00:00-00:59: that day starts at 01:00 (-03).
        let gap = DateArg::Day(date(2026, 9, 6));
        assert_eq!(
            gap.resolve(&tz("America/Santiago")).unwrap(),
            ts("2026-09-06T04:00:00Z")
        );
        // The fold day (2026-04-05) starts once, after the repeated hour of the 4th.
        let fold = DateArg::Day(date(2026, 4, 5));
        assert_eq!(
            fold.resolve(&tz("America/Santiago")).unwrap(),
            ts("2026-04-05T04:00:00Z")
        );
        // Instants ignore the zone and drop sub-second parts.
        let i = DateArg::Instant(ts("2026-04-01T00:00:00.75Z"));
        assert_eq!(
            i.resolve(&tz("Asia/Tokyo")).unwrap(),
            ts("2026-04-01T00:00:00Z")
        );
    }

    #[test]
    fn ranges_must_be_ordered_and_past() {
        let z = tz("America/Bogota");
        let now = ts("2026-05-01T00:00:00Z");
        let r = resolve_range(
            DateArg::Day(date(2026, 4, 1)),
            DateArg::Day(date(2026, 4, 2)),
            &z,
            now,
        )
        .unwrap();
        assert_eq!(r.duration(), SignedDuration::from_hours(24));
        let e = resolve_range(
            DateArg::Day(date(2026, 4, 2)),
            DateArg::Day(date(2026, 4, 2)),
            &z,
            now,
        )
        .unwrap_err();
        assert!(e.starts_with("--from (2026-04-02"), "{e}");
        let e = resolve_range(
            DateArg::Day(date(2026, 4, 2)),
            DateArg::Day(date(2026, 6, 1)),
            &z,
            now,
        )
        .unwrap_err();
        assert!(e.contains("in the future"), "{e}");
    }

    #[test]
    fn windows_align_to_the_interval_and_end_at_to() {
        let w = Windows::new(
            Range::new(ts("2026-04-01T00:02:00Z"), ts("2026-04-01T00:17:30Z")),
            Duration::from_secs(300),
        );
        // Ends: 00:05, 00:10, 00:15, 00:17:30.
        assert_eq!(w.count(), 4);
        assert_eq!(w.end_of(w.from), ts("2026-04-01T00:05:00Z"));
        assert_eq!(
            w.end_of(ts("2026-04-01T00:04:59Z")),
            ts("2026-04-01T00:05:00Z")
        );
        // A row at a window end belongs to the next window.
        assert_eq!(
            w.end_of(ts("2026-04-01T00:05:00Z")),
            ts("2026-04-01T00:10:00Z")
        );
        assert_eq!(w.end_of(ts("2026-04-01T00:16:00Z")), w.to);
        let aligned = Windows::new(
            Range::new(ts("2026-04-01T00:00:00Z"), ts("2026-04-02T00:00:00Z")),
            Duration::from_secs(300),
        );
        assert_eq!(aligned.count(), 288);
        let one = Windows::new(
            Range::new(ts("2026-04-01T00:00:00Z"), ts("2026-04-01T00:00:01Z")),
            Duration::from_secs(300),
        );
        assert_eq!(one.count(), 1);
        assert_eq!(one.end_of(one.from), one.to);
    }

    #[test]
    fn rows_in_a_fold_go_to_the_earlier_pass_and_skipped_ones_to_the_gap() {
        // 2026-04-05 00:00 (-03) falls back to 2026-04-04 23:00 (-04) in Santiago.
        let z = tz("America/Santiago");
        let fold = ts("2026-04-05T03:00:00Z");
        let wall = date(2026, 4, 4).at(23, 30, 0, 0);
        let first = fold - SignedDuration::from_mins(30);
        let both = Range::new(
            first - SignedDuration::from_hours(1),
            fold + SignedDuration::from_hours(2),
        );
        assert_eq!(row_instant(Some(wall), both, &z), Some(first));
        // Two ranges split inside the second pass both ask for wall time 23:30; only the
        // one holding the earlier pass counts the row.
        let split = fold + SignedDuration::from_mins(10);
        let before = Range::new(first - SignedDuration::from_hours(1), split);
        let after = Range::new(split, fold + SignedDuration::from_hours(2));
        assert_eq!(row_instant(Some(wall), before, &z), Some(first));
        assert_eq!(row_instant(Some(wall), after, &z), None);
        // A skipped wall time (2026-09-06 00:00-00:59): at the transition that skips it,
        // so in exactly one of two ranges that meet anywhere.
        let gap = ts("2026-09-06T04:00:00Z");
        let skipped = Some(date(2026, 9, 6).at(0, 30, 0, 0));
        let half = SignedDuration::from_mins(30);
        let around = Range::new(gap - half, gap + half);
        assert_eq!(row_instant(skipped, around, &z), Some(gap));
        assert_eq!(row_instant(skipped, Range::new(gap - half, gap), &z), None);
        assert_eq!(
            row_instant(skipped, Range::new(gap, gap + half), &z),
            Some(gap)
        );
        // Undated rows: the query's last second.
        assert_eq!(
            row_instant(None, after, &z),
            Some(after.end - SignedDuration::from_secs(1))
        );
        // Plain hours: the one instant, inside or not.
        let b = tz("America/Bogota");
        let r = Range::new(ts("2026-04-01T05:00:00Z"), ts("2026-04-02T05:00:00Z"));
        assert_eq!(
            row_instant(Some(date(2026, 4, 1).at(10, 0, 0, 0)), r, &b),
            Some(ts("2026-04-01T15:00:00Z"))
        );
        assert_eq!(
            row_instant(Some(date(2026, 4, 2).at(0, 0, 0, 0)), r, &b),
            None
        );
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
                .map(|f| family_name_of(f.0))
                .find(|f| name.starts_with(f))
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

    #[test]
    fn query_length_follows_the_traffic() {
        let day = 86_400;
        let t0 = ts("2026-04-01T00:00:00Z");
        let at = |h: i64| t0 + SignedDuration::from_hours(h);
        let hours = |a: i64, b: i64| Range::new(at(a), at(b));
        // No history: the last answer's density, aimed at 45,000 rows.
        let none = Recent::default();
        assert_eq!(none.next_span(hours(0, 24), 90_000, TARGET_ROWS), day / 2);
        // Quiet: grow, but at most fourfold.
        assert_eq!(none.next_span(hours(0, 24), 10, TARGET_ROWS), 4 * day);
        assert_eq!(none.next_span(hours(0, 24), 0, TARGET_ROWS), 4 * day);
        assert_eq!(
            none.next_span(
                Range::new(t0, t0 + SignedDuration::from_secs(1)),
                59_999,
                TARGET_ROWS
            ),
            1
        );
        // Yesterday: 1,000 rows an hour at night (0-6 h), 10,000 by day (6-24 h).
        let mut r = Recent::default();
        let mut total = 0;
        r.record(at(0), 0);
        for h in 1..=30 {
            total += if (h - 1) % 24 < 6 { 1_000 } else { 10_000 };
            r.record(at(h), total);
        }
        // Today so far (24-30 h) went like yesterday: at 06:00 the morning is coming,
        // and 45,000 rows is four and a half busy hours, not the 45 quiet ones the
        // last answer's density says.
        assert_eq!(r.next_span(hours(24, 30), 6_000, TARGET_ROWS), 4 * 3600);
        // Today twice as busy: half as long.
        assert_eq!(r.next_span(hours(24, 30), 12_000, TARGET_ROWS), 2 * 3600);
        assert_eq!(r.rows_at(at(4)), Some(4_000));
        assert_eq!(
            r.rows_at(at(4) + SignedDuration::from_mins(30)),
            Some(4_000)
        );
        // Old ends are dropped: two days are kept.
        for h in 31..=60 {
            total += 1_000;
            r.record(at(h), total);
        }
        assert_eq!(r.rows_at(at(11)), None);
        assert_eq!(r.rows_at(at(12)), Some(66_000));
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
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn output_is_renamed_only_when_finished() {
        let dir =
            std::env::temp_dir().join(format!("wolkvox-backfill-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.om");
        {
            let mut o = Output::create(&path).unwrap();
            writeln!(o.writers[F_ROWS], "x").unwrap();
            assert!(tmp_path(&path).exists());
            // Dropped unfinished.
        }
        assert!(!tmp_path(&path).exists());
        assert!(!path.exists());
        let mut o = Output::create(&path).unwrap();
        writeln!(
            o.writers[F_ROWS],
            "wolkvox_ivr_rows_total{{operation=\"a\"}} 0 1"
        )
        .unwrap();
        let n = o.finish().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(n, text.len() as u64);
        assert!(text.starts_with("# HELP wolkvox_ivr_interaction_duration_seconds "));
        assert!(text.contains("# TYPE wolkvox_ivr_rows counter\nwolkvox_ivr_rows_total{operation=\"a\"} 0 1\n# HELP wolkvox_ivr_rows_invalid"));
        assert!(text.ends_with("# EOF\n"));
        assert!(!tmp_path(&path).exists());
        // Only the output is left in the directory: the family files were unlinked.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.om")]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
