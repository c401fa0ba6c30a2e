//! Every row once: answers cut at the cap continued or halved, rows at skipped wall
//! times, and runs that meet inside a repeated hour.

use jiff::Timestamp;
use jiff::civil::date;
use wolkvox_exporter::backfill::{self, DateArg, Request};
use wolkvox_exporter::simulator::SimRow;

use super::*;

/// An answer cut at the cap in date order is kept up to its last second and the rest
/// asked next (one request per 60,000 rows); one whose dates do not read is halved and
/// asked again. Either way every row counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_at_the_cap_are_continued_or_halved() {
    let bench = Bench::new().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    let z = tz("America/Bogota");
    let (from, to) = (midnight(&z, 2026, 3, 1), midnight(&z, 2026, 3, 2));
    bench.tenant("ordered", "America/Bogota");
    sim.sim.add_rows("ordered", rows(&z, from, to, 70_000, "o"));
    bench.tenant("undated", "America/Bogota");
    sim.sim.add_rows("undated", rows(&z, from, to, 70_000, "u"));
    // Served in the middle of the day, with an empty `date`: a cut answer holding it
    // cannot say which of its rows are complete.
    let mut blank = rows(&z, from, to, 1, "blank").remove(0);
    blank.at = wall(&z, from + secs(12 * 3600));
    blank.date = String::new();
    sim.sim.add_rows("undated", [blank]);
    let config = bench.config(
        &[
            Op {
                name: "ordered",
                token: "ordered",
                zone: "America/Bogota",
                extra: "",
            },
            Op {
                name: "undated",
                token: "undated",
                zone: "America/Bogota",
                extra: "",
            },
        ],
        "interval: 1h",
    );
    let run = |name: &str| {
        let req = Request {
            from: DateArg::parse("--from", "2026-03-01").unwrap(),
            to: DateArg::parse("--to", "2026-03-02").unwrap(),
            output: dir.path().join(format!("{name}.om")),
            operation: Some(name.into()),
        };
        let config = &config;
        async move {
            backfill::run(config, &req, &quick(), Timestamp::now())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };

    // The whole day, cut at 60,000; then the rest from the cut answer's last second.
    let s = run("ordered").await;
    assert_eq!((s.requests, s.continued, s.splits), (2, 1, 0));
    assert_eq!((s.rows, s.duplicates), (70_000, 0));
    let served: Vec<usize> = sim.report_requests().iter().map(|r| r.rows).collect();
    assert_eq!(served[0], 60_000);
    // The rows of the cut second come again: the second answer starts there.
    assert!(served[1] > 10_000, "{served:?}");

    // The day is cut with the undated row inside: halved, and both halves fit.
    let before = sim.report_requests().len();
    let s = run("undated").await;
    assert_eq!((s.requests, s.continued, s.splits), (3, 0, 1));
    assert_eq!((s.rows, s.duplicates), (70_001, 0));
    let served: Vec<usize> = sim.report_requests()[before..]
        .iter()
        .map(|r| r.rows)
        .collect();
    assert_eq!(served.iter().sum::<usize>(), 60_000 + 70_001);
    let text = std::fs::read_to_string(dir.path().join("undated.om")).unwrap();
    assert_eq!(last_rows(&text, "undated"), Some(70_001.0));
}

/// Santiago skips 00:00-00:59 on 2026-09-06 (04:00Z). Rows stamped with a skipped wall
/// time (should a clock write one) count at that transition. A cut answer whose last
/// row is one has no second to continue from, and is halved; every row counts once, and
/// each window's sample holds exactly the rows before it. (Only queries whose range
/// holds the transition strictly inside ask for skipped times: queries never name a
/// nonexistent local time, so one that starts at the transition asks from 01:00.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_answers_around_skipped_wall_times() {
    let bench = Bench::new().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    let z = tz("America/Santiago");
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let stamped = |h, m, n: usize, p: &str| -> Vec<SimRow> {
        let wall = date(2026, 9, 6).at(h, m, 0, 0);
        (0..n)
            .map(|i| {
                SimRow::new(
                    wall,
                    "1001",
                    "Menú",
                    "1",
                    "",
                    "ok",
                    "5",
                    &format!("{p}-{i}"),
                )
            })
            .collect()
    };
    // "last": the answer is cut on a skipped second.
    bench.tenant("last", "America/Santiago");
    sim.sim.add_rows(
        "last",
        rows(
            &z,
            at("2026-09-06T03:20:00Z"),
            at("2026-09-06T04:00:00Z"),
            59_990,
            "a",
        ),
    );
    sim.sim.add_rows("last", stamped(0, 30, 20, "g"));
    sim.sim.add_rows(
        "last",
        rows(
            &z,
            at("2026-09-06T06:00:00Z"),
            at("2026-09-06T12:00:00Z"),
            1_000,
            "b",
        ),
    );
    // "kept": skipped seconds among the rows before the cut, which is at 01:05 (04:05Z).
    bench.tenant("kept", "America/Santiago");
    sim.sim.add_rows(
        "kept",
        rows(
            &z,
            at("2026-09-06T00:00:00Z"),
            at("2026-09-06T04:00:00Z"),
            59_940,
            "a",
        ),
    );
    sim.sim.add_rows("kept", stamped(0, 10, 10, "g10"));
    sim.sim.add_rows("kept", stamped(0, 30, 20, "g30"));
    sim.sim.add_rows("kept", stamped(1, 5, 50, "r"));
    // "edge": few rows, and 20 stamped 00:30 on the gap's day, for ranges cut exactly
    // at the transition.
    bench.tenant("edge", "America/Santiago");
    sim.sim.add_rows(
        "edge",
        rows(
            &z,
            at("2026-08-20T04:00:00Z"),
            at("2026-09-10T03:00:00Z"),
            1_000,
            "e",
        ),
    );
    sim.sim.add_rows("edge", stamped(0, 30, 20, "g"));
    let op = |name| Op {
        name,
        token: name,
        zone: "America/Santiago",
        extra: "",
    };
    let config = bench.config(&[op("last"), op("kept"), op("edge")], "interval: 5m");
    let run = |name: &str, from: &str, to: &str| {
        let req = Request {
            from: DateArg::parse("--from", from).unwrap(),
            to: DateArg::parse("--to", to).unwrap(),
            output: dir.path().join(format!("{name}.om")),
            operation: Some(name.into()),
        };
        let config = &config;
        async move {
            let s = backfill::run(config, &req, &quick(), at("2026-12-01T00:00:00Z"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (s, std::fs::read_to_string(&req.output).unwrap())
        }
    };

    let (s, text) = run("last", "2026-09-06T03:20:00Z", "2026-09-06T12:00:00Z").await;
    assert_eq!((s.rows, s.duplicates, s.continued), (61_010, 0, 0));
    assert!(s.splits >= 1);
    assert_eq!(last_rows(&text, "last"), Some(61_010.0));

    // Skipped seconds count at the transition (04:00Z), before the cut (04:05Z): the
    // cut answer is continued, and the 04:10Z sample holds every row.
    let (s, text) = run("kept", "2026-09-06T00:00:00Z", "2026-09-06T08:00:00Z").await;
    assert_eq!(
        (s.rows, s.duplicates, s.continued, s.splits),
        (60_020, 0, 1, 0)
    );
    let sample = |t: Timestamp| {
        let prefix = "wolkvox_ivr_rows_total{operation=\"kept\"} ";
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .find_map(|l| {
                let (v, ts) = l.split_once(' ')?;
                (ts.parse::<i64>().ok()? == t.as_second()).then(|| v.parse::<f64>().unwrap())
            })
    };
    assert_eq!(sample(at("2026-09-06T04:00:00Z")), Some(59_940.0));
    assert_eq!(sample(at("2026-09-06T04:05:00Z")), Some(59_970.0));
    assert_eq!(sample(at("2026-09-06T04:10:00Z")), Some(60_020.0));
    assert_eq!(last_rows(&text, "kept"), Some(60_020.0));

    // A cut exactly at the transition: the query starting there asks from the second
    // before the gap (23:59:59, a time that exists), so the skipped times are asked.
    // From 2026-08-06 the first 31-day part ends at the transition.
    let (s, _) = run("edge", "2026-08-06", "2026-09-10").await;
    assert_eq!(s.rows, 1_020);
    let (s, _) = run("edge", "2026-08-08", "2026-09-10").await;
    assert_eq!(s.rows, 1_020);
    // Two runs that meet at the transition (local midnight that day) count what one
    // run over both days counts.
    let (a, _) = run("edge", "2026-09-05", "2026-09-06").await;
    let (b, _) = run("edge", "2026-09-06", "2026-09-07").await;
    let (both, _) = run("edge", "2026-09-05", "2026-09-07").await;
    assert!(b.rows >= 20, "{b:?}");
    assert_eq!(a.rows + b.rows, both.rows);
}

/// Two runs that meet inside the repeated hour of a fall-back both ask the API for its
/// wall times; between them they still count every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_meeting_inside_a_fold_count_each_row_once() {
    let bench = Bench::new().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    let z = tz("America/Santiago");
    bench.tenant("tok", "America/Santiago");
    let fold = "2026-04-05T03:00:00Z".parse::<Timestamp>().unwrap();
    // A row every 30 s from 22:00 (-03) to 01:00 (-04): both passes of 23:xx.
    let start = fold - secs(2 * 3600);
    let data: Vec<(Timestamp, SimRow)> = (0..480)
        .map(|k| {
            let t = start + secs(30 * k);
            let row = SimRow::new(wall(&z, t), "1", "A", "1", "", "ok", "5", &format!("c-{k}"));
            (t, row)
        })
        .collect();
    sim.sim.add_rows_at("tok", data);
    let config = bench.config(
        &[Op {
            name: "acme",
            token: "tok",
            zone: "America/Santiago",
            extra: "",
        }],
        "interval: 5m",
    );
    let run = |from: &str, to: &str, file: &str| {
        let req = Request {
            from: DateArg::parse("--from", from).unwrap(),
            to: DateArg::parse("--to", to).unwrap(),
            output: dir.path().join(file),
            operation: None,
        };
        let config = &config;
        async move {
            backfill::run(config, &req, &quick(), Timestamp::now())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let split = "2026-04-05T03:10:00Z";
    let whole = run("2026-04-04", "2026-04-06", "whole.om").await;
    let before = run("2026-04-04", split, "before.om").await;
    let after = run(split, "2026-04-06", "after.om").await;
    assert_eq!(whole.rows, 480);
    assert_eq!(before.rows + after.rows, 480, "{before:?}\n{after:?}");
    // The second run's query took in 23:10-23:59 of the first pass: left to the first.
    assert!(after.outside > 0);
    for (s, file) in [
        (&whole, "whole.om"),
        (&before, "before.om"),
        (&after, "after.om"),
    ] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(last_rows(&text, "acme"), Some(s.rows as f64));
    }
}
