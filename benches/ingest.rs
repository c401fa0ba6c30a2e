//! One full report answer (59,999 rows, the most a complete answer holds), two ways:
//! - `plain_decode`: `serde_json` into an envelope of rows of ten owned `String`s, the
//!   practical floor for reading this JSON in Rust;
//! - `ingest`: what the exporter does with an answer: decode (borrowing), check the
//!   envelope, de-duplicate against the cycle's batch, apply the new rows to the totals.
//!
//! - `ingest_rows_only`: `ingest` of the same rows without `conn_id`, the row-only path:
//!   the difference is what grouping rows into calls costs.
//!
//! The goal is `ingest / plain_decode <= 1.5`; the ratio is printed at the end
//! from criterion's own estimates. The pieces of `ingest` are benched too, to show where
//! its time goes.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use serde::Deserialize;
use wolkvox_exporter::calls::{CallKey, Calls};
use wolkvox_exporter::config::{DEFAULT_BUCKETS, Limits};
use wolkvox_exporter::ingest::{ingest, rows_of};
use wolkvox_exporter::ledger::Ledger;
use wolkvox_exporter::totals::Totals;

mod common;

#[allow(dead_code)] // read by serde, never by us
#[derive(Deserialize)]
struct PlainRow {
    rp_id: String,
    rp_name: String,
    cod_opc_menu: String,
    dn_transfer: String,
    date: String,
    result: String,
    ani: String,
    time: String,
    customer_id: String,
    conn_id: String,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct PlainEnvelope {
    code: i64,
    error: Option<String>,
    msg: String,
    data: Vec<PlainRow>,
}

const GROUP: &str = "ingest_59999_rows";

fn bench(c: &mut Criterion) {
    let (body, q) = common::full_answer();
    let tz = common::zone();
    let limits = Limits::default();
    let bounds = DEFAULT_BUCKETS.to_vec();
    println!(
        "answer: {} rows, {} bytes ({:.1} MiB)",
        rows_of(&body).map(|r| r.len()).unwrap_or(0),
        body.len(),
        body.len() as f64 / (1024.0 * 1024.0)
    );

    let mut g = c.benchmark_group(GROUP);
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("plain_decode", |b| {
        b.iter(|| {
            let env: PlainEnvelope =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
            env.data.len()
        })
    });
    g.bench_function("ingest", |b| {
        b.iter(|| {
            let mut ledger = Ledger::new();
            let mut batch = ledger.begin();
            let mut totals = Totals::default();
            let got = ingest(
                &body,
                &q,
                &tz,
                &mut batch,
                &mut totals,
                &mut Calls::with_key(CallKey::from_u128(1)),
                &limits,
                &bounds,
            );
            (got.is_ok(), totals.rows)
        })
    });
    // The same rows without `conn_id`: the row-only path, to price the call grouping.
    let (mut no_calls, _) = common::rows(if common::measuring() {
        common::FULL_ANSWER_ROWS
    } else {
        1_000
    });
    for r in &mut no_calls {
        r.conn_id.clear();
    }
    let rows_only = common::body(&no_calls);
    g.bench_function("ingest_rows_only", |b| {
        b.iter(|| {
            let mut ledger = Ledger::new();
            let mut batch = ledger.begin();
            let mut totals = Totals::default();
            let got = ingest(
                &rows_only,
                &q,
                &tz,
                &mut batch,
                &mut totals,
                &mut Calls::with_key(CallKey::from_u128(1)),
                &limits,
                &bounds,
            );
            (got.is_ok(), totals.rows)
        })
    });
    // The pieces, for finding where time goes.
    g.bench_function("piece_decode", |b| {
        b.iter(|| rows_of(&body).map(|r| r.len()).unwrap_or(0))
    });
    let rows = rows_of(&body).unwrap_or_default();
    g.bench_function("piece_read", |b| {
        b.iter(|| {
            rows.iter()
                .map(|r| r.read())
                .filter(|r| r.date.is_some())
                .count()
        })
    });
    g.bench_function("piece_identity", |b| {
        b.iter(|| rows.iter().fold(0u128, |acc, r| acc ^ r.identity()))
    });
    let readings: Vec<_> = rows.iter().map(|r| r.read()).collect();
    g.bench_function("piece_apply", |b| {
        b.iter(|| {
            let mut t = Totals::default();
            for r in &readings {
                t.apply(r, &limits, &bounds);
            }
            t.rows
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    let started = std::time::SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only a real run (`cargo bench`) measures; `cargo test` runs each routine once.
    if common::measuring() {
        let plain = common::estimate(GROUP, "plain_decode", started);
        let ingest = common::estimate(GROUP, "ingest", started);
        match (plain, ingest) {
            (Some(p), Some(i)) => println!(
                "\nSUMMARY ingest / plain_decode = {:.2} ms / {:.2} ms = {:.2} (goal <= 1.5)",
                i / 1e6,
                p / 1e6,
                i / p
            ),
            _ => println!("\nSUMMARY ratio not available (run both benches of {GROUP})"),
        }
        if let (Some(i), Some(r)) = (ingest, common::estimate(GROUP, "ingest_rows_only", started)) {
            println!(
                "SUMMARY calls: ingest / ingest_rows_only = {:.2} ms / {:.2} ms = {:.2} ({:.0} ns a row for the call grouping)",
                i / 1e6,
                r / 1e6,
                i / r,
                (i - r) / common::FULL_ANSWER_ROWS as f64
            );
        }
    }
}
