//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, client
//! certificates, basic auth, extra response headers), read and validated here and
//! enforced by [`crate::server`]. The format is the toolkit's, so a file written for
//! node_exporter works here; what this exporter cannot honour is refused by name rather
//! than silently ignored, because a security setting that does nothing is worse than an
//! error.
//!
//! [`WebConfigFile`] keeps the file's current good version and re-reads it (and the
//! certificate, key and CA files it names) when one of them changes, as the toolkit
//! does, so certificate rotation needs no restart. A broken new version is logged and
//! the previous one stays in force.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;

/// How often, at most, the files are looked at again for changes. Checks happen when a
/// connection or a request arrives, so an idle exporter does no work at all.
const RECHECK: Duration = Duration::from_secs(1);

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
struct RawTls {
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
        Some(t) => build_tls(t, dir, warnings, files)?,
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

fn build_tls(
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

// ---------------------------------------------------------------- reloading

/// The web config file, watched: [`WebConfigFile::current`] is the version in force.
pub struct WebConfigFile {
    path: PathBuf,
    state: Mutex<Watch>,
}

struct Watch {
    current: Arc<WebConfig>,
    /// The files' state when last looked at, so a broken version is reported once.
    seen: Vec<Stamp>,
    checked: Instant,
}

/// What tells a file changed: modification time, length and inode (a rotated
/// certificate of the same size written within the same second still has a new inode
/// when it is renamed into place, as tools and Kubernetes do).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0;
            Some((m.modified().ok()?, m.len(), ino))
        })
        .collect()
}

impl fmt::Debug for WebConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebConfigFile({})", self.path.display())
    }
}

impl WebConfigFile {
    /// Reads and validates the file; an error here stops the start.
    pub fn load(path: &Path) -> Result<(WebConfigFile, Warnings), String> {
        let (config, warnings) = WebConfig::from_file(path)?;
        let seen = stamps(&config.files);
        Ok((
            WebConfigFile {
                path: path.to_path_buf(),
                state: Mutex::new(Watch {
                    current: Arc::new(config),
                    seen,
                    checked: Instant::now(),
                }),
            },
            warnings,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version in force, re-read first when a file changed (looked at no more than
    /// once per [`RECHECK`]).
    pub fn current(&self) -> Arc<WebConfig> {
        let mut w = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if w.checked.elapsed() < RECHECK {
            return Arc::clone(&w.current);
        }
        w.checked = Instant::now();
        let now = stamps(&w.current.files);
        if now == w.seen {
            return Arc::clone(&w.current);
        }
        w.seen = now;
        match WebConfig::from_file(&self.path) {
            Ok((next, warnings)) => {
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
                if next.tls_enabled() != w.current.tls_enabled() {
                    tracing::warn!(file = %self.path.display(), "web config changed TLS on or off; that needs a restart, so the previous web config stays in force");
                    return Arc::clone(&w.current);
                }
                // The new version may name other files: watch those from now on.
                w.seen = stamps(&next.files);
                w.current = Arc::new(next);
                tracing::info!(file = %self.path.display(), tls = w.current.tls_enabled(), users = w.current.users.len(), "web config reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "web config not reloaded; the previous one stays in force");
            }
        }
        Arc::clone(&w.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        /// A CA, a server certificate for localhost signed by it, and a stray key.
        fn new() -> Pki {
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

    const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    // bcrypt of "secret" at cost 4 (the lowest), so tests stay fast.
    fn hash() -> String {
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

    #[test]
    fn reload_keeps_the_good_version_when_the_new_one_is_broken() {
        let pki = Pki::new();
        let path = pki.dir.path().join("web.yml");
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {}\n", hash())).unwrap();
        let (watched, _) = WebConfigFile::load(&path).unwrap();
        assert_eq!(watched.current().users.len(), 1);
        let force_recheck = |w: &WebConfigFile| {
            w.state.lock().unwrap().checked = Instant::now() - RECHECK * 2;
        };
        // Broken: the old version stays.
        std::fs::write(&path, "basic_auth_users: [\n").unwrap();
        force_recheck(&watched);
        assert_eq!(watched.current().users[0].name, "alice");
        // Fixed, with another user: picked up.
        std::fs::write(&path, format!("basic_auth_users:\n  bob: {}\n", hash())).unwrap();
        force_recheck(&watched);
        assert_eq!(watched.current().users[0].name, "bob");
        // Turning TLS on needs a restart: refused, old version stays.
        std::fs::write(&path, TLS).unwrap();
        force_recheck(&watched);
        assert!(watched.current().tls.is_none());
    }
}
