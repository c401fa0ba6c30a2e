//! Hang-up incidents: for half an hour, one routing point loses most of its callers.
//! Strong and frequent enough that the alert rules in `prometheus/rules/alerts.yml`
//! fire on them, against a baseline built from the simulator's own history.
//!
//! What the rules need (`WolkvoxIVRRoutingPointHangupRateAboveBaseline`): over the last
//! hour, a routing point's hang-up share `r` must exceed both 1.5 x its baseline `b`
//! (the share in the same hour of each of the past 7 days) and `b + 0.10`, with at
//! least 50 rows in the hour, continuously for 10 minutes (`for: 10m`). Rows at the
//! routing point hang up with probability `p` during an incident instead of their usual
//! share `s` (about 0.15 at "Ventas" and "Soporte", [`ivr::INCIDENT_RPS`]). With `m` of
//! the last 60 minutes inside the incident, `r = s + (m / 60) (p - s)`:
//! - `r - b > 0.10` needs `m > 6 / (p - s)` minutes: 9 minutes at `p = 0.85`; the
//!   `1.5 x` test needs fewer (`m > 30 s / (p - s)`, 7 minutes).
//! - The baseline holds the same hour of past days, so past incidents at that routing
//!   point and hour raise it: with incidents in 30% of the hours at one of two routing
//!   points, that is 15% of the days, about +0.05 on average. Say `m >= 15`.
//! - So the condition holds from `start + 15m` to `end + 45m`: 60 minutes for a
//!   30-minute incident. The alert fires 10 minutes after it starts to hold
//!   (`start + 25m`) and resolves 45 to 50 minutes after the incident ends, when fewer
//!   than 15 of its minutes are left in the 1-hour window. A 10-minute incident (what
//!   the simulator had before) reaches `m = 10` for a moment and never fires.
//! - Volume: in the daytime each of those routing points gets a quarter of the calls,
//!   about 600 rows an hour at 24 calls a minute. After hours (20:00 to 07:00 local)
//!   most calls enter at "Horario No Hábil" and they see under 50 rows an hour: a
//!   night incident shows on the dashboards but does not fire.
//!
//! Scheduled incidents do not move the operation-level alert: it needs a rise of 0.10 in
//! the whole operation's share, and an eighth of its rows going from 0.15 to 0.85 for
//! half an hour moves it by less; the 15-minute ceilings stay quiet too.
//!
//! Nothing scheduled can make an alert fire within 10 minutes of an arbitrary start: the
//! condition would have to hold at every instant, so incidents would be on at every
//! hour of every day, and the baseline (those same hours on past days) would hold them
//! too. `wolkvox-exporter simulate` therefore adds one incident of its own, placed
//! around its start ([`start_incident`]): with the week of history the stack
//! backfills, the condition already holds when a freshly started Prometheus first
//! evaluates the rules, and the alert fires after its `for: 10m`.

use jiff::{SignedDuration, Timestamp};

use super::Traffic;
use super::ivr::{self, POOL};
use super::random::mix;

/// A hang-up incident: one routing point loses most callers from `start` to `end`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Incident {
    /// The affected routing point's `rp_id`.
    pub rp_id: &'static str,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Hang-up probability at that routing point while it lasts.
    pub hangup_rate: f64,
}

impl Incident {
    fn covers(&self, rp: usize, unix_secs: i64) -> bool {
        self.rp_id == POOL[rp].id
            && (self.start.as_second()..self.end.as_second()).contains(&unix_secs)
    }
}

/// Share of UTC hours with a scheduled incident, in percent.
const INCIDENT_HOURS_PERCENT: u64 = 30;
/// Length of a scheduled incident.
pub const INCIDENT_MINUTES: i64 = 30;

/// The incident of one UTC hour, if any, decided by the seed: 30% of the hours, starting
/// in the hour's first half (so it never runs into the next hour's), at one of the
/// incident routing points, hang-up probability 0.80 to 0.90.
pub(crate) fn incident_in_hour(seed: u64, hour: i64) -> Option<Incident> {
    let r = mix(&[seed, 0x1C1D_E175, hour as u64]);
    if r % 100 >= INCIDENT_HOURS_PERCENT {
        return None;
    }
    let start_minute = ((r >> 8) % (60 - INCIDENT_MINUTES as u64 + 1)) as i64;
    let rp = ivr::INCIDENT_RPS[((r >> 16) % ivr::INCIDENT_RPS.len() as u64) as usize];
    let hangup_rate = 0.80 + ((r >> 24) % 11) as f64 / 100.0;
    let start = Timestamp::from_second(hour * 3600 + start_minute * 60).ok()?;
    let end = start
        .checked_add(SignedDuration::from_mins(INCIDENT_MINUTES))
        .ok()?;
    Some(Incident {
        rp_id: POOL[rp].id,
        start,
        end,
        hangup_rate,
    })
}

/// `simulate`'s own incident: at the main menu from 30 minutes before `started` to 15
/// minutes after, hang-up probability 0.5 (the main menu usually loses 10-17%). The
/// main menu because it has the volume at any hour (after hours most calls enter at
/// "Horario No Hábil", and the submenus see under 50 rows an hour); 0.5 because it is
/// enough (`m > 6 / (0.5 - 0.15)`, 17 minutes, against a baseline no scheduled
/// incident touches) and keeps the operation's 15-minute share (0.4 in the daytime)
/// under the 0.5 ceiling of `WolkvoxIVRHangupRateHigh`. At `started` 30 of the last 60 minutes are in it: the
/// routing point alert holds from the first evaluation and fires 10 minutes later; with
/// so much of the operation's traffic at the main menu, so does usually the
/// operation's in the daytime. They resolve 35 to 50 minutes after it ends:
/// `tests/it/start_incident.rs` measures the operation's at `started + 50m` and the
/// routing point's at `started + 64m`.
pub fn start_incident(started: Timestamp) -> Incident {
    let start = started
        .checked_sub(SignedDuration::from_mins(30))
        .unwrap_or(started);
    let end = started
        .checked_add(SignedDuration::from_mins(15))
        .unwrap_or(started);
    Incident {
        rp_id: POOL[ivr::MAIN].id,
        start,
        end,
        hangup_rate: 0.5,
    }
}

/// Hang-up probability at a routing point at a given instant: the rate of an incident
/// covering it (scheduled or `extra`), or its base rate drifting slowly (a sine of a
/// few hours' period, so the same hour differs from day to day).
pub(crate) fn hangup_rate(traffic: &Traffic, extra: &[Incident], rp: usize, unix_secs: i64) -> f64 {
    if let Some(incident) = extra.iter().find(|i| i.covers(rp, unix_secs)) {
        return incident.hangup_rate;
    }
    if traffic.incidents
        && let Some(incident) = incident_in_hour(traffic.seed, unix_secs.div_euclid(3600))
        && incident.covers(rp, unix_secs)
    {
        return incident.hangup_rate;
    }
    let h = mix(&[traffic.seed, rp as u64, 0xD81F_7000]);
    let period = 5.0 * 3600.0 + (h % (4 * 3600)) as f64;
    let phase = ((h >> 32) % 1000) as f64 / 1000.0;
    let drift = 0.02 * (std::f64::consts::TAU * (unix_secs as f64 / period + phase)).sin();
    (POOL[rp].base_hangup + drift).clamp(0.01, 0.95)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_thirty_percent_of_hours_have_a_half_hour_incident() {
        let with = (0..1000)
            .filter_map(|h| incident_in_hour(9, 500_000 + h))
            .collect::<Vec<_>>();
        assert!(with.len() > 250 && with.len() < 350, "{}", with.len());
        for incident in &with {
            assert_eq!(incident.end.as_second() - incident.start.as_second(), 1800);
            assert!((0.8..=0.9).contains(&incident.hangup_rate));
            assert!(["1002", "1003"].contains(&incident.rp_id));
            // Inside its own hour.
            let hour = incident.start.as_second().div_euclid(3600);
            assert!(incident.end.as_second() <= (hour + 1) * 3600);
        }
        assert!(with.iter().any(|i| i.rp_id == "1002") && with.iter().any(|i| i.rp_id == "1003"));
    }

    #[test]
    fn the_start_incident_covers_the_start() {
        let t = Timestamp::from_second(1_764_082_800).unwrap();
        let i = start_incident(t);
        assert_eq!(i.rp_id, "1001");
        assert_eq!(t.as_second() - i.start.as_second(), 1800);
        assert_eq!(i.end.as_second() - t.as_second(), 900);
        let mut traffic = Traffic::new(1);
        traffic.incidents = false;
        assert_eq!(hangup_rate(&traffic, &[i], 0, t.as_second()), 0.5);
        assert_ne!(hangup_rate(&traffic, &[i], 1, t.as_second()), 0.5);
        assert_ne!(hangup_rate(&traffic, &[i], 0, i.end.as_second()), 0.5);
    }
}
