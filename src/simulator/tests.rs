//! End-to-end tests of the simulator over real HTTP on loopback: the helpers here, the
//! tests by what they check in the files below.

mod faults;
mod generated;
mod limits;
mod report;

use std::time::{Duration, Instant};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
