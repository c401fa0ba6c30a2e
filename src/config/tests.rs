use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(yaml: &str, e: &HashMap<String, String>) -> Result<Config, String> {
    let raw = parse_yaml(yaml)?;
    raw.validate(e).map(|(c, _)| c).map_err(|e| e.to_string())
}

const GOOD: &str = "operations:\n  - name: acme\n    server: \"0042\"\n    token_env: T\n";

#[test]
fn minimal_config_takes_the_documented_defaults() {
    let c = load(GOOD, &env(&[("T", "tok")])).unwrap();
    let op = &c.operations[0];
    assert_eq!(op.base_url.as_str(), "https://wv0042.wolkvox.com/");
    assert_eq!(op.zone_name, "America/Bogota");
    assert_eq!(op.max_concurrent_requests, 1);
    assert_eq!(op.poll, Poll::default());
    assert_eq!(op.token.expose(), "tok");
    assert_eq!(c.buckets, DEFAULT_BUCKETS.to_vec());
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.state_dir, PathBuf::from("data"));
}

#[test]
fn operation_poll_overrides_only_its_keys() {
    let yaml = "poll: {interval: 10s, settle: 1m}\noperations:\n  - name: a\n    base_url: http://127.0.0.1:9/x\n    token: t\n    poll: {interval: 2s}\n";
    let c = load(yaml, &env(&[])).unwrap();
    let p = c.operations[0].poll;
    assert_eq!(p.interval, Duration::from_secs(2));
    assert_eq!(p.settle, Duration::from_secs(60));
    assert_eq!(p.delay, Duration::from_secs(120));
    assert_eq!(c.operations[0].base_url.as_str(), "http://127.0.0.1:9/x/");
}

#[test]
fn broken_configs_name_the_key() {
    let e = env(&[("T", "tok")]);
    let cases: &[(&str, &str)] = &[
        (
            "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    bogus: 1\n",
            "unknown field `bogus`",
        ),
        ("operations: []\n", "operations: at least one operation"),
        (
            "operations:\n  - name: a b\n    server: \"1\"\n    token: t\n",
            "operations[0].name",
        ),
        (
            "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    timezone: Mars/Base\n",
            "operations[0] (a).timezone: unknown time zone \"Mars/Base\"",
        ),
        (
            "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    poll: {interval: 5 parsecs}\n",
            "operations[0] (a).poll.interval: invalid duration",
        ),
        (
            "poll: {interval: 500ms}\noperations:\n  - name: a\n    server: \"1\"\n    token: t\n",
            "poll.interval: must be a whole number of seconds",
        ),
        (
            "operations:\n  - name: a\n    server: \"1\"\n    token_env: NOPE\n",
            "operations[0] (a).token_env: environment variable NOPE is not set",
        ),
        (
            "operations:\n  - name: a\n    server: \"1\"\n    token: t\n  - name: a\n    server: \"2\"\n    token: t\n",
            "operations[1].name: duplicate operation name \"a\"",
        ),
        (
            "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    max_concurrent_requests: 3\n",
            "max_concurrent_requests: must be 1 or 2 (got 3)",
        ),
        (
            "duration_buckets: [5, 3]\noperations:\n  - name: a\n    server: \"1\"\n    token: t\n",
            "duration_buckets[1]: buckets must increase",
        ),
        (
            "operations:\n  - name: a\n    base_url: \"ftp://x\"\n    token: t\n",
            "base_url: \"ftp://x\" must be an http or https URL",
        ),
        (
            "operations:\n  - name: a\n    base_url: \"::\"\n    token: t\n",
            "base_url: invalid URL",
        ),
        (
            "operations:\n  - name: a\n    server: \"1\"\n",
            "operations[0] (a): no token",
        ),
        (
            "operations:\n  - name: a\n    token: t\n",
            "server or base_url is required",
        ),
        ("operations: [\n", "unclosed bracket"),
        (
            "limits: {routing_points: 0}\noperations:\n  - name: a\n    server: \"1\"\n    token: t\n",
            "limits.routing_points: must be at least 1",
        ),
    ];
    for (yaml, want) in cases {
        let got = load(yaml, &e).expect_err(yaml);
        assert!(got.contains(want), "{yaml:?}: got {got:?}, want {want:?}");
        assert!(!got.contains('\n'), "one line: {got:?}");
    }
}

#[test]
fn environment_mode() {
    let c = Config::from_env(&env(&[
        ("WOLKVOX_SERVER", "0042"),
        ("WOLKVOX_TOKEN", "x"),
        ("WOLKVOX_TIMEZONE", "America/Santiago"),
    ]))
    .unwrap()
    .0;
    assert_eq!(c.operations[0].name, "default");
    assert_eq!(c.operations[0].zone_name, "America/Santiago");
    let e = Config::from_env(&env(&[("WOLKVOX_SERVER", "0042")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment: WOLKVOX_TOKEN: is not set: set it to the token, or WOLKVOX_TOKEN_FILE to a file holding it"
    );
    assert_eq!(e.key(), Some("WOLKVOX_TOKEN"));
    assert_eq!(e.file(), None);
    // Every error names the variable, never the operation's key.
    let bad = |pairs: &[(&str, &str)]| {
        let mut all = vec![("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN", "x")];
        all.extend_from_slice(pairs);
        Config::from_env(&env(&all)).unwrap_err().to_string()
    };
    assert_eq!(
        bad(&[("WOLKVOX_TIMEZONE", "Mars/Olympus")]),
        "environment: WOLKVOX_TIMEZONE: unknown time zone \"Mars/Olympus\" (use an IANA name such as America/Bogota)"
    );
    assert_eq!(
        bad(&[("WOLKVOX_SERVER", "wv0042.wolkvox.com")]),
        "environment: WOLKVOX_SERVER: \"wv0042.wolkvox.com\" is not a Wolkvox server name (e.g. \"0042\")"
    );
    assert_eq!(
        bad(&[("WOLKVOX_TOKEN", "  ")]),
        "environment: WOLKVOX_TOKEN: is empty"
    );
    assert_eq!(
        bad(&[("WOLKVOX_TOKEN", "a\u{7}b")]),
        "environment: WOLKVOX_TOKEN: the token contains control characters"
    );
    assert_eq!(
        bad(&[("WOLKVOX_TOKEN_FILE", "/nonexistent/token")]),
        "environment: WOLKVOX_TOKEN_FILE: cannot read /nonexistent/token: No such file or directory (os error 2)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "tok").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (_, warnings) = Config::from_env(&env(&[
        ("WOLKVOX_SERVER", "0042"),
        ("WOLKVOX_TOKEN_FILE", file.to_str().unwrap()),
    ]))
    .unwrap();
    assert_eq!(
        warnings,
        [format!(
            "WOLKVOX_TOKEN_FILE: {} is readable by every user; chmod 600 it",
            file.display()
        )]
    );
    let e = Config::from_env(&env(&[])).unwrap_err();
    assert!(matches!(e, ConfigError::Missing));
    assert!(e.to_string().starts_with("no configuration"));
}

#[test]
fn file_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let e = Config::from_file(&path, &env(&[])).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert_eq!(e.file(), Some(path.as_path()));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read config file: No such file or directory (os error 2)",
            path.display()
        )
    );
    std::fs::write(&path, "operations: [\n").unwrap();
    let e = Config::from_file(&path, &env(&[])).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    assert_eq!(e.key(), None);
    std::fs::write(
        &path,
        GOOD.replace("token_env: T", "token_env: T\n    timezone: Mars/Base"),
    )
    .unwrap();
    let e = Config::from_file(&path, &env(&[("T", "tok")])).unwrap_err();
    assert_eq!(e.key(), Some("operations[0] (acme).timezone"));
    assert_eq!(e.file(), Some(path.as_path()));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: operations[0] (acme).timezone: unknown time zone \"Mars/Base\" (use an IANA name such as America/Bogota)",
            path.display()
        )
    );
}

#[test]
fn inline_token_warns_and_never_echoes_it() {
    let raw =
        parse_yaml("operations:\n  - name: a\n    server: \"1\"\n    token: s3cr3t\n").unwrap();
    let (_, w) = raw.validate(&env(&[])).unwrap();
    assert_eq!(w.len(), 1);
    assert!(!w[0].contains("s3cr3t"));
}

#[test]
fn calls_default_to_settle_and_override_key_by_key() {
    let c = load(GOOD, &env(&[("T", "tok")])).unwrap();
    assert_eq!(c.operations[0].calls.close_after, Duration::from_secs(1800));
    assert!(c.operations[0].calls.self_service.options.is_empty());
    let yaml = "poll: {settle: 10m}\ncalls:\n  self_service: {options: [SALDO, \" pulse \"], transfers: [\"9999\"]}\noperations:\n  - name: a\n    base_url: http://127.0.0.1:9/\n    token: t\n    calls: {self_service: {options: [HORARIOS]}}\n  - name: b\n    base_url: http://127.0.0.1:9/\n    token: t\n    poll: {settle: 1m}\n    calls: {close_after: 90s}\n";
    let c = load(yaml, &env(&[])).unwrap();
    let (a, b) = (&c.operations[0].calls, &c.operations[1].calls);
    // a: close_after from its settle (the top-level one); options its own, transfers
    // from the top level.
    assert_eq!(a.close_after, Duration::from_secs(600));
    assert_eq!(a.self_service.options, ["HORARIOS".to_string()].into());
    assert_eq!(a.self_service.transfers, ["9999".to_string()].into());
    // b: its own close_after; options as rows read them (trimmed, PULSE upper-cased).
    assert_eq!(b.close_after, Duration::from_secs(90));
    assert_eq!(
        b.self_service.options,
        ["SALDO".to_string(), "PULSE".to_string()].into()
    );
}

#[test]
fn bad_calls_keys_are_named() {
    let op = "operations:\n  - name: a\n    server: \"1\"\n    token: t\n";
    for (yaml, want) in [
        (
            format!("{op}calls: {{close_after: soon}}\n"),
            "calls.close_after: invalid duration \"soon\"",
        ),
        (
            format!("{op}    calls: {{close_after: 1.5s}}\n"),
            "operations[0] (a).calls.close_after: must be a whole number of seconds",
        ),
        (
            format!("{op}calls: {{self_service: {{options: [SALDO, \"  \"]}}}}\n"),
            "calls.self_service.options[1]: is empty; list the values as the report writes them",
        ),
        (
            format!("{op}    calls: {{self_service: {{transfers: [\"\"]}}}}\n"),
            "operations[0] (a).calls.self_service.transfers[0]: is empty",
        ),
        (
            format!("{op}calls: {{closing: 1m}}\n"),
            "unknown field `closing`",
        ),
    ] {
        let e = load(&yaml, &env(&[])).unwrap_err();
        assert!(e.starts_with(want) || e.contains(want), "{yaml}: {e}");
    }
}
