//! Saving one operation's state after a commit, with 10,000 and 100,000 identities
//! remembered: `encode` (the live tables written into memory as a save writes them)
//! and `save` (written straight into a temporary file as a commit does, then fsync,
//! rename, fsync of the directory). The bytes written per save are printed.

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::civil::date;
use wolkvox_exporter::calls::{CallKey, Calls};
use wolkvox_exporter::config::{DEFAULT_BUCKETS, Limits};
use wolkvox_exporter::ingest::rows_of;
use wolkvox_exporter::ledger::{Ledger, Seen};
use wolkvox_exporter::state::{self, CallsView, LedgerView, StateView, TotalsView};
use wolkvox_exporter::totals::Totals;

mod common;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Realistic totals: the routing points, options and transfers of 20,000 generated rows.
    let (rows, _) = common::rows(common::size(20_000, 2_000));
    let body = common::body(&rows);
    let mut totals = Totals::default();
    for r in rows_of(&body).unwrap_or_default() {
        totals.apply(&r.read(), &Limits::default(), &DEFAULT_BUCKETS);
    }
    let mut g = c.benchmark_group("state_save");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for remembered in [common::size(10_000, 1_000), common::size(100_000, 2_000)] {
        let ledger = Ledger::from_entries((0..remembered).map(|i| {
            (
                xxhash_rust::xxh3::xxh3_128(&(i as u64).to_le_bytes()),
                Seen {
                    count: 1,
                    keep_until: date(2026, 11, 27).at(10, (i % 60) as i8, 0, 0),
                },
            )
        }));
        let calls = Calls::with_key(CallKey::from_u128(1));
        let view = StateView {
            version: state::VERSION,
            operation: "acme",
            origin: jiff::Timestamp::UNIX_EPOCH,
            watermark: Some(jiff::Timestamp::UNIX_EPOCH),
            saved_at: jiff::Timestamp::UNIX_EPOCH,
            buckets: &DEFAULT_BUCKETS,
            totals: TotalsView(&totals),
            ledger: LedgerView::new(&ledger),
            api_requests: BTreeMap::from([("200".into(), 1000), ("404".into(), 20)]),
            poll_errors: BTreeMap::new(),
            window_splits: 0,
            state_save_failures: 0,
            requests_day: None,
            requests_today: 0,
            calls: CallsView::new(&calls),
        };
        let path = state::path(dir.path(), &format!("acme{remembered}"));
        let mut buf = Vec::new();
        let bytes = state::save(&path, &view).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "state with {remembered} identities and {} routing points: {bytes} bytes per save ({:.0} bytes per identity)",
            totals.routing_points.len(),
            bytes as f64 / remembered as f64
        );
        g.bench_function(BenchmarkId::new("encode", remembered), |b| {
            b.iter(|| {
                buf.clear();
                view.write_json(&mut buf).unwrap_or_else(|e| panic!("{e}"));
                buf.len()
            })
        });
        g.bench_function(BenchmarkId::new("save", remembered), |b| {
            b.iter(|| state::save(&path, &view).unwrap_or_else(|e| panic!("{e}")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
