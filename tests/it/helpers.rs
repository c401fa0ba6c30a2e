//! The test bench: the exporter (in-process, or the binary where the binary is what is
//! tested) against the in-process simulator, scrapes parsed into numbers, and waiting
//! for a condition instead of sleeping a fixed time. The bench itself (simulator,
//! tenants, operations, the in-process app) is in [`crate::app`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wolkvox_exporter::simulator::{SimRow, Simulator};

pub use crate::app::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_wolkvox-exporter");

/// A simulator served on loopback for the length of a test.
pub struct Sim {
    pub sim: Simulator,
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Sim {
    pub async fn start() -> Sim {
        let sim = Simulator::new();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let addr = listener.local_addr().expect("simulator address");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(sim.clone().serve(listener, async move {
            let _ = rx.await;
        }));
        Sim {
            sim,
            addr,
            _stop: tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests for the report (not token_info), in arrival order.
    pub fn report_requests(&self) -> Vec<wolkvox_exporter::simulator::RequestRecord> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.path_api == "diagram_1")
            .collect()
    }
}

/// One `operations:` entry of a test config.
pub struct Op<'a> {
    pub name: &'a str,
    pub token: &'a str,
    pub zone: &'a str,
    pub extra: &'a str,
}

/// A config with short windows: 1 s interval, 1 s delay, 5 s settle.
pub fn config(sim: &Sim, dir: &Path, ops: &[Op<'_>], poll: &str) -> String {
    let mut y = String::from("operations:\n");
    for op in ops {
        let token_file = dir.join(format!("{}.token", op.name));
        std::fs::write(&token_file, op.token).expect("write token");
        std::fs::set_permissions(
            &token_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod token");
        y.push_str(&format!(
            "  - name: {}\n    base_url: \"{}\"\n    token_file: {}\n    timezone: {}\n{}",
            op.name,
            sim.url(),
            token_file.display(),
            op.zone,
            op.extra
        ));
    }
    // Short windows unless `poll` sets a key itself.
    let mut keys = vec![poll.to_string()];
    for (k, v) in [
        ("interval", "1s"),
        ("delay", "1s"),
        ("settle", "5s"),
        ("timeout", "5s"),
    ] {
        if !poll.contains(&format!("{k}:")) {
            keys.push(format!("{k}: {v}"));
        }
    }
    y.push_str(&format!("poll: {{{}}}\n", keys.join(", ")));
    y.push_str(&format!("state_dir: {}\n", dir.join("state").display()));
    y
}

/// An exporter serving on loopback, the binary or in-process: where it listens and
/// what it has logged.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Endpoint {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap_or_else(|e| panic!("request to exporter: {e}\n--- log ---\n{}", self.log()));
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    pub async fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }

    /// Scrapes until `cond` holds, for up to `secs` seconds; panics with the log if not.
    pub async fn wait_for(&self, secs: u64, what: &str, cond: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.scrape().await;
            if cond(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n--- metrics ---\n{}\n--- log ---\n{}",
                    s.text,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The exporter binary, running: for what only the binary shows (exit codes, signals,
/// `kill -9`, flags, stderr). Everything else runs in-process: [`spawn_app`].
pub struct Exporter {
    pub child: Child,
    endpoint: Endpoint,
}

impl std::ops::Deref for Exporter {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Exporter {
    /// Writes `yaml` to `dir/config.yaml` and starts the binary on a free port.
    pub fn start(dir: &Path, yaml: &str, args: &[&str]) -> Exporter {
        let cfg = dir.join("config.yaml");
        std::fs::write(&cfg, yaml).expect("write config");
        Exporter::spawn(&[&["--config", cfg.to_str().expect("utf-8 path")], args].concat())
    }

    /// Starts the binary with `args`, on a free loopback port unless they name one.
    pub fn spawn(args: &[&str]) -> Exporter {
        let listen: &[&str] = if args.contains(&"--web.listen-address") {
            &[]
        } else {
            &["--web.listen-address", "127.0.0.1:0"]
        };
        let mut cmd = Command::new(BIN);
        cmd.args(listen).args(["--log.level", "debug"]).args(args);
        Exporter::from_command(cmd)
    }

    /// Starts `cmd` (the binary, or a shell that execs it) and waits for its
    /// "listening" line.
    pub fn from_command(mut cmd: Command) -> Exporter {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start exporter");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Into the log first, so a test that reads it right after the start
                // already sees the "listening" line.
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(addr) = line.split("msg=listening address=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or("").to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!("exporter did not start:\n{}", log.lock().unwrap());
            }
        };
        Exporter {
            child,
            endpoint: Endpoint { addr, log },
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `secs` for the exit.
    pub fn terminate(&mut self, secs: u64) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed `/metrics`: series (name plus sorted labels) to value.
pub struct Scrape {
    pub series: BTreeMap<(String, Vec<(String, String)>), f64>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut series = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, labels, rest) = match line.find('{') {
                Some(i) => {
                    let (labels, end) = parse_labels(&line[i + 1..]);
                    (&line[..i], labels, &line[i + 1 + end..])
                }
                None => {
                    let sp = line.find(' ').expect("value");
                    (&line[..sp], Vec::new(), &line[sp..])
                }
            };
            let value: f64 = rest
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            series.insert((name.to_string(), labels), value);
        }
        Scrape {
            series,
            text: text.to_string(),
        }
    }

    /// Sum over every series of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|((n, ls), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.series.keys().any(|(n, ls)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// Values of `label` across series of `name`, with their sums.
    pub fn by(&self, name: &str, filter: &[(&str, &str)], label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((n, ls), v) in &self.series {
            if n != name
                || !filter
                    .iter()
                    .all(|(k, fv)| ls.iter().any(|(lk, lv)| lk == k && lv == fv))
            {
                continue;
            }
            if let Some((_, lv)) = ls.iter().find(|(k, _)| k == label) {
                *out.entry(lv.clone()).or_insert(0.0) += v;
            }
        }
        out
    }
}

/// Parses `a="x",b="y\"z"} rest`; returns the labels (sorted) and the byte index past `}`.
fn parse_labels(s: &str) -> (Vec<(String, String)>, usize) {
    let mut labels = Vec::new();
    let mut it = s.char_indices();
    let mut name = String::new();
    while let Some((i, c)) = it.next() {
        match c {
            '}' => {
                labels.sort();
                return (labels, i + 1);
            }
            ',' => {}
            '=' => {
                it.next(); // the opening quote
                let mut value = String::new();
                while let Some((_, c)) = it.next() {
                    match c {
                        '"' => break,
                        '\\' => match it.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => {}
                        },
                        c => value.push(c),
                    }
                }
                labels.push((std::mem::take(&mut name), value));
            }
            c => name.push(c),
        }
    }
    panic!("unterminated labels in {s:?}");
}

/// What the exporter must show for `rows`: interactions by `(rp_id, result)`.
pub fn expected_by_rp_result(rows: &[SimRow]) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for r in rows {
        let result = match r
            .result
            .trim()
            .to_ascii_lowercase()
            .replace('_', " ")
            .as_str()
        {
            "ok" => "ok",
            "hung up" | "hungup" => "hung_up",
            _ => "other",
        };
        let rp = if r.rp_id.trim().is_empty() {
            "unknown".to_string()
        } else {
            r.rp_id.trim().to_string()
        };
        *out.entry((rp, result.to_string())).or_insert(0.0) += 1.0;
    }
    out
}

/// The exporter's interactions by `(rp_id, result)` for one operation, zeros left out.
pub fn shown_by_rp_result(s: &Scrape, op: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for ((n, ls), v) in &s.series {
        if n != "wolkvox_ivr_interactions_total"
            || *v == 0.0
            || !ls.iter().any(|(k, val)| k == "operation" && val == op)
        {
            continue;
        }
        let get = |k: &str| {
            ls.iter()
                .find(|(lk, _)| lk == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        *out.entry((get("rp_id"), get("result"))).or_insert(0.0) += v;
    }
    out
}

pub fn wall(tz: &TimeZone, t: Timestamp) -> DateTime {
    tz.to_datetime(t)
}

/// `n` scripted rows spread evenly over `[from, to)`, with routing points, options,
/// results and durations in rotation. Row `i` gets `conn_id` `{prefix}-{i}`.
pub fn rows(tz: &TimeZone, from: Timestamp, to: Timestamp, n: usize, prefix: &str) -> Vec<SimRow> {
    let span = to.duration_since(from).as_secs().max(1);
    let rps = [
        ("1001", "Menú Principal"),
        ("1002", "Soporte Técnico"),
        ("1003", "Cobranzas \"Mora\""),
        ("", ""),
    ];
    let opts = ["1", "2", "PULSE", "AGENTE", ""];
    let results = ["ok", "hung up", "ok", "Hung_Up", "ok", "transferred"];
    (0..n)
        .map(|i| {
            let at = from + SignedDuration::from_secs((i as i64 * span) / n as i64);
            let (rp_id, rp_name) = rps[i % rps.len()];
            let opt = opts[i % opts.len()];
            let dn = if opt == "AGENTE" { "3001" } else { "" };
            let time = if i % 97 == 0 {
                "n/a".to_string()
            } else {
                (i % 240).to_string()
            };
            SimRow::new(
                wall(tz, at),
                rp_id,
                rp_name,
                opt,
                dn,
                results[i % results.len()],
                &time,
                &format!("{prefix}-{i}"),
            )
        })
        .collect()
}

pub fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).expect("zone")
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn state_file(dir: &Path, op: &str) -> PathBuf {
    dir.join("state").join(format!("{op}.json"))
}
