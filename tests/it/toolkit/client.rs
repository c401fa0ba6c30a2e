//! The clients of the toolkit's tests: plain HTTP, TLS with a chosen set of suites,
//! curves and client certificate (rustls, so the test decides exactly what is offered),
//! and hand-made ClientHellos for what rustls will not send (TLS 1.1, CBC suites).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What the TLS client offers; empty lists: the library's defaults.
#[derive(Clone, Copy, Default)]
pub struct Tls {
    /// TLS 1.2 suites (TLS 1.3 ones are always offered, as Go's client does).
    pub suites: &'static [&'static str],
    pub curves: &'static [rustls::NamedGroup],
    /// A `testdata/NAME.pem` and `NAME.key` pair to present.
    pub cert: Option<&'static str>,
}

/// An HTTP answer, and the TLS suite it came over.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub suite: Option<String>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const TIMEOUT: Duration = Duration::from_secs(20);

/// `GET path` over plain HTTP.
pub async fn plain(
    addr: SocketAddr,
    path: &str,
    user: Option<(&str, &str)>,
) -> Result<Answer, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    exchange(&mut s, path, user, None).await
}

/// `GET path` over TLS, trusting the toolkit's CA chain, as its `getTLSClient`.
pub async fn tls(
    addr: SocketAddr,
    testdata: &Path,
    path: &str,
    opts: Tls,
    user: Option<(&str, &str)>,
) -> Result<Answer, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(testdata.join("tls-ca-chain.pem")).expect("CA chain") {
        roots.add(c.expect("CA certificate")).expect("usable CA");
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if !opts.suites.is_empty() {
        // In the order given: the client's preference.
        let all = std::mem::take(&mut provider.cipher_suites);
        for name in opts.suites {
            provider
                .cipher_suites
                .extend(all.iter().filter(|s| s.suite().as_str() == Some(name)));
        }
        provider.cipher_suites.extend(
            all.iter()
                .filter(|s| s.version().version == rustls::ProtocolVersion::TLSv1_3),
        );
    }
    if !opts.curves.is_empty() {
        provider
            .kx_groups
            .retain(|g| opts.curves.contains(&g.name()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("client versions")
        .with_root_certificates(roots);
    let config = match opts.cert {
        Some(name) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(testdata.join(format!("{name}.pem")))
                    .expect("client certificate")
                    .map(|c| c.expect("client certificate"))
                    .collect();
            let key = PrivateKeyDer::from_pem_file(testdata.join(format!("{name}.key")))
                .expect("client key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client identity")
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("server name");
    let connect = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    let mut s = tokio::time::timeout(TIMEOUT, connect)
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let suite = s
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .and_then(|c| c.suite().as_str())
        .map(str::to_string);
    exchange(&mut s, path, user, suite).await
}

/// One request with `Connection: close`, and the whole answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    path: &str,
    user: Option<(&str, &str)>,
    suite: Option<String>,
) -> Result<Answer, String> {
    use base64::Engine as _;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some((u, p)) = user {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Authorization: Basic {creds}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf))
        .await
        .map_err(|_| "no answer".to_string())?;
    match (read, parse(&buf)) {
        (_, Some(mut a)) => {
            a.suite = suite;
            Ok(a)
        }
        (Err(e), None) => Err(e.to_string()),
        (Ok(_), None) => Err(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&buf)
        )),
    }
}

/// A complete HTTP/1.x answer in `buf` (the body as long as Content-Length says).
fn parse(buf: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if len.is_some_and(|l| body.len() < l) {
        return None;
    }
    Some(Answer {
        status,
        headers,
        body: body.to_string(),
        suite: None,
    })
}

/// A ClientHello as Go's client sends it with `MaxVersion` below TLS 1.3: record and
/// handshake headers, `version`, the suites, the curves, signature algorithms, and no
/// `supported_versions`.
pub fn client_hello(version: u16, suites: &[u16], groups: &[u16]) -> Vec<u8> {
    fn u16s(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }
    fn block(len_bytes: usize, data: &[u8]) -> Vec<u8> {
        let len = data.len().to_be_bytes();
        let mut out = len[len.len() - len_bytes..].to_vec();
        out.extend_from_slice(data);
        out
    }
    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend(block(2, data));
        out
    }
    let mut name = vec![0u8];
    name.extend(block(2, b"localhost"));
    let mut exts = ext(0x0000, &block(2, &name));
    exts.extend(ext(0x000a, &block(2, &u16s(groups))));
    exts.extend(ext(0x000b, &[1, 0]));
    // rsa_pss_rsae_sha256, rsa_pkcs1_sha256, ecdsa_secp256r1_sha256
    exts.extend(ext(0x000d, &block(2, &u16s(&[0x0804, 0x0401, 0x0403]))));
    let mut body = version.to_be_bytes().to_vec();
    body.extend([7u8; 32]); // the random: any 32 bytes do
    body.push(0); // no session id
    body.extend(block(2, &u16s(suites)));
    body.extend([1, 0]); // compression: null only
    body.extend(block(2, &exts));
    let mut handshake = vec![1u8]; // client_hello
    handshake.extend(block(3, &body));
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(block(2, &handshake));
    record
}

/// Sends raw bytes and returns the first bytes of the reply (until the server closes
/// or 64 bytes came).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("send");
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while out.len() < 64 {
        match tokio::time::timeout(TIMEOUT, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    out
}
