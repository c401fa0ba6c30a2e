//! The binary's start: bad input stops it with exit code 2 and one line naming the key
//! or file; good input and signals end it cleanly.

use std::process::Command;

use crate::helpers::*;

/// Runs the binary with `args` and returns (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("WOLKVOX_SERVER")
        .env_remove("WOLKVOX_TOKEN")
        .env_remove("WOLKVOX_EXPORTER_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OP: &str =
    "operations:\n  - name: acme\n    base_url: \"http://127.0.0.1:9\"\n    token_env: T\n";

#[test]
fn broken_configs_exit_2_with_one_line_naming_the_key() {
    let dir = tempdir();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "unknown key",
            format!("{OP}    colour: blue\n"),
            vec![],
            "unknown field `colour`",
        ),
        (
            "bad zone",
            format!("{OP}    timezone: America/Bogata\n"),
            vec![],
            "timezone: unknown time zone \"America/Bogata\"",
        ),
        (
            "bad duration",
            format!("{OP}poll: {{interval: soon}}\n"),
            vec![],
            "poll.interval: invalid duration \"soon\"",
        ),
        (
            "unset token variable",
            OP.replace("token_env: T", "token_env: NOT_SET_ANYWHERE"),
            vec![],
            "token_env: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "duplicate names",
            format!("{OP}{}", OP.trim_start_matches("operations:\n")),
            vec![],
            "operations[1].name: duplicate operation name \"acme\"",
        ),
        (
            "YAML syntax",
            "operations: [\n".to_string(),
            vec![],
            "unclosed bracket",
        ),
        (
            "three concurrent requests",
            format!("{OP}    max_concurrent_requests: 3\n"),
            vec![],
            "max_concurrent_requests: must be 1 or 2 (got 3)",
        ),
        (
            "bad buckets",
            format!("{OP}duration_buckets: [10, 5]\n"),
            vec![],
            "duration_buckets[1]: buckets must increase",
        ),
        (
            "bad base_url",
            OP.replace("http://127.0.0.1:9", "not a url"),
            vec![],
            "base_url: invalid URL \"not a url\"",
        ),
        (
            "port in use",
            OP.to_string(),
            vec!["--web.listen-address", busy_addr.as_str()],
            "--web.listen-address: cannot listen on",
        ),
        (
            "bad listen address",
            OP.to_string(),
            vec!["--web.listen-address", "nowhere"],
            "--web.listen-address: \"nowhere\" is not an address",
        ),
        (
            "empty token file",
            OP.replace("token_env: T", "token_file: /dev/null"),
            vec![],
            "token_file: /dev/null is empty",
        ),
    ];
    for (i, (what, yaml, extra, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let sd = dir.path().join(format!("s{i}"));
        let mut args = vec![
            "--config",
            path.to_str().unwrap(),
            "--state.dir",
            sd.to_str().unwrap(),
        ];
        if extra.is_empty() {
            args.extend(["--web.listen-address", "127.0.0.1:0"]);
        }
        args.extend(extra.iter().copied());
        let (code, stderr) = run(&args, &[("T", "secret-token")]);
        assert_eq!(code, 2, "{what}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("level=")).collect();
        assert_eq!(lines.len(), 1, "{what}: one line, got {stderr:?}");
        assert!(
            lines[0].starts_with("wolkvox-exporter: "),
            "{what}: {stderr}"
        );
        assert!(
            lines[0].contains(want),
            "{what}: want {want:?} in {:?}",
            lines[0]
        );
        assert!(
            !stderr.contains("secret-token") && !stderr.contains("panicked"),
            "{what}: {stderr}"
        );
        if !extra.iter().any(|a| a.contains("listen")) {
            assert!(
                lines[0].contains(path.to_str().unwrap()),
                "{what}: names the file: {}",
                lines[0]
            );
        }
    }
    drop(busy);
}

#[test]
fn missing_config_file_and_missing_environment() {
    let (code, stderr) = run(&["--config", "/nonexistent/wolkvox.yaml"], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "wolkvox-exporter: /nonexistent/wolkvox.yaml: cannot read config file: No such file or directory (os error 2)"
    );
    let (code, stderr) = run(&[], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr
            .trim()
            .starts_with("wolkvox-exporter: no configuration: pass --config FILE"),
        "{stderr}"
    );
    let (code, stderr) = run(
        &["--web.listen-address", "127.0.0.1:0"],
        &[("WOLKVOX_SERVER", "0042")],
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "wolkvox-exporter: environment: WOLKVOX_TOKEN: is not set: set it to the token, or WOLKVOX_TOKEN_FILE to a file holding it"
    );
    let (code, stderr) = run(
        &["--web.listen-address", "127.0.0.1:0"],
        &[
            ("WOLKVOX_SERVER", "0042"),
            ("WOLKVOX_TOKEN", "x"),
            ("WOLKVOX_TIMEZONE", "Nowhere/City"),
        ],
    );
    assert_eq!(code, 2);
    // Named by its variable: the environment has no `operations[0]`.
    assert_eq!(
        stderr.trim(),
        "wolkvox-exporter: environment: WOLKVOX_TIMEZONE: unknown time zone \"Nowhere/City\" (use an IANA name such as America/Bogota)"
    );
}

/// What a newcomer met, each now one line that says what is wrong and where.
#[test]
fn first_run_messages_name_what_is_wrong() {
    // A port that was just let go: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempdir();

    // `check`: the URL with its port, and the cause of the failure.
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        OP.replace("http://127.0.0.1:9", &format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .env("T", "tok")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "config: OK (1 operation(s))\n\
             acme: API not reachable at http://127.0.0.1:{port}/ (connection refused): check `server`/`base_url`, DNS and the firewall\n"
        )
    );

    // `healthcheck`: a refused connection says so; a URL that is none says why.
    let (code, stderr) = run(
        &[
            "healthcheck",
            "--url",
            &format!("http://127.0.0.1:{port}/-/healthy"),
        ],
        &[],
    );
    assert_eq!(
        (code, stderr.as_str()),
        (
            1,
            format!("healthcheck: http://127.0.0.1:{port}/-/healthy: connection refused\n")
                .as_str()
        )
    );
    let (code, stderr) = run(&["healthcheck", "--url", "garbage"], &[]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            1,
            "healthcheck: --url: not a valid URL (relative URL without a base): give one such as http://127.0.0.1:10150/-/healthy\n"
        )
    );

    // A state directory that is a file: one line, exit 2, and nothing listened.
    let file = dir.path().join("state-file");
    std::fs::write(&file, "").unwrap();
    let (code, stderr) = run(
        &[
            "--web.listen-address",
            "127.0.0.1:0",
            "--state.dir",
            file.to_str().unwrap(),
        ],
        &[("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN", "x")],
    );
    assert_eq!(
        (code, stderr.as_str()),
        (
            2,
            format!(
                "wolkvox-exporter: state_dir: {} is a file, not a directory\n",
                file.display()
            )
            .as_str()
        )
    );
}

/// `check` and `backfill` take none of the exporter's listen, web or state flags: their
/// help lists none, and given after them they are usage errors.
#[test]
fn subcommands_list_only_their_own_flags() {
    let exporter_only = [
        "--web.listen-address",
        "--web.telemetry-path",
        "--web.config.file",
        "--web.enable-lifecycle",
        "--state.dir",
        "--state.reset",
        "--shard",
        "--demo",
    ];
    for sub in ["check", "backfill"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--config"), "{sub}: {help}");
        for flag in exporter_only {
            assert!(!help.contains(flag), "{sub} --help lists {flag}:\n{help}");
        }
    }
    let (code, stderr) = run(&["check", "--web.listen-address", ":1"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: unexpected argument '--web.listen-address' found"),
        "{stderr}"
    );
}

#[test]
fn unknown_flags_are_usage_errors() {
    let (code, stderr) = run(&["--no-such-flag"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--no-such-flag"));
}

#[test]
fn help_names_the_environment_variables() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "WOLKVOX_EXPORTER_CONFIG",
        "WOLKVOX_EXPORTER_LISTEN_ADDRESS",
        "WOLKVOX_EXPORTER_STATE_DIR",
        "WOLKVOX_EXPORTER_LOG_FORMAT",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_in_plain_words() {
    let bench = Bench::new().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    bench.tenant("good", "America/Bogota");
    let yaml = bench.yaml(
        &[
            Op {
                name: "fine",
                token: "good",
                zone: "America/Bogota",
                extra: "",
            },
            Op {
                name: "refused",
                token: "wrong",
                zone: "America/Bogota",
                extra: "",
            },
        ],
        "backfill: 1h",
    );
    let unreachable = yaml.replacen(
        "operations:\n",
        "operations:\n  - name: gone\n    base_url: \"http://127.0.0.1:9\"\n    token: x\n",
        1,
    );
    let path = dir.path().join("check.yaml");
    std::fs::write(&path, unreachable).unwrap();
    let p = path.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["check", "--config", &p])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("config: OK (3 operation(s))"), "{stdout}");
    assert!(
        stdout.contains(&format!("fine: OK: {}/ answered; no rows", sim.url())),
        "{stdout}"
    );
    // No traffic: neither the last 10 minutes nor 26 hours before say the zone.
    assert!(
        stdout.contains("\nfine: zone: cannot tell (no rows in the last 10 minutes, nor 26 hours before, to read it from)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused: token refused (PLEASE VALIDATE TOKEN)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\ngone: API not reachable at http://127.0.0.1:9/ (connection refused): check `server`/`base_url`, DNS and the firewall\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warning: operations[0] (gone).token: the token is written in the config file"
        ),
        "{stdout}"
    );
    assert_eq!(
        sim.report_requests().len(),
        3,
        "two small calls for the operation without rows, one for the refused token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_and_sigterm() {
    let bench = Bench::acme().await;
    let (sim, dir) = (&bench.sim, &bench.dir);
    // A slow upstream answer is in flight when SIGTERM arrives.
    sim.sim.push_faults(
        "tok",
        [wolkvox_exporter::simulator::Fault::Slow(
            std::time::Duration::from_secs(30),
        )],
    );
    let mut exp = bench.binary(&[ACME], "backfill: 1h, timeout: 60s", &[]);
    let url = format!("http://{}/-/healthy", exp.addr);
    let ok = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["healthcheck", "--url", &url])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(ok.success());
    let (status, body) = exp.get("/-/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "waiting for the first poll cycle of: acme\n")
    );
    // Wait until the slow request is in flight.
    for _ in 0..100 {
        if !sim.report_requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sim.report_requests().len(), 1);
    let status = tokio::task::spawn_blocking(move || {
        let s = exp.terminate(10);
        (s, exp.log())
    })
    .await
    .unwrap();
    let (exit, log) = status;
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "exit 0 within 10 s after SIGTERM\n{log}"
    );
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        state_file(dir.path(), "acme").exists(),
        "state saved on the way out"
    );
    let bad = Command::new(BIN)
        .args(["healthcheck", "--url", "http://127.0.0.1:9/-/healthy"])
        .status()
        .unwrap();
    assert_eq!(bad.code(), Some(1));
}

/// `--web.listen-address` takes a host name as the exporter-toolkit does: `localhost`
/// binds loopback (IPv4 first), and the exporter answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_address_takes_a_host_name() {
    let bench = Bench::acme().await;
    let exp = bench.binary(
        &[ACME],
        "backfill: 1h",
        &["--web.listen-address", "localhost:0"],
    );
    assert_eq!(exp.addr.ip().to_string(), "127.0.0.1", "{}", exp.log());
    let (status, body) = exp.get("/-/healthy").await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    let s = exp
        .wait_for(20, "a cycle", |s| s.sum("wolkvox_up", &[]) == 1.0)
        .await;
    assert_eq!(
        s.sum("wolkvox_ivr_rows_total", &[("operation", "acme")]),
        0.0
    );
}
