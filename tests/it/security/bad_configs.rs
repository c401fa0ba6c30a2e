//! A broken `--web.config.file` stops the start with one line naming the file and key.

use std::path::PathBuf;
use std::process::Command;

use super::*;

#[test]
fn broken_web_configs_stop_the_start_naming_file_and_key() {
    let dir = tempdir();
    Pki::write(dir.path());
    let cfg = write(
        &dir.path().join("config.yaml"),
        "operations:\n  - name: acme\n    base_url: \"http://127.0.0.1:9\"\n    token_env: T\n",
    );
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing file", None, "cannot read web config file"),
        ("bad YAML", Some("tls_server_config: [\n".into()), "line 1"),
        (
            "unknown key",
            Some("tls_server_config:\n  cert_file: a\n  keyfile: b\n".into()),
            "unknown field `keyfile`",
        ),
        (
            "missing certificate",
            Some(tls.replace("server.crt", "gone.crt")),
            "tls_server_config.cert_file: cannot read",
        ),
        (
            "unreadable certificate",
            Some(tls.replace("server.crt", "server.key")),
            "tls_server_config.cert_file: no PEM CERTIFICATE",
        ),
        (
            "bad bcrypt hash",
            Some("basic_auth_users:\n  alice: plain-text-password\n".into()),
            "basic_auth_users.alice: not a bcrypt hash",
        ),
        (
            "CA without client auth type",
            Some(format!("{tls}  client_ca_file: ca.crt\n")),
            "client_auth_type is NoClientCert",
        ),
    ];
    for (i, (what, text, want)) in cases.into_iter().enumerate() {
        let path: PathBuf = dir.path().join(format!("web{i}.yml"));
        if let Some(text) = text {
            std::fs::write(&path, text).unwrap();
        }
        let out = Command::new(BIN)
            .args(["--config", &cfg, "--web.listen-address", "127.0.0.1:0"])
            .arg("--web.config.file")
            .arg(&path)
            .arg("--state.dir")
            .arg(dir.path().join("state"))
            .env("T", "secret-token")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("level=")).collect();
        assert_eq!(lines.len(), 1, "{what}: one line, got {stderr:?}");
        let prefix = format!("wolkvox-exporter: {}: ", path.display());
        assert!(lines[0].starts_with(&prefix), "{what}: {}", lines[0]);
        assert!(
            lines[0].contains(want),
            "{what}: want {want:?} in {}",
            lines[0]
        );
        assert!(
            !stderr.contains("plain-text-password") && !stderr.contains("panicked"),
            "{what}: {stderr}"
        );
        assert!(
            !stderr.contains("listening"),
            "{what}: stopped before listening"
        );
    }
}
