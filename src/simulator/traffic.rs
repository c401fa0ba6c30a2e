//! Deterministic generator of realistic IVR traffic for one simulated tenant.
//!
//! Everything here is a pure function of (traffic settings, extra incidents, zone,
//! minute): asking for the same minute twice yields the same rows, which is what lets
//! tests compare the exporter's totals with [`super::Simulator::rows_between`] and its
//! call counts with [`super::Simulator::calls_between`].
//!
//! A caller enters at the main menu (after hours, mostly at "Horario No Hábil") and
//! walks the IVR of [`super::ivr`], one row per routing point or menu passed, a few
//! seconds to two minutes apart: to a submenu and an agent queue (the last row `ok`),
//! or hanging up on the way (`hung up`), or served by a self-service option (`SALDO`,
//! `HORARIOS`) and hanging up after it; pressing nothing (`PULSE`) replays a menu. Six
//! rows at most. Now and then a call ends with an empty `result` (a dropped line), and a
//! few rows carry no `conn_id`.
//!
//! The rows themselves, and how they write their fields, are in [`super::gen_row`]; the
//! randomness in [`super::random`].

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::gen_row::{ConnId, GenRow, TimeStyle, civil_seconds, fake_ani, fake_customer};
use super::incidents::{Incident, hangup_rate};
use super::ivr::{self, MAIN, Next, POOL};
use super::random::{SplitMix64, mix};
use super::{DateFormat, Traffic};

/// Stable number for a zone, so two tenants with the same seed in different zones
/// still get different traffic.
pub(crate) fn zone_key(zone: &TimeZone) -> u64 {
    let name = zone.iana_name().unwrap_or("");
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// Most rows one call produces.
pub const MAX_ROWS_PER_CALL: usize = 6;
/// A generated row is served from the end of its interaction (at most 115 s after its
/// date); 3% of them only 2 to 8 minutes later still, as a call-detail table filled by a
/// batch. None later than this after its date: a poller's `settle` at least this long
/// (plus its interval) misses none.
pub const MAX_LATENESS_SECS: i64 = 600;

/// The rows of every call that started in one UTC minute (`unix_minute` = seconds
/// since the epoch / 60), with the scheduled incidents of `traffic` and `extra` ones.
pub(crate) fn generate_minute(
    traffic: &Traffic,
    extra: &[Incident],
    zone: &TimeZone,
    unix_minute: i64,
) -> Vec<GenRow> {
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
    let calls = SplitMix64::new(base).poisson(per_minute * ivr::daily_curve(local));
    let active = ivr::active_count(traffic.seed);
    let after_hours = ivr::is_after_hours(local) && active > ivr::AFTER_HOURS;
    let tenant = mix(&[traffic.seed, zkey]);
    let call_site = Site {
        traffic,
        extra,
        zone,
        active,
        compact_date: matches!(traffic.date_format, DateFormat::Compact),
        server: 1000 + (tenant % 9000) as u16,
        campaign: 1000 + ((tenant >> 20) % 9000) as u16,
    };
    let mut rows = Vec::with_capacity(calls as usize * 3);
    for call in 0..calls.min(9_999) {
        // One stream per call, so a call's rows do not depend on the call count.
        let mut rng = SplitMix64::new(mix(&[base, u64::from(call)]));
        let start = unix_minute * 60 + rng.below(60) as i64;
        let entry = if after_hours && rng.chance(0.75) {
            ivr::AFTER_HOURS
        } else {
            MAIN
        };
        call_site.walk(&mut rng, start, call as u16, entry, &mut rows);
    }
    rows
}

/// What every call of one minute shares.
struct Site<'a> {
    traffic: &'a Traffic,
    extra: &'a [Incident],
    zone: &'a TimeZone,
    active: usize,
    compact_date: bool,
    server: u16,
    campaign: u16,
}

impl Site<'_> {
    /// One caller through the IVR from `entry` at `start`, its rows appended to `rows`.
    fn walk(
        &self,
        rng: &mut SplitMix64,
        start: i64,
        call: u16,
        entry: usize,
        rows: &mut Vec<GenRow>,
    ) {
        let ani = fake_ani(rng.next_u64());
        let customer = fake_customer(rng.next_u64());
        let conn = ConnId {
            server: self.server,
            campaign: self.campaign,
            line: 1000 + rng.below(9000) as u16,
            epoch: start,
            seq: 1000 + call,
        };
        let mut rp = entry;
        let mut at_secs = start;
        let mut pulsed_at = None;
        for made in 0..MAX_ROWS_PER_CALL {
            let rows_left = MAX_ROWS_PER_CALL - made;
            let Some(option) = ivr::pick(rp, self.active, rows_left, rng.next_u64()) else {
                break;
            };
            let hangs_up = rng.chance(hangup_rate(self.traffic, self.extra, rp, at_secs));
            // The row's transfer and result, and where the call goes next (None: it ends).
            let (dn, hung_up, next) = match option.next {
                Next::End => ("", true, None),
                Next::Queue(dn) => (dn, hangs_up, None),
                Next::Rp(target) if hangs_up => (POOL[target].id, true, None),
                Next::Rp(target) => (POOL[target].id, false, Some(target)),
                Next::Repeat if hangs_up || pulsed_at == Some(rp) => ("", true, None),
                Next::Repeat => ("", false, Some(rp)),
                Next::SelfService if !hangs_up && rows_left >= 2 && rng.chance(0.2) => {
                    (POOL[MAIN].id, false, Some(MAIN))
                }
                Next::SelfService => ("", true, None),
            };
            if option.next == Next::Repeat {
                pulsed_at = Some(rp);
            }
            let secs = match option.next {
                // Waiting for a key press until the menu times out.
                _ if option.code == "PULSE" => 12 + rng.below(20) as u32,
                // The balance or the opening hours, read out.
                Next::SelfService => 20 + rng.below(60) as u32,
                _ if hung_up => 3 + rng.below(40) as u32,
                _ => {
                    let f = rng.f64();
                    6 + (f * f * 110.0) as u32
                }
            };
            let result = if next.is_none() && rng.chance(0.005) {
                "" // the line dropped: neither ok nor hung up
            } else {
                vary_result(rng, hung_up)
            };
            let late = if rng.chance(0.03) {
                120 + rng.below(361) as i64
            } else {
                0
            };
            let conn_written = !rng.chance(0.004);
            let Ok(instant) = Timestamp::from_second(at_secs) else {
                break;
            };
            let at = self.zone.to_datetime(instant);
            rows.push(GenRow {
                instant,
                at,
                civil: civil_seconds(at),
                visible_secs: at_secs + i64::from(secs) + late,
                index: rows.len() as u32,
                rp,
                option: option.code,
                dn,
                result,
                secs,
                style: time_style(rng),
                compact_date: self.compact_date,
                ani,
                customer,
                conn,
                conn_written,
            });
            match next {
                Some(target) => {
                    rp = target;
                    // The transfer to the next menu takes a moment.
                    at_secs += i64::from(secs) + 1 + rng.below(3) as i64;
                }
                None => break,
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::SimRow;
    fn bogota() -> TimeZone {
        TimeZone::get("America/Bogota").unwrap_or(TimeZone::UTC)
    }

    /// An hour of a busy Wednesday morning: 2026-11-25 15:00 UTC, 10:00 in Bogotá.
    fn busy_hour(traffic: &Traffic) -> Vec<GenRow> {
        let start = 1_764_082_800 / 60;
        (start..start + 60)
            .flat_map(|m| generate_minute(traffic, &[], &bogota(), m))
            .collect()
    }

    #[test]
    fn generated_rows_look_like_an_ivr() {
        let traffic = Traffic {
            seed: 42,
            calls_per_minute: 30.0,
            date_format: DateFormat::Dashed,
            incidents: true,
        };
        let generated = busy_hour(&traffic);
        let rows: Vec<SimRow> = generated.iter().map(GenRow::to_sim_row).collect();
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
        // Some rows are served minutes after their date; none later than promised.
        let lateness: Vec<i64> = generated
            .iter()
            .map(|r| r.visible_secs - r.instant.as_second())
            .collect();
        assert!(
            lateness
                .iter()
                .all(|&l| (3..=MAX_LATENESS_SECS).contains(&l))
        );
        let late = lateness.iter().filter(|&&l| l > 120).count();
        assert!(
            late * 100 > rows.len() && late * 100 < rows.len() * 6,
            "{late}"
        );
        // A few rows without conn_id; the others in the shape of a Wolkvox call id.
        let without = rows.iter().filter(|r| r.conn_id.is_empty()).count();
        assert!(without > 0 && without * 100 < rows.len(), "{without}");
        for (g, r) in generated
            .iter()
            .zip(&rows)
            .filter(|(_, r)| !r.conn_id.is_empty())
        {
            let parts: Vec<&str> = r.conn_id.split('.').collect();
            assert_eq!(parts.len(), 5, "{}", r.conn_id);
            assert!(
                parts.iter().all(|p| p.parse::<u64>().is_ok()),
                "{}",
                r.conn_id
            );
            // The fourth field is the call's start, at or before this row.
            let epoch: i64 = parts[3].parse().unwrap();
            assert!(epoch <= g.instant.as_second() && epoch + 900 > g.instant.as_second());
        }
    }

    #[test]
    fn callers_navigate_the_ivr() {
        let generated = busy_hour(&Traffic::new(7));
        let mut calls = std::collections::BTreeMap::<ConnId, Vec<&GenRow>>::new();
        for r in &generated {
            calls.entry(r.conn).or_default().push(r);
        }
        let mut by_length = [0usize; MAX_ROWS_PER_CALL + 1];
        let (mut agent, mut served, mut abandoned) = (0, 0, 0);
        for rows in calls.values() {
            by_length[rows.len()] += 1;
            // Rows of one call: in time order, a few seconds to two minutes apart.
            for w in rows.windows(2) {
                let gap = w[1].instant.as_second() - w[0].instant.as_second();
                assert!((4..=135).contains(&gap), "{gap}");
            }
            let first = rows[0];
            assert!(first.rp == MAIN || first.rp == ivr::AFTER_HOURS);
            let last = rows[rows.len() - 1];
            let self_service = rows
                .iter()
                .any(|r| ivr::SELF_SERVICE_OPTIONS.contains(&r.option));
            match last.result.trim().to_lowercase().replace('_', " ").as_str() {
                "ok" => agent += 1,
                "hung up" | "hungup" if self_service => served += 1,
                "hung up" | "hungup" => abandoned += 1,
                _ => {}
            }
            // Every row but the last leads on: `ok` to another menu (or the same, after
            // PULSE).
            for r in &rows[..rows.len() - 1] {
                assert!(r.result.trim().eq_ignore_ascii_case("ok"), "{}", r.result);
            }
        }
        assert_eq!(by_length[0], 0);
        assert!(
            by_length[1] > 0 && by_length[2] > by_length[1],
            "{by_length:?}"
        );
        assert!(by_length[3] > 0 && by_length[4] > 0, "{by_length:?}");
        let total = calls.len();
        assert!(agent * 2 > total, "{agent} of {total} reach an agent");
        assert!(served * 50 > total && served * 5 < total, "{served} served");
        assert!(
            abandoned * 20 > total && abandoned * 3 < total,
            "{abandoned}"
        );
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
                .map(|m| generate_minute(&traffic, &[], &zone, m).len())
                .sum()
        };
        let morning = count(1_764_082_800 / 60); // 10:00 local
        let night = count((1_764_082_800 - 7 * 3600) / 60); // 03:00 local
        assert!(night > 0 && night * 3 < morning, "{night} {morning}");
    }
}
