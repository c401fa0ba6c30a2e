//! What the report returns for a range: exact rows in order, the empty range, the
//! silent cut at the cap, parameter checks, late rows, the customer filter and a DST
//! fold.

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::simulator::messages::*;

#[tokio::test]
async fn inclusive_range_with_exact_counts_and_order() {
    let sim = sim_with_tenant();
    sim.add_rows(
        TOKEN,
        [
            row("2026-11-20T08:05:00", "c"),
            row("2026-11-20T08:00:00", "a"),
            row("2026-11-20T07:59:59", "before"),
            row("2026-11-20T08:05:01", "after"),
            row("2026-11-20T08:04:59", "b1"),
            row("2026-11-20T08:04:59", "b2"),
        ],
    );
    let server = start(&sim).await;
    let (status, body) = report(&server.base, "20261120080000", "20261120080500").await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 200);
    assert!(body["error"].is_null());
    assert_eq!(body["msg"], "4 records were found");
    let rows = data(&body);
    let conns: Vec<&str> = rows
        .iter()
        .map(|r| r["conn_id"].as_str().unwrap())
        .collect();
    assert_eq!(conns, ["a", "b1", "b2", "c"]);
    // Exactly the ten documented fields, all strings, names as sent.
    let first = rows[0].as_object().unwrap();
    assert_eq!(first.len(), 10);
    assert!(FIELDS.iter().all(|f| first[*f].is_string()));
    assert_eq!(first["rp_name"], "Menú Principal");
    assert_eq!(first["date"], "2026-11-20 08:00:00");
    // Ground truth agrees: [08:00:00, 08:05:01) as instants in Bogotá (UTC-5).
    let from: Timestamp = "2026-11-20T13:00:00Z".parse().unwrap();
    let to: Timestamp = "2026-11-20T13:05:01Z".parse().unwrap();
    assert_eq!(sim.rows_between(TOKEN, from, to).len(), 4);
    let records = sim.requests();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].path_api, "diagram_1");
    assert_eq!(records[0].status, 200);
    assert_eq!(records[0].rows, 4);
    assert!(records[0].token_known);
    assert_eq!(records[0].date_ini.as_deref(), Some("20261120080000"));
    server.stop().await;
}

#[tokio::test]
async fn empty_range_is_404_validate_dates() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    let server = start(&sim).await;
    let (status, body) = report(&server.base, "20261121000000", "20261121235959").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], 404);
    assert_eq!(body["msg"], MSG_NO_RECORDS);
    assert!(body["error"].is_string());
    assert_eq!(data(&body).len(), 0);
    server.stop().await;
}

#[tokio::test]
async fn row_cap_cuts_silently() {
    let sim = sim_with_tenant();
    sim.set_row_cap(3);
    sim.add_rows(
        TOKEN,
        (0..5).map(|i| row(&format!("2026-11-20T08:00:0{i}"), &format!("c{i}"))),
    );
    let server = start(&sim).await;
    let (status, body) = report(&server.base, "20261120000000", "20261120235959").await;
    assert_eq!(status, 200);
    assert_eq!(body["msg"], "3 records were found");
    let conns: Vec<&str> = data(&body)
        .iter()
        .map(|r| r["conn_id"].as_str().unwrap())
        .collect();
    assert_eq!(conns, ["c0", "c1", "c2"]);
    server.stop().await;
}

#[tokio::test]
async fn range_and_parameter_validation() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-01T00:00:00", "a")]);
    let server = start(&sim).await;
    let base = &server.base;
    // Exactly 31 days is allowed; one second more is not.
    assert_eq!(
        report(base, "20261101000000", "20261202000000").await.0,
        200
    );
    let (status, body) = report(base, "20261101000000", "20261202000001").await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (400, Some(MSG_RANGE_TOO_LONG))
    );
    assert_eq!(body["code"], 400);
    let (status, body) = report(base, "20261102000000", "20261101000000").await;
    assert_eq!((status, body["msg"].as_str()), (400, Some(MSG_DATE_ORDER)));
    let (status, body) = report(base, "2026-11-01", "20261101000000").await;
    assert_eq!((status, body["msg"].as_str()), (400, Some(MSG_DATE_FORMAT)));
    let (status, body) = report(base, "20261131000000", "20261201000000").await;
    assert_eq!((status, body["msg"].as_str()), (400, Some(MSG_DATE_FORMAT)));
    let (status, body) = get(
        base,
        Some(TOKEN),
        "/api/v2/reports_manager.php?api=diagram_1&date_ini=20261101000000",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains(MSG_PARAMETERS_REQUIRED));
    let (status, body) = get(
        base,
        Some(TOKEN),
        "/api/v2/reports_manager.php?api=diagram_9&date_ini=20261101000000&date_end=20261101000001",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains(MSG_API_NOT_FOUND));
    let (status, _) = get(base, Some(TOKEN), "/api/v2/nothing.php?api=diagram_1").await;
    assert_eq!(status, 404);
    let records = sim.requests();
    assert_eq!(
        records.last().map(|r| r.path_api.as_str()),
        Some("/api/v2/nothing.php")
    );
    server.stop().await;
}

#[tokio::test]
async fn late_rows_and_customer_filter() {
    let sim = sim_with_tenant();
    let now = Timestamp::now();
    let mut late =
        row("2026-11-20T08:00:00", "late").with_visible_from(now + SignedDuration::from_hours(1));
    let mut on_time = row("2026-11-20T08:00:01", "on-time");
    let mut other = row("2026-11-20T08:00:02", "other");
    late.customer_id = "1234567".into();
    on_time.customer_id = "1234567".into();
    other.customer_id = "7654321".into();
    sim.add_rows(TOKEN, [late, on_time, other]);
    let server = start(&sim).await;
    let (status, body) = report(&server.base, "20261120080000", "20261120080000").await;
    assert_eq!(status, 404, "a late row is not served yet: {body}");
    let from: Timestamp = "2026-11-20T13:00:00Z".parse().unwrap();
    assert_eq!(
        sim.rows_between(TOKEN, from, from + SignedDuration::from_secs(3))
            .len(),
        3,
        "ground truth includes rows not yet visible"
    );
    let (status, body) = get(
        &server.base,
        Some(TOKEN),
        "/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959&customer_id=1234567",
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    let conns: Vec<&str> = data(&body)
        .iter()
        .map(|r| r["conn_id"].as_str().unwrap())
        .collect();
    assert_eq!(conns, ["on-time"]);
    assert_eq!(sim.requests()[1].customer_id.as_deref(), Some("1234567"));
    let (status, _) = get(
        &server.base,
        Some(TOKEN),
        "/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959&customer_id=0000",
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn dst_fold_query_returns_both_passes() {
    let santiago = TimeZone::get("America/Santiago").unwrap();
    // Chile leaves DST at 2026-04-05 00:00 (-03), back to 2026-04-04 23:00 (-04).
    let fold_hour = date(2026, 4, 4).at(23, 0, 0, 0);
    assert!(santiago.to_ambiguous_timestamp(fold_hour).is_ambiguous());
    let first_pass: Timestamp = "2026-04-05T02:30:00Z".parse().unwrap();
    let second_pass: Timestamp = "2026-04-05T03:30:00Z".parse().unwrap();
    assert_eq!(
        santiago.to_datetime(first_pass),
        santiago.to_datetime(second_pass)
    );

    let sim = Simulator::new();
    sim.add_tenant(TOKEN, santiago.clone());
    let at = santiago.to_datetime(first_pass);
    sim.add_rows_at(
        TOKEN,
        [
            (
                first_pass,
                SimRow::new(at, "1001", "Menú", "1", "", "ok", "5", "first"),
            ),
            (
                second_pass,
                SimRow::new(at, "1001", "Menú", "1", "", "ok", "5", "second"),
            ),
        ],
    );
    let server = start(&sim).await;
    let (status, body) = report(&server.base, "20260404230000", "20260404235959").await;
    assert_eq!(status, 200);
    let conns: Vec<&str> = data(&body)
        .iter()
        .map(|r| r["conn_id"].as_str().unwrap())
        .collect();
    assert_eq!(conns, ["first", "second"]);
    let hour = SignedDuration::from_hours(1);
    let pass = |from: Timestamp| -> Vec<String> {
        sim.rows_between(TOKEN, from, from + hour)
            .into_iter()
            .map(|r| r.conn_id)
            .collect()
    };
    assert_eq!(pass("2026-04-05T02:00:00Z".parse().unwrap()), ["first"]);
    assert_eq!(pass("2026-04-05T03:00:00Z".parse().unwrap()), ["second"]);

    // Generated traffic: the civil hour holds both instant hours.
    let sim = Simulator::new();
    sim.add_tenant(TOKEN, santiago);
    sim.set_traffic(TOKEN, Traffic::new(11));
    let server2 = start(&sim).await;
    let (status, body) = report(&server2.base, "20260404230000", "20260404235959").await;
    assert_eq!(status, 200);
    let mut served: Vec<Vec<String>> = data(&body).iter().map(ten_fields).collect();
    let from: Timestamp = "2026-04-05T02:00:00Z".parse().unwrap();
    let mut truth: Vec<Vec<String>> = sim
        .rows_between(TOKEN, from, from + hour * 2)
        .iter()
        .map(sim_fields)
        .collect();
    let one_pass = sim.rows_between(TOKEN, from, from + hour).len();
    assert!(one_pass > 0 && truth.len() > one_pass);
    served.sort();
    truth.sort();
    assert_eq!(served, truth);
    server.stop().await;
    server2.stop().await;
}

#[test]
fn sim_row_new_is_reproducible() {
    let a = row("2026-11-20T08:00:00.250", "x");
    let b = row("2026-11-20T08:00:00", "x");
    assert_eq!(a, b);
    assert_eq!(a.date, "2026-11-20 08:00:00");
    assert!(a.ani.len() >= 10 && a.ani.bytes().all(|c| c.is_ascii_digit()));
}
