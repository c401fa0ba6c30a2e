//! `tls_server_config` to a rustls [`rustls::ServerConfig`]: certificates and key,
//! client authentication, TLS versions, cipher suites and curves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::client_auth::{self, ClientAuth, ClientCa};
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
    // As in Go, an empty string is the same as no value.
    let inline = inline.as_ref().filter(|s| !s.is_empty());
    let file = file.as_ref().filter(|p| !p.as_os_str().is_empty());
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

/// `TLS10` to `TLS13`, as the toolkit names them, to the minor version.
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

/// A TLS setting built: the rustls config, and whether it requires a client certificate.
pub(super) struct Tls {
    pub(super) config: Arc<rustls::ServerConfig>,
    pub(super) client_certs_required: bool,
}

fn set(s: &Option<String>) -> bool {
    s.as_ref().is_some_and(|s| !s.is_empty())
}

fn set_path(p: &Option<PathBuf>) -> bool {
    p.as_ref().is_some_and(|p| !p.as_os_str().is_empty())
}

pub(super) fn build_tls(
    t: &RawTls,
    dir: &Path,
    warnings: &mut Warnings,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Tls>, String> {
    // As the toolkit (`TLSConfig.IsEnabled`): TLS is on when any of these is set to
    // something other than "", and then it must be complete.
    let enabled = set(&t.cert)
        || set(&t.key)
        || set_path(&t.cert_file)
        || set_path(&t.key_file)
        || set(&t.client_ca)
        || set_path(&t.client_ca_file)
        || set(&t.client_auth_type);
    if !enabled {
        return Ok(None);
    }
    let (cert_key, cert_pem) = pem_source(&t.cert, &t.cert_file, "cert", "cert_file", dir, files)?
        .ok_or("tls_server_config.cert_file: missing one of cert or cert_file")?;
    let (key_key, key_pem) = pem_source(&t.key, &t.key_file, "key", "key_file", dir, files)?
        .ok_or("tls_server_config.key_file: missing one of key or key_file")?;
    let certs = certificates(&cert_key, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{key_key}: no PEM private key found ({e})"))?;

    let ca = pem_source(
        &t.client_ca,
        &t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
        files,
    )?;
    let auth = ClientAuth::parse(t.client_auth_type.as_deref().unwrap_or(""))?;

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
    if max == 13 {
        versions.push(&rustls::version::TLS13);
    }

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        provider.cipher_suites =
            cipher_suites(names, &provider.cipher_suites, min <= 12, warnings)?;
    }
    if let Some(names) = t.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        provider.kx_groups = curves(names, &provider.kx_groups, warnings)?;
    }
    let provider = Arc::new(provider);

    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}: no TLS version allowed by min_version and max_version has a usable suite (check cipher_suites, curve_preferences and the TLS versions)"))?;

    let ca = match ca {
        Some((key, pem)) if auth != ClientAuth::None => Some(ClientCa {
            certs: certificates(&key, &pem)?,
            key,
        }),
        Some((key, _)) => Some(ClientCa {
            key,
            certs: Vec::new(),
        }),
        None => None,
    };
    let client_certs_required = auth.required() || t.client_allowed_sans.is_some();
    let verifier =
        client_auth::verifier(auth, ca, t.client_allowed_sans.clone(), &provider, warnings)?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!("{cert_key}/{key_key}: failed to load X509KeyPair: the certificate and key cannot be used together: {e}")
    })?;
    // The toolkit's default is the server's order, which protects old clients from
    // choosing a weak suite first.
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    // hyper is built for HTTP/1.1 only; say so in ALPN so HTTP/2 clients fall back.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        config: Arc::new(config),
        client_certs_required,
    }))
}

/// Go's `tls.CipherSuites()` (recent Go: the plain-RSA key exchange suites moved to
/// `InsecureCipherSuites`): the only names the toolkit accepts. rustls has all of them
/// but the CBC ones.
/// The TLS 1.3 ones first.
const GO_SUITES: [&str; 13] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// `cipher_suites` as Go applies them: the list chooses the TLS 1.2 suites, in order;
/// TLS 1.3 suites are always those of the library, and naming one is accepted and
/// changes nothing. A name Go does not know is an error; a suite Go has and rustls does
/// not (CBC) is skipped with a warning.
fn cipher_suites(
    names: &[String],
    available: &[rustls::SupportedCipherSuite],
    tls12_offered: bool,
    warnings: &mut Warnings,
) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    let key = "tls_server_config.cipher_suites";
    let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        if !GO_SUITES.contains(&name.as_str()) {
            return Err(format!("{key}: unknown cipher {name:?}"));
        }
        // Go's TLS 1.3 names (rustls calls them TLS13_*): accepted, and they change nothing.
        if GO_SUITES[..3].contains(&name.as_str()) {
            continue;
        }
        match available
            .iter()
            .find(|s| s.suite().as_str() == Some(name.as_str()))
        {
            Some(s) if s.version().version == rustls::ProtocolVersion::TLSv1_2 => {
                if !chosen.iter().any(|c| c.suite() == s.suite()) {
                    chosen.push(*s)
                }
            }
            Some(_) => {}
            None => skipped.push(name.as_str()),
        }
    }
    if !skipped.is_empty() {
        warnings.push(format!(
            "{key}: {} not offered by this exporter's TLS library (rustls); skipped",
            skipped.join(", ")
        ));
    }
    if chosen.is_empty() && tls12_offered {
        warnings.push(format!(
            "{key}: no TLS 1.2 suite left, so TLS 1.2 clients cannot connect (TLS 1.3 suites are not chosen by this list, as in the toolkit); rustls offers {}",
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

/// The toolkit's four curve names; CurveP521 is not in rustls with ring.
fn curves(
    names: &[String],
    available: &[&'static dyn rustls::crypto::SupportedKxGroup],
    warnings: &mut Warnings,
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    let key = "tls_server_config.curve_preferences";
    let mut chosen: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for name in names {
        let group = match name.as_str() {
            "X25519" => rustls::NamedGroup::X25519,
            "CurveP256" => rustls::NamedGroup::secp256r1,
            "CurveP384" => rustls::NamedGroup::secp384r1,
            "CurveP521" => {
                warnings.push(format!(
                    "{key}: CurveP521 is not offered by this exporter's TLS library (rustls with ring); skipped"
                ));
                continue;
            }
            other => {
                return Err(format!(
                    "{key}: unknown curve {other:?}; use X25519, CurveP256, CurveP384 or CurveP521"
                ));
            }
        };
        if let Some(g) = available.iter().find(|g| g.name() == group)
            && !chosen.iter().any(|c| c.name() == group)
        {
            chosen.push(*g);
        }
    }
    if chosen.is_empty() {
        return Err(format!(
            "{key}: none of the listed curves is offered by this exporter's TLS library; use X25519, CurveP256 or CurveP384"
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use crate::web_config::tests::{Pki, TLS};

    #[test]
    fn cipher_suites_as_go_reads_them() {
        let pki = Pki::new();
        let suites = |yaml: &str| {
            let (c, w) = pki.load(&format!("{TLS}{yaml}")).unwrap();
            let names: Vec<String> = c
                .tls
                .unwrap()
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            (names, w)
        };
        // TLS 1.3 names alone: accepted; TLS 1.2 is left with no suite, and said so.
        let (names, w) = suites("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n");
        assert_eq!(
            names,
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256"
            ]
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("no TLS 1.2 suite left"), "{w:?}");
        // Only CBC: accepted, skipped with a warning, TLS 1.3 still offered.
        let (names, w) = suites("  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n");
        assert_eq!(names.len(), 3);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA not offered"),
            "{w:?}"
        );
        // TLS 1.2 suites in the order given, TLS 1.3 ones after.
        let (names, w) = suites(
            "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            names[..2],
            [
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
    }
}
