//! The Prometheus exporter-toolkit's own web-config tests, ported row by row against
//! the binary: `web/tls_config_test.go` of prometheus/exporter-toolkit at 19a7c2d, with
//! its `web/testdata/` copied unchanged into `tests/it/testdata/toolkit/` (see the
//! README there). Each row keeps the toolkit's name; its client does what the Go
//! client does (suites, curves, TLS version, client certificate, basic auth), and a
//! "no error" row must answer `200 OK` (the toolkit's handler says "Hello World!",
//! ours is `/-/healthy`).
//!
//! | test (Go)               | checks | passed | not applicable | deliberate differences |
//! | ----------------------- | -----: | -----: | -------------: | ---------------------: |
//! | TestYAMLFiles (run, validate) | 36 | 36 | 0 | 0 |
//! | TestServerBehaviour     |     27 |     24 |              1 |                      2 |
//! | TestConfigReloading     |      1 |      1 |              0 |                      0 |
//! | TestUsers               |      7 |      7 |              0 |                      0 |
//! | TestTLSConfigIsEnabled  |      6 |      6 |              0 |                      0 |
//! | total                   |     77 |     74 |              1 |                      2 |
//!
//! Not applicable: "valid tls config yml with non-http2 ciphers but http2 enabled"
//! expects Go's HTTP/2 rule (a TLS 1.2 suite list must hold
//! TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); this server speaks HTTP/1.1 only, so the file
//! is good here and serves (asserted).
//!
//! Deliberate differences (docs/security.md): "valid tls config yml with some curves"
//! and "... with no common curves" use a list of CurveP521 alone. rustls with ring has
//! no P-521, so such a file is refused at start, with one line, instead of serving with
//! a curve it does not have (asserted); the rule the second row checks, that a client
//! without a listed curve is refused, is checked with X25519 instead (an extra row).
//!
//! Two upstream quirks kept visible: the row "(cert from file, key inline)" reads the
//! same file as the row before it upstream; here it reads the key-inline file its name
//! promises. And `Requests: 10` means eleven requests (the Go loop runs `0..=10`).

mod client;
mod table;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;
use client::{Answer, Tls};
use table::{Client, EXTRA_ROWS, ROW, Row, SERVER_BEHAVIOUR, Status, TLS, Want, YAML_FILES};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/testdata/toolkit");

/// The toolkit's testdata in a directory of its own (relative paths resolve there, and
/// the reload test changes a file).
fn testdata() -> tempfile::TempDir {
    let dir = tempdir();
    for e in std::fs::read_dir(TESTDATA).expect("testdata") {
        let e = e.expect("testdata entry");
        std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy testdata");
    }
    dir
}

/// One operation the exporter will poll in vain: only its web side is under test.
fn config(dir: &Path) -> String {
    let token = dir.join("acme.token");
    std::fs::write(&token, "tok").expect("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod token");
    format!(
        "operations:\n  - name: acme\n    base_url: \"http://127.0.0.1:9\"\n    token_file: {}\n    timezone: America/Bogota\nstate_dir: {}\n",
        token.display(),
        dir.join("state").display()
    )
}

/// The exporter with `web` (a testdata file name; "" for none).
fn start(dir: &Path, web: &str) -> Exporter {
    let path = dir.join(web);
    let args: Vec<&str> = if web.is_empty() {
        Vec::new()
    } else {
        vec!["--web.config.file", path.to_str().expect("utf-8 path")]
    };
    Exporter::start(dir, &config(dir), &args)
}

/// The start with `web` fails: its one line of error (exit code 2, nothing listening).
fn start_fails(dir: &Path, web: &str) -> String {
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, config(dir)).expect("config");
    let mut child = Command::new(BIN)
        .args(["--web.listen-address", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--web.config.file")
        .arg(dir.join(web))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start exporter");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{web}: the exporter started, but the file should have been refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(2), "{web}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("level=")).collect();
    assert_eq!(lines.len(), 1, "{web}: one line, got {stderr:?}");
    assert!(!stderr.contains("listening"), "{web}: {stderr}");
    lines[0].to_string()
}

// ------------------------------------------------------------------ TestYAMLFiles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toolkit_yaml_files() {
    let data = testdata();
    let dir = data.path();
    for (name, file, want) in YAML_FILES {
        let path = dir.join(file);
        let prefix = format!("{}: ", path.display());
        let want =
            want.map(|w| format!("{prefix}{}", w.replace("DIR", &dir.display().to_string())));
        // validate/
        let got = wolkvox_exporter::web_config::WebConfig::from_file(&path).map(|_| ());
        match &want {
            None => assert!(got.is_ok(), "validate/{name}: {got:?}"),
            Some(w) => {
                let e = got.expect_err(name);
                assert!(
                    e.starts_with(w.as_str()),
                    "validate/{name}: want {w:?}, got {e:?}"
                );
            }
        }
        // run/
        match &want {
            None => {
                let exp = start(dir, file);
                let a = client::plain(exp.addr, "/-/healthy", None).await;
                assert_ok(&format!("run/{name}"), a);
            }
            Some(w) => {
                let line = start_fails(dir, file);
                assert!(
                    line.starts_with(&format!("wolkvox-exporter: {w}")),
                    "run/{name}: want {w:?}, got {line:?}"
                );
            }
        }
    }
}

fn assert_ok(name: &str, a: Result<Answer, String>) -> Answer {
    match a {
        Ok(a) if a.status == 200 && a.body == "OK\n" => a,
        Ok(a) => panic!("{name}: answered {} {:?}", a.status, a.body),
        Err(e) => panic!("{name}: {e}"),
    }
}

// ------------------------------------------------------------ TestServerBehaviour

async fn run_row(dir: &Path, row: &Row) {
    let name = row.name;
    if let Want::StartFails(w) = row.want {
        let line = start_fails(dir, row.web);
        let want = format!("wolkvox-exporter: {}: {w}", dir.join(row.web).display());
        assert!(
            line.starts_with(&want),
            "{name}: want {want:?}, got {line:?}"
        );
        return;
    }
    let exp = start(dir, row.web);
    for i in 0..=row.requests {
        let answer = match row.client {
            Client::Plain => client::plain(exp.addr, "/-/healthy", row.user).await,
            Client::Tls(opts) => client::tls(exp.addr, dir, "/-/healthy", opts, row.user).await,
            Client::Raw(bytes) => {
                let reply = client::raw(exp.addr, &bytes()).await;
                let Want::Reply(want) = row.want else {
                    panic!("{name}: a raw client needs Want::Reply");
                };
                assert!(
                    reply.starts_with(want),
                    "{name}: want {want:?}, got {reply:?}"
                );
                break;
            }
        };
        match row.want {
            Want::Ok => {
                let a = assert_ok(&format!("{name} (request {i})"), answer);
                if let Some(suite) = row.suite {
                    assert_eq!(a.suite.as_deref(), Some(suite), "{name}");
                }
            }
            Want::Answer(status, body) => match answer {
                // The toolkit's loop stops at the first answer that is not "Hello World!".
                Ok(a) if a.status == 200 => continue,
                Ok(a) => {
                    assert_eq!((a.status, a.body.as_str()), (status, body), "{name}");
                    break;
                }
                Err(e) => panic!("{name}: {e}"),
            },
            Want::Refused(want) => {
                let e = answer.err().unwrap_or_else(|| panic!("{name}: served"));
                assert!(e.contains(want), "{name}: want {want:?}, got {e:?}");
                break;
            }
            Want::Reply(_) | Want::StartFails(_) => unreachable!(),
        }
        if i == row.requests && matches!(row.want, Want::Answer(..)) {
            panic!("{name}: every request was served");
        }
    }
    if let Some(want) = row.log {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !exp.log().contains(want) {
            assert!(
                Instant::now() < deadline,
                "{name}: {want:?} not in the log:\n{}",
                exp.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toolkit_server_behaviour() {
    let data = testdata();
    let dir = data.path();
    std::fs::write(
        dir.join("x25519_only.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  curve_preferences: [X25519]\n",
    )
    .expect("extra config");
    let mut counts = (0, 0, 0);
    for row in SERVER_BEHAVIOUR.iter() {
        run_row(dir, row).await;
        match row.status {
            Status::Passed => counts.0 += 1,
            Status::NotApplicable(why) => {
                counts.1 += 1;
                eprintln!("not applicable: {}: {why}", row.name);
            }
            Status::Different(why) => {
                counts.2 += 1;
                eprintln!("deliberately different: {}: {why}", row.name);
            }
        }
    }
    assert_eq!(
        counts,
        (24, 1, 2),
        "(passed, not applicable, different): update the table above"
    );
    for row in EXTRA_ROWS.iter() {
        run_row(dir, row).await;
    }
    // The headers themselves, as the toolkit's TestHTTPHeaders checks them.
    let exp = start(dir, "web_config_headers.good.yml");
    let a = assert_ok("headers", client::plain(exp.addr, "/-/healthy", None).await);
    for (name, value) in [
        (
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ),
        ("X-Frame-Options", "deny"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-XSS-Protection", "1"),
        (
            "Content-Security-Policy",
            "default-src 'self' *.test.example.net",
        ),
    ] {
        assert_eq!(a.header(name), Some(value), "{name}");
    }
}

// ------------------------------------------------------------ TestConfigReloading

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toolkit_config_reloading() {
    let data = testdata();
    let dir = data.path();
    // Starts with RequireAndVerifyClientCert (and no client CA: the system's roots); a
    // client without a certificate is refused.
    let exp = start(dir, "web_config_noAuth.good.blocking.yml");
    let e = client::tls(exp.addr, dir, "/-/healthy", Tls::default(), None)
        .await
        .err()
        .expect("a client without a certificate is refused");
    assert!(e.contains("CertificateRequired"), "{e}");
    // The toolkit swaps the two files' contents; the server picks the new one up.
    let good = std::fs::read(dir.join("web_config_noAuth.good.yml")).expect("good");
    std::fs::write(dir.join("web_config_noAuth.good.blocking.yml"), good).expect("swap");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match client::tls(exp.addr, dir, "/-/healthy", Tls::default(), None).await {
            Ok(a) if a.status == 200 => break,
            other => assert!(
                Instant::now() < deadline,
                "not reloaded: {:?}\n{}",
                other.map(|a| a.status),
                exp.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = exp.log();
    assert!(log.contains("msg=\"client certificate refused\""), "{log}");
    assert!(
        log.contains("reason=\"peer sent no certificates\""),
        "{log}"
    );
    assert!(log.contains("web config reloaded"), "{log}");
}

// --------------------------------------------------------------------- TestUsers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toolkit_users() {
    let data = testdata();
    let dir = data.path();
    let unauthorized = Want::Answer(401, "Unauthorized\n");
    let (plain, tls) = (
        "web_config_users_noTLS.good.yml",
        "web_config_users.good.yml",
    );
    let rows = [
        Row {
            name: "without basic auth",
            web: plain,
            want: unauthorized,
            ..ROW
        },
        Row {
            name: "with correct basic auth",
            web: plain,
            user: Some(("dave", "dave123")),
            ..ROW
        },
        Row {
            name: "without basic auth and TLS",
            web: tls,
            client: TLS,
            want: unauthorized,
            ..ROW
        },
        Row {
            name: "with correct basic auth and TLS",
            web: tls,
            client: TLS,
            user: Some(("dave", "dave123")),
            ..ROW
        },
        Row {
            name: "with another correct basic auth and TLS",
            web: tls,
            client: TLS,
            user: Some(("carol", "carol123")),
            ..ROW
        },
        Row {
            name: "with bad password and TLS",
            web: tls,
            client: TLS,
            user: Some(("dave", "bad")),
            want: unauthorized,
            ..ROW
        },
        Row {
            name: "with bad username and TLS",
            web: tls,
            client: TLS,
            user: Some(("nonexistent", "nonexistent")),
            want: unauthorized,
            ..ROW
        },
    ];
    for row in &rows {
        run_row(dir, row).await;
    }
    // Passwords stay out of the log.
    let exp = start(dir, "web_config_users_noTLS.good.yml");
    let _ = client::plain(exp.addr, "/-/healthy", Some(("dave", "dave123"))).await;
    assert!(!exp.log().contains("dave123"), "{}", exp.log());
}

// ------------------------------------------------------------ TestTLSConfigIsEnabled

#[test]
fn toolkit_tls_config_is_enabled() {
    let data = testdata();
    let dir = data.path();
    // TLS off: the file is good and plain HTTP. TLS on: good and TLS, or the error of
    // a TLS setting that is incomplete (which only a TLS config reaches).
    let rows: [(&str, &str, Result<bool, &str>); 6] = [
        ("empty config", "", Ok(false)),
        (
            "only non-enabling fields set",
            "tls_server_config:\n  min_version: TLS12\n  prefer_server_cipher_suites: true\n",
            Ok(false),
        ),
        (
            "cert_file and key_file set",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
            Ok(true),
        ),
        (
            "inline cert and key set",
            "tls_server_config:\n  cert: cert\n  key: key\n",
            Err("tls_server_config.cert: no PEM CERTIFICATE block found"),
        ),
        (
            "only client CA file set",
            "tls_server_config:\n  client_ca_file: client_ca.crt\n",
            Err("tls_server_config.cert_file: missing one of cert or cert_file"),
        ),
        (
            "only client auth type set",
            "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
            Err("tls_server_config.cert_file: missing one of cert or cert_file"),
        ),
    ];
    for (name, yaml, want) in rows {
        let path = dir.join("is_enabled.yml");
        std::fs::write(&path, yaml).expect("write");
        let got = wolkvox_exporter::web_config::WebConfig::from_file(&path);
        match (want, got) {
            (Ok(tls), Ok((c, _))) => assert_eq!(c.tls_enabled(), tls, "{name}"),
            (Err(w), Err(e)) => assert_eq!(e, format!("{}: {w}", path.display()), "{name}"),
            (want, got) => panic!(
                "{name}: want {want:?}, got {:?}",
                got.map(|(c, _)| c.tls_enabled())
            ),
        }
    }
}
