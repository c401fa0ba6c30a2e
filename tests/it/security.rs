//! `--web.config.file` from outside (TLS, client certificates, basic auth, reload, bad
//! files at start) and the token's whereabouts: it must show up nowhere a person or
//! another process can read.
//!
//! The tests, by what they check: [`basic_auth`] (TLS with basic auth on every path,
//! `healthcheck`, reload), [`client_certs`] (client certificates, TLS versions, failed
//! handshakes in the log), [`bad_configs`] (broken files stop the start) and [`token`]
//! (the token nowhere). The test PKI and small helpers are here.

mod bad_configs;
mod basic_auth;
mod client_certs;
mod token;

use std::path::Path;
use std::time::Duration;

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
