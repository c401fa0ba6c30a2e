//! `/metrics` rendering at growing sizes, up to the default routing point limit (500)
//! with 20 options each: tens of thousands of series. Goal: under 25 ms per render.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group};
use wolkvox_exporter::config::{DEFAULT_BUCKETS, Limits};
use wolkvox_exporter::metrics::{Metrics, SharedTotals};
use wolkvox_exporter::totals::Totals;
use wolkvox_exporter::wolkvox::row::{Field, RawRow};

mod common;

/// Totals of one operation with `rps` routing points, `options` options and 5 transfer
/// destinations each, every outcome and duration bucket in use.
fn totals(rps: usize, options: usize) -> Totals {
    let limits = Limits::default();
    let bounds = DEFAULT_BUCKETS.to_vec();
    let results = ["ok", "hung up", "abandoned"];
    let mut t = Totals::default();
    for rp in 0..rps {
        let rp_id = format!("{}", 1000 + rp);
        let rp_name = format!("Menú {rp} – Atención \"Clientes\"");
        for opt in 0..options {
            let option = if opt == 0 {
                "PULSE".to_string()
            } else {
                format!("OPCION_{opt}")
            };
            let row = RawRow {
                rp_id: Field(rp_id.as_str().into()),
                rp_name: Field(rp_name.as_str().into()),
                cod_opc_menu: Field(option.into()),
                dn_transfer: Field(format!("30{:02}", opt % 5).into()),
                date: Field("2026-11-27 10:00:00".into()),
                result: Field(results[opt % 3].into()),
                time: Field(format!("{}", opt * 37 % 700).into()),
                ..Default::default()
            };
            t.apply(&row.read(), &limits, &bounds);
        }
    }
    t
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("render_metrics");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    // One operation up to the routing point limit, then 200 small operations (whose
    // exporter series, two dozen each, go through the `prometheus` encoder).
    for (ops, rps, options) in [(1, 10, 5), (1, 100, 20), (1, 500, 20), (200, 8, 10)] {
        let t = totals(rps, options);
        let all: Vec<(String, SharedTotals)> = (0..ops)
            .map(|i| {
                (
                    format!("op{i:03}"),
                    Arc::new(RwLock::new(Arc::new(t.clone()))),
                )
            })
            .collect();
        let metrics = Metrics::new(DEFAULT_BUCKETS.to_vec(), all).unwrap_or_else(|e| panic!("{e}"));
        let text = metrics.render();
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        let id = if ops == 1 {
            format!("{rps}x{options}")
        } else {
            format!("{ops}ops_{rps}x{options}")
        };
        println!(
            "{ops} operation(s) x {rps} routing points x {options} options: {series} series, {} bytes",
            text.len()
        );
        g.bench_function(BenchmarkId::new("rp_x_options", id), |b| {
            b.iter(|| metrics.render().len())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    let started = std::time::SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    if common::measuring() {
        for id in ["500x20", "200ops_8x10"] {
            if let Some(ns) = common::estimate("render_metrics/rp_x_options", id, started) {
                println!("SUMMARY render {id} = {:.2} ms (goal < 25 ms)", ns / 1e6);
            }
        }
    }
}
