//! `demo/stack.sh` end to end, as a user starts it: the simulator, a week backfilled into
//! blocks, Debian's Prometheus with prometheus/rules/ (evaluation every 5 s), the exporter
//! live. Then, against that Prometheus:
//! - the start incident's alert (`simulator::incidents::start_incident`) is pending from
//!   the first rule evaluations;
//! - every query of every dashboard has data (template variables filled with the
//!   stack's real label values, `dashboards.rs`): polled until none is empty, since
//!   the live `rate()` panels need a couple of scrapes;
//! - the alert goes from pending to firing after its `for: 10m`, without a reset;
//! - SIGTERM stops every process and removes the temporary directory.
//!
//! That it resolves after the incident takes an hour of wall clock; `start_incident.rs`
//! shows it with Prometheus's rule engine on the same simulator's data instead.
//!
//! The figures (start to first data, query totals, when the alert fired) are printed:
//! `cargo test --test it stack -- --nocapture`. Needs `prometheus` and `promtool`; fails,
//! rather than skips, without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::dashboards::{self, Grafana, Totals, dashboards, run_dashboards};
use crate::helpers::BIN;
use crate::prom::Prometheus;

/// The alert the start incident raises, and where.
const ALERT: &str = "WolkvoxIVRRoutingPointHangupRateAboveBaseline";
/// Its `for:` in prometheus/rules/alerts.yml.
const FOR: SignedDuration = SignedDuration::from_mins(10);
/// demo/stack.sh's `evaluation_interval`.
const EVALUATION: SignedDuration = SignedDuration::from_secs(5);
/// The dashboards as a Grafana on the stack's Prometheus (scrape interval 15 s) runs
/// them over "Last 1 hour": `$__rate_interval` is then 60 s.
const GRAFANA: Grafana = Grafana {
    scrape_secs: 15,
    range_secs: 3600,
    auto_interval_secs: 5,
};

/// A port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running demo/stack.sh: its stderr collected, its temporary directory.
struct Stack {
    /// None once stopped; a stack still running when the test fails is stopped on drop.
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    work: PathBuf,
    /// Prometheus, the exporter, the simulator.
    ports: [u16; 3],
    /// When the script was started.
    t0: Instant,
    t0_wall: Timestamp,
    /// When it printed its URLs.
    ready: Duration,
}

impl Stack {
    /// Starts the script on free ports (no Alertmanager) and waits for its URLs.
    async fn start() -> Stack {
        let ports = [free_port(), free_port(), free_port()];
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/stack.sh");
        let (t0, t0_wall) = (Instant::now(), Timestamp::now());
        let mut child = Command::new("bash")
            .arg(&script)
            .env("WOLKVOX_EXPORTER_BIN", BIN)
            .env("PROM_PORT", ports[0].to_string())
            .env("EXPORTER_PORT", ports[1].to_string())
            .env("SIM_PORT", ports[2].to_string())
            .env("ALERTMANAGER", "no-alertmanager-here")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start demo/stack.sh");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(dir) = line.split("everything under ").nth(1) {
                    let _ = tx.send(dir.trim_end_matches("):").to_string());
                }
            }
        });
        let work = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(300)))
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("the stack did not start:\n{}", log.lock().unwrap()));
        Stack {
            child: Some(child),
            log,
            work: PathBuf::from(work),
            ports,
            t0,
            t0_wall,
            ready: t0.elapsed(),
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn prometheus(&self) -> Prometheus {
        Prometheus::attach(
            format!("http://127.0.0.1:{}", self.ports[0]),
            self.work.join("prometheus.log"),
        )
    }

    /// An instant, as seconds after the script's start.
    fn since_start(&self, t: Timestamp) -> f64 {
        (t - self.t0_wall).as_secs_f64()
    }

    /// SIGTERM: everything stops, the directory goes, no port is served any more.
    async fn terminate(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{}", self.log.lock().unwrap());
        assert!(!self.work.exists(), "{} left behind", self.work.display());
        for port in self.ports {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                "port {port} still served"
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// The alerts Prometheus holds (pending and firing).
async fn alerts(prom: &Prometheus) -> Vec<Value> {
    prom.api("/api/v1/alerts", &[]).await["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The start incident's alert: acme's main menu.
fn start_alert(alerts: &[Value]) -> Option<Value> {
    alerts
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == ALERT
                && a["labels"]["operation"] == "acme"
                && a["labels"]["rp_id"] == "1001"
        })
        .cloned()
}

fn active_at(alert: &Value) -> Timestamp {
    alert["activeAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no activeAt: {alert}"))
}

/// `name{operation, rp_id} state` for each alert, sorted.
fn describe(alerts: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = alerts
        .iter()
        .map(|a| {
            let l = &a["labels"];
            let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
            format!(
                "{}{{operation={:?}, rp_id={:?}}} {}",
                s("alertname"),
                s("operation"),
                s("rp_id"),
                a["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_script_fills_every_dashboard_and_its_alert_fires() {
    // Fails, rather than skips, without Prometheus.
    crate::prom::tool("PROMETHEUS", "prometheus");
    crate::prom::tool("PROMTOOL", "promtool");
    let dashes = dashboards();
    let stack = Stack::start().await;
    assert!(
        stack.work.join("prometheus-data").is_dir(),
        "{:?}",
        stack.work
    );
    let prom = stack.prometheus();
    let prom_started: Timestamp = prom.api("/api/v1/status/runtimeinfo", &[]).await["startTime"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("runtimeinfo startTime");

    // The start incident's alert, pending since the first evaluations: Prometheus has
    // its first 5 s of evaluations and a group's offset within them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pending = loop {
        if let Some(a) = start_alert(&alerts(&prom).await) {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no {ALERT} a minute after the start:\n{}\n--- prometheus log\n{}",
            stack.log(),
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(pending["state"], "pending", "{pending}");
    let activated = active_at(&pending);
    assert!(
        activated - prom_started <= 3 * EVALUATION,
        "{ALERT} became active at {activated}, {:?} after Prometheus started ({prom_started}): \
         not at its first evaluations",
        activated - prom_started
    );
    // The exporter is up, and its status page names both operations.
    let page = reqwest::get(format!("http://127.0.0.1:{}/", stack.ports[1]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("acme") && page.contains("andina"), "{page}");

    // Every dashboard query with data: Grafana's `$__rate_interval` of 60 s needs two
    // live scrapes, the recorded series an evaluation after them.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut passes = 0;
    let mut first_pass = None;
    let (ran, first_data) = loop {
        passes += 1;
        let ran = run_dashboards(&prom, GRAFANA, &dashes).await;
        let empty = dashboards::empty(&ran);
        first_pass.get_or_insert((stack.t0.elapsed(), empty.len(), ran.len()));
        if empty.is_empty() {
            break (ran, stack.t0.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "after {:?} ({passes} passes), still without data:\n{}\n--- stack\n{}",
            stack.t0.elapsed(),
            empty.join("\n"),
            stack.log()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let totals = Totals::of(&dashes, &ran);
    assert_eq!(totals.empty, 0);
    let (first_at, first_empty, first_runs) = first_pass.expect("a pass");
    eprintln!(
        "stack: URLs printed {:.1} s after the script started; first pass over the dashboards \
         at {:.1} s: {first_empty} of {first_runs} runs empty; every dashboard query with data \
         at {:.1} s (pass {passes}): {} dashboards, {} panels, {} queries, {} query runs \
         (variables All / one value / two values) and {} variable queries, {} empty",
        stack.ready.as_secs_f64(),
        first_at.as_secs_f64(),
        first_data.as_secs_f64(),
        totals.dashboards,
        totals.panels,
        totals.queries,
        totals.query_runs,
        totals.variable_runs,
        totals.empty
    );

    // Pending to firing: once its `for:` has passed since it became active, at the next
    // evaluation; the same activeAt, so it never went back to inactive meanwhile.
    let deadline = Instant::now() + Duration::from_secs(12 * 60);
    let (firing, seen_at, all) = loop {
        let all = alerts(&prom).await;
        let a = start_alert(&all).unwrap_or_else(|| {
            panic!(
                "{ALERT} went away while pending:\n{}",
                describe(&all).join("\n")
            )
        });
        assert_eq!(active_at(&a), activated, "{ALERT} was reset: {a}");
        if a["state"] == "firing" {
            break (a, Timestamp::now(), all);
        }
        assert_eq!(a["state"], "pending", "{a}");
        assert!(
            Instant::now() < deadline,
            "{ALERT} still pending 12 minutes on: {a}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // Firing is set by an evaluation at or after activeAt + 10m, seen by the next poll.
    assert!(
        seen_at - activated >= FOR,
        "firing {:?} after it became active",
        seen_at - activated
    );
    let fired_by = seen_at - activated;
    eprintln!(
        "stack: {ALERT} (acme, rp_id 1001, {}) pending from {:.1} s after the script started \
         ({:.1} s after Prometheus started), firing seen at {:.1} s ({:.1} s after it became \
         active; `for: 10m`). Alerts then:\n  {}",
        firing["labels"]["rp_name"].as_str().unwrap_or(""),
        stack.since_start(activated),
        (activated - prom_started).as_secs_f64(),
        stack.since_start(seen_at),
        fired_by.as_secs_f64(),
        describe(&all).join("\n  ")
    );

    stack.terminate().await;
}
