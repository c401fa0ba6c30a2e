//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, client
//! certificates, basic auth, extra response headers), read and validated here and
//! enforced by [`crate::server`]. The format is the toolkit's, so a file written for
//! node_exporter works here; what this exporter cannot honour is refused by name rather
//! than silently ignored, because a security setting that does nothing is worse than an
//! error.
//!
//! This file holds the format (the raw YAML types, parsing and validation, users and
//! headers); [`tls`] builds the rustls server config, [`client_auth`] checks client
//! certificates, [`rate_limit`] is the toolkit's request limit and [`reload`] watches
//! the files.

mod client_auth;
mod rate_limit;
mod reload;
mod tls;

pub use client_auth::describe as describe_tls_error;
pub use rate_limit::{RateLimit, RateLimiter};
pub use reload::WebConfigFile;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use tokio_rustls::rustls;

pub type Warnings = Vec<String>;

// ---------------------------------------------------------------- what the user wrote

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<rate_limit::RawRateLimit>,
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
    /// `RequireAndVerifyClientCert`, `RequireAnyClientCert` or `client_allowed_sans`:
    /// no connection without a client certificate.
    pub client_certs_required: bool,
    /// `rate_limit` with a non-zero interval: requests beyond it get 429.
    pub rate_limit: Option<RateLimit>,
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
            .field("rate_limit", &self.rate_limit)
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
    let rate_limit = match &raw.rate_limit {
        Some(r) => r.build(warnings)?,
        None => None,
    };
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
        // Go's bcrypt (the toolkit's) refuses these costs; the Rust one would compare
        // against them and lock the user out without a word.
        if !(4..=31).contains(&parts.get_cost()) {
            return Err(format!(
                "{key}: bcrypt cost {} is outside 4 to 31; make a new hash with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                parts.get_cost()
            ));
        }
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
    Ok(WebConfig {
        client_certs_required: tls.as_ref().is_some_and(|t| t.client_certs_required),
        tls: tls.map(|t| t.config),
        users,
        headers,
        rate_limit,
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

        pub(crate) fn load(&self, yaml: &str) -> Result<(WebConfig, Warnings), String> {
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
        for (kind, required) in [
            ("RequireAndVerifyClientCert", true),
            ("VerifyClientCertIfGiven", false),
            ("RequireAnyClientCert", true),
            ("RequestClientCert", false),
        ] {
            let yaml = format!("{TLS}  client_ca_file: ca.crt\n  client_auth_type: {kind}\n");
            let (c, _) = pki.load(&yaml).unwrap();
            assert_eq!(c.client_certs_required, required, "{kind}");
            // Without a client CA: the system's roots, or no check at all; warned about.
            let (c, w) = pki
                .load(&format!("{TLS}  client_auth_type: {kind}\n"))
                .unwrap();
            assert_eq!(c.client_certs_required, required, "{kind}");
            assert_eq!(w.len(), 1, "{kind}: {w:?}");
            assert!(
                w[0].contains("tls_server_config.client_auth_type: "),
                "{w:?}"
            );
        }
        // Allowed SANs need a certificate, whatever the type says.
        let yaml = format!(
            "{TLS}  client_ca_file: ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [prometheus]\n"
        );
        assert!(pki.load(&yaml).unwrap().0.client_certs_required);
    }

    #[test]
    fn empty_strings_are_unset_as_in_go() {
        let pki = Pki::new();
        let (c, _) = pki
            .load("tls_server_config:\n  cert_file: \"\"\n  client_auth_type: \"\"\n  client_ca_file: \"\"\n  min_version: TLS13\n")
            .unwrap();
        assert!(c.tls.is_none(), "nothing that turns TLS on");
        assert_eq!(
            pki.err("tls_server_config:\n  cert_file: \"\"\n  key_file: server.key\n"),
            format!(
                "{}: tls_server_config.cert_file: missing one of cert or cert_file",
                pki.dir.path().join("web.yml").display()
            )
        );
        let (c, w) = pki
            .load(&format!(
                "{TLS}  cipher_suites: []\n  curve_preferences: []\n"
            ))
            .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let tls = c.tls.unwrap();
        assert_eq!(
            tls.crypto_provider().cipher_suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len(),
            "an empty list is the default list"
        );
    }

    #[test]
    fn rate_limit_is_read() {
        let pki = Pki::new();
        let (c, w) = pki
            .load("rate_limit:\n  interval: 1s\n  burst: 3\n")
            .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                interval: std::time::Duration::from_secs(1),
                burst: 3
            })
        );
        let (c, _) = pki
            .load("rate_limit:\n  interval: 0\n  burst: 0\n")
            .unwrap();
        assert_eq!(c.rate_limit, None);
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
                format!("{TLS}  client_ca_file: ca.crt\n"),
                "tls_server_config.client_ca_file: client CA's have been configured without a Client Auth Policy",
            ),
            (
                format!("{TLS}  client_auth_type: Sometimes\n"),
                "client_auth_type: invalid ClientAuth \"Sometimes\"",
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
                "client_allowed_sans: client_auth_type is NoClientCert",
            ),
            (
                format!("{TLS}  curve_preferences: [CurveP999]\n"),
                "curve_preferences: unknown curve",
            ),
            (
                format!(
                    "{TLS}  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_RSA_WITH_RC4_128_SHA]\n"
                ),
                "tls_server_config.cipher_suites: unknown cipher \"TLS_RSA_WITH_RC4_128_SHA\"",
            ),
            (
                format!("{TLS}  max_version: TLS12\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
                "no TLS version allowed by min_version and max_version has a usable suite",
            ),
            (
                format!("{TLS}  curve_preferences: [X25519MLKEM768]\n"),
                "curve_preferences: unknown curve \"X25519MLKEM768\"",
            ),
            (
                format!("{TLS}  curve_preferences: [CurveP521]\n"),
                "curve_preferences: none of the listed curves is offered",
            ),
            (
                "basic_auth_users:\n  alice: hunter2\n".into(),
                "basic_auth_users.alice: not a bcrypt hash",
            ),
            (
                "rate_limit:\n  interval: 5\n  burst: 2\n".into(),
                "rate_limit.interval: 5 has no unit",
            ),
            (
                "rate_limit:\n  interval: soon\n".into(),
                "rate_limit.interval: invalid duration \"soon\"",
            ),
            ("rate_limit:\n  every: 1s\n".into(), "unknown field `every`"),
            (
                format!(
                    "basic_auth_users:\n  alice: {}\n",
                    hash().replacen("$04$", "$03$", 1)
                ),
                "basic_auth_users.alice: bcrypt cost 3 is outside 4 to 31",
            ),
            (
                format!(
                    "basic_auth_users:\n  alice: {}\n",
                    hash().replacen("$04$", "$32$", 1)
                ),
                "basic_auth_users.alice: bcrypt cost 32 is outside 4 to 31",
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
