//! Whether an operation's `timezone` is the zone its report's dates are written in,
//! judged from the rows of one small query, two when the first has no rows. Pure: rows
//! and `now` in, a [`Verdict`] out; [`next`] says when to ask the second query.
//!
//! The rules, strongest first (docs/configuration.md, "How check reads the zone"):
//! 1. **Call start in `conn_id`.** A `conn_id` shaped `6736.4628.1040.1768782812.1814`
//!    carries the call's start as UTC epoch seconds in its fourth field (inferred from
//!    another Wolkvox report, not documented). A call's earliest row is dated at that
//!    start in local time, so `date - start`, rounded to the quarter hour, is the offset
//!    the dates are written in: compared with the zone's own offset at that instant.
//! 2. **Rows dated later than now** in the configured zone prove its clock is behind
//!    the data's: the zone is too far west. How far is only a lower bound.
//! 3. **Rows in the last 10 minutes, none later**: the data's clock is within minutes
//!    of the zone's. Needs traffic before and after now (in the data's clock) to say so.
//!
//! Anything else is "cannot tell", never OK.

use std::collections::HashMap;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::window::{self, Range};
use crate::wolkvox::row::parse_date;

/// Zone offsets are whole quarter hours (every zone in the tz database today).
const QUARTER: i64 = 15 * 60;
/// A call's earliest row may be dated this far from the start in its `conn_id` and
/// still say the offset (the simulator dates it at the start exactly).
const MAX_RESIDUAL: i64 = 5 * 60;
/// Rule 1 speaks only with this many calls whose `conn_id` carries a start...
const MIN_CALLS: usize = 3;
/// ...and this share of them agreeing (in tenths).
const AGREE_TENTHS: usize = 9;
/// A call start further back than this is not one of the rows asked for: not a time.
const MAX_CALL_AGE: SignedDuration = SignedDuration::from_hours(72);
/// Clocks differ a little: a row dated up to this much after now is not "later".
const SKEW: SignedDuration = SignedDuration::from_mins(2);
/// The queries' length before the minute `now` is in, and how far past it the first
/// goes (rule 2's reach: a zone behind the data's by less shows no later rows).
const SPAN: SignedDuration = SignedDuration::from_mins(10);
const AHEAD: SignedDuration = SignedDuration::from_mins(20);

/// The queries `check` can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The last 10 minutes and the next 20: the one query every `check` asks. The API
    /// serves rows up to about now, so the 20 minutes are empty unless the zone is
    /// behind the data's; in the right zone this costs no more than the 10 minutes.
    Recent,
    /// The same 10 minutes 26 hours before: in the past of every zone (UTC+14 and
    /// UTC-12 are 26 hours apart), so it holds rows whatever zone the data is in, for
    /// rule 1 to read when the first query had none.
    DayBefore,
}

impl Probe {
    /// The probe's instants; the query asks for them as wall times in the zone.
    pub fn range(self, now: Timestamp) -> Range {
        let end = window::align_down(now, std::time::Duration::from_secs(60));
        match self {
            Probe::Recent => Range::new(end - SPAN, end + AHEAD),
            Probe::DayBefore => {
                let end = end - SignedDuration::from_hours(26);
                Range::new(end - SPAN, end)
            }
        }
    }

    /// The last 10 minutes alone, as `check` names them.
    pub fn last_minutes(now: Timestamp) -> Range {
        let end = window::align_down(now, std::time::Duration::from_secs(60));
        Range::new(end - SPAN, end)
    }
}

/// What the rows seen so far say about the zone: their count, how many are of the last
/// 10 minutes, the newest date, and per call (keyed by a hash: no `conn_id` is kept)
/// its start and earliest date.
#[derive(Debug)]
pub struct Sample {
    /// `now` in the configured zone, plus [`SKEW`]: a row dated after it is "later".
    later_than: DateTime,
    /// [`Probe::last_minutes`] as wall times in the zone, end excluded.
    last: (DateTime, DateTime),
    rows: usize,
    in_last: usize,
    newest: Option<DateTime>,
    calls: HashMap<u64, Call>,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    /// UTC epoch seconds of the call's start, from its `conn_id`.
    start: i64,
    /// The least `date - start` over its rows, in seconds, `date` read as if UTC.
    gap: i64,
}

impl Sample {
    pub fn new(zone: &TimeZone, now: Timestamp) -> Sample {
        let last = Probe::last_minutes(now);
        Sample {
            later_than: zone.to_datetime(now) + SKEW,
            last: (zone.to_datetime(last.start), zone.to_datetime(last.end)),
            rows: 0,
            in_last: 0,
            newest: None,
            calls: HashMap::new(),
        }
    }

    /// Rows dated in the last 10 whole minutes.
    pub fn rows_in_last_minutes(&self) -> usize {
        self.in_last
    }

    /// One row of an answer, as the report wrote it.
    pub fn add(&mut self, date: &str, conn_id: &str) {
        self.rows += 1;
        let Some(date) = parse_date(date) else {
            return;
        };
        self.in_last += usize::from(self.last.0 <= date && date < self.last.1);
        self.newest = self.newest.max(Some(date));
        let Some(start) = call_start(conn_id) else {
            return;
        };
        let gap = civil_seconds(date) - start;
        let key = xxhash_rust::xxh3::xxh3_64(conn_id.trim().as_bytes());
        self.calls
            .entry(key)
            .and_modify(|c| c.gap = c.gap.min(gap))
            .or_insert(Call { start, gap });
    }
}

/// The call start in a `conn_id` of the shape `6736.4628.1040.1768782812.1814`: five
/// numbers, the fourth of 9 or 10 digits. Anything else carries none.
pub fn call_start(conn_id: &str) -> Option<i64> {
    let fields: Vec<&str> = conn_id.trim().split('.').collect();
    let numbers = fields.len() == 5
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.len() <= 10 && f.bytes().all(|b| b.is_ascii_digit()));
    if !numbers || !(9..=10).contains(&fields[3].len()) {
        return None;
    }
    fields[3].parse().ok()
}

/// Seconds from 1970-01-01 00:00:00 to `date` on the zone-less civil time line.
fn civil_seconds(date: DateTime) -> i64 {
    date.duration_since(DateTime::constant(1970, 1, 1, 0, 0, 0, 0))
        .as_secs()
}

/// An offset in seconds east of UTC, as `UTC-05:00`.
pub fn offset_text(seconds: i64) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let m = seconds.unsigned_abs() / 60;
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// What `check` says about an operation's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Rule 1: the calls' starts put the dates at the zone's own offset (seconds).
    Fits { offset: i64 },
    /// Rule 3: rows in the last 10 minutes and none dated later.
    Current,
    /// Rule 1: the dates are at `data`, the zone was at `zone`, at `at`.
    Wrong { data: i64, zone: i64, at: Timestamp },
    /// Rule 2 alone: the dates are at `at_least` or further east; the zone is at `zone`.
    Behind { at_least: i64, zone: i64 },
    /// No rule is reliable with these rows.
    CannotTell(String),
}

impl Verdict {
    /// A zone shown wrong fails `check`; "cannot tell" does not.
    pub fn is_wrong(&self) -> bool {
        matches!(self, Verdict::Wrong { .. } | Verdict::Behind { .. })
    }

    /// The one line `check` prints for it; `zone_name` is the configured zone.
    pub fn line(&self, zone_name: &str) -> String {
        match self {
            Verdict::Fits { offset } => format!(
                "zone OK: the call start times in conn_id put the report's dates at {}, {zone_name}'s offset",
                offset_text(*offset)
            ),
            Verdict::Current => format!(
                "zone OK: rows in the last 10 minutes in {zone_name} and none dated later (no call start time in conn_id to check the offset exactly)"
            ),
            Verdict::Wrong { data, zone, at } => format!(
                "zone WRONG: the call start times in conn_id put the report's dates at {} ({}), not at {zone_name}'s {}: set `timezone`",
                offset_text(*data),
                zones_text(*data, *at),
                offset_text(*zone)
            ),
            Verdict::Behind { at_least, zone } => format!(
                "zone WRONG: rows are dated later than now in {zone_name} ({}), so the report's dates are at {} or further east (no call start time in conn_id to say exactly): set `timezone`",
                offset_text(*zone),
                offset_text(*at_least)
            ),
            Verdict::CannotTell(why) => format!("zone: cannot tell ({why})"),
        }
    }
}

/// What rule 1 makes of the sample.
enum ByCalls {
    /// Too few calls with a start in their `conn_id`.
    Silent,
    /// Enough, but they do not agree on one offset.
    Disagree,
    Said(Verdict),
}

fn by_calls(sample: &Sample, zone: &TimeZone, now: Timestamp) -> ByCalls {
    let mut calls = Vec::new();
    for call in sample.calls.values() {
        let Ok(start) = Timestamp::from_second(call.start) else {
            continue;
        };
        if start > now + SKEW || start < now - MAX_CALL_AGE {
            continue;
        }
        let offset = (call.gap as f64 / QUARTER as f64).round() as i64 * QUARTER;
        let fits =
            (call.gap - offset).abs() <= MAX_RESIDUAL && (-12 * 3600..=14 * 3600).contains(&offset);
        let own = i64::from(zone.to_offset(start).seconds());
        calls.push((start, fits.then_some(offset), own));
    }
    if calls.len() < MIN_CALLS {
        return ByCalls::Silent;
    }
    let enough = |n: usize| n * 10 >= calls.len() * AGREE_TENTHS;
    // Each call against the zone's offset at its own start: right across a DST change.
    let matching = calls.iter().filter(|(_, o, own)| *o == Some(*own)).count();
    if enough(matching) {
        let newest = calls.iter().max_by_key(|c| c.0).map_or(0, |c| c.2);
        return ByCalls::Said(Verdict::Fits { offset: newest });
    }
    let mut votes: HashMap<i64, usize> = HashMap::new();
    for offset in calls.iter().filter_map(|c| c.1) {
        *votes.entry(offset).or_default() += 1;
    }
    match votes.into_iter().max_by_key(|(o, n)| (*n, *o)) {
        Some((data, n)) if enough(n) => {
            let (at, _, own) = calls
                .iter()
                .filter(|c| c.1 == Some(data))
                .max_by_key(|c| c.0)
                .copied()
                .unwrap_or((now, None, 0));
            ByCalls::Said(Verdict::Wrong {
                data,
                zone: own,
                at,
            })
        }
        _ => ByCalls::Disagree,
    }
}

/// The verdict from the rows of the probes `asked` so far (in order, [`Probe::Recent`]
/// first), or the probe to ask next. At most two probes are asked.
pub fn next(
    sample: &Sample,
    asked: &[Probe],
    zone: &TimeZone,
    now: Timestamp,
) -> Result<Verdict, Probe> {
    let calls = by_calls(sample, zone, now);
    if let ByCalls::Said(v) = calls {
        return Ok(v);
    }
    let own = i64::from(zone.to_offset(now).seconds());
    if let Some(newest) = sample.newest
        && newest > sample.later_than
    {
        // The data's clock is at least this far ahead; offsets are whole quarters.
        let ahead = newest.duration_since(sample.later_than).as_secs();
        let quarters = (ahead + QUARTER - 1) / QUARTER;
        return Ok(Verdict::Behind {
            at_least: own + quarters * QUARTER,
            zone: own,
        });
    }
    let no_start = if matches!(calls, ByCalls::Disagree) {
        "the call start times in conn_id disagree"
    } else {
        "no call start time in conn_id"
    };
    match asked {
        // Rows up to now and none later: rule 3.
        [Probe::Recent] if sample.rows > 0 => Ok(Verdict::Current),
        [Probe::Recent] => Err(Probe::DayBefore),
        _ if sample.rows > 0 => Ok(Verdict::CannotTell(format!(
            "{no_start}; no rows in the last 10 minutes but rows 26 hours before: the zone may be ahead of the data's, or the operation quiet now"
        ))),
        _ => Ok(Verdict::CannotTell(
            "no rows in the last 10 minutes, nor 26 hours before, to read it from".to_string(),
        )),
    }
}

/// Zones named first when several have the offset: the Latin American zones Wolkvox
/// operations run in (docs/wolkvox-api.md), then a few others clients use.
const FIRST: &[&str] = &[
    "America/Bogota",
    "America/Lima",
    "America/Panama",
    "America/Guayaquil",
    "America/Mexico_City",
    "America/Guatemala",
    "America/Costa_Rica",
    "America/El_Salvador",
    "America/Tegucigalpa",
    "America/Caracas",
    "America/La_Paz",
    "America/Santo_Domingo",
    "America/Puerto_Rico",
    "America/Santiago",
    "America/Argentina/Buenos_Aires",
    "America/Sao_Paulo",
    "America/Montevideo",
    "America/Asuncion",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/Madrid",
    "UTC",
];

/// How many zone names a line shows.
const SHOWN: usize = 4;

/// The zones at `offset` (seconds) at `at`: [`FIRST`] in its order, then the tz
/// database's `Area/Place` names in theirs; the first [`SHOWN`] and whether there are more.
pub fn zones_at(offset: i64, at: Timestamp) -> (Vec<String>, bool) {
    let fits = |name: &str| {
        TimeZone::get(name).is_ok_and(|z| i64::from(z.to_offset(at).seconds()) == offset)
    };
    let areas = [
        "Africa/",
        "America/",
        "Antarctica/",
        "Asia/",
        "Atlantic/",
        "Australia/",
        "Europe/",
        "Indian/",
        "Pacific/",
    ];
    let mut rest: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.to_string())
        .filter(|n| areas.iter().any(|a| n.starts_with(a)) && !FIRST.contains(&n.as_str()))
        .collect();
    rest.sort();
    let mut names = FIRST
        .iter()
        .map(|n| n.to_string())
        .chain(rest)
        .filter(|n| fits(n));
    let shown: Vec<String> = names.by_ref().take(SHOWN).collect();
    let more = names.next().is_some();
    (shown, more)
}

fn zones_text(offset: i64, at: Timestamp) -> String {
    match zones_at(offset, at) {
        (names, _) if names.is_empty() => "no time zone has that offset".to_string(),
        (names, true) => format!("{} or another zone at that offset", names.join(", ")),
        (names, false) => names.join(", "),
    }
}

#[cfg(test)]
mod tests;
