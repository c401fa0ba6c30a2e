//! Hostile clients on the exporter's own port: 1,100 connections that each send half a
//! request header and then nothing, against the binary under `ulimit -n 1024` (a common
//! default). Scrapes must answer again within 40 s, each within 2 s (issue 13), and the
//! slow connections must be closed. Figures are printed (`--nocapture`).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const SLOW_CLIENTS: usize = 1100;
const NOFILE: u64 = 1024;
/// The goal: scrapes answer again within this...
const ANSWERS_AGAIN_WITHIN: Duration = Duration::from_secs(40);
/// ... and each within this.
const SCRAPE_WITHIN: Duration = Duration::from_secs(2);

/// The test itself holds 1,100 sockets: its soft limit goes up to its hard one, as Go
/// programs do at start.
fn raise_own_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current.is_some_and(|c| c < 4096) {
        l.current = l.maximum;
        setrlimit(Resource::Nofile, l).expect("raise RLIMIT_NOFILE to its hard limit");
    }
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|c| c > SLOW_CLIENTS as u64 + 200),
        "this test needs {} open files and may have {now:?}",
        SLOW_CLIENTS + 200
    );
}

/// The binary started through `sh -c 'ulimit -n N; exec ...'`, as a user's shell would.
fn spawn_with_open_files_limit(args: &[&str], limit: u64) -> Exporter {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "debug",
        ])
        .args(args);
    Exporter::from_command(cmd)
}

/// The soft `Max open files` of a running process.
fn open_files_limit(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    line.split_whitespace()
        .nth(3)
        .expect("soft limit")
        .to_string()
}

/// One scrape as Prometheus makes it, on a new connection each time.
async fn scrape(addr: SocketAddr) -> Result<(u16, String), String> {
    let c = reqwest::Client::builder()
        .timeout(SCRAPE_WITHIN)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let r = c
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.map_err(|e| e.to_string())?))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_cannot_take_metrics_away_under_ulimit_1024() {
    raise_own_open_files_limit();
    let sim = Sim::start().await;
    sim.sim.add_tenant("tok", tz("America/Bogota"));
    let dir = tempdir();
    let yaml = config(
        &sim,
        dir.path(),
        &[Op {
            name: "acme",
            token: "tok",
            zone: "America/Bogota",
            extra: "",
        }],
        "backfill: 1h",
    );
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let exp = spawn_with_open_files_limit(&["--config", cfg.to_str().unwrap()], NOFILE);
    assert_eq!(open_files_limit(exp.child.id()), NOFILE.to_string());
    let (status, _) = scrape(exp.addr).await.expect("a scrape before");
    assert_eq!(status, 200);

    // Half a request header each, then nothing.
    let started = Instant::now();
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let mut s = TcpStream::connect(exp.addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nUser-Ag")
            .await
            .expect("half a header");
        // Then it waits for an answer that should never come: the exporter closes it.
        slow.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let left = ANSWERS_AGAIN_WITHIN.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => Ok(started.elapsed()),
                Ok(Ok(n)) => Err(format!("a slow client was answered: {:?}", &buf[..n])),
                Err(_) => Err(format!(
                    "a slow connection still open after {:?}",
                    started.elapsed()
                )),
            }
        }));
    }
    let opened = started.elapsed();

    // Scrapes, one after the other, until one answers; then every 250 ms for 15 s,
    // through the slow connections' header timeout: each one must answer.
    let attack = Instant::now();
    let mut first = None;
    let mut latencies = Vec::new();
    let mut failures = 0;
    while first.is_none_or(|f| attack.elapsed() < f + Duration::from_secs(15)) {
        let t = Instant::now();
        match scrape(exp.addr).await {
            Ok((200, body)) => {
                assert!(body.contains("wolkvox_up{operation=\"acme\"} 1"), "{body}");
                first.get_or_insert(attack.elapsed());
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => {
                assert!(
                    first.is_none(),
                    "a scrape failed after they answered again: {other:?}"
                );
                failures += 1;
                assert!(
                    attack.elapsed() < ANSWERS_AGAIN_WITHIN,
                    "no scrape answered within {ANSWERS_AGAIN_WITHIN:?}: {other:?}\n{}",
                    exp.log()
                );
            }
        }
    }
    let first = first.expect("scrapes answered");

    // Every slow connection is closed by the exporter: at the cap at once, or by the
    // header timeout.
    let mut closed = Vec::new();
    for task in slow {
        closed.push(
            task.await
                .expect("reader")
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let at_once = closed
        .iter()
        .filter(|t| **t < Duration::from_secs(5))
        .count();
    let last_closed = closed.iter().max().expect("closed");
    let log = exp.log();
    // The pollers kept their descriptors too.
    for trouble in ["Too many open files", "accept failed"] {
        assert!(!log.contains(trouble), "{trouble}: {log}");
    }
    assert!(
        log.contains("level=warn msg=\"connection limit reached: closed the connections that waited longest for a request\""),
        "{log}"
    );
    assert!(
        log.contains(
            "level=warn msg=\"closed connections that sent no complete request header in time\""
        ),
        "{log}"
    );
    eprintln!(
        "figures: {SLOW_CLIENTS} slow clients opened in {opened:?} (ulimit -n {NOFILE}); first scrape answered {first:?} after, {failures} failed before; scrape latency median {:?}, max {:?} ({} scrapes); slow connections closed: {at_once} within 5 s (the cap), all {last_closed:?} after the first was opened",
        median(latencies.clone()),
        latencies.iter().max().expect("latencies"),
        latencies.len(),
    );
}
