//! A command line `backfill` cannot act on: one line, exit code 2, nothing asked.

use std::path::Path;
use std::process::Command;

use super::*;

/// Bad dates, an unknown operation, a range in the wrong order or in the future, an
/// output nobody can write: one line, exit code 2, no request sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_one_line_and_exit_2() {
    let bench = Bench::acme().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    let cfg = bench.config_file(&[ACME], "interval: 5m");
    let out = dir.path().join("out.om");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--from",
                "2026-13-01",
                "--to",
                "2026-04-08",
                "--output",
                out,
            ],
            "--from: \"2026-13-01\" is neither a date",
        ),
        (
            &["--from", "2026-04-01", "--to", "tomorrow", "--output", out],
            "--to: \"tomorrow\"",
        ),
        (
            &[
                "--from",
                "2026-04-08",
                "--to",
                "2026-04-01",
                "--output",
                out,
            ],
            "must be before --to",
        ),
        (
            &[
                "--from",
                "2026-04-01",
                "--to",
                "2099-01-01",
                "--output",
                out,
            ],
            "is in the future",
        ),
        (
            &[
                "--from",
                "2026-04-01",
                "--to",
                "2026-04-02",
                "--output",
                out,
                "--operation",
                "nope",
            ],
            "--operation: no operation named \"nope\" in the config (it has: acme)",
        ),
        (
            &[
                "--from",
                "2026-04-01",
                "--to",
                "2026-04-02",
                "--output",
                "/nonexistent/dir/out.om",
            ],
            "--output: cannot write /nonexistent/dir/out.om.tmp",
        ),
    ];
    for (args, want) in cases {
        let r = backfill_cmd(&cfg, args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.starts_with("wolkvox-exporter: backfill: "), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let r = Command::new(BIN)
        .args([
            "backfill",
            "--config",
            "/nonexistent.yaml",
            "--from",
            "2026-04-01",
            "--to",
            "2026-04-02",
            "--output",
            out,
        ])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("/nonexistent.yaml"));
    assert!(sim.report_requests().is_empty());
    assert!(!Path::new(out).exists());
}
