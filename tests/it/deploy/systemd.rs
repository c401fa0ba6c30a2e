//! deploy/systemd: the unit agrees with its example config and with the binary.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Parser;
use wolkvox_exporter::cli::Cli;

use super::*;

/// The unit's token credentials are the files the example config names, its state
/// directory is the exporter's --state.dir, and its flags are the binary's.
#[test]
fn systemd_unit_agrees_with_its_config_and_the_binary() {
    let dir = root().join("deploy/systemd");
    let unit = read(&dir.join("wolkvox-exporter.service"));
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    let one = |key: &str| -> String {
        let v = values(key);
        assert_eq!(v.len(), 1, "{key}= in the unit: {v:?}");
        v[0].clone()
    };
    assert_eq!(one("DynamicUser"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    // A bad config is the exporter's exit code 2: not restarted in a loop.
    assert_eq!(one("RestartPreventExitStatus"), "2");
    let state = one("StateDirectory");

    // %S is /var/lib for a system unit.
    let exec = one("ExecStart").replace("%S", "/var/lib");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/wolkvox-exporter"));
    let cli = Cli::try_parse_from(std::iter::once("wolkvox-exporter").chain(words))
        .unwrap_or_else(|e| panic!("ExecStart: {e}"));
    assert_eq!(cli.state_dir, Some(Path::new("/var/lib").join(&state)));
    assert_eq!(
        cli.config.as_deref(),
        Some(Path::new("/etc/wolkvox-exporter/config.yaml"))
    );

    let credentials: BTreeSet<String> = values("LoadCredential")
        .iter()
        .map(|c| {
            c.split_once(':')
                .map(|(name, _)| name.to_string())
                .unwrap_or_default()
        })
        .collect();
    let config = wolkvox_exporter::config::parse_yaml(&read(&dir.join("config.yaml")))
        .unwrap_or_else(|e| panic!("deploy/systemd/config.yaml: {e}"));
    assert_eq!(
        config.state_dir, None,
        "the unit's --state.dir is the one state_dir"
    );
    let named: BTreeSet<String> = config
        .operations
        .iter()
        .map(|op| {
            let f = op
                .token_file
                .as_deref()
                .unwrap_or_else(|| panic!("{}: no token_file", op.name));
            let name = f
                .strip_prefix("/run/credentials/wolkvox-exporter.service")
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: {} is not a credential of the unit",
                        op.name,
                        f.display()
                    )
                });
            name.to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(named, credentials);
    assert_eq!(credentials.len(), 1);
}
