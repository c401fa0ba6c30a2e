//! What the examples share: the exporter binary as a child process, and its CPU and
//! memory read from `/proc`.

#![allow(dead_code)] // each example uses its own subset

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proc {
    pub child: Child,
    pub addr: String,
    pub log_lines: Arc<Mutex<u64>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) and resident/peak bytes of a process.
pub fn sample(pid: u32, ticks: f64) -> Result<(f64, u64, u64), String> {
    let (user, system) = cpu_split(pid, ticks)?;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok((user + system, kb("VmRSS:"), kb("VmHWM:")))
}

/// A process's CPU seconds in user and in kernel mode, apart.
pub fn cpu_split(pid: u32, ticks: f64) -> Result<(f64, f64), String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| -> f64 { f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((num(11) / ticks, num(12) / ticks))
}

pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Starts `bin` with `config` on a free loopback port, and any `extra` arguments.
pub fn start_exporter(bin: &Path, config: &Path, extra: &[&str]) -> Result<Proc, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["--config"]).arg(config).args([
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.level",
        "info",
    ]);
    cmd.args(extra);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let lines = Arc::new(Mutex::new(0u64));
    let counter = Arc::clone(&lines);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("msg=listening address=").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
            if line.contains("level=warn") || line.contains("level=error") {
                eprintln!("exporter: {line}");
            }
            if let Ok(mut n) = counter.lock() {
                *n += 1;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the exporter did not start".to_string())?;
    Ok(Proc {
        child,
        addr,
        log_lines: lines,
    })
}

pub async fn get(url: &str) -> Result<(u16, String), String> {
    get_with(&reqwest::Client::new(), url).await
}

/// `client` decides whether to ask for gzip (reqwest asks unless built with `no_gzip`).
pub async fn get_with(client: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.map_err(|e| e.to_string())?))
}

pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Serves `sim` on a free loopback port; returns its URL and the sender that stops it.
pub async fn serve_simulator(
    sim: &wolkvox_exporter::simulator::Simulator,
) -> Result<(String, tokio::sync::oneshot::Sender<()>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let sim_url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.clone().serve(listener, async move {
        let _ = stop_rx.await;
    }));
    Ok((sim_url, stop_tx))
}

/// Stops the exporter with SIGTERM, as a service manager would, and waits for it
/// (profilers wrapped around it then get to write their output).
pub fn terminate(p: &mut Proc) {
    let pid = p.child.id().to_string();
    if Command::new("kill").args(["-TERM", &pid]).status().is_ok() {
        for _ in 0..100 {
            if matches!(p.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
