//! Transient errors are retried; a run that gives up, or meets a refused token, leaves
//! no file behind.

use jiff::Timestamp;
use wolkvox_exporter::backfill::{self, DateArg, Failure, Request};
use wolkvox_exporter::simulator::Fault;

use super::*;

/// Gateway errors, a broken body and a hung answer are retried; a run that gives up,
/// or meets a refused token, leaves no file behind. `--operation` asks only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_and_failures_leave_no_file() {
    let bench = Bench::new().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    let z = tz("America/Santiago");
    bench.tenant("tok-b", "America/Santiago");
    let (from, to) = (midnight(&z, 2026, 3, 1), midnight(&z, 2026, 3, 3));
    sim.sim.add_rows("tok-b", rows(&z, from, to, 2000, "b"));
    // Operation "a" has a token the server refuses: asking for it would fail the run.
    let config = bench.config(
        &[
            Op {
                name: "a",
                token: "unknown-token",
                zone: "America/Bogota",
                extra: "",
            },
            Op {
                name: "b",
                token: "tok-b",
                zone: "America/Santiago",
                extra: "",
            },
        ],
        "interval: 1h",
    );
    let out = dir.path().join("b.om");
    let req = Request {
        from: DateArg::parse("--from", "2026-03-01").unwrap(),
        to: DateArg::parse("--to", "2026-03-03").unwrap(),
        output: out.clone(),
        operation: Some("b".into()),
    };
    sim.sim.push_faults(
        "tok-b",
        [
            Fault::ServerErrorHtml(502),
            Fault::MalformedBody,
            Fault::Hang,
        ],
    );
    let s = backfill::run(&config, &req, &quick(), Timestamp::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.requests, s.retries, s.splits), (4, 3, 0));
    assert_eq!(s.rows, 2000);
    assert_eq!(s.windows, 48);
    assert_eq!(s.operations, vec!["b".to_string()]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(last_rows(&text, "b"), Some(2000.0));
    assert_eq!(last_rows(&text, "a"), None);
    assert_eq!(s.bytes, text.len() as u64);

    // Four gateway errors in a row with three retries: the run gives up.
    let failed = dir.path().join("failed.om");
    sim.sim
        .push_faults("tok-b", std::iter::repeat_n(Fault::ServerErrorHtml(503), 4));
    let e = backfill::run(
        &config,
        &Request {
            output: failed.clone(),
            ..req.clone()
        },
        &quick(),
        Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Failure::Run(m) if m.contains("failed 4 times")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
    assert!(!failed.exists());
    assert!(!backfill::tmp_path(&failed).exists());

    // A refused token is not retried.
    let before = sim.report_requests().len();
    sim.sim.push_faults("tok-b", [Fault::InvalidToken]);
    let e = backfill::run(
        &config,
        &Request {
            output: failed.clone(),
            ..req.clone()
        },
        &quick(),
        Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("token was refused"), "{e}");
    assert_eq!(sim.report_requests().len(), before + 1);
    assert!(!failed.exists());
    // Nothing but the one good output in the directory (temporary files are gone).
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".om") || n.contains(".tmp"))
        .collect();
    names.sort();
    assert_eq!(names, vec!["b.om".to_string()]);
}
