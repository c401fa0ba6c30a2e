//! `client_auth_type`, `client_ca_file` and `client_allowed_sans` as the exporter-toolkit
//! (that is, Go's `crypto/tls`) applies them, as one rustls [`ClientCertVerifier`]:
//!
//! - `RequestClientCert` and `RequireAnyClientCert` take any certificate whose key the
//!   client proves it holds, without checking who issued it.
//! - `VerifyClientCertIfGiven` and `RequireAndVerifyClientCert` check the chain against
//!   the client CA, or against the system's root CAs when no client CA is given (Go's
//!   `ClientCAs: nil`). A certificate that *is* one of the roots is accepted as Go
//!   accepts it, even with `CA:TRUE` (what `openssl req -x509` makes), which webpki on
//!   its own refuses as an end entity.
//! - `client_allowed_sans`, on top of either: one of the certificate's DNS names, e-mail
//!   addresses, IP addresses or URIs must be in the list.

use std::fmt;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::Warnings;

/// The toolkit's `client_auth_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

impl ClientAuth {
    pub(super) fn parse(s: &str) -> Result<ClientAuth, String> {
        match s {
            "" | "NoClientCert" => Ok(ClientAuth::None),
            "RequestClientCert" => Ok(ClientAuth::Request),
            // "RequireClientCert" is the toolkit's old name, kept there for compatibility.
            "RequireAnyClientCert" | "RequireClientCert" => Ok(ClientAuth::RequireAny),
            "VerifyClientCertIfGiven" => Ok(ClientAuth::VerifyIfGiven),
            "RequireAndVerifyClientCert" => Ok(ClientAuth::RequireAndVerify),
            other => Err(format!(
                "tls_server_config.client_auth_type: invalid ClientAuth {other:?}; use NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )),
        }
    }

    /// No connection without a client certificate.
    pub(super) fn required(self) -> bool {
        matches!(self, ClientAuth::RequireAny | ClientAuth::RequireAndVerify)
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
        )
    }
}

/// The client CA as read: the key it came from (for messages) and its certificates.
pub(super) struct ClientCa {
    pub(super) key: String,
    pub(super) certs: Vec<CertificateDer<'static>>,
}

/// The verifier for `auth`, or `None` for `NoClientCert` (no certificate is asked for).
/// Returns whether a certificate is then required, too.
pub(super) fn verifier(
    auth: ClientAuth,
    ca: Option<ClientCa>,
    allowed_sans: Option<Vec<String>>,
    provider: &Arc<CryptoProvider>,
    warnings: &mut Warnings,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let key = "tls_server_config.client_auth_type";
    if auth == ClientAuth::None {
        if let Some(ca) = ca {
            return Err(format!(
                "{}: client CA's have been configured without a Client Auth Policy (client_auth_type is NoClientCert); set client_auth_type: RequireAndVerifyClientCert",
                ca.key
            ));
        }
        if allowed_sans.is_some() {
            // The toolkit checks the SANs of a certificate it never asked for, and so
            // fails every handshake; refused here instead.
            return Err("tls_server_config.client_allowed_sans: client_auth_type is NoClientCert, so there is no client certificate to check; set client_auth_type: RequireAndVerifyClientCert".into());
        }
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    let hints = match &ca {
        Some(ca) => {
            for c in &ca.certs {
                roots
                    .add(c.clone())
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", ca.key))?;
            }
            roots.subjects()
        }
        None if auth.verifies() => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                warnings.push(format!(
                    "{key}: no client_ca_file and no system root certificates found, so every client certificate is refused; set client_ca_file"
                ));
            } else {
                warnings.push(format!(
                    "{key}: no client_ca_file, so client certificates are verified against the system's {added} root CAs (as the toolkit does): a certificate any public CA issued is accepted; set client_ca_file to accept only your own"
                ));
            }
            // Go sends no CA names when ClientCAs is unset; a hundred root names would
            // only make the handshake larger.
            Vec::new()
        }
        None => Vec::new(),
    };
    let check = if auth.verifies() {
        let anchors = ca.map(|c| c.certs).unwrap_or_default();
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
            )
        };
        Check::Roots { webpki, anchors }
    } else {
        warnings.push(format!(
            "{key}: {} accepts any client certificate without checking who issued it{}; use RequireAndVerifyClientCert with client_ca_file to check it",
            if auth == ClientAuth::Request {
                "RequestClientCert"
            } else {
                "RequireAnyClientCert"
            },
            if allowed_sans.is_some() {
                ", so client_allowed_sans checks names nobody vouched for"
            } else {
                ""
            }
        ));
        Check::Any
    };
    Ok(Some(Arc::new(Verifier {
        // The toolkit checks the SANs even when no certificate came, and fails: a
        // connection without one never gets through.
        mandatory: auth.required() || allowed_sans.is_some(),
        check,
        allowed_sans,
        hints,
        algorithms: provider.signature_verification_algorithms,
    })))
}

enum Check {
    /// `RequestClientCert`, `RequireAnyClientCert`.
    Any,
    /// Against these roots; `webpki` is `None` when there are none at all. `anchors`
    /// are the client CA's own certificates, accepted as they are when presented.
    Roots {
        webpki: Option<Arc<dyn ClientCertVerifier>>,
        anchors: Vec<CertificateDer<'static>>,
    },
}

struct Verifier {
    mandatory: bool,
    check: Check,
    allowed_sans: Option<Vec<String>>,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("mandatory", &self.mandatory)
            .field("verifies", &matches!(self.check, Check::Roots { .. }))
            .field("allowed_sans", &self.allowed_sans)
            .finish()
    }
}

/// Why a certificate was refused, in words for the log (rustls carries it to the
/// handshake's error).
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Refused(reason),
    ))))
}

/// A rustls error in words: the reasons this verifier gives (and webpki's own, which
/// rustls wraps the same way) without the `Other(OtherError(...))` around them.
pub fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
            let inner = o.0.to_string();
            format!("invalid peer certificate: {inner}")
        }
        other => other.to_string(),
    }
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, rustls::Error> {
    match X509Certificate::from_der(der.as_ref()) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        )),
    }
}

/// A certificate that is itself one of the trusted roots, checked as Go checks a leaf
/// found in its root pool: in its validity period, and for client authentication if
/// it names its purposes at all.
fn check_anchor(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let cert = parse(der)?;
    let validity = cert.validity();
    let now = now.as_secs() as i64;
    if now < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    match cert.extended_key_usage() {
        Ok(None) => Ok(()),
        Ok(Some(eku)) if eku.value.client_auth || eku.value.any => Ok(()),
        Ok(Some(_)) => Err(rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose,
        )),
        Err(_) => Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        )),
    }
}

/// The certificate's SANs as Go writes them: DNS names, e-mail addresses, IP addresses
/// (`net.IP.String`: IPv4-mapped addresses as plain IPv4) and URIs.
fn sans(cert: &X509Certificate<'_>) -> Result<Vec<String>, rustls::Error> {
    let ext = cert
        .subject_alternative_name()
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let mut out = Vec::new();
    for name in ext.iter().flat_map(|e| e.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                out.push(s.to_string())
            }
            GeneralName::IPAddress(b) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                    out.push(std::net::Ipv4Addr::from(v4).to_string());
                } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                    let ip = std::net::Ipv6Addr::from(v6);
                    out.push(match ip.to_ipv4_mapped() {
                        Some(v4) => v4.to_string(),
                        None => ip.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

impl Verifier {
    fn check_sans(&self, der: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let Some(allowed) = &self.allowed_sans else {
            return Ok(());
        };
        let cert = parse(der)?;
        let found = sans(&cert)?;
        if found.iter().any(|s| allowed.contains(s)) {
            return Ok(());
        }
        let mut shown: Vec<&str> = found.iter().map(String::as_str).take(5).collect();
        if found.len() > shown.len() {
            shown.push("...");
        }
        Err(refused(format!(
            "none of the client certificate's SANs [{}] is in client_allowed_sans",
            shown.join(", ")
        )))
    }
}

impl ClientCertVerifier for Verifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match &self.check {
            // Well-formed is all that is asked; the handshake's signature still proves
            // the client holds the key.
            Check::Any => {
                parse(end_entity)?;
            }
            Check::Roots { anchors, .. } if anchors.iter().any(|a| a == end_entity) => {
                check_anchor(end_entity, now)?;
            }
            Check::Roots {
                webpki: Some(webpki),
                ..
            } => {
                webpki.verify_client_cert(end_entity, intermediates, now)?;
            }
            Check::Roots { webpki: None, .. } => {
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ));
            }
        }
        self.check_sans(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(
        sans: Vec<rcgen::SanType>,
        is_ca: bool,
        eku: Option<rcgen::ExtendedKeyUsagePurpose>,
    ) -> CertificateDer<'static> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // Names of their own, so one is never taken for another's issuer.
        let cn = format!("test {}", next_name());
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.subject_alt_names = sans;
        if is_ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p.extended_key_usages.extend(eku);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    fn next_name() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn build(
        auth: ClientAuth,
        ca: Option<&CertificateDer<'static>>,
        sans: Option<&[&str]>,
    ) -> Arc<dyn ClientCertVerifier> {
        let ca = ca.map(|c| ClientCa {
            key: "tls_server_config.client_ca_file".into(),
            certs: vec![c.clone()],
        });
        let sans = sans.map(|s| s.iter().map(|s| s.to_string()).collect());
        verifier(auth, ca, sans, &provider(), &mut Vec::new())
            .unwrap()
            .unwrap()
    }

    fn verify(v: &dyn ClientCertVerifier, c: &CertificateDer<'_>) -> Result<(), String> {
        v.verify_client_cert(c, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| describe(&e))
    }

    #[test]
    fn a_self_signed_ca_certificate_is_accepted_when_it_is_the_client_ca() {
        let client = cert(
            vec![rcgen::SanType::DnsName("test3".try_into().unwrap())],
            true,
            Some(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
        );
        let v = build(ClientAuth::RequireAndVerify, Some(&client), None);
        assert!(v.client_auth_mandatory());
        assert_eq!(verify(&*v, &client), Ok(()));
        let stranger = cert(Vec::new(), false, None);
        let e = verify(&*v, &stranger).unwrap_err();
        assert_eq!(e, "invalid peer certificate: UnknownIssuer");
        // Another self-signed CA: webpki's reason stands.
        let other_ca = cert(Vec::new(), true, None);
        let e = verify(&*v, &other_ca).unwrap_err();
        assert_eq!(e, "invalid peer certificate: CaUsedAsEndEntity");
        // Its own CA, but made for servers only: refused for its purpose.
        let server_only = cert(
            Vec::new(),
            true,
            Some(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
        );
        let v = build(ClientAuth::VerifyIfGiven, Some(&server_only), None);
        assert!(!v.client_auth_mandatory());
        let e = verify(&*v, &server_only).unwrap_err();
        assert!(e.contains("InvalidPurpose"), "{e}");
    }

    #[test]
    fn allowed_sans_match_dns_email_ip_and_uri_exactly() {
        let client = cert(
            vec![
                rcgen::SanType::DnsName("test3".try_into().unwrap()),
                rcgen::SanType::Rfc822Name("ops@example.org".try_into().unwrap()),
                rcgen::SanType::IpAddress("10.0.0.7".parse().unwrap()),
                rcgen::SanType::IpAddress("2001:db8::1".parse().unwrap()),
                rcgen::SanType::URI("spiffe://x/prom".try_into().unwrap()),
            ],
            true,
            None,
        );
        for allowed in [
            "test3",
            "ops@example.org",
            "10.0.0.7",
            "2001:db8::1",
            "spiffe://x/prom",
        ] {
            let v = build(
                ClientAuth::RequireAndVerify,
                Some(&client),
                Some(&[allowed]),
            );
            assert_eq!(verify(&*v, &client), Ok(()), "{allowed}");
        }
        let v = build(
            ClientAuth::RequireAndVerify,
            Some(&client),
            Some(&["TEST3", "bad", "10.0.0.70"]),
        );
        assert_eq!(
            verify(&*v, &client).unwrap_err(),
            "invalid peer certificate: none of the client certificate's SANs [test3, ops@example.org, 10.0.0.7, 2001:db8::1, spiffe://x/prom] is in client_allowed_sans"
        );
        // A certificate is required once SANs are to be checked, whatever the type says.
        let v = build(ClientAuth::VerifyIfGiven, Some(&client), Some(&["test3"]));
        assert!(v.client_auth_mandatory());
    }

    #[test]
    fn require_any_takes_any_well_formed_certificate() {
        let v = build(ClientAuth::RequireAny, None, None);
        assert!(v.client_auth_mandatory());
        assert!(v.root_hint_subjects().is_empty());
        assert_eq!(verify(&*v, &cert(Vec::new(), false, None)), Ok(()));
        let e = verify(&*v, &CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).unwrap_err();
        assert!(e.contains("BadEncoding"), "{e}");
        let v = build(ClientAuth::Request, None, None);
        assert!(!v.client_auth_mandatory());
    }

    #[test]
    fn client_auth_type_names() {
        for (name, want) in [
            ("", ClientAuth::None),
            ("NoClientCert", ClientAuth::None),
            ("RequestClientCert", ClientAuth::Request),
            ("RequireClientCert", ClientAuth::RequireAny),
            ("RequireAnyClientCert", ClientAuth::RequireAny),
            ("VerifyClientCertIfGiven", ClientAuth::VerifyIfGiven),
            ("RequireAndVerifyClientCert", ClientAuth::RequireAndVerify),
        ] {
            assert_eq!(ClientAuth::parse(name), Ok(want), "{name}");
        }
        assert!(
            ClientAuth::parse("x")
                .unwrap_err()
                .starts_with("tls_server_config.client_auth_type: invalid ClientAuth \"x\"; use ")
        );
    }
}
