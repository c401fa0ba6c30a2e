//! The token, good or refused, shows up nowhere a person or another process can read;
//! caller data stays out of the state files.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// Every file under `dir`, as text (lossy).
fn read_tree(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(read_tree(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// The token, good or refused, is nowhere: not in the process arguments, the pages,
/// `/metrics`, the debug log, error messages, `check`'s report or the state files.
/// Caller data (ani, conn_id) is not in the state files either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_shows() {
    const GOOD: &str = "tok-7c1e9b0d5a-SECRET";
    const BAD: &str = "bad-4f2a8e61c3-SECRET";
    let sim = Sim::start().await;
    let z = tz("America/Bogota");
    sim.sim.add_tenant(GOOD, z.clone());
    let now = jiff::Timestamp::now();
    let data = rows(
        &z,
        now - jiff::SignedDuration::from_mins(30),
        now,
        40,
        "caller",
    );
    sim.sim.add_rows(GOOD, data.clone());
    let dir = tempdir();
    let mut yaml = config(
        &sim,
        dir.path(),
        &[
            Op {
                name: "good",
                token: GOOD,
                zone: "America/Bogota",
                extra: "",
            },
            Op {
                name: "refused",
                token: BAD,
                zone: "America/Bogota",
                extra: "",
            },
        ],
        "backfill: 1h",
    );
    // The refused one written inline in the config, the least careful way there is.
    let bad_file = dir.path().join("refused.token");
    yaml = yaml.replace(
        &format!("token_file: {}", bad_file.display()),
        &format!("token: \"{BAD}\""),
    );
    assert!(yaml.contains(BAD));
    std::fs::remove_file(&bad_file).unwrap();
    let exp = Exporter::start(dir.path(), &yaml, &[]);
    let s = exp
        .wait_for(60, "rows in and the refusal counted", |s| {
            s.sum("wolkvox_ivr_rows_total", &[("operation", "good")]) >= data.len() as f64
                && s.sum(
                    "wolkvox_poll_errors_total",
                    &[("operation", "refused"), ("reason", "invalid_token")],
                ) >= 1.0
        })
        .await;
    let mut seen: Vec<(String, String)> = vec![("/metrics".into(), s.text.clone())];
    for path in ["/", "/-/ready", "/-/healthy"] {
        seen.push((path.into(), exp.get(path).await.1));
    }
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", exp.child.id())).unwrap();
    seen.push((
        "cmdline".into(),
        String::from_utf8_lossy(&cmdline).into_owned(),
    ));
    // `check` reports the refusal in plain words.
    let cfg = dir.path().join("config.yaml");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["check", "--config"])
            .arg(cfg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let check = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(check.contains("token refused"), "{check}");
    seen.push(("check".into(), check));
    let mut exp = exp;
    let log = tokio::task::spawn_blocking(move || {
        exp.terminate(10);
        exp.log()
    })
    .await
    .unwrap();
    assert!(
        log.contains("invalid_token"),
        "the refusal is logged: {log}"
    );
    assert!(log.contains("written in the config file"), "{log}");
    seen.push(("log".into(), log));
    let state = read_tree(&dir.path().join("state"));
    assert!(!state.is_empty(), "state saved");
    for (path, text) in state {
        for r in &data {
            assert!(
                !text.contains(&r.conn_id) && (r.ani.is_empty() || !text.contains(&r.ani)),
                "caller data in clear in {}",
                path.display()
            );
        }
        seen.push((path.display().to_string(), text));
    }
    for (what, text) in &seen {
        for token in [GOOD, BAD] {
            assert!(!text.contains(token), "token found in {what}:\n{text}");
        }
        // Not even a recognisable part of it.
        assert!(!text.contains("SECRET"), "token part in {what}:\n{text}");
    }
}
