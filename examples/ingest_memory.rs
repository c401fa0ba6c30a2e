//! Peak memory of fetching and ingesting one full report answer (59,999 rows), against
//! the size of the answer. Run in release:
//!
//! ```sh
//! cargo run --release --example ingest_memory
//! ```
//!
//! By default the answer is read as a poll cycle reads it: decoded by an
//! `ingest::Decoder` as its bytes arrive, so the body is never held whole. With `--rows`,
//! the whole body is fetched and goes through `rows_of` and `apply_rows` (decoded rows,
//! then their readings: the backfill's path), for comparison.
//!
//! The simulator runs in a child process (this program with `--serve`), so its rows and
//! its JSON do not sit in this process's heap. This process notes its resident size,
//! fetches the answer with the exporter's own HTTP client, ingests it into an empty batch
//! and totals as a poll cycle does, and reads the peak resident size (`VmHWM`) from
//! `/proc/self/status`.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use wolkvox_exporter::calls::{CallKey, Calls};
use wolkvox_exporter::config::{DEFAULT_BUCKETS, Limits};
use wolkvox_exporter::ingest::{Decoder, Ingested, apply_rows, ingest_answer, rows_of};
use wolkvox_exporter::ledger::Ledger;
use wolkvox_exporter::secret::Secret;
use wolkvox_exporter::simulator::Simulator;
use wolkvox_exporter::totals::Totals;
use wolkvox_exporter::window::{self, Range};
use wolkvox_exporter::wolkvox::ApiError;
use wolkvox_exporter::wolkvox::client::Client;
use wolkvox_exporter::wolkvox::client::Receive;

#[path = "../benches/common/mod.rs"]
mod common;

/// `VmRSS` or `VmHWM` from `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no {key} in /proc/self/status"))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Child: serves the rows on loopback, prints `port start end` (the query's range),
/// and stops when its standard input closes.
fn serve() -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (rows, q) = common::rows(common::FULL_ANSWER_ROWS);
        let sim = Simulator::new();
        sim.add_tenant("tok", common::zone());
        sim.add_rows("tok", rows);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        println!("{port} {} {}", q.range.start, q.range.end);
        let stop = async {
            let _ =
                tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
        };
        sim.serve(listener, stop).await;
        Ok(())
    })
}

fn measure(decoded_rows: bool) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let out = child.stdout.take().ok_or("no child stdout")?;
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let mut parts = line.split_whitespace();
    let port: u16 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("no port from the simulator")?;
    let mut instant = || -> Result<jiff::Timestamp, String> {
        parts
            .next()
            .ok_or("no range from the simulator")?
            .parse()
            .map_err(|e: jiff::Error| e.to_string())
    };
    let (start, end) = (instant()?, instant()?);
    let tz = common::zone();
    let q = window::query_for(Range::new(start, end), &tz);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let base =
        reqwest::Url::parse(&format!("http://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let client = Client::new(
        &base,
        Secret::new("tok"),
        None,
        Duration::from_secs(60),
        Arc::new(tokio::sync::Semaphore::new(1)),
    )
    .map_err(|e| e.to_string())?;
    let before = status_bytes("VmRSS:")?;
    let mut ledger = Ledger::new();
    let mut batch = ledger.begin();
    let mut totals = Totals::default();
    let mut calls = Calls::with_key(CallKey::from_u128(1));
    let (got, len, with_body) = if decoded_rows {
        let attempt = rt.block_on(client.fetch(&q));
        let body = attempt.result.map_err(|e| e.to_string())?;
        let with_body = status_bytes("VmRSS:")?;
        let rows = rows_of(&body).map_err(|e| e.to_string())?;
        let new = apply_rows(
            &rows,
            &q,
            &mut batch,
            &mut totals,
            &mut calls,
            &Limits::default(),
            &DEFAULT_BUCKETS,
        );
        let got = Ingested::Applied {
            rows: rows.len(),
            new,
            capped: false,
        };
        (got, body.len() as u64, Some(with_body))
    } else {
        let mut body = Counting(Decoder::default(), 0);
        let attempt = rt.block_on(client.fetch_into(&q, &mut body));
        attempt.result.map_err(|e| e.to_string())?;
        let answer = body.0.finish().map_err(|e| e.to_string())?;
        let got = ingest_answer(
            answer,
            &q,
            &tz,
            &mut batch,
            &mut totals,
            &mut calls,
            &Limits::default(),
            &DEFAULT_BUCKETS,
        );
        (got, body.1, None)
    };
    let peak = status_bytes("VmHWM:")?;
    drop(child.stdin.take()); // stops the simulator
    let _ = child.wait();
    let Ingested::Applied { new, .. } = got else {
        return Err(format!("unexpected {got:?}"));
    };
    let used = peak.saturating_sub(before);
    println!(
        "answer:                  {new} rows, {len} bytes ({:.1} MiB)",
        mib(len)
    );
    println!(
        "resident before:         {:.1} MiB (the fixed baseline)",
        mib(before)
    );
    if let Some(with_body) = with_body {
        println!("resident with the body:  {:.1} MiB", mib(with_body));
    }
    println!("peak, fetch and ingest:  {:.1} MiB", mib(peak));
    println!(
        "SUMMARY {} peak - baseline = {:.1} MiB = {:.2} x the answer (goal < 2.5)",
        if decoded_rows {
            "rows_of + apply_rows:"
        } else {
            "ingest:"
        },
        mib(used),
        used as f64 / len as f64
    );
    drop((batch, totals));
    Ok(())
}

/// A decoder that also counts the bytes it was handed.
struct Counting(Decoder, u64);

impl Receive for Counting {
    fn start(&mut self) {
        self.0.start();
        self.1 = 0;
    }
    fn extend(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.1 += bytes.len() as u64;
        self.0.extend(bytes)
    }
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let result = match arg.as_deref() {
        Some("--serve") => serve(),
        Some("--rows") => measure(true),
        _ => measure(false),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest_memory: {e}");
            ExitCode::FAILURE
        }
    }
}
