use super::*;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// What `check` in `zone` at `now` sees of `n` calls written in `data`, one a minute
/// back from `last`, each with rows at its start and 40 s later; `shaped` gives them
/// conn_ids with the call start.
fn calls(
    zone: &TimeZone,
    now: Timestamp,
    data: &TimeZone,
    last: Timestamp,
    n: i64,
    shaped: bool,
) -> Sample {
    let mut s = Sample::new(zone, now);
    for i in 0..n {
        let start = last - SignedDuration::from_mins(i);
        let conn = if shaped {
            format!("6736.4628.1040.{}.{}", start.as_second(), 1000 + i)
        } else {
            format!("c-{i}")
        };
        for later in [40, 0] {
            let t = start + SignedDuration::from_secs(later);
            s.add(&wall(data, t), &conn);
        }
    }
    s
}

fn wall(zone: &TimeZone, t: Timestamp) -> String {
    zone.to_datetime(t)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// January: Santiago at UTC-03:00 (summer time), Bogota at UTC-05:00, Tokyo at UTC+09:00.
const NOW: &str = "2026-01-19T15:00:00Z";

#[test]
fn conn_id_call_starts_are_read_only_from_their_shape() {
    assert_eq!(
        call_start("6736.4628.1040.1768782812.1814"),
        Some(1768782812)
    );
    assert_eq!(call_start(" 1.2.3.987654321.4 "), Some(987654321));
    for other in [
        "",
        "c-1",
        "6736.4628.1040.1768782812",
        "6736.4628.1040.1768782812.1814.1",
        "6736.4628.1040.17687828.1814",
        "6736.4628.1040.17687828120.1814",
        "6736.4628..1768782812.1814",
        "6736.4628.x.1768782812.1814",
        "6736.4628.-1.1768782812.1814",
    ] {
        assert_eq!(call_start(other), None, "{other:?}");
    }
}

#[test]
fn probes_ask_the_last_ten_minutes_and_the_next_twenty_then_26_hours_back() {
    let now = at("2026-01-19T15:00:42Z");
    let r = |r: Range| (r.start.to_string(), r.end.to_string());
    assert_eq!(
        r(Probe::Recent.range(now)),
        ("2026-01-19T14:50:00Z".into(), "2026-01-19T15:20:00Z".into())
    );
    assert_eq!(
        r(Probe::last_minutes(now)),
        ("2026-01-19T14:50:00Z".into(), "2026-01-19T15:00:00Z".into())
    );
    assert_eq!(
        r(Probe::DayBefore.range(now)),
        ("2026-01-18T12:50:00Z".into(), "2026-01-18T13:00:00Z".into())
    );
}

#[test]
fn call_starts_tell_the_offset_the_dates_are_written_in() {
    let now = at(NOW);
    let last = now - SignedDuration::from_mins(2);
    let bogota = tz("America/Bogota");
    let seen = |zone: &str| calls(&tz(zone), now, &bogota, last, 8, true);
    let judge = |zone: &str| next(&seen(zone), &[Probe::Recent], &tz(zone), now);
    assert_eq!(
        judge("America/Bogota"),
        Ok(Verdict::Fits { offset: -5 * 3600 })
    );
    assert_eq!(
        judge("America/Santiago"),
        Ok(Verdict::Wrong {
            data: -5 * 3600,
            zone: -3 * 3600,
            at: last
        })
    );
    assert_eq!(
        judge("Asia/Tokyo"),
        Ok(Verdict::Wrong {
            data: -5 * 3600,
            zone: 9 * 3600,
            at: last
        })
    );
    // Half-hour zones too.
    let kolkata = tz("Asia/Kolkata");
    let s = calls(&kolkata, now, &kolkata, last, 5, true);
    assert_eq!(
        next(&s, &[Probe::Recent], &kolkata, now),
        Ok(Verdict::Fits { offset: 19800 })
    );
}

#[test]
fn call_starts_across_a_dst_change_fit_the_zone_at_each_start() {
    // Santiago left summer time at 2026-04-05 03:00 UTC: calls on both sides.
    let now = at("2026-04-05T03:05:00Z");
    let z = tz("America/Santiago");
    let s = calls(&z, now, &z, now - SignedDuration::from_mins(1), 10, true);
    assert_eq!(
        next(&s, &[Probe::Recent], &z, now),
        Ok(Verdict::Fits { offset: -4 * 3600 })
    );
}

#[test]
fn too_few_or_disagreeing_call_starts_leave_it_to_the_dates() {
    let now = at(NOW);
    let bogota = tz("America/Bogota");
    let two = calls(
        &bogota,
        now,
        &bogota,
        now - SignedDuration::from_mins(2),
        2,
        true,
    );
    assert_eq!(
        next(&two, &[Probe::Recent], &bogota, now),
        Ok(Verdict::Current)
    );
    // Numbers of the shape that are not call starts: they spread over every offset.
    let mut s = Sample::new(&bogota, now);
    for i in 0..20i64 {
        let date = wall(&bogota, now - SignedDuration::from_mins(i));
        s.add(&date, &format!("1.2.3.{}.4", now.as_second() - i * 4111));
    }
    assert_eq!(
        next(&s, &[Probe::Recent], &bogota, now),
        Ok(Verdict::Current)
    );
    assert_eq!(
        next(&s, &[Probe::Recent, Probe::DayBefore], &bogota, now),
        Ok(Verdict::CannotTell("the call start times in conn_id disagree; no rows in the last 10 minutes but rows 26 hours before: the zone may be ahead of the data's, or the operation quiet now".into()))
    );
    // Starts far from now are not starts of these rows.
    let old = calls(
        &bogota,
        now,
        &bogota,
        now - SignedDuration::from_hours(80),
        5,
        true,
    );
    assert_eq!(
        next(&old, &[Probe::Recent], &bogota, now),
        Ok(Verdict::Current)
    );
}

#[test]
fn without_call_starts_dates_later_than_now_show_the_zone_behind() {
    let now = at(NOW);
    let bogota = tz("America/Bogota");
    // Santiago's rows, read as Bogota's: hours ahead of Bogota's clock; the first
    // query sees them up to 20 minutes past now.
    let s = calls(
        &bogota,
        now,
        &bogota,
        now + SignedDuration::from_mins(19),
        30,
        false,
    );
    // Calls from 10 minutes before now: both rows of 10 calls in the last 10 minutes.
    assert_eq!(s.rows_in_last_minutes(), 2 * 10);
    assert_eq!(
        next(&s, &[Probe::Recent], &bogota, now),
        Ok(Verdict::Behind {
            at_least: -5 * 3600 + 30 * 60,
            zone: -5 * 3600
        })
    );
    // Up to two minutes later is clock skew, not a zone.
    let s = calls(
        &bogota,
        now,
        &bogota,
        now + SignedDuration::from_secs(80),
        3,
        false,
    );
    assert_eq!(s.rows_in_last_minutes(), 1);
    assert_eq!(
        next(&s, &[Probe::Recent], &bogota, now),
        Ok(Verdict::Current)
    );
}

#[test]
fn an_empty_first_query_looks_26_hours_back() {
    let now = at(NOW);
    let tokyo = tz("Asia/Tokyo");
    let empty = Sample::new(&tokyo, now);
    assert_eq!(
        next(&empty, &[Probe::Recent], &tokyo, now),
        Err(Probe::DayBefore)
    );
    assert_eq!(
        next(&empty, &[Probe::Recent, Probe::DayBefore], &tokyo, now),
        Ok(Verdict::CannotTell(
            "no rows in the last 10 minutes, nor 26 hours before, to read it from".into()
        ))
    );
    // Bogota's rows of 12 hours ago, where Tokyo's wall clock stood 26 hours ago.
    let back = now - SignedDuration::from_hours(12);
    let bogota = tz("America/Bogota");
    let unshaped = calls(&tokyo, now, &bogota, back, 5, false);
    assert_eq!(
        next(&unshaped, &[Probe::Recent, Probe::DayBefore], &tokyo, now),
        Ok(Verdict::CannotTell("no call start time in conn_id; no rows in the last 10 minutes but rows 26 hours before: the zone may be ahead of the data's, or the operation quiet now".into()))
    );
    let shaped = calls(&tokyo, now, &bogota, back, 5, true);
    assert_eq!(
        next(&shaped, &[Probe::Recent, Probe::DayBefore], &tokyo, now),
        Ok(Verdict::Wrong {
            data: -5 * 3600,
            zone: 9 * 3600,
            at: back
        })
    );
}

#[test]
fn zones_at_an_offset_name_latin_america_first() {
    let jan = at(NOW);
    let (names, more) = zones_at(-5 * 3600, jan);
    assert_eq!(
        names,
        [
            "America/Bogota",
            "America/Lima",
            "America/Panama",
            "America/Guayaquil"
        ]
    );
    assert!(more);
    // Mexico City has had no summer time since 2022; Guatemala and the others never.
    let (names, _) = zones_at(-6 * 3600, at("2026-07-01T00:00:00Z"));
    assert_eq!(
        names,
        [
            "America/Mexico_City",
            "America/Guatemala",
            "America/Costa_Rica",
            "America/El_Salvador"
        ]
    );
    // None of the first list: the database's own order.
    let (names, more) = zones_at(9 * 3600, jan);
    assert_eq!(
        names,
        ["Asia/Chita", "Asia/Dili", "Asia/Jayapura", "Asia/Khandyga"]
    );
    assert!(more);
    assert_eq!(zones_at(-5 * 3600 - 15 * 60, jan), (Vec::new(), false));
}

#[test]
fn each_verdict_is_one_line() {
    let jan = at(NOW);
    assert_eq!(
        Verdict::Fits { offset: -18000 }.line("America/Bogota"),
        "zone OK: the call start times in conn_id put the report's dates at UTC-05:00, America/Bogota's offset"
    );
    assert_eq!(
        Verdict::Current.line("America/Bogota"),
        "zone OK: rows in the last 10 minutes in America/Bogota and none dated later (no call start time in conn_id to check the offset exactly)"
    );
    assert_eq!(
        Verdict::Wrong {
            data: -18000,
            zone: -10800,
            at: jan
        }
        .line("America/Santiago"),
        "zone WRONG: the call start times in conn_id put the report's dates at UTC-05:00 (America/Bogota, America/Lima, America/Panama, America/Guayaquil or another zone at that offset), not at America/Santiago's UTC-03:00: set `timezone`"
    );
    assert_eq!(
        Verdict::Wrong {
            data: 5 * 3600 + 45 * 60,
            zone: 19800,
            at: jan
        }
        .line("Asia/Kolkata"),
        "zone WRONG: the call start times in conn_id put the report's dates at UTC+05:45 (Asia/Kathmandu, Asia/Katmandu), not at Asia/Kolkata's UTC+05:30: set `timezone`"
    );
    assert_eq!(
        Verdict::Behind {
            at_least: -16200,
            zone: -18000
        }
        .line("America/Bogota"),
        "zone WRONG: rows are dated later than now in America/Bogota (UTC-05:00), so the report's dates are at UTC-04:30 or further east (no call start time in conn_id to say exactly): set `timezone`"
    );
    assert!(
        Verdict::Behind {
            at_least: 0,
            zone: 0
        }
        .is_wrong()
    );
    assert!(!Verdict::Current.is_wrong());
    assert_eq!(
        Verdict::CannotTell("why".into()).line("UTC"),
        "zone: cannot tell (why)"
    );
}
