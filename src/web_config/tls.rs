//! `tls_server_config` to a rustls [`rustls::ServerConfig`]: certificates and key,
//! client authentication, TLS versions, cipher suites and curves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;

use super::{RawTls, Warnings};

/// What a `tls_server_config` key names: text inline, or a file (relative paths are
/// taken from the config file's directory, as the toolkit does).
fn pem_source(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    inline_key: &str,
    file_key: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<(String, Vec<u8>)>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: give either {inline_key} or {file_key}, not both"
        )),
        (Some(text), None) => Ok(Some((
            format!("tls_server_config.{inline_key}"),
            text.as_bytes().to_vec(),
        ))),
        (None, Some(path)) => {
            let path = dir.join(path);
            let key = format!("tls_server_config.{file_key}");
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
            files.push(path);
            Ok(Some((key, bytes)))
        }
        (None, None) => Ok(None),
    }
}

fn certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{key}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{key}: no PEM CERTIFICATE block found"));
    }
    Ok(certs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    RequireAndVerify,
}

fn client_auth(s: &str) -> Result<ClientAuth, String> {
    let key = "tls_server_config.client_auth_type";
    match s {
        "" | "NoClientCert" => Ok(ClientAuth::None),
        "VerifyClientCertIfGiven" => Ok(ClientAuth::VerifyIfGiven),
        "RequireAndVerifyClientCert" => Ok(ClientAuth::RequireAndVerify),
        // These accept a certificate without checking it against a CA: they add nothing
        // but a false sense of security, and rustls rightly makes them hard to build.
        "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => Err(format!(
            "{key}: {s} accepts client certificates without verifying them and is not supported; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
        )),
        other => Err(format!(
            "{key}: unknown value {other:?}; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )),
    }
}

/// `TLS12`/`TLS13`. TLS 1.0 and 1.1 do not exist in rustls.
fn tls_version(key: &str, s: &str) -> Result<u8, String> {
    match s {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(format!(
            "tls_server_config.{key}: unknown TLS version {other:?}; use TLS12 or TLS13"
        )),
    }
}

pub(super) fn build_tls(
    t: &RawTls,
    dir: &Path,
    warnings: &mut Warnings,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    // As the toolkit: TLS is on when any of these is set, and then it must be complete.
    let enabled = t.cert.is_some()
        || t.key.is_some()
        || t.cert_file.is_some()
        || t.key_file.is_some()
        || t.client_ca.is_some()
        || t.client_ca_file.is_some()
        || t.client_auth_type.is_some();
    if !enabled {
        return Ok(None);
    }
    if t.client_allowed_sans.is_some() {
        return Err("tls_server_config.client_allowed_sans: not supported by wolkvox-exporter; issue client certificates from a CA that signs only the allowed clients".into());
    }
    let (cert_key, cert_pem) = pem_source(&t.cert, &t.cert_file, "cert", "cert_file", dir, files)?
        .ok_or("tls_server_config.cert_file: missing (one of cert or cert_file is required)")?;
    let (key_key, key_pem) = pem_source(&t.key, &t.key_file, "key", "key_file", dir, files)?
        .ok_or("tls_server_config.key_file: missing (one of key or key_file is required)")?;
    let certs = certificates(&cert_key, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{key_key}: no PEM private key found ({e})"))?;

    let auth = client_auth(t.client_auth_type.as_deref().unwrap_or(""))?;
    let ca = pem_source(
        &t.client_ca,
        &t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
        files,
    )?;
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &t.cipher_suites {
        provider.cipher_suites = cipher_suites(names, &provider.cipher_suites, warnings)?;
    }
    if let Some(names) = &t.curve_preferences {
        provider.kx_groups = curves(names, &provider.kx_groups, warnings)?;
    }
    let provider = Arc::new(provider);

    let min = tls_version("min_version", t.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = tls_version("max_version", t.max_version.as_deref().unwrap_or("TLS13"))?;
    if min < 12 {
        warnings.push(format!(
            "tls_server_config.min_version: TLS 1.{} is not offered (rustls supports TLS 1.2 and 1.3); the minimum is TLS12",
            min - 10
        ));
    }
    if max < 12 {
        return Err(
            "tls_server_config.max_version: TLS 1.0 and 1.1 are not supported; use TLS12 or TLS13"
                .into(),
        );
    }
    if min > max {
        return Err("tls_server_config.min_version: higher than max_version".into());
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    versions.push(&rustls::version::TLS13);
    if max == 12 {
        versions.retain(|v| v.version == rustls::ProtocolVersion::TLSv1_2);
    }

    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e} (check cipher_suites, curve_preferences and the TLS versions)"))?;
    let builder = match (auth, ca) {
        (ClientAuth::None, Some((ca_key, _))) => {
            return Err(format!(
                "{ca_key}: a client CA is set but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert"
            ));
        }
        (ClientAuth::None, None) => builder.with_no_client_auth(),
        (_, None) => {
            return Err("tls_server_config.client_ca_file: client_auth_type verifies client certificates, so a client CA is required".into());
        }
        (auth, Some((ca_key, ca_pem))) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates(&ca_key, &ca_pem)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{ca_key}: unusable CA certificate: {e}"))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| format!("{ca_key}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!("{cert_key}/{key_key}: the certificate and key cannot be used together: {e}")
    })?;
    // The toolkit's default is the server's order, which protects old clients from
    // choosing a weak suite first.
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    // hyper is built for HTTP/1.1 only; say so in ALPN so HTTP/2 clients fall back.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The TLS 1.2 suites named (Go's names, which are the IANA names rustls also uses);
/// TLS 1.3 suites stay as they are, as in Go, where `cipher_suites` does not apply to them.
fn cipher_suites(
    names: &[String],
    available: &[rustls::SupportedCipherSuite],
    warnings: &mut Warnings,
) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    let key = "tls_server_config.cipher_suites";
    let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::new();
    for name in names {
        match available
            .iter()
            .find(|s| s.suite().as_str() == Some(name.as_str()))
        {
            Some(s) if s.version().version == rustls::ProtocolVersion::TLSv1_2 => chosen.push(*s),
            Some(_) => {}
            None => warnings.push(format!(
                "{key}: {name} is not offered by this exporter's TLS library (rustls); skipped"
            )),
        }
    }
    if chosen.is_empty() && !names.is_empty() {
        return Err(format!(
            "{key}: none of the listed TLS 1.2 suites is available; rustls offers {}",
            available
                .iter()
                .filter(|s| s.version().version == rustls::ProtocolVersion::TLSv1_2)
                .filter_map(|s| s.suite().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    chosen.extend(
        available
            .iter()
            .filter(|s| s.version().version == rustls::ProtocolVersion::TLSv1_3),
    );
    Ok(chosen)
}

fn curves(
    names: &[String],
    available: &[&'static dyn rustls::crypto::SupportedKxGroup],
    warnings: &mut Warnings,
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    let key = "tls_server_config.curve_preferences";
    let mut chosen = Vec::new();
    for name in names {
        let group = match name.as_str() {
            "X25519" => rustls::NamedGroup::X25519,
            "CurveP256" => rustls::NamedGroup::secp256r1,
            "CurveP384" => rustls::NamedGroup::secp384r1,
            "CurveP521" | "X25519MLKEM768" => {
                warnings.push(format!(
                    "{key}: {name} is not offered by this exporter's TLS library (rustls with ring); skipped"
                ));
                continue;
            }
            other => {
                return Err(format!(
                    "{key}: unknown curve {other:?}; use X25519, CurveP256 or CurveP384"
                ));
            }
        };
        if let Some(g) = available.iter().find(|g| g.name() == group) {
            chosen.push(*g);
        }
    }
    if chosen.is_empty() {
        return Err(format!(
            "{key}: none of the listed curves is available; use X25519, CurveP256 or CurveP384"
        ));
    }
    Ok(chosen)
}
