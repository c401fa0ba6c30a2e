//! Client certificates and TLS versions, and what failed handshakes leave in the log.

use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

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
