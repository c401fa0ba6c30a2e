//! Deterministic generator of realistic IVR traffic for one simulated tenant.
//!
//! Everything here is a pure function of (traffic settings, zone, minute): asking for
//! the same minute twice yields the same rows, which is what lets tests compare the
//! exporter's totals with [`super::Simulator::rows_between`].

use jiff::civil::{DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::{DateFormat, SimRow, Traffic};

/// SplitMix64: tiny, fast, good enough for fake traffic, and no extra crate.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Poisson-distributed count: Knuth for small means, a rounded normal otherwise
    /// (exactness does not matter, only plausibility and determinism).
    pub(crate) fn poisson(&mut self, mean: f64) -> u32 {
        if mean.is_nan() || mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut product = self.f64();
            let mut count = 0u32;
            while product > limit && count < 1_000 {
                product *= self.f64();
                count += 1;
            }
            count
        } else {
            // Box-Muller; 1 - f64() is in (0, 1], so ln() is finite.
            let u1 = 1.0 - self.f64();
            let u2 = self.f64();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (mean + z * mean.sqrt()).round().max(0.0) as u32
        }
    }
}

/// Folds several numbers into one well-mixed seed.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    let mut acc = 0x243F_6A88_85A3_08D3u64;
    for &part in parts {
        acc = SplitMix64::new(acc ^ part).next_u64();
    }
    acc
}

/// Stable number for a zone, so two tenants with the same seed in different zones
/// still get different traffic.
pub(crate) fn zone_key(zone: &TimeZone) -> u64 {
    let name = zone.iana_name().unwrap_or("");
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// Where a menu option sends the call.
#[derive(Clone, Copy, Debug)]
enum Next {
    /// Another routing point (index into [`POOL`]); `dn_transfer` is its id.
    Rp(usize),
    /// An agent queue or voicemail extension.
    Queue(&'static str),
    /// The call ends here.
    End,
}

#[derive(Debug)]
struct MenuOption {
    code: &'static str,
    weight: u32,
    next: Next,
}

#[derive(Debug)]
struct RoutingPoint {
    id: &'static str,
    name: &'static str,
    /// Typical share of callers hanging up here.
    base_hangup: f64,
    options: &'static [MenuOption],
}

const fn opt(code: &'static str, weight: u32, next: Next) -> MenuOption {
    MenuOption { code, weight, next }
}

/// A Colombian contact center's IVR. The first five are always active; a seed turns
/// on 0 to 3 more, so tenants differ. Names carry accents, quotes, an apostrophe and a
/// backslash on purpose: the exporter must take them as received.
static POOL: [RoutingPoint; 8] = [
    RoutingPoint {
        id: "1001",
        name: "Menú Principal",
        base_hangup: 0.06,
        options: &[
            opt("1", 26, Next::Rp(1)),
            opt("2", 24, Next::Rp(2)),
            opt("3", 14, Next::Rp(3)),
            opt("4", 10, Next::Rp(4)),
            opt("5", 8, Next::Rp(5)),
            opt("AGENTE", 8, Next::Queue("3000")),
            opt("PULSE", 7, Next::Queue("3000")),
            opt("CUELGA_LLAMADA", 3, Next::End),
        ],
    },
    RoutingPoint {
        id: "1002",
        name: "Ventas y Renovación",
        base_hangup: 0.08,
        options: &[
            opt("1", 35, Next::Queue("3001")),
            opt("2", 30, Next::Queue("3002")),
            opt("AGENTE", 20, Next::Queue("3003")),
            opt("PULSE", 10, Next::End),
            opt("CUELGA_LLAMADA", 5, Next::End),
        ],
    },
    RoutingPoint {
        id: "1003",
        name: "Soporte Técnico",
        base_hangup: 0.12,
        options: &[
            opt("1", 30, Next::Queue("3011")),
            opt("2", 25, Next::Queue("3012")),
            opt("AGENTE", 20, Next::Queue("3013")),
            opt("BUZON", 10, Next::Queue("7001")),
            opt("PULSE", 10, Next::End),
            opt("CUELGA_LLAMADA", 5, Next::End),
        ],
    },
    RoutingPoint {
        id: "1004",
        name: "Cobranzas \"Mora\"",
        base_hangup: 0.22,
        options: &[
            opt("AGENTE", 40, Next::Queue("3021")),
            opt("NO_PASA_AGENTE", 25, Next::End),
            opt("CUELGA_LLAMADA", 20, Next::End),
            opt("PULSE", 15, Next::End),
        ],
    },
    RoutingPoint {
        id: "1005",
        name: "Atención al Cliente - PQR's",
        base_hangup: 0.10,
        options: &[
            opt("AGENTE", 45, Next::Queue("3031")),
            opt("BUZON", 20, Next::Queue("7002")),
            opt("CV_BUZON", 15, Next::End),
            opt("PULSE", 15, Next::End),
            opt("NO_PASA_AGENTE", 5, Next::End),
        ],
    },
    RoutingPoint {
        id: "1006",
        name: "Validación de Identidad (Cédula)",
        base_hangup: 0.09,
        options: &[
            opt("1", 55, Next::Rp(7)),
            opt("2", 20, Next::Queue("3042")),
            opt("AGENTE", 15, Next::Queue("3041")),
            opt("PULSE", 10, Next::End),
        ],
    },
    RoutingPoint {
        id: "1007",
        name: "Horario No Hábil",
        base_hangup: 0.15,
        options: &[
            opt("BUZON", 50, Next::Queue("7003")),
            opt("CV_BUZON", 20, Next::End),
            opt("CUELGA_LLAMADA", 30, Next::End),
        ],
    },
    RoutingPoint {
        id: "1008",
        name: "Facturación\\Pagos en Línea",
        base_hangup: 0.07,
        options: &[
            opt("1", 40, Next::Queue("3051")),
            opt("2", 30, Next::Queue("3052")),
            opt("AGENTE", 20, Next::Queue("3053")),
            opt("PULSE", 10, Next::End),
        ],
    },
];

/// Index of the after-hours routing point in [`POOL`].
const AFTER_HOURS: usize = 6;

/// How a row writes its `time` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimeStyle {
    Seconds,
    HourMinSec,
    MinSec,
}

/// One generated row, kept compact (static strings, numbers) so caching weeks of
/// traffic stays cheap; [`GenRow::to_sim_row`] builds the strings when served.
#[derive(Clone, Debug)]
pub(crate) struct GenRow {
    pub(crate) instant: Timestamp,
    pub(crate) at: DateTime,
    /// `at` as seconds on a civil time line ([`civil_seconds`]): cheap to compare and
    /// sort when a query covers weeks of rows.
    pub(crate) civil: i64,
    /// Seconds since the epoch from which the row is served ([`GenRow::visible_from`]).
    pub(crate) visible_secs: i64,
    /// Order of the row inside its minute, for stable sorting.
    pub(crate) index: u32,
    rp: usize,
    option: &'static str,
    dn: &'static str,
    result: &'static str,
    secs: u32,
    style: TimeStyle,
    compact_date: bool,
    ani: u64,
    /// 0 means "no customer identified": an empty `customer_id`.
    customer: u64,
    conn: u64,
}

impl GenRow {
    pub(crate) fn customer_matches(&self, wanted: &str) -> bool {
        if self.customer == 0 {
            wanted.is_empty()
        } else {
            wanted == self.customer.to_string()
        }
    }

    /// When the report can list the row: once the interaction at that routing point
    /// has ended, like a real call-detail table written at hang-up or transfer.
    pub(crate) fn visible_from(&self) -> Timestamp {
        self.instant
            .checked_add(SignedDuration::from_secs(i64::from(self.secs)))
            .unwrap_or(self.instant)
    }

    pub(crate) fn to_sim_row(&self) -> SimRow {
        let rp = &POOL[self.rp];
        let date = if self.compact_date {
            format_compact(self.at)
        } else {
            format_dashed(self.at)
        };
        let time = match self.style {
            TimeStyle::Seconds => self.secs.to_string(),
            TimeStyle::HourMinSec => format!(
                "{:02}:{:02}:{:02}",
                self.secs / 3600,
                self.secs / 60 % 60,
                self.secs % 60
            ),
            TimeStyle::MinSec => format!("{:02}:{:02}", self.secs / 60, self.secs % 60),
        };
        SimRow {
            rp_id: rp.id.to_string(),
            rp_name: rp.name.to_string(),
            cod_opc_menu: self.option.to_string(),
            dn_transfer: self.dn.to_string(),
            date,
            result: self.result.to_string(),
            ani: self.ani.to_string(),
            time,
            customer_id: if self.customer == 0 {
                String::new()
            } else {
                self.customer.to_string()
            },
            conn_id: self.conn.to_string(),
            at: self.at,
            visible_from: Some(self.visible_from()),
        }
    }
}

/// Seconds from 1970-01-01 00:00:00 on the civil (zone-less) time line; sub-seconds
/// dropped. Days from the civil date by Howard Hinnant's algorithm.
pub(crate) fn civil_seconds(at: DateTime) -> i64 {
    let (month, day) = (i64::from(at.month()), i64::from(at.day()));
    let year = i64::from(at.year()) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400
        + i64::from(at.hour()) * 3600
        + i64::from(at.minute()) * 60
        + i64::from(at.second())
}

pub(crate) fn format_dashed(at: DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

pub(crate) fn format_compact(at: DateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Fake but plausible caller data, derived from a number so it is reproducible:
/// a Colombian mobile or Bogotá landline, sometimes with the country code.
pub(crate) fn fake_ani(h: u64) -> u64 {
    let digits = (h >> 8) % 10_000_000;
    let number = match h % 10 {
        0..=6 => 3_000_000_000 + ((h >> 40) % 3) * 100_000_000 + (h >> 16) % 100_000_000,
        7 | 8 => 6_010_000_000 + digits,
        _ => 573_000_000_000 + (h >> 16) % 300_000_000,
    };
    number.max(1)
}

/// A cédula-like customer number, or 0 (unidentified caller) about a quarter of the time.
pub(crate) fn fake_customer(h: u64) -> u64 {
    match h % 8 {
        0 | 1 => 0,
        2..=4 => 10_000_000 + (h >> 8) % 90_000_000,
        _ => 1_000_000_000 + (h >> 8) % 200_000_000,
    }
}

/// Number of active routing points for this seed: 5 to 8.
fn active_count(seed: u64) -> usize {
    5 + (mix(&[seed, 0xA11C_E5ED]) % 4) as usize
}

/// Relative call volume by local hour: quiet nights, a busy morning, a lunch dip and a
/// second peak in the afternoon. Linear between the hourly points.
fn daily_curve(at: DateTime) -> f64 {
    const POINTS: [f64; 25] = [
        0.08, 0.06, 0.05, 0.05, 0.05, 0.08, 0.20, 0.60, 1.30, 1.70, 1.80, 1.70, 1.20, 1.10, 1.50,
        1.60, 1.50, 1.20, 0.80, 0.50, 0.35, 0.25, 0.15, 0.10, 0.08,
    ];
    let hour = at.hour().clamp(0, 23) as usize;
    let frac = f64::from(at.minute()) / 60.0;
    let level = POINTS[hour] + (POINTS[hour + 1] - POINTS[hour]) * frac;
    let weekday_factor = match at.weekday() {
        Weekday::Saturday => 0.6,
        Weekday::Sunday => 0.35,
        _ => 1.0,
    };
    // Floor: the demo must show data at 3 a.m. on a Sunday too.
    (level * weekday_factor).max(0.25)
}

fn is_after_hours(at: DateTime) -> bool {
    let hour = at.hour();
    !(7..20).contains(&hour)
}

/// A hang-up incident: one routing point loses most callers for ten minutes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Incident {
    /// The affected routing point's `rp_id`.
    pub rp_id: &'static str,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Hang-up probability at that routing point while it lasts (0.5 to 0.7).
    pub hangup_rate: f64,
}

/// The incident of one UTC hour, if any: most hours have one, decided by the seed.
pub(crate) fn incident_in_hour(seed: u64, hour: i64) -> Option<Incident> {
    let r = mix(&[seed, 0x1C1D_E175, hour as u64]);
    if r % 100 >= 80 {
        return None;
    }
    let start_minute = ((r >> 8) % 50) as i64;
    let rp = ((r >> 16) as usize) % active_count(seed);
    let hangup_rate = 0.5 + ((r >> 24) % 21) as f64 / 100.0;
    let start = Timestamp::from_second(hour * 3600 + start_minute * 60).ok()?;
    let end = Timestamp::from_second(hour * 3600 + start_minute * 60 + 600).ok()?;
    Some(Incident {
        rp_id: POOL[rp].id,
        start,
        end,
        hangup_rate,
    })
}

/// Hang-up probability at a routing point at a given instant: its base rate, drifting
/// slowly (a sine of a few hours' period), or the incident rate while one is on.
fn hangup_rate(traffic: &Traffic, rp: usize, unix_secs: i64) -> f64 {
    if traffic.incidents {
        let hour = unix_secs.div_euclid(3600);
        if let Some(incident) = incident_in_hour(traffic.seed, hour)
            && incident.rp_id == POOL[rp].id
            && (incident.start.as_second()..incident.end.as_second()).contains(&unix_secs)
        {
            return incident.hangup_rate;
        }
    }
    let h = mix(&[traffic.seed, rp as u64, 0xD81F_7000]);
    let period = 5.0 * 3600.0 + (h % (4 * 3600)) as f64;
    let phase = ((h >> 32) % 1000) as f64 / 1000.0;
    let drift = 0.05 * (std::f64::consts::TAU * (unix_secs as f64 / period + phase)).sin();
    (POOL[rp].base_hangup + drift).clamp(0.01, 0.95)
}

fn pick_option(
    rng: &mut SplitMix64,
    rp: usize,
    active: usize,
    allow_rp: bool,
) -> Option<&'static MenuOption> {
    let usable = |o: &&MenuOption| match o.next {
        Next::Rp(target) => allow_rp && target < active,
        _ => true,
    };
    let options = POOL[rp].options;
    let total: u64 = options
        .iter()
        .filter(usable)
        .map(|o| u64::from(o.weight))
        .sum();
    let mut ticket = rng.below(total);
    for option in options.iter().filter(usable) {
        let weight = u64::from(option.weight);
        if ticket < weight {
            return Some(option);
        }
        ticket -= weight;
    }
    None
}

fn vary_result(rng: &mut SplitMix64, hung_up: bool) -> &'static str {
    // Reports are not consistent about case and spacing; a few rows show it.
    if rng.chance(0.04) {
        if hung_up {
            ["Hung Up", "hung_up", "HUNG UP", "hungup", " hung up"][rng.below(5) as usize]
        } else {
            [" ok ", "OK", "Ok", "ok "][rng.below(4) as usize]
        }
    } else if hung_up {
        "hung up"
    } else {
        "ok"
    }
}

fn time_style(rng: &mut SplitMix64) -> TimeStyle {
    match rng.below(100) {
        0..=84 => TimeStyle::Seconds,
        85..=94 => TimeStyle::HourMinSec,
        _ => TimeStyle::MinSec,
    }
}

/// The rows of every call that started in one UTC minute (`unix_minute` = seconds
/// since the epoch / 60).
pub(crate) fn generate_minute(traffic: &Traffic, zone: &TimeZone, unix_minute: i64) -> Vec<GenRow> {
    let zkey = zone_key(zone);
    let base = mix(&[traffic.seed, zkey, unix_minute as u64]);
    let Ok(minute_start) = Timestamp::from_second(unix_minute.saturating_mul(60)) else {
        return Vec::new();
    };
    let local = zone.to_datetime(minute_start);
    let per_minute = if traffic.calls_per_minute.is_finite() {
        traffic.calls_per_minute.clamp(0.0, 5_000.0)
    } else {
        0.0
    };
    let calls = SplitMix64::new(base).poisson(per_minute * daily_curve(local));
    let active = active_count(traffic.seed);
    let after_hours = is_after_hours(local) && active > AFTER_HOURS;
    let compact_date = matches!(traffic.date_format, DateFormat::Compact);
    let mut rows = Vec::with_capacity(calls as usize * 2);
    for call in 0..calls.min(9_999) {
        // One stream per call, so a call's rows do not depend on the call count.
        let mut rng = SplitMix64::new(mix(&[base, u64::from(call)]));
        let mut secs_since_epoch = unix_minute * 60 + rng.below(60) as i64;
        let conn = (unix_minute as u64) * 10_000 + u64::from(call);
        let ani = fake_ani(rng.next_u64());
        let customer = fake_customer(rng.next_u64());
        let mut rp = if after_hours && rng.chance(0.75) {
            AFTER_HOURS
        } else {
            0
        };
        for step in 0..3 {
            let Some(option) = pick_option(&mut rng, rp, active, step < 2) else {
                break;
            };
            let hung_up = option.code == "CUELGA_LLAMADA"
                || rng.chance(hangup_rate(traffic, rp, secs_since_epoch));
            let secs = if hung_up {
                3 + rng.below(40) as u32
            } else if option.code == "PULSE" {
                // Waiting for a key press until the menu times out.
                12 + rng.below(20) as u32
            } else {
                let f = rng.f64();
                6 + (f * f * 110.0) as u32
            };
            let dn = match option.next {
                Next::Rp(target) => POOL[target].id,
                Next::Queue(dn) => dn,
                Next::End => "",
            };
            let Ok(instant) = Timestamp::from_second(secs_since_epoch) else {
                break;
            };
            let at = zone.to_datetime(instant);
            rows.push(GenRow {
                instant,
                at,
                civil: civil_seconds(at),
                visible_secs: secs_since_epoch + i64::from(secs),
                index: rows.len() as u32,
                rp,
                option: option.code,
                dn,
                result: vary_result(&mut rng, hung_up),
                secs,
                style: time_style(&mut rng),
                compact_date,
                ani,
                customer,
                conn,
            });
            secs_since_epoch += i64::from(secs);
            match option.next {
                Next::Rp(target) if !hung_up => rp = target,
                _ => break,
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prng_is_deterministic_and_uniformish() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = SplitMix64::new(1);
        let mean = (0..10_000).map(|_| r.f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let pmean = (0..5_000).map(|_| f64::from(r.poisson(4.0))).sum::<f64>() / 5_000.0;
        assert!((pmean - 4.0).abs() < 0.2, "{pmean}");
        let pbig = (0..5_000).map(|_| f64::from(r.poisson(100.0))).sum::<f64>() / 5_000.0;
        assert!((pbig - 100.0).abs() < 1.0, "{pbig}");
    }

    #[test]
    fn generated_rows_look_like_an_ivr() {
        let traffic = Traffic {
            seed: 42,
            calls_per_minute: 30.0,
            date_format: DateFormat::Dashed,
            incidents: true,
        };
        let zone = TimeZone::get("America/Bogota").unwrap_or(TimeZone::UTC);
        // 2026-11-25 15:00 UTC = 10:00 in Bogotá, a busy Wednesday morning.
        let start = 1_764_082_800 / 60;
        let rows: Vec<SimRow> = (start..start + 60)
            .flat_map(|m| generate_minute(&traffic, &zone, m))
            .map(|r| r.to_sim_row())
            .collect();
        assert!(rows.len() > 1000, "{}", rows.len());
        let rps: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.rp_id.as_str()).collect();
        assert!((5..=8).contains(&rps.len()), "{rps:?}");
        assert!(rows.iter().any(|r| r.cod_opc_menu == "PULSE"));
        assert!(rows.iter().any(|r| r.result == "hung up"));
        assert!(
            rows.iter()
                .any(|r| r.result != "ok" && r.result != "hung up")
        );
        assert!(rows.iter().any(|r| r.time.contains(':')));
        assert!(rows.iter().all(|r| r.date.len() == 19));
        // One call passes one to three routing points.
        let mut per_call = std::collections::HashMap::<&str, usize>::new();
        for r in &rows {
            *per_call.entry(r.conn_id.as_str()).or_default() += 1;
        }
        assert!(per_call.values().all(|&n| (1..=3).contains(&n)));
        assert!(per_call.values().any(|&n| n >= 2));
    }

    #[test]
    fn nights_are_quieter_but_never_empty() {
        let traffic = Traffic {
            seed: 3,
            calls_per_minute: 20.0,
            date_format: DateFormat::Compact,
            incidents: false,
        };
        let zone = TimeZone::get("America/Bogota").unwrap_or(TimeZone::UTC);
        let count = |start: i64| -> usize {
            (start..start + 60)
                .map(|m| generate_minute(&traffic, &zone, m).len())
                .sum()
        };
        let morning = count(1_764_082_800 / 60); // 10:00 local
        let night = count((1_764_082_800 - 7 * 3600) / 60); // 03:00 local
        assert!(night > 0 && night * 3 < morning, "{night} {morning}");
    }

    #[test]
    fn civil_seconds_match_utc_epoch_seconds() {
        for text in [
            "1970-01-01T00:00:00",
            "2026-02-28T23:59:59",
            "2024-02-29T12:00:00",
            "1969-12-31T23:59:59",
            "2100-03-01T00:00:01",
        ] {
            let at: DateTime = text.parse().unwrap();
            let utc = TimeZone::UTC.to_timestamp(at).unwrap().as_second();
            assert_eq!(civil_seconds(at), utc, "{text}");
        }
    }

    #[test]
    fn most_hours_have_one_ten_minute_incident() {
        let with = (0..1000)
            .filter_map(|h| incident_in_hour(9, 500_000 + h))
            .collect::<Vec<_>>();
        assert!(with.len() > 700 && with.len() < 900, "{}", with.len());
        for incident in with {
            assert_eq!(incident.end.as_second() - incident.start.as_second(), 600);
            assert!((0.5..=0.7).contains(&incident.hangup_rate));
        }
    }
}
