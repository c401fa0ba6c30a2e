//! demo/compose-setup.sh, the `setup` service's script, run for real: in busybox's sh
//! against a real simulator, then the exporter on the config it writes; and the lines it
//! shares with demo/stack.sh.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{ci_tool, model, on_path, read, root, strings, svc, text};
use crate::helpers::*;
use crate::prom::{assert_success, tool};

/// The block time ranges (ms) under a Prometheus data directory.
fn blocks(data: &Path) -> Vec<(i64, i64)> {
    let mut ranges = Vec::new();
    for e in std::fs::read_dir(data).unwrap() {
        let meta = e.unwrap().path().join("meta.json");
        if meta.exists() {
            let v: Value = serde_json::from_str(&read(&meta)).unwrap();
            assert!(v["stats"]["numSeries"].as_u64().unwrap() > 0, "{v}");
            ranges.push((
                v["minTime"].as_i64().unwrap(),
                v["maxTime"].as_i64().unwrap(),
            ));
        }
    }
    ranges.sort();
    ranges
}

/// The setup service's script, in busybox's sh with only busybox's tools on the PATH
/// (as in prom/prometheus), against the simulator started with the compose file's
/// flags (listen address, config path and history changed for the test); then the
/// exporter on the config it wrote, with the compose file's arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_script_backfills_a_real_simulator_and_the_exporter_runs_on_its_config() {
    let busybox = ci_tool(
        "BUSYBOX",
        "busybox",
        "busybox",
        &["true"],
        "apt-get install busybox",
    );
    let promtool = tool("PROMTOOL", "promtool");
    // The script runs with busybox's PATH.
    let promtool = on_path(&promtool.to_string_lossy()).unwrap_or(promtool);
    let m = model();
    let tmp = tempdir();
    let (dir, data, bin) = (
        tmp.path().join("shared"),
        tmp.path().join("data"),
        tmp.path().join("bin"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let status = Command::new(&busybox)
        .arg("--install")
        .arg("-s")
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success());

    let exporter_yaml = dir.join("exporter.yaml");
    let mut args: Vec<String> = strings(&svc(&m, "simulator")["command"])
        .into_iter()
        .map(|a| match a.split_once('=') {
            Some(("--web.listen-address", _)) => "--web.listen-address=127.0.0.1:0".into(),
            Some(("--write-config", _)) => format!("--write-config={}", exporter_yaml.display()),
            Some(("--history", _)) => "--history=2d".into(),
            _ => a,
        })
        .collect();
    args.extend(["--log.level".into(), "debug".into()]);
    let mut cmd = Command::new(BIN);
    cmd.args(&args);
    let sim = Exporter::from_command(cmd);
    let url = format!("http://{}/", sim.addr);

    let env = &svc(&m, "setup")["environment"];
    let root_user = rustix::process::geteuid().is_root();
    let owner = if root_user {
        text(env, "/DATA_OWNER")
    } else {
        ""
    };
    let run = || {
        Command::new(&busybox)
            .arg("sh")
            .arg(root().join("demo/compose-setup.sh"))
            .env_clear()
            .env("PATH", &bin)
            .env("WOLKVOX_DIR", &dir)
            .env("PROMETHEUS_DATA", &data)
            .env("SIMULATOR_URL", &url)
            .env("HISTORY_DAYS", "1")
            .env("WOLKVOX_EXPORTER_BIN", BIN)
            .env("PROMTOOL", &promtool)
            .env("DATA_OWNER", owner)
            .env("TMPDIR", tmp.path())
            .output()
            .expect("run compose-setup.sh")
    };
    let before = jiff::Timestamp::now().as_second();
    let out = run();
    let after = jiff::Timestamp::now().as_second();
    assert_success("compose-setup.sh", &out);
    let said = String::from_utf8_lossy(&out.stderr).to_string();

    // The configs: stack.sh's edits, and the simulator by the URL given.
    let written = read(&exporter_yaml);
    let mut live =
        format!("# demo/compose-setup.sh: exporter.yaml with base_url {url} and backfill 0s\n");
    for line in written.lines() {
        let line = if line.starts_with("    base_url: ") {
            format!("    base_url: \"{url}\"")
        } else if line.starts_with("  backfill: ") {
            "  backfill: 0s".to_string()
        } else {
            line.to_string()
        };
        live.push_str(&line);
        live.push('\n');
    }
    assert_eq!(written.matches("    base_url: ").count(), 2, "{written}");
    assert_eq!(read(&dir.join("live.yaml")), live);
    let backfill = live.replace("  interval: 15s\n", "  interval: 5m\n");
    assert_ne!(backfill, live);
    assert_eq!(read(&dir.join("backfill.yaml")), backfill);

    // The blocks: a day and an hour, ending at the last 5-minute mark.
    let ranges = blocks(&data);
    assert!(!ranges.is_empty(), "no block in {}: {said}", data.display());
    let (start, end) = (ranges[0].0, ranges.last().unwrap().1 - 1);
    assert_eq!(end % 300_000, 0, "{ranges:?}");
    assert_eq!(end - start, 25 * 3_600_000, "{ranges:?}");
    assert!(
        end >= before / 300 * 300_000 && end <= after * 1000,
        "{ranges:?}"
    );
    if root_user {
        use std::os::unix::fs::MetadataExt;
        for e in std::fs::read_dir(&data).unwrap() {
            let meta = std::fs::metadata(e.unwrap().path()).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        }
    }
    // No leftovers: history.om went with the script's temporary directory.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");

    // A second `up`: the blocks are kept as they are.
    let again = run();
    assert_success("compose-setup.sh, again", &again);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds blocks: kept, no backfill")
    );
    assert_eq!(blocks(&data), ranges);

    // The exporter, as the compose file starts it, on live.yaml: ready once its first
    // poll of the simulator is done.
    let mut exporter_args = strings(&svc(&m, "exporter")["command"]);
    let live_path = dir.join("live.yaml");
    exporter_args[1] = live_path.display().to_string();
    let refs: Vec<&str> = exporter_args.iter().map(String::as_str).collect();
    let exporter = Exporter::spawn(&refs);
    let mut ready = 0;
    for _ in 0..300 {
        ready = exporter.get("/-/ready").await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "{}", exporter.log());
    // It reached the simulator with the token files, for both operations.
    let s = exporter.scrape().await;
    for op in ["acme", "andina"] {
        let ok = s.sum(
            "wolkvox_api_requests_total",
            &[("operation", op), ("code", "200")],
        );
        assert!(ok >= 1.0, "{op}: {}", s.text);
        for reason in ["invalid_token", "missing_token", "network"] {
            let errors = s.sum(
                "wolkvox_poll_errors_total",
                &[("operation", op), ("reason", reason)],
            );
            assert_eq!(errors, 0.0, "{op}: {reason}");
        }
    }
    drop(sim);
}

#[test]
fn the_setup_script_runs_stack_sh_commands() {
    let stack = read(&root().join("demo/stack.sh"));
    let setup = read(&root().join("demo/compose-setup.sh"));
    for line in [
        "END=$(( NOW / 300 * 300 ))",
        "START=$(( END - HISTORY_DAYS * 86400 - 3600 ))",
        "from=$(date -u -d \"@$START\" +%Y-%m-%dT%H:%M:%SZ)",
        "to=$(date -u -d \"@$END\" +%Y-%m-%dT%H:%M:%SZ)",
        "'s/^  backfill: .*/  backfill: 0s/'",
        "sed 's/^  interval: .*/  interval: 5m/'",
        "tsdb create-blocks-from openmetrics --quiet --max-block-duration=168h",
        "\"$BIN\" backfill --config ",
    ] {
        assert!(stack.contains(line), "stack.sh no longer has {line}");
        assert!(
            setup.contains(line),
            "compose-setup.sh does not have {line}"
        );
    }
}
