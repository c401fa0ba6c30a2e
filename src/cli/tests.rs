//! The command line's two stages together: what clap parses, and the settings or the
//! one error it turns into.

use super::*;
use crate::config::ConfigError;

fn settings(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let cli = Cli::try_parse_from([&["wolkvox-exporter"], args].concat()).unwrap();
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_cli(cli, &env)
}

fn serve(args: &[&str], env: &[(&str, &str)]) -> Serve {
    match settings(args, env) {
        Ok(Settings::Serve(s)) => *s,
        other => panic!("{args:?}: {other:?}"),
    }
}

const ENV: &[(&str, &str)] = &[("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN", "t")];

#[test]
fn the_demo_listens_on_loopback_unless_told() {
    let s = serve(&["--demo"], &[]);
    assert_eq!(s.listen.to_string(), "127.0.0.1:10150");
    assert!(
        matches!(&s.source, Source::Demo { temporary: true, state_dir } if state_dir.starts_with(std::env::temp_dir())),
        "{:?}",
        s.source
    );
    let s = serve(
        &[
            "--demo",
            "--web.listen-address",
            ":9999",
            "--state.dir",
            "/x",
        ],
        &[],
    );
    assert_eq!(s.listen.to_string(), ":9999");
    assert!(
        matches!(&s.source, Source::Demo { temporary: false, state_dir } if state_dir == std::path::Path::new("/x"))
    );
    // Everything else: every interface, as the contract's default `:10150`.
    assert_eq!(serve(&[], ENV).listen.to_string(), ":10150");
}

#[test]
fn bad_input_is_one_typed_error_with_exit_code_2() {
    let e = settings(&["--web.telemetry-path", "metrics"], ENV).unwrap_err();
    assert!(matches!(e, SettingsError::TelemetryPath(_)));
    assert_eq!(
        e.to_string(),
        "--web.telemetry-path: \"metrics\" must start with / and name a path"
    );
    assert_eq!(e.exit_code(), 2);
    let e = settings(&["--web.listen-address", "nowhere"], ENV).unwrap_err();
    assert!(matches!(e, SettingsError::ListenAddress(_)), "{e:?}");
    assert_eq!(e.exit_code(), 2);
    let e = settings(&[], &[]).unwrap_err();
    assert!(
        matches!(e, SettingsError::Config(ConfigError::Missing)),
        "{e:?}"
    );
    let e = settings(&["check"], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "check: nothing to check: pass --config FILE, or set WOLKVOX_SERVER and WOLKVOX_TOKEN (or WOLKVOX_TOKEN_FILE)"
    );
    // The environment's one operation, as the exporter reads it.
    match settings(&["check"], ENV) {
        Ok(Settings::Check { config, .. }) => {
            assert_eq!(config.operations[0].name, "default");
            assert_eq!(
                config.operations[0].base_url.as_str(),
                "https://wv0042.wolkvox.com/"
            );
        }
        other => panic!("{other:?}"),
    }
    let e = settings(
        &["check"],
        &[
            ("WOLKVOX_SERVER", "0042"),
            ("WOLKVOX_TOKEN", "t"),
            ("WOLKVOX_TIMEZONE", "X"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment: WOLKVOX_TIMEZONE: unknown time zone \"X\" (use an IANA name such as America/Bogota)"
    );
    // The token "t" hashes to one shard of two; the other polls nothing.
    let owner = (0..2)
        .find(|i| {
            Shard {
                index: *i,
                count: 2,
            }
            .selects("t")
        })
        .unwrap();
    let other = format!("{}/2", 1 - owner);
    let e = settings(&["--shard", &other], ENV).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("--shard {other}: none of the 1 operations falls in this shard")
    );
    let s = serve(
        &["--shard", &format!("{owner}/2"), "--state.dir", "/s"],
        ENV,
    );
    let Source::Config(c) = &s.source else {
        panic!()
    };
    assert_eq!(c.state_dir, std::path::PathBuf::from("/s"));
    assert_eq!(s.shard.map(|(_, all)| all), Some(1));
}

#[test]
fn healthcheck_finds_the_exporter_from_its_listen_address() {
    let probe = |args: &[&str]| match settings(args, &[]) {
        Ok(Settings::Healthcheck(p)) => p,
        other => panic!("{args:?}: {other:?}"),
    };
    assert_eq!(
        probe(&["healthcheck"]).url,
        "http://127.0.0.1:10150/-/healthy"
    );
    assert_eq!(
        probe(&["healthcheck", "--web.listen-address", "localhost:9"]).url,
        "http://127.0.0.1:9/-/healthy"
    );
    assert_eq!(
        probe(&["healthcheck", "--web.listen-address", "[::]:9"]).url,
        "http://[::1]:9/-/healthy"
    );
    // Unhealthy (1), and it speaks as the healthcheck.
    let e = settings(&["healthcheck", "--web.listen-address", "x"], &[]).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.to_string()
            .starts_with("healthcheck: --web.listen-address: \"x\" is not an address"),
        "{e}"
    );
}

#[test]
fn healthcheck_says_why_a_url_is_not_one() {
    let e = |url: &str| {
        let e = settings(&["healthcheck", "--url", url], &[]).unwrap_err();
        assert_eq!(e.exit_code(), 1, "{url}");
        e.to_string()
    };
    assert_eq!(
        e("garbage"),
        "healthcheck: --url: not a valid URL (relative URL without a base): give one such as http://127.0.0.1:10150/-/healthy"
    );
    assert_eq!(
        e("ftp://u:secret@host/"),
        "healthcheck: --url: the scheme is \"ftp\", not http or https: give one such as http://127.0.0.1:10150/-/healthy"
    );
    assert_eq!(
        e("http://[::1/"),
        "healthcheck: --url: not a valid URL (invalid IPv6 address): give one such as http://127.0.0.1:10150/-/healthy"
    );
    assert!(matches!(
        settings(
            &["healthcheck", "--url", "https://u:p@127.0.0.1:1/-/healthy"],
            &[]
        ),
        Ok(Settings::Healthcheck(_))
    ));
}

#[test]
fn clap_definition_is_valid() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
