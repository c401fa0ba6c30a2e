//! The status page's model: what `/` shows, as plain values worked out from the
//! statuses and `now`, with every time in its operation's zone. Pure: [`build`] takes
//! the clock as an argument; [`super::render`] turns the model into HTML.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::history::{Counts, Period, Window};
use super::{Status, TokenBudget};

/// How far back the charts go, from the newest window.
pub const CHART_SPAN: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub version: String,
    pub telemetry_path: String,
    /// When the page was made, in UTC.
    pub generated: String,
    pub up: usize,
    pub down: usize,
    pub pending: usize,
    pub ops: Vec<OpView>,
}

/// An operation's state, from its last cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Up,
    Down,
    /// No cycle has run in this process yet.
    Pending,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Pending => "pending",
        }
    }

    /// The page's `data-up` attribute.
    pub fn data_up(self) -> &'static str {
        match self {
            State::Up => "true",
            State::Down => "false",
            State::Pending => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpView {
    pub name: String,
    pub zone: String,
    pub state: State,
    pub ready: bool,
    pub watermark: Option<When>,
    pub last_success: Option<When>,
    pub last_error: Option<ErrorView>,
    pub hour: Comparison,
    pub budget: Budget,
    /// Newest first.
    pub cycles: Vec<CycleRow>,
    pub charts: Charts,
    /// When this process began keeping the cycles and the history, local time.
    pub since: String,
}

/// An instant in the operation's zone, and how long ago it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub local: String,
    pub ago: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorView {
    pub when: When,
    pub reason: String,
    pub text: String,
}

/// The last hour before the watermark, against the same hour a day earlier.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub last_hour: PeriodView,
    pub yesterday: PeriodView,
    /// Rows, in percent of yesterday's; only when both hours are fully known.
    pub rows_change: Option<String>,
    /// Hang-up share, in percentage points.
    pub share_change: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeriodView {
    /// `13:05–14:05`, local time; empty without a watermark.
    pub range: String,
    pub counts: Counts,
    pub share: Option<String>,
    pub coverage: Coverage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    Full,
    /// The history begins inside the period, at this local time.
    Since(String),
    /// The history has nothing of this period (it is shorter, or empty).
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub limit: Option<u64>,
    pub used: Option<u64>,
    pub left: Option<u64>,
    /// When `token_info` said so; `None` while it has not answered.
    pub as_of: Option<When>,
    /// Requests this exporter sent today (the operation's day).
    pub exporter_today: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRow {
    pub started: String,
    pub range: String,
    pub parts: u64,
    pub new_rows: u64,
    pub duplicates: u64,
    pub requests: u64,
    pub took: String,
    pub ok: bool,
    /// `ok`, or the error's class.
    pub result: String,
    /// The error's safe text; empty when ok.
    pub detail: String,
}

/// What the two charts draw: the windows of `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Charts {
    pub from: Timestamp,
    pub to: Timestamp,
    pub interval: i64,
    pub windows: Vec<Window>,
    /// `last 24 h`, or `since start, 14:02` when the history is shorter.
    pub caption: String,
    pub tz: TimeZone,
}

/// The page for `statuses` at `now`.
pub fn build(statuses: &[Status], now: Timestamp, version: &str, telemetry_path: &str) -> Page {
    let ops: Vec<OpView> = statuses.iter().map(|s| op_view(s, now)).collect();
    let count = |st: State| ops.iter().filter(|o| o.state == st).count();
    Page {
        version: version.to_string(),
        telemetry_path: telemetry_path.to_string(),
        generated: now.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        up: count(State::Up),
        down: count(State::Down),
        pending: count(State::Pending),
        ops,
    }
}

pub fn op_view(s: &Status, now: Timestamp) -> OpView {
    let tz = &s.tz;
    let when = |t: Timestamp| When {
        local: local(t, tz),
        ago: ago(now, t),
    };
    OpView {
        name: s.name.clone(),
        zone: s.zone.clone(),
        state: match s.up {
            Some(true) => State::Up,
            Some(false) => State::Down,
            None => State::Pending,
        },
        ready: s.first_cycle_done,
        watermark: s.watermark.map(when),
        last_success: s.last_success.map(when),
        last_error: s.last_error.as_ref().map(|e| ErrorView {
            when: when(e.at),
            reason: e.reason.clone(),
            text: e.text.clone(),
        }),
        hour: comparison(s, tz),
        budget: budget(s.token.as_ref(), s.requests_today, now, tz),
        cycles: s
            .cycles
            .newest_first()
            .map(|c| CycleRow {
                started: short(c.started, tz, now),
                range: format!(
                    "{} → {} ({})",
                    short(c.start, tz, now),
                    short(c.end, tz, now),
                    length(c.end.duration_since(c.start))
                ),
                parts: c.tally.parts,
                new_rows: c.tally.new_rows,
                duplicates: c.tally.duplicates,
                requests: c.tally.requests,
                took: took(c.took),
                ok: c.error.is_none(),
                result: c
                    .error
                    .as_ref()
                    .map_or_else(|| "ok".to_string(), |e| e.0.clone()),
                detail: c.error.as_ref().map(|e| e.1.clone()).unwrap_or_default(),
            })
            .collect(),
        charts: charts(s),
        since: local(s.since, tz),
    }
}

fn comparison(s: &Status, tz: &TimeZone) -> Comparison {
    let view = |p: Option<(Timestamp, Timestamp, Period)>| match p {
        None => PeriodView {
            range: String::new(),
            counts: Counts::default(),
            share: None,
            coverage: Coverage::Missing,
        },
        Some((from, to, p)) => PeriodView {
            range: format!(
                "{}–{}",
                tz.to_datetime(from).strftime("%H:%M"),
                tz.to_datetime(to).strftime("%H:%M")
            ),
            counts: p.counts,
            share: p.counts.share().map(percent),
            coverage: match p.covered_from {
                None => Coverage::Missing,
                Some(c) if c <= from => Coverage::Full,
                Some(c) => Coverage::Since(tz.to_datetime(c).strftime("%H:%M").to_string()),
            },
        },
    };
    let period = |from: Timestamp, to: Timestamp| Some((from, to, s.history.between(from, to)));
    let (last, yesterday) = match s.watermark {
        Some(w) => (
            period(minus(w, 3600), w),
            period(minus(w, 25 * 3600), minus(w, 24 * 3600)),
        ),
        None => (None, None),
    };
    let (last, yesterday) = (view(last), view(yesterday));
    let both = last.coverage == Coverage::Full && yesterday.coverage == Coverage::Full;
    let rows_change = (both && yesterday.counts.rows > 0).then(|| {
        let change = (last.counts.rows as f64 / yesterday.counts.rows as f64 - 1.0) * 100.0;
        format!("{change:+.0} %")
    });
    let share_change = match (both, last.counts.share(), yesterday.counts.share()) {
        (true, Some(a), Some(b)) => Some(format!("{:+.1} pts", (a - b) * 100.0)),
        _ => None,
    };
    Comparison {
        last_hour: last,
        yesterday,
        rows_change,
        share_change,
    }
}

fn budget(
    token: Option<&TokenBudget>,
    exporter_today: u64,
    now: Timestamp,
    tz: &TimeZone,
) -> Budget {
    let limit = token.and_then(|t| t.limit);
    let used = token.and_then(|t| t.used_today);
    Budget {
        limit,
        used,
        left: limit.zip(used).map(|(l, u)| l.saturating_sub(u)),
        as_of: token.map(|t| When {
            local: local(t.at, tz),
            ago: ago(now, t.at),
        }),
        exporter_today,
    }
}

fn charts(s: &Status) -> Charts {
    let h = &s.history;
    let interval = h.interval().as_secs() as i64;
    let to = h.newest().unwrap_or(s.since);
    let day_before = minus(to, CHART_SPAN);
    let since = h.since().unwrap_or(to);
    let (from, caption) = if since > day_before {
        (
            since,
            format!("since start, {}", s.tz.to_datetime(since).strftime("%H:%M")),
        )
    } else {
        (day_before, "last 24 h".to_string())
    };
    Charts {
        from,
        to,
        interval,
        windows: h
            .windows()
            .filter(|w| w.end > from && w.end <= to)
            .copied()
            .collect(),
        caption,
        tz: s.tz.clone(),
    }
}

/// `t - secs`, or the earliest instant there is.
fn minus(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_sub(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MIN)
}

/// `2026-04-10 14:05:00 -05`: the wall time in `tz` and its offset then.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    format!(
        "{} {}",
        tz.to_datetime(t).strftime("%Y-%m-%d %H:%M:%S"),
        tz.to_offset(t)
    )
}

/// The local time of day when `t` falls on `now`'s local date, the date and time
/// otherwise.
pub fn short(t: Timestamp, tz: &TimeZone, now: Timestamp) -> String {
    let dt = tz.to_datetime(t);
    if dt.date() == tz.to_datetime(now).date() {
        dt.strftime("%H:%M:%S").to_string()
    } else {
        dt.strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// `4 min ago`, to the largest two units; an instant after `now` is `just now`.
pub fn ago(now: Timestamp, t: Timestamp) -> String {
    let secs = now.duration_since(t).as_secs();
    if secs <= 0 {
        return "just now".to_string();
    }
    format!("{} ago", length(SignedDuration::from_secs(secs)))
}

/// `45 s`, `5 min`, `4 min 5 s`, `3 h 12 min`, `2 d 4 h`.
pub fn length(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let two = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    match s {
        0..60 => format!("{s} s"),
        60..3600 => two(s / 60, "min", s % 60, "s"),
        3600..86_400 => two(s / 3600, "h", s % 3600 / 60, "min"),
        _ => two(s / 86_400, "d", s % 86_400 / 3600, "h"),
    }
}

/// A cycle's duration: `340 ms`, `2.5 s`, `1 min 5 s`.
pub fn took(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", d.as_secs_f64()),
        _ => length(SignedDuration::from_secs(d.as_secs() as i64)),
    }
}

/// `18.2 %`.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// `12,345,678`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
