//! `check` against the simulator serving Bogota's dates, with the operation configured
//! in Bogota, Santiago and Tokyo: the zone line it prints, and the requests it spends.

use std::process::{Command, Output};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::Traffic;

use crate::helpers::*;

/// Runs `check` on a config of the one operation `op` and returns its exit code and
/// stdout, with the report requests it made.
async fn check(
    bench: &Bench,
    op: Op<'_>,
) -> (i32, String, Vec<wolkvox_exporter::simulator::RequestRecord>) {
    let before = bench.sim.report_requests().len();
    let path = bench.config_file(&[op], "backfill: 1h");
    let out: Output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["check", "--config"])
            .arg(path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests = bench.sim.report_requests().split_off(before);
    (out.status.code().unwrap_or(-1), stdout, requests)
}

fn lines(stdout: &str) -> Vec<&str> {
    stdout.lines().collect()
}

/// A report date as the query wrote it (`YYYYmmddHHMMSS`) read in `zone`.
fn instant(zone: &TimeZone, date: &str) -> Timestamp {
    let dt = DateTime::strptime("%Y%m%d%H%M%S", date).unwrap();
    zone.to_timestamp(dt).unwrap()
}

/// The simulator's live traffic, its dates written in Bogota's time.
async fn bogota_traffic(token: &str) -> Bench {
    let bench = Bench::new().await;
    bench.tenant(token, "America/Bogota");
    bench.sim.sim.set_traffic(token, Traffic::new(7));
    bench
}

const BOGOTA_LIST: &str = "America/Bogota, America/Lima, America/Panama, America/Guayaquil or another zone at that offset";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogota_data_configured_as_bogota_fits_in_one_request() {
    let bench = bogota_traffic("tok").await;
    let (code, out, requests) = check(&bench, ACME).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(requests.len(), 1, "{out}");
    // The count of the last 10 minutes' rows is checked to the row in
    // simulate::write_config_then_check_and_backfill_give_exact_answers; here, its line.
    let out = lines(&out);
    let n: usize = out[1]
        .strip_prefix("acme: OK: ")
        .and_then(|l| l.strip_suffix(" rows in the last 10 minutes (America/Bogota)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        n > 0 && n <= requests[0].rows,
        "{n} of {}",
        requests[0].rows
    );
    assert_eq!(
        [out[0], out[2]],
        [
            "config: OK (1 operation(s))",
            "acme: zone OK: the call start times in conn_id put the report's dates at UTC-05:00, America/Bogota's offset",
        ]
    );
    assert_eq!(out.len(), 3);
}

/// Santiago's and Tokyo's clocks are ahead of Bogota's: their last 10 minutes have no
/// rows yet, so `check` asks for the same 10 minutes 26 hours before, and reads the
/// offset from those rows' call ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogota_data_configured_as_santiago_or_tokyo_is_wrong() {
    for (zone, name) in [("America/Santiago", "scl"), ("Asia/Tokyo", "tyo")] {
        let bench = bogota_traffic("tok").await;
        let op = Op {
            name,
            token: "tok",
            zone,
            extra: "",
        };
        let (code, out, requests) = check(&bench, op).await;
        assert_eq!(code, 1, "{out}");
        assert_eq!(requests.len(), 2, "{out}");
        let (ini, end): (Vec<String>, Vec<String>) = requests
            .iter()
            .map(|r| (r.date_ini.clone().unwrap(), r.date_end.clone().unwrap()))
            .unzip();
        assert_eq!(
            requests[0].rows, 0,
            "{zone}'s last 10 minutes are Bogota's future"
        );
        assert!(requests[1].rows > 0, "{out}");
        let z = tz(zone);
        // The first query: the last 10 minutes and the next 20; the second: those 10
        // minutes 26 hours earlier.
        let start = instant(&z, &ini[0]);
        assert_eq!(
            instant(&z, &end[0]),
            start + SignedDuration::from_secs(30 * 60 - 1)
        );
        assert_eq!(instant(&z, &ini[1]), start - SignedDuration::from_hours(26));
        assert_eq!(
            instant(&z, &end[1]),
            start - SignedDuration::from_hours(26) + SignedDuration::from_secs(10 * 60 - 1)
        );
        let last = z
            .to_datetime(start + SignedDuration::from_secs(10 * 60 - 1))
            .strftime("%Y%m%d%H%M%S")
            .to_string();
        let own = z.to_offset(instant(&z, &end[1])).seconds();
        let own = format!(
            "UTC{}{:02}:{:02}",
            if own < 0 { '-' } else { '+' },
            own.abs() / 3600,
            own.abs() / 60 % 60
        );
        assert_eq!(
            lines(&out),
            [
                "config: OK (1 operation(s))".to_string(),
                format!(
                    "{name}: OK: {}/ answered; no rows in the last 10 minutes ({} to {last}, {zone})",
                    bench.sim.url(),
                    ini[0]
                ),
                format!(
                    "{name}: zone WRONG: the call start times in conn_id put the report's dates at UTC-05:00 ({BOGOTA_LIST}), not at {zone}'s {own}: set `timezone`"
                ),
            ]
        );
    }
}

/// Rows whose conn_id carries no call start: only their dates can speak, from the one
/// query of the last 10 minutes and the next 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_call_starts_the_dates_decide() {
    // Three hours of rows, one a minute, dated in `data`, served to an operation in Bogota.
    let run = async |data: &str| {
        let bench = Bench::new().await;
        let z = bench.tenant("tok", data);
        let now = Timestamp::now();
        bench.sim.sim.add_rows(
            "tok",
            rows(
                &z,
                now - SignedDuration::from_hours(3),
                now - SignedDuration::from_mins(1),
                180,
                "call",
            ),
        );
        let (code, out, requests) = check(&bench, ACME).await;
        (code, lines(&out)[2].to_string(), requests.len())
    };
    assert_eq!(
        run("America/Bogota").await,
        (
            0,
            "acme: zone OK: rows in the last 10 minutes in America/Bogota and none dated later (no call start time in conn_id to check the offset exactly)".to_string(),
            1
        )
    );
    // Santiago's clock is one or two hours ahead of Bogota's: rows dated up to 20
    // minutes past now in Bogota come back, so the offset is at least half an hour east.
    assert_eq!(
        run("America/Santiago").await,
        (
            1,
            "acme: zone WRONG: rows are dated later than now in America/Bogota (UTC-05:00), so the report's dates are at UTC-04:30 or further east (no call start time in conn_id to say exactly): set `timezone`".to_string(),
            1
        )
    );
}
