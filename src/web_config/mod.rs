//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, client
//! certificates, basic auth, extra response headers), read and validated here and
//! enforced by [`crate::server`]. The format is the toolkit's, so a file written for
//! node_exporter works here; what this exporter cannot honour is refused by name rather
//! than silently ignored, because a security setting that does nothing is worse than an
//! error.
//!
//! This file holds the format (the raw YAML types, parsing and validation, users and
//! headers); [`tls`] builds the rustls server config and [`reload`] watches the files.

mod reload;
mod tls;

pub use reload::WebConfigFile;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio_rustls::rustls;

pub type Warnings = Vec<String>;

// ---------------------------------------------------------------- what the user wrote

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    // Known to the toolkit but not implemented here: accepted by the parser only so the
    // error can say so by name instead of "unknown field".
    rate_limit: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted for compatibility; this exporter speaks HTTP/1.1 only.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------- validated

/// One good version of the web config.
pub struct WebConfig {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Sorted by name. Empty: no authentication.
    pub users: Vec<User>,
    /// Added to every response, 401s included.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `RequireAndVerifyClientCert`: no connection without a client certificate.
    pub client_certs_required: bool,
    /// Every file this version was built from, the config file first.
    files: Vec<PathBuf>,
}

/// A `basic_auth_users` entry: a name and its bcrypt hash (never a password).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub hash: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not the password, but it can be attacked offline: keep it out of logs.
        write!(f, "User({:?}, <bcrypt hash>)", self.name)
    }
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users)
            .field("headers", &self.headers)
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates `path`. Errors are one line: `FILE: KEY: what is wrong`.
    pub fn from_file(path: &Path) -> Result<(WebConfig, Warnings), String> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{file}: cannot read web config file: {e}"))?;
        let raw = parse_yaml(&text).map_err(|e| format!("{file}: {e}"))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut warnings = Vec::new();
        let mut files = vec![path.to_path_buf()];
        let built =
            build(&raw, dir, &mut warnings, &mut files).map_err(|e| format!("{file}: {e}"))?;
        Ok((
            WebConfig { files, ..built },
            warnings
                .into_iter()
                .map(|w| format!("{file}: {w}"))
                .collect(),
        ))
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }
}

/// YAML text to [`RawWebConfig`]. A file with nothing but comments is an empty config
/// (plain HTTP, no auth), as the toolkit reads it.
fn parse_yaml(text: &str) -> Result<RawWebConfig, String> {
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if blank {
        return Ok(RawWebConfig::default());
    }
    serde_saphyr::from_str::<Option<RawWebConfig>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid YAML");
            first.trim_start_matches("error: ").to_string()
        })
}

fn build(
    raw: &RawWebConfig,
    dir: &Path,
    warnings: &mut Warnings,
    files: &mut Vec<PathBuf>,
) -> Result<WebConfig, String> {
    if raw.rate_limit.is_some() {
        return Err(
            "rate_limit: not supported by wolkvox-exporter; rate-limit in a reverse proxy instead"
                .into(),
        );
    }
    let tls = match &raw.tls_server_config {
        Some(t) => tls::build_tls(t, dir, warnings, files)?,
        None => None,
    };
    let mut users = Vec::new();
    for (name, hash) in raw.basic_auth_users.iter().flatten() {
        let key = format!("basic_auth_users.{name}");
        let parts = bcrypt::HashParts::from_str(hash.trim()).map_err(|e| {
            format!("{key}: not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`")
        })?;
        if parts.get_cost() > 16 {
            warnings.push(format!(
                "{key}: bcrypt cost {} makes every new login take seconds; 10 to 12 is usual",
                parts.get_cost()
            ));
        }
        if name.contains(':') {
            warnings.push(format!(
                "{key}: a user name with ':' can never log in (basic auth splits at the first ':')"
            ));
        }
        users.push(User {
            name: name.clone(),
            hash: hash.trim().to_string(),
        });
    }
    let mut headers = Vec::new();
    if let Some(http) = &raw.http_server_config {
        for (name, value) in http.headers.iter().flatten() {
            headers.push(response_header(name, value)?);
        }
    }
    let client_certs_required = tls.is_some()
        && raw
            .tls_server_config
            .as_ref()
            .and_then(|t| t.client_auth_type.as_deref())
            == Some("RequireAndVerifyClientCert");
    Ok(WebConfig {
        tls,
        users,
        headers,
        client_certs_required,
        files: Vec::new(),
    })
}

/// The toolkit's short list of settable response headers, with its allowed values where
/// the header is an enumeration (an empty list: any value).
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn response_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let key = format!("http_server_config.headers.{name}");
    let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name) else {
        return Err(format!(
            "{key}: this header cannot be configured; allowed: {}",
            EXTRA_HEADERS.map(|(n, _)| n).join(", ")
        ));
    };
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Err(format!(
            "{key}: {value:?} is not one of {}",
            allowed.join(", ")
        ));
    }
    let name = HeaderName::from_str(name).map_err(|e| format!("{key}: {e}"))?;
    let value = HeaderValue::from_str(value).map_err(|e| format!("{key}: invalid value: {e}"))?;
    Ok((name, value))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) struct Pki {
        pub(crate) dir: tempfile::TempDir,
    }

    impl Pki {
        /// A CA, a server certificate for localhost signed by it, and a stray key.
        pub(crate) fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca_params, ca_key);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            let other = rcgen::KeyPair::generate().unwrap();
            std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
            std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
            std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
            std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
            Pki { dir }
        }

        fn load(&self, yaml: &str) -> Result<(WebConfig, Warnings), String> {
            let path = self.dir.path().join("web.yml");
            std::fs::write(&path, yaml).unwrap();
            WebConfig::from_file(&path)
        }

        fn err(&self, yaml: &str) -> String {
            let e = self.load(yaml).unwrap_err();
            assert!(!e.contains('\n'), "one line: {e}");
            assert!(
                e.starts_with(&self.dir.path().join("web.yml").display().to_string()),
                "{e}"
            );
            e
        }
    }

    pub(crate) const TLS: &str =
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    // bcrypt of "secret" at cost 4 (the lowest), so tests stay fast.
    pub(crate) fn hash() -> String {
        bcrypt::hash("secret", 4).unwrap()
    }

    #[test]
    fn empty_and_comment_only_files_mean_plain_http_without_auth() {
        let pki = Pki::new();
        for text in [
            "",
            "# nothing\n",
            "---\n",
            "tls_server_config:\nbasic_auth_users:\n",
        ] {
            let (c, w) = pki.load(text).unwrap();
            assert!(
                c.tls.is_none() && c.users.is_empty() && w.is_empty(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn tls_with_relative_paths_users_and_headers() {
        let pki = Pki::new();
        let yaml = format!(
            "{TLS}  min_version: TLS13\nbasic_auth_users:\n  alice: {}\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n",
            hash()
        );
        let (c, w) = pki.load(&yaml).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let tls = c.tls.as_ref().unwrap();
        assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.users[0].name, "alice");
        assert_eq!(c.headers[0].0.as_str(), "x-frame-options");
        assert_eq!(c.files.len(), 3, "config, cert and key are watched");
        assert!(!format!("{c:?}").contains("$2"), "no hash in Debug");
    }

    #[test]
    fn client_certificates() {
        let pki = Pki::new();
        for kind in ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"] {
            let yaml = format!("{TLS}  client_ca_file: ca.crt\n  client_auth_type: {kind}\n");
            pki.load(&yaml).unwrap();
        }
    }

    #[test]
    fn every_mistake_names_the_key() {
        let pki = Pki::new();
        let cases: Vec<(String, &str)> = vec![
            ("colour: blue\n".into(), "unknown field `colour`"),
            (format!("{TLS}  ciphers: [x]\n"), "unknown field `ciphers`"),
            ("tls_server_config: [\n".into(), ""),
            (
                "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n".into(),
                "tls_server_config.cert_file: cannot read ",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n".into(),
                "tls_server_config.key_file: missing",
            ),
            (
                "tls_server_config:\n  key_file: server.key\n".into(),
                "tls_server_config.cert_file: missing",
            ),
            (
                "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n".into(),
                "tls_server_config.cert_file: no PEM CERTIFICATE",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n".into(),
                "tls_server_config.key_file: no PEM private key",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n".into(),
                "cannot be used together",
            ),
            (
                format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n"),
                "tls_server_config.client_ca_file: ",
            ),
            (
                format!("{TLS}  client_ca_file: ca.crt\n"),
                "tls_server_config.client_ca_file: a client CA is set but client_auth_type is NoClientCert",
            ),
            (
                format!(
                    "{TLS}  client_ca_file: ca.crt\n  client_auth_type: RequireAnyClientCert\n"
                ),
                "client_auth_type: RequireAnyClientCert accepts",
            ),
            (
                format!("{TLS}  client_auth_type: Sometimes\n"),
                "client_auth_type: unknown value \"Sometimes\"",
            ),
            (
                format!("{TLS}  min_version: TLS14\n"),
                "tls_server_config.min_version: unknown TLS version \"TLS14\"",
            ),
            (
                format!("{TLS}  max_version: TLS11\n"),
                "tls_server_config.max_version: TLS 1.0 and 1.1",
            ),
            (
                format!("{TLS}  min_version: TLS13\n  max_version: TLS12\n"),
                "min_version: higher than max_version",
            ),
            (
                format!("{TLS}  client_allowed_sans: [a]\n"),
                "client_allowed_sans: not supported",
            ),
            (
                format!("{TLS}  curve_preferences: [CurveP999]\n"),
                "curve_preferences: unknown curve",
            ),
            (
                format!("{TLS}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
                "cipher_suites: none of the listed",
            ),
            (
                "basic_auth_users:\n  alice: hunter2\n".into(),
                "basic_auth_users.alice: not a bcrypt hash",
            ),
            (
                "rate_limit:\n  interval: 1s\n  burst: 2\n".into(),
                "rate_limit: not supported",
            ),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: me\n".into(),
                "http_server_config.headers.X-Powered-By: this header cannot be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(),
                "\"allow\" is not one of deny, sameorigin",
            ),
        ];
        for (yaml, want) in cases {
            let e = pki.err(&yaml);
            assert!(e.contains(want), "{yaml:?}: want {want:?} in {e:?}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn toolkit_tuning_keys_are_honoured_or_warned_about() {
        let pki = Pki::new();
        let yaml = format!(
            "{TLS}  min_version: TLS10\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n  curve_preferences: [CurveP521, X25519]\n  prefer_server_cipher_suites: false\n"
        );
        let (c, w) = pki.load(&yaml).unwrap();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().any(|w| w.contains("min_version: TLS 1.0")));
        assert!(
            w.iter()
                .any(|w| w.contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"))
        );
        assert!(w.iter().any(|w| w.contains("CurveP521")));
        assert!(!c.tls.unwrap().ignore_client_order);
    }
}
