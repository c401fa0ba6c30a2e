//! The de-duplication ledger over one poll cycle: observe a full answer, commit the
//! batch, forget what can no longer come back, with 10,000 and 1,000,000 identities
//! remembered.
//!
//! The ledger holds `remembered` identities spread over 36 windows (settle of 35
//! windows plus the current one). A cycle's answer holds the newest window's rows
//! (new) and re-sightings of older ones, 59,999 rows at most; after the commit the
//! oldest window is forgotten, so the ledger stays the same size cycle after cycle.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::civil::{DateTime, date};
use wolkvox_exporter::ledger::{Ledger, RowId, Seen};

mod common;

const WINDOWS: usize = 36;

fn id(i: usize) -> RowId {
    xxhash_rust::xxh3::xxh3_128(&(i as u64).to_le_bytes())
}

fn window_time(w: usize) -> DateTime {
    date(2026, 11, 27).at(0, 0, 0, 0) + jiff::SignedDuration::from_mins(5 * w as i64)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger_cycle");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for remembered in [10_000usize, common::size(1_000_000, 20_000)] {
        let per_window = remembered / WINDOWS;
        // Windows 0..36 remembered; the cycle brings window 36.
        let ledger = Ledger::from_entries((0..per_window * WINDOWS).map(|i| {
            (
                id(i),
                Seen {
                    count: 1,
                    keep_until: window_time(i / per_window),
                },
            )
        }));
        let new: Vec<(RowId, DateTime)> = (per_window * WINDOWS..per_window * (WINDOWS + 1))
            .map(|i| (id(i), window_time(WINDOWS)))
            .collect();
        let answer_len = 59_999usize.min(per_window * (WINDOWS + 1));
        let resighted = answer_len.saturating_sub(new.len());
        let mut answer: Vec<(RowId, DateTime)> = (per_window * WINDOWS - resighted
            ..per_window * WINDOWS)
            .map(|i| (id(i), window_time(i / per_window)))
            .collect();
        answer.extend_from_slice(&new[..new.len().min(answer_len)]);
        println!(
            "ledger of {remembered}: answer of {} rows ({} new)",
            answer.len(),
            new.len().min(answer_len)
        );
        g.bench_with_input(
            BenchmarkId::new("observe_commit_forget", remembered),
            &answer,
            |b, answer| {
                b.iter_batched(
                    || ledger.clone(),
                    |mut l| {
                        let mut batch = l.begin();
                        let fresh = batch.observe(answer);
                        let forgotten = l.commit(window_time(1));
                        (fresh.len(), forgotten, l)
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
