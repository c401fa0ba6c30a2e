//! Generated traffic: the same minute twice is the same rows, and the API serves what
//! the ground truth says.

use jiff::{SignedDuration, Timestamp};

use super::*;

fn fmt_api(dt: DateTime) -> String {
    gen_row::format_compact(dt)
}

#[tokio::test]
async fn generated_traffic_is_deterministic_and_matches_the_api() {
    let traffic = Traffic {
        seed: 7,
        calls_per_minute: 20.0,
        date_format: DateFormat::Compact,
        incidents: true,
    };
    let sim = sim_with_tenant();
    sim.set_traffic(TOKEN, traffic.clone());
    let now = Timestamp::now();
    let to = Timestamp::from_second(now.as_second().div_euclid(60) * 60 - 600).unwrap();
    let from = to - SignedDuration::from_mins(30);

    let truth = sim.rows_between(TOKEN, from, to);
    assert!(!truth.is_empty());
    assert_eq!(
        sim.rows_between(TOKEN, from, to),
        truth,
        "asking again (cached)"
    );
    let fresh = Simulator::new();
    fresh.add_tenant("other-token", bogota());
    fresh.set_traffic("other-token", traffic);
    assert_eq!(
        fresh.rows_between("other-token", from, to),
        truth,
        "a new simulator"
    );
    // Same minute generated twice, directly.
    let minute = from.as_second() / 60;
    let a: Vec<SimRow> = traffic::generate_minute(&sim_traffic(&sim), &[], &bogota(), minute)
        .iter()
        .map(|r| r.to_sim_row())
        .collect();
    let b: Vec<SimRow> = traffic::generate_minute(&sim_traffic(&sim), &[], &bogota(), minute)
        .iter()
        .map(|r| r.to_sim_row())
        .collect();
    assert_eq!(a, b);
    assert!(truth.iter().all(|r| r.date.len() == 14), "compact dates");

    // The API over [from, to - 1s] (inclusive, Bogotá wall time) returns the same rows.
    let zone = bogota();
    let ini = fmt_api(zone.to_datetime(from));
    let end = fmt_api(zone.to_datetime(to - SignedDuration::from_secs(1)));
    let server = start(&sim).await;
    let (status, body) = report(&server.base, &ini, &end).await;
    assert_eq!(status, 200);
    assert_eq!(body["msg"], format!("{} records were found", truth.len()));
    let served: Vec<Vec<String>> = data(&body).iter().map(ten_fields).collect();
    let expected: Vec<Vec<String>> = truth.iter().map(sim_fields).collect();
    assert_eq!(served, expected);
    server.stop().await;
}

fn sim_traffic(sim: &Simulator) -> Traffic {
    sim.lock()
        .tenants
        .get(TOKEN)
        .and_then(|t| t.traffic.clone())
        .unwrap()
}
