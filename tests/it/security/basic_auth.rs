//! TLS with basic auth: every path guarded, plain HTTP refused, `healthcheck` with and
//! without credentials, and users changed by a reload of the web config.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

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
