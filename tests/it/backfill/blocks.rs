//! Six days of history backfilled by the binary, turned into blocks by promtool and
//! queried in a real Prometheus, exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::backfill;
use wolkvox_exporter::simulator::SimRow;

use super::*;
use crate::prom::{Prometheus, assert_success, tool};

/// Six days of Santiago traffic across the April fall-back, over the row cap in one
/// part: backfilled by the binary, turned into blocks by promtool, and queried in
/// Prometheus with exactly the counts the simulator served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_across_a_dst_fold_lands_in_prometheus_exactly() {
    let promtool = tool("PROMTOOL", "promtool");
    let prometheus = tool("PROMETHEUS", "prometheus");
    let bench = Bench::new().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    let z = tz("America/Santiago");
    bench.tenant("tok", "America/Santiago");
    let from = midnight(&z, 2026, 4, 2);
    let to = midnight(&z, 2026, 4, 8);
    // 130,000 rows at exact instants, from an hour before the range to an hour after.
    let (lo, hi) = (from - secs(3600), to + secs(3600));
    let n = 130_000;
    let span = hi.duration_since(lo).as_secs();
    let bulk = rows(&z, lo, hi, n, "h");
    sim.sim.add_rows_at(
        "tok",
        bulk.into_iter()
            .enumerate()
            .map(|(i, r)| (lo + secs(i as i64 * span / n as i64), r)),
    );
    // The repeated hour (23:00-23:59 on April 4th): the same wall times on both passes.
    let fold = "2026-04-05T03:00:00Z".parse::<Timestamp>().unwrap();
    let mut fold_rows = Vec::new();
    for k in 0..40 {
        let t = fold - secs(1800) + secs(20 * k);
        let row = SimRow::new(
            wall(&z, t),
            "2001",
            "Plegado",
            "1",
            "",
            "ok",
            "12",
            &format!("f1-{k}"),
        );
        fold_rows.push((t, row));
    }
    for k in 0..60 {
        let t = fold + secs(1800) + secs(20 * k);
        let row = SimRow::new(
            wall(&z, t),
            "2001",
            "Plegado",
            "2",
            "3005",
            "hung up",
            "40",
            &format!("f2-{k}"),
        );
        fold_rows.push((t, row));
    }
    // A true duplicate (the same row twice in every answer): both copies count.
    let dup = fold_rows[fold_rows.len() - 1].clone();
    fold_rows.push(dup);
    sim.sim.add_rows_at("tok", fold_rows);

    let cfg = bench.config_file(
        &[Op {
            name: "acme",
            token: "tok",
            zone: "America/Santiago",
            extra: "",
        }],
        "interval: 5m, timeout: 30s",
    );
    let out = dir.path().join("history.om");
    let started = Instant::now();
    let run = backfill_cmd(
        &cfg,
        &[
            "--from",
            "2026-04-02",
            "--to",
            "2026-04-08",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_success("backfill", &run);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("promtool tsdb create-blocks-from openmetrics"),
        "{stdout}"
    );
    assert!(!backfill::tmp_path(&out).exists());
    // It never touches the exporter's state.
    assert!(!dir.path().join("state").exists());
    // The whole range is one 31-day part, over the cap: answers cut at the cap are in
    // date order, so each is kept up to its last second and the rest asked next.
    let reqs = sim.report_requests();
    assert!(
        reqs.iter().any(|r| r.rows >= 60_000),
        "never at the cap: {reqs:?}"
    );
    assert!(stdout.contains(" continued, 0 halved"), "{stdout}");
    let size = std::fs::metadata(&out).unwrap().len();
    eprintln!(
        "backfill: {n} rows, {} requests, {size} bytes in {took:?}",
        reqs.len()
    );

    let blocks = dir.path().join("blocks");
    let created = Command::new(&promtool)
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=168h",
        ])
        .arg(&out)
        .arg(&blocks)
        .output()
        .expect("run promtool");
    assert_success("promtool tsdb create-blocks-from openmetrics", &created);

    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1m\n").expect("write prometheus.yml");
    // The blocks are months old: the default 15 days would delete them at once.
    let prom = Prometheus::start(&prometheus, &cfg, &blocks, dir.path(), "100y").await;
    let truth = sim.sim.rows_between("tok", from, to);
    assert!(truth.len() > 100_000);
    // Within 1.5 times the fewest requests the cap allows (issue 6's goal for history).
    let fewest = truth.len().div_ceil(60_000);
    assert!(
        2 * reqs.len() <= 3 * fewest,
        "{} requests for {} rows; at least {fewest} needed",
        reqs.len(),
        truth.len()
    );

    // Totals at the end of the range, by routing point and result.
    let mut got = BTreeMap::new();
    for (labels, v) in prom
        .query_at(
            "sum by (rp_id, result) (wolkvox_ivr_interactions_total)",
            to,
        )
        .await
    {
        if v != 0.0 {
            got.insert((labels["rp_id"].clone(), labels["result"].clone()), v);
        }
    }
    assert_eq!(got, expected_by_rp_result(&truth), "{}", prom.log());
    assert_eq!(got[&("2001".to_string(), "hung_up".to_string())], 61.0);

    // Routing point names as received (accents, quotes), empty rp_id as `unknown`.
    let names: BTreeSet<(String, String)> = prom
        .query_at("count by (rp_id, rp_name) (wolkvox_ivr_pulse_total)", to)
        .await
        .into_iter()
        .map(|(l, _)| {
            (
                l["rp_id"].clone(),
                l.get("rp_name").cloned().unwrap_or_default(),
            )
        })
        .collect();
    let want_names: BTreeSet<(String, String)> = truth
        .iter()
        .map(|r| {
            let id = r.rp_id.trim();
            let id = if id.is_empty() { "unknown" } else { id };
            (id.to_string(), r.rp_name.trim().to_string())
        })
        .collect();
    assert_eq!(names, want_names);

    // Each local day, the 25-hour one with the fold included.
    for d in 2..8 {
        let (a, b) = (midnight(&z, 2026, 4, d), midnight(&z, 2026, 4, d + 1));
        let want = sim.sim.rows_between("tok", a, b).len() as f64;
        let q = "sum(wolkvox_ivr_rows_total)";
        let day = prom.scalar(q, b).await - prom.scalar(q, a).await;
        assert_eq!(day, want, "rows on April {d}");
        if b.duration_since(a) == SignedDuration::from_hours(24) {
            // increase() extrapolates at the range edges; with a sample on each edge
            // it is the difference, give or take a window on newer Prometheus versions.
            let inc = prom
                .scalar("sum(increase(wolkvox_ivr_rows_total[1d]))", b)
                .await;
            assert!(
                (inc - want).abs() <= want * 0.01,
                "increase on April {d}: {inc} vs {want}"
            );
        }
    }

    // The histogram and the invalid-field counter.
    let valid: Vec<f64> = truth.iter().filter_map(|r| r.time.parse().ok()).collect();
    let count = prom
        .scalar("sum(wolkvox_ivr_interaction_duration_seconds_count)", to)
        .await;
    assert_eq!(count, valid.len() as f64);
    let inf = prom
        .scalar(
            "sum(wolkvox_ivr_interaction_duration_seconds_bucket{le=\"+Inf\"})",
            to,
        )
        .await;
    assert_eq!(inf, count);
    let sum = prom
        .scalar("sum(wolkvox_ivr_interaction_duration_seconds_sum)", to)
        .await;
    assert_eq!(sum, valid.iter().sum::<f64>());
    let invalid = prom
        .scalar("sum(wolkvox_ivr_rows_invalid_total{field=\"time\"})", to)
        .await;
    assert_eq!(invalid, (truth.len() - valid.len()) as f64);
    // Series start at 0 at `from`.
    assert_eq!(prom.scalar("sum(wolkvox_ivr_rows_total)", from).await, 0.0);
}
