//! End-to-end tests of the simulator over real HTTP on loopback.

use std::time::{Duration, Instant};

use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::messages::*;
use super::*;

const TOKEN: &str = "tok-secret-123";
const FIELDS: [&str; 10] = [
    "rp_id",
    "rp_name",
    "cod_opc_menu",
    "dn_transfer",
    "date",
    "result",
    "ani",
    "time",
    "customer_id",
    "conn_id",
];

struct Running {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task");
    }
}

async fn start(sim: &Simulator) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sim.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}"),
        stop: Some(stop),
        task,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn bogota() -> TimeZone {
    TimeZone::get("America/Bogota").unwrap()
}

fn sim_with_tenant() -> Simulator {
    let sim = Simulator::new();
    sim.add_tenant(TOKEN, bogota());
    sim
}

/// GET a path with an optional token; status and body text.
async fn get(base: &str, token: Option<&str>, path_and_query: &str) -> (u16, String) {
    let mut request = client().get(format!("{base}{path_and_query}"));
    if let Some(token) = token {
        request = request.header("wolkvox-token", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn report(base: &str, ini: &str, end: &str) -> (u16, Value) {
    let (status, body) = get(
        base,
        Some(TOKEN),
        &format!("/api/v2/reports_manager.php?api=diagram_1&date_ini={ini}&date_end={end}"),
    )
    .await;
    (status, serde_json::from_str(&body).unwrap())
}

/// Waits (bounded) until the simulator has seen `n` simultaneous requests.
async fn wait_for_in_flight(sim: &Simulator, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.max_in_flight(TOKEN) < n {
        assert!(
            Instant::now() < deadline,
            "never saw {n} requests in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn dt(text: &str) -> DateTime {
    text.parse().unwrap()
}

fn row(at: &str, conn: &str) -> SimRow {
    SimRow::new(
        dt(at),
        "1001",
        "Menú Principal",
        "1",
        "1002",
        "ok",
        "12",
        conn,
    )
}

fn ten_fields(value: &Value) -> Vec<String> {
    FIELDS
        .iter()
        .map(|f| value[f].as_str().unwrap().to_string())
        .collect()
}

fn sim_fields(row: &SimRow) -> Vec<String> {
    ten_fields(&serde_json::to_value(row).unwrap())
}

fn data(body: &Value) -> &Vec<Value> {
    body["data"].as_array().unwrap()
}

fn fmt_api(dt: DateTime) -> String {
    gen_row::format_compact(dt)
}

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
async fn token_errors_and_daily_budget() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    sim.set_daily_budget(TOKEN, Some(3));
    let server = start(&sim).await;
    let base = &server.base;
    let q =
        "/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959";
    let (status, body) = get(base, None, q).await;
    assert_eq!(status, 401);
    assert!(body.contains(MSG_ENTER_TOKEN));
    let (status, body) = get(base, Some("not-a-token"), q).await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], 403);
    assert_eq!(body["msg"], MSG_VALIDATE_TOKEN);

    // Budget of 3: token_info counts, then two reports, then refusals for both calls.
    let (status, body) = get(base, Some(TOKEN), "/api/v2/information.php?api=token_info").await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["data"]["token_limit"], 3);
    assert_eq!(info["data"]["token_use_today"], 1);
    assert_eq!(info["data"]["available_consumption_options"], 2);
    assert_eq!(get(base, Some(TOKEN), q).await.0, 200);
    assert_eq!(get(base, Some(TOKEN), q).await.0, 200);
    let (status, body) = get(base, Some(TOKEN), q).await;
    assert_eq!(status, 403);
    assert!(body.contains(MSG_TOKEN_LIMIT));
    let (status, _) = get(base, Some(TOKEN), "/api/v2/information.php?api=token_info").await;
    assert_eq!(status, 403);

    let records = sim.requests();
    let statuses: Vec<u16> = records.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 403, 200, 200, 200, 403, 403]);
    let known: Vec<bool> = records.iter().map(|r| r.token_known).collect();
    assert_eq!(known, [false, false, true, true, true, true, true]);
    assert_eq!(records[2].path_api, "token_info");
    // The token is never kept.
    assert!(!format!("{records:?}").contains(TOKEN));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_simultaneous_request_is_refused() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    let hold = Duration::from_millis(1500);
    sim.push_faults(TOKEN, [Fault::Slow(hold), Fault::Slow(hold)]);
    let server = start(&sim).await;
    let base = server.base.clone();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move { report(&base, "20261120000000", "20261120235959").await })
        })
        .collect();
    wait_for_in_flight(&sim, 2).await;
    let (status, body) = report(&base, "20261120000000", "20261120235959").await;
    assert_eq!(status, 403);
    assert_eq!(body["msg"], MSG_SIMULTANEOUS);
    for task in slow {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(data(&body).len(), 1);
    }
    assert_eq!(sim.max_in_flight(TOKEN), 3);
    // Slots were freed on the way out: two more in a row both pass.
    assert_eq!(
        report(&base, "20261120000000", "20261120235959").await.0,
        200
    );
    assert_eq!(
        report(&base, "20261120000000", "20261120235959").await.0,
        200
    );
    assert_eq!(sim.max_in_flight(TOKEN), 3);
    server.stop().await;
}

#[tokio::test]
async fn every_fault_kind_answers_as_scripted() {
    let sim = sim_with_tenant();
    sim.add_rows(
        TOKEN,
        [
            row("2026-11-20T08:00:00", "a"),
            row("2026-11-20T08:01:00", "b"),
        ],
    );
    sim.push_faults(
        TOKEN,
        [
            Fault::ServerErrorHtml(502),
            Fault::Maintenance,
            Fault::TokenLimit,
            Fault::ConcurrencyLimit,
            Fault::InvalidToken,
            Fault::BadRequest,
            Fault::MalformedBody,
            Fault::TruncatedBody,
            Fault::WrongShape,
            Fault::Slow(Duration::from_millis(300)),
        ],
    );
    let server = start(&sim).await;
    let url = format!(
        "{}/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959",
        server.base
    );
    let fetch = || async {
        let response = client()
            .get(&url)
            .header("wolkvox-token", TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let length = response
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
        let body = response.bytes().await.unwrap();
        (status, content_type, length, body)
    };
    let json = |body: &[u8]| serde_json::from_slice::<Value>(body);

    let (status, content_type, _, body) = fetch().await;
    assert_eq!(status, 502);
    assert!(content_type.starts_with("text/html"));
    assert!(String::from_utf8_lossy(&body).contains("502 Bad Gateway"));
    for expected in [
        (403, MSG_MAINTENANCE),
        (403, MSG_TOKEN_LIMIT),
        (403, MSG_SIMULTANEOUS),
        (403, MSG_VALIDATE_TOKEN),
        (400, MSG_PARAMETERS_REQUIRED),
    ] {
        let (status, _, _, body) = fetch().await;
        let body = json(&body).unwrap();
        assert_eq!((status, body["msg"].as_str().unwrap()), expected);
        assert_eq!(body["code"], expected.0);
    }
    let (status, _, _, body) = fetch().await;
    assert_eq!(status, 200);
    assert!(json(&body).is_err(), "malformed body must not parse");
    let (status, _, length, truncated) = fetch().await;
    assert_eq!(status, 200);
    assert!(json(&truncated).is_err(), "truncated body must not parse");
    assert_eq!(
        length,
        Some(truncated.len()),
        "Content-Length matches what is sent"
    );
    let (status, _, _, body) = fetch().await;
    assert_eq!(status, 200);
    let body = json(&body).unwrap();
    assert!(body["data"].is_string());
    let started = Instant::now();
    let (status, _, _, slow) = fetch().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200);
    assert_eq!(json(&slow).unwrap()["msg"], "2 records were found");
    // Faults are used up: back to normal, and the truncated body was a prefix of it.
    let (status, _, _, normal) = fetch().await;
    assert_eq!(status, 200);
    assert_eq!(normal, slow);
    assert!(normal.starts_with(&truncated) && truncated.len() < normal.len());

    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [502, 403, 403, 403, 403, 400, 200, 200, 200, 200, 200]
    );
    let rows: Vec<usize> = sim.requests().iter().map(|r| r.rows).collect();
    assert_eq!(rows, [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_sends_part_of_the_body_then_ends_at_shutdown() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    sim.push_faults(TOKEN, [Fault::Hang]);
    let server = start(&sim).await;
    let url = format!(
        "{}/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959",
        server.base
    );
    let mut response = client()
        .get(&url)
        .header("wolkvox-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"{\"code\":200"));
    let next = tokio::time::timeout(Duration::from_millis(300), response.chunk()).await;
    assert!(next.is_err(), "the body must not finish");
    // A hung request still holds its slot.
    sim.push_faults(TOKEN, [Fault::Slow(Duration::from_millis(300))]);
    let second = {
        let url = url.clone();
        tokio::spawn(async move {
            client()
                .get(&url)
                .header("wolkvox-token", TOKEN)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    wait_for_in_flight(&sim, 2).await;
    let (status, _) = report(&server.base, "20261120000000", "20261120235959").await;
    assert_eq!(status, 403);
    assert_eq!(second.await.unwrap(), 200);
    server.stop().await;
    let rest = tokio::time::timeout(Duration::from_secs(2), response.chunk())
        .await
        .expect("the hung body ends at shutdown");
    assert!(rest.is_err() || matches!(rest, Ok(None)));
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
async fn random_faults_are_the_demo_kinds() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    sim.set_random_faults(TOKEN, 1.0, 5);
    let server = start(&sim).await;
    for _ in 0..4 {
        let (status, _) = get(
            &server.base,
            Some(TOKEN),
            "/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959",
        )
        .await;
        assert!([502, 503, 403, 200].contains(&status), "{status}");
    }
    sim.set_random_faults(TOKEN, 0.0, 5);
    assert_eq!(
        report(&server.base, "20261120000000", "20261120235959")
            .await
            .0,
        200
    );
    server.stop().await;
}

#[test]
fn sim_row_new_is_reproducible() {
    let a = row("2026-11-20T08:00:00.250", "x");
    let b = row("2026-11-20T08:00:00", "x");
    assert_eq!(a, b);
    assert_eq!(a.date, "2026-11-20 08:00:00");
    assert!(a.ani.len() >= 10 && a.ani.bytes().all(|c| c.is_ascii_digit()));
}
