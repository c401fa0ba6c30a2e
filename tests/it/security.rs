//! `--web.config.file` from outside (TLS, client certificates, basic auth, reload, bad
//! files at start) and the token's whereabouts: it must show up nowhere a person or
//! another process can read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// A test PKI: a CA, a server certificate for `localhost` and a client certificate
/// signed by it, and a stranger's self-signed client certificate.
struct Pki {
    ca: String,
    client: String,
    stranger: String,
}

fn key_usage(params: &mut rcgen::CertificateParams, purpose: rcgen::ExtendedKeyUsagePurpose) {
    params.extended_key_usages.push(purpose);
}

impl Pki {
    fn write(dir: &Path) -> Pki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wolkvox-exporter test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        key_usage(&mut p, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let server = p.signed_by(&server_key, &issuer).unwrap();

        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["prometheus".to_string()]).unwrap();
        key_usage(&mut p, rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let client = p.signed_by(&client_key, &issuer).unwrap();

        let stranger_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["prometheus".to_string()]).unwrap();
        key_usage(&mut p, rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let stranger = p.self_signed(&stranger_key).unwrap();

        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            ca: ca.pem(),
            client: format!("{}{}", client.pem(), client_key.serialize_pem()),
            stranger: format!("{}{}", stranger.pem(), stranger_key.serialize_pem()),
        }
    }

    /// An HTTPS client that trusts the test CA only and reaches `localhost` at `addr`.
    fn client(&self, addr: std::net::SocketAddr, identity: Option<&str>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.as_bytes()).unwrap())
            .resolve("localhost", addr)
            .timeout(Duration::from_secs(10));
        if let Some(pem) = identity {
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}

fn https(addr: std::net::SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

fn one_op(sim: &Sim, dir: &Path, token: &str) -> String {
    config(
        sim,
        dir,
        &[Op {
            name: "acme",
            token,
            zone: "America/Bogota",
            extra: "",
        }],
        "backfill: 1h",
    )
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const PASSWORD: &str = "correct horse: battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_guard_every_path_and_reload() {
    let sim = Sim::start().await;
    sim.sim.add_tenant("tok", tz("America/Bogota"));
    let dir = tempdir();
    let pki = Pki::write(dir.path());
    // Cost 4, the lowest: the debug build's bcrypt is slow, and the cost is not what is tested.
    let alice = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = write(
        &dir.path().join("web.yml"),
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: {alice}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ),
    );
    let exp = Exporter::start(
        dir.path(),
        &one_op(&sim, dir.path(), "tok"),
        &["--web.config.file", &web],
    );
    assert!(exp.log().contains("tls=true"), "{}", exp.log());
    let c = pki.client(exp.addr, None);

    // No credentials, wrong password, unknown user: 401 with a Basic challenge, on
    // every path (the toolkit guards /-/healthy too).
    for path in ["/metrics", "/", "/-/healthy", "/-/ready", "/nope"] {
        for creds in [None, Some(("alice", "wrong")), Some(("mallory", PASSWORD))] {
            let mut req = c.get(https(exp.addr, path));
            if let Some((u, p)) = creds {
                req = req.basic_auth(u, Some(p));
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{path} {creds:?}");
            let challenge = r.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic"), "{challenge}");
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
            let body = r.text().await.unwrap();
            assert!(!body.contains("wolkvox_"), "{body}");
        }
    }
    // The right credentials, many times (the cache makes repeats cheap).
    for _ in 0..20 {
        let r = c
            .get(https(exp.addr, "/metrics"))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let s = Scrape::parse(&r.text().await.unwrap());
        assert!(s.has("wolkvox_up", &[("operation", "acme")]));
    }

    // Plain HTTP to the TLS port: refused with Go's wording, never served.
    let r = reqwest::get(format!("http://{}/metrics", exp.addr))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("HTTP request to an HTTPS server"), "{body}");
    // Something that is neither TLS nor HTTP: the connection is just closed.
    let addr = exp.addr;
    let junk = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&[0u8, 1, 2, 3, 0xff]).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    assert!(junk.is_empty(), "{junk:?}");

    // `healthcheck` with credentials in the URL, and without: the password is never printed.
    let port = exp.addr.port();
    let health = move |url: String| {
        let out = Command::new(BIN)
            .args(["healthcheck", "--tls.insecure-skip-verify"])
            .env("WOLKVOX_EXPORTER_HEALTHCHECK_URL", url)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = format!(
        "https://alice:{}@127.0.0.1:{port}/-/healthy",
        "correct%20horse%3A%20battery"
    );
    let (code, stderr) = tokio::task::spawn_blocking(move || health(ok))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let wrong = format!("https://alice:not-the-password@127.0.0.1:{port}/-/healthy");
    let (code, stderr) = tokio::task::spawn_blocking(move || health(wrong))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    // No URL: found from the exporter's own settings, as a container's HEALTHCHECK runs
    // it (with the exporter's environment): HTTPS, and a 401 shows the server up.
    let probe = move |web: Option<String>| {
        let mut cmd = Command::new(BIN);
        cmd.arg("healthcheck")
            .env("WOLKVOX_EXPORTER_LISTEN_ADDRESS", format!(":{port}"))
            .env_remove("WOLKVOX_EXPORTER_HEALTHCHECK_URL")
            .env_remove("WOLKVOX_EXPORTER_WEB_CONFIG_FILE");
        if let Some(web) = web {
            cmd.env("WOLKVOX_EXPORTER_WEB_CONFIG_FILE", web);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let with_web = web.clone();
    let (code, stderr) = tokio::task::spawn_blocking(move || probe(Some(with_web)))
        .await
        .unwrap();
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    // Without the web config it asks in plain HTTP, which the TLS port refuses.
    let (code, stderr) = tokio::task::spawn_blocking(move || probe(None))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!(
            "healthcheck: http://127.0.0.1:{port}/-/healthy answered 400"
        )),
        "{stderr}"
    );

    // Reload: alice replaced by bob, picked up without a restart.
    let bob = bcrypt::hash("bob's", 4).unwrap();
    write(
        Path::new(&web),
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  bob: {bob}\n"
        ),
    );
    let status = |user: &'static str, pass: &'static str| {
        let c = c.clone();
        let url = https(exp.addr, "/metrics");
        async move {
            c.get(url)
                .basic_auth(user, Some(pass))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while status("bob", "bob's").await != 200 {
        assert!(Instant::now() < deadline, "reload not seen\n{}", exp.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status("alice", PASSWORD).await, 401);
    assert!(exp.log().contains("web config reloaded"), "{}", exp.log());

    // A broken new version is refused with a warning; bob still gets in.
    write(Path::new(&web), "basic_auth_users: [\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !exp.log().contains("web config not reloaded") {
        assert!(Instant::now() < deadline, "no warning\n{}", exp.log());
        let _ = status("bob", "bob's").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status("bob", "bob's").await, 200);
    assert_eq!(status("alice", PASSWORD).await, 401);
    let log = exp.log();
    assert!(!log.contains(PASSWORD) && !log.contains("bob's"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_and_tls_versions() {
    let sim = Sim::start().await;
    sim.sim.add_tenant("tok", tz("America/Bogota"));
    let dir = tempdir();
    let pki = Pki::write(dir.path());
    let web = write(
        &dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\n",
    );
    let exp = Exporter::start(
        dir.path(),
        &one_op(&sim, dir.path(), "tok"),
        &["--web.config.file", &web],
    );
    let url = https(exp.addr, "/metrics");
    let r = pki
        .client(exp.addr, Some(&pki.client))
        .get(&url)
        .send()
        .await;
    assert_eq!(r.unwrap().status().as_u16(), 200);
    // No client certificate, or one from another CA: the handshake fails.
    assert!(pki.client(exp.addr, None).get(&url).send().await.is_err());
    assert!(
        pki.client(exp.addr, Some(&pki.stranger))
            .get(&url)
            .send()
            .await
            .is_err()
    );
    // A TLS 1.2 client with a good certificate: below min_version, refused.
    let old = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(pki.client.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .resolve("localhost", exp.addr)
        .build()
        .unwrap();
    assert!(old.get(&url).send().await.is_err());
    // The exporter is still fine.
    let r = pki
        .client(exp.addr, Some(&pki.client))
        .get(&url)
        .send()
        .await;
    assert_eq!(r.unwrap().status().as_u16(), 200);

    // `healthcheck` holds no client certificate: with the web config it checks only
    // that the port accepts connections. Flags work after the subcommand too.
    let port = exp.addr.port();
    let probe = move |listen: String| {
        let out = Command::new(BIN)
            .args(["healthcheck", "--web.listen-address", &listen])
            .args(["--web.config.file", &web])
            .env_remove("WOLKVOX_EXPORTER_HEALTHCHECK_URL")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (up, down) = tokio::task::spawn_blocking(move || {
        (probe(format!(":{port}")), probe("127.0.0.1:9".to_string()))
    })
    .await
    .unwrap();
    assert_eq!((up.0, up.1.as_str()), (Some(0), ""));
    assert_eq!(down.0, Some(1));
    assert!(
        down.1
            .starts_with("healthcheck: 127.0.0.1:9: Connection refused"),
        "{}",
        down.1
    );
}

/// A refused client certificate and a failed handshake are warnings with the peer and
/// the reason, one line per kind per 10 s; the ones held back are counted after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_are_warned_about_with_a_reason_at_most_once_per_period() {
    let sim = Sim::start().await;
    sim.sim.add_tenant("tok", tz("America/Bogota"));
    let dir = tempdir();
    let pki = Pki::write(dir.path());
    let web = write(
        &dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
    );
    let exp = Exporter::start(
        dir.path(),
        &one_op(&sim, dir.path(), "tok"),
        &["--web.config.file", &web],
    );
    let url = https(exp.addr, "/metrics");
    assert!(pki.client(exp.addr, None).get(&url).send().await.is_err());
    for _ in 0..5 {
        let stranger = pki.client(exp.addr, Some(&pki.stranger));
        assert!(stranger.get(&url).send().await.is_err());
    }
    for _ in 0..3 {
        let r = reqwest::get(format!("http://{}/metrics", exp.addr))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
    }
    let good = pki.client(exp.addr, Some(&pki.client));
    assert_eq!(good.get(&url).send().await.unwrap().status().as_u16(), 200);
    let lines = |what: &str| -> Vec<String> {
        exp.log()
            .lines()
            .filter(|l| l.contains(what))
            .map(str::to_string)
            .collect()
    };
    let refused = lines("msg=\"client certificate refused\"");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains(" level=warn "), "{}", refused[0]);
    assert!(refused[0].contains(" peer=127.0.0.1:"), "{}", refused[0]);
    assert!(
        refused[0].ends_with(" reason=\"peer sent no certificates\" suppressed=0"),
        "{}",
        refused[0]
    );
    let failed = lines("msg=\"TLS handshake failed\"");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]
            .ends_with(" reason=\"client sent an HTTP request to an HTTPS server\" suppressed=0"),
        "{}",
        failed[0]
    );
    // The rest, counted, once their period is over.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines("more client certificates refused").is_empty()
        || lines("more TLS handshakes failed").is_empty()
    {
        assert!(Instant::now() < deadline, "no counts\n{}", exp.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let more = lines("more client certificates refused");
    assert!(
        more[0].contains(" level=warn ") && more[0].ends_with(" count=5"),
        "{more:?}"
    );
    let more = lines("more TLS handshakes failed");
    assert!(more[0].ends_with(" count=2"), "{more:?}");
}

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
