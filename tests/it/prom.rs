//! A real Prometheus and its tools for the tests that need them (`backfill`,
//! `prometheus_e2e`, `stack`): Debian's `prometheus` package ships both binaries; a missing one is
//! a failure that says how to install it, never a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;

/// `prometheus` or `promtool`, or a panic that says how to install it.
pub fn tool(var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(name), PathBuf::from);
    match Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => path,
        _ => panic!(
            "{name} not found ({}): install it with `apt-get install prometheus` (Debian's \
             package ships prometheus and promtool), or point {var} at one",
            path.display()
        ),
    }
}

pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real Prometheus on a free loopback port, killed on drop; or one another process
/// started ([`Prometheus::attach`]), left alone.
pub struct Prometheus {
    child: Option<Child>,
    url: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts on a port that was free a moment ago; another test may take it in between,
    /// so a start that fails on the address is retried on a new one. `retention` must
    /// reach back to the oldest backfilled block, or Prometheus deletes it at once.
    pub async fn start(
        bin: &Path,
        config: &Path,
        data: &Path,
        dir: &Path,
        retention: &str,
    ) -> Prometheus {
        for attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let child = Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--storage.tsdb.retention.time={retention}"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("prometheus log"))
                .spawn()
                .expect("start prometheus");
            let mut p = Prometheus::attach(format!("http://127.0.0.1:{port}"), log);
            p.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                if let Ok(r) = p.http.get(format!("{}/-/ready", p.url)).send().await
                    && r.status().is_success()
                {
                    return p;
                }
                if let Some(Ok(Some(status))) = p.child.as_mut().map(Child::try_wait) {
                    let log = p.log();
                    if log.contains("address already in use") {
                        break;
                    }
                    panic!("prometheus exited ({status}):\n{log}");
                }
                if Instant::now() > deadline {
                    panic!("prometheus did not become ready in 90 s:\n{}", p.log());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        panic!("prometheus: no free loopback port in 5 attempts");
    }

    /// The Prometheus at `url` (`http://HOST:PORT`), whose log is the file `log`.
    pub fn attach(url: String, log: PathBuf) -> Prometheus {
        Prometheus {
            child: None,
            url,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `data` of an API answer; panics unless the status is `success`.
    pub async fn api(&self, path: &str, params: &[(&str, String)]) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} {params:?}: {e}"));
        let text = r.text().await.expect("answer");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} {params:?}: not JSON ({e}): {text}"));
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        body["data"].clone()
    }

    /// An instant query (now, or `time`): each series' labels and value.
    pub async fn query(&self, q: &str, time: Option<i64>) -> Vec<(BTreeMap<String, String>, f64)> {
        let mut params = vec![("query", q.to_string())];
        if let Some(t) = time {
            params.push(("time", t.to_string()));
        }
        let data = self.api("/api/v1/query", &params).await;
        let series = |s: &Value| {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let v = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (labels, v)
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .expect("result")
                .iter()
                .map(series)
                .collect(),
            // `time() - x` folded to a scalar, `vector(1)` and friends: one unlabelled value.
            Some("scalar") => vec![(
                BTreeMap::new(),
                series(&serde_json::json!({"value": data["result"]})).1,
            )],
            other => panic!("{q}: unexpected result type {other:?}: {data}"),
        }
    }

    /// An instant query at `at`.
    pub async fn query_at(&self, q: &str, at: Timestamp) -> Vec<(BTreeMap<String, String>, f64)> {
        self.query(q, Some(at.as_second())).await
    }

    /// A query with exactly one answer, at `at`.
    pub async fn scalar(&self, q: &str, at: Timestamp) -> f64 {
        let r = self.query_at(q, at).await;
        assert_eq!(r.len(), 1, "{q} at {at}: {r:?}");
        r[0].1
    }

    /// The single value of `q` at `time`, or None when it has none.
    pub async fn value(&self, q: &str, time: i64) -> Option<f64> {
        let r = self.query(q, Some(time)).await;
        assert!(r.len() <= 1, "{q}: more than one series: {r:?}");
        r.first().map(|(_, v)| *v)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
