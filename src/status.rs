//! What `/` and `/-/ready` show about each operation: the [`Status`] a poller keeps up
//! to date, and the landing page drawn from it.

use std::fmt::Write;
use std::sync::{Arc, Mutex, RwLock};

use jiff::Timestamp;

/// What `/` and `/-/ready` show about an operation.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub name: String,
    pub zone: String,
    pub first_cycle_done: bool,
    pub watermark: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<String>,
    pub requests_today: u64,
    pub ledger_rows: usize,
}

pub type SharedStatus = Arc<Mutex<Status>>;

/// Every operation's status, in config order: replaced whole by a config reload.
#[derive(Debug, Default)]
pub struct Statuses(RwLock<Vec<SharedStatus>>);

impl Statuses {
    pub fn new(list: Vec<SharedStatus>) -> Statuses {
        Statuses(RwLock::new(list))
    }

    pub fn set(&self, list: Vec<SharedStatus>) {
        match self.0.write() {
            Ok(mut g) => *g = list,
            Err(p) => *p.into_inner() = list,
        }
    }

    pub fn list(&self) -> Vec<SharedStatus> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// A copy of every operation's status, in config order.
pub fn snapshot(statuses: &[SharedStatus]) -> Vec<Status> {
    statuses
        .iter()
        .map(|s| match s.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        })
        .collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn when(t: Option<jiff::Timestamp>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// The landing page: version, links, and one line per operation.
pub fn index(statuses: &[SharedStatus], telemetry_path: &str) -> String {
    let mut rows = String::new();
    for s in snapshot(statuses) {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&s.name),
            html_escape(&s.zone),
            when(s.watermark),
            when(s.last_success),
            html_escape(s.last_error.as_deref().unwrap_or("none")),
            s.requests_today,
        );
    }
    let path = html_escape(telemetry_path);
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>wolkvox-exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left;border-bottom:1px solid #ddd}}</style></head>\
<body><h1>wolkvox-exporter</h1><p>Version {version}. <a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">healthy</a> · <a href=\"/-/ready\">ready</a></p>\
<table><tr><th>operation</th><th>time zone</th><th>rows in up to (watermark)</th><th>last success</th><th>last error</th><th>API requests today</th></tr>{rows}</table>\
</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}
