//! The toolkit's test tables, row by row: the files, the clients and what each row
//! expects (see `toolkit.rs` for how they run and the totals).

use tokio_rustls::rustls::NamedGroup;

use super::client::{self, Tls};

/// `TestYAMLFiles`: each file is started (`run/`) and validated (`validate/`, the
/// library's `WebConfig::from_file`, as the toolkit's `Validate`). `None`: a good file.
pub(super) const YAML_FILES: [(&str, &str, Option<&str>); 18] = [
    (
        "path to config yml invalid",
        "somefile",
        Some("cannot read web config file: No such file or directory"),
    ),
    ("empty config yml", "web_config_empty.yml", None),
    (
        "invalid config yml (invalid structure)",
        "web_config_junk.yml",
        Some("line 1 column 1: expected mapping start"),
    ),
    (
        "invalid config yml (invalid key)",
        "web_config_junk_key.yml",
        Some("line 2 column 3: unknown field `cert_filse`"),
    ),
    (
        "invalid config yml (cert path empty)",
        "web_config_noAuth_certPath_empty.bad.yml",
        Some("tls_server_config.cert_file: missing one of cert or cert_file"),
    ),
    (
        "invalid config yml (cert empty)",
        "web_config_noAuth_cert_empty.bad.yml",
        Some("tls_server_config.cert_file: missing one of cert or cert_file"),
    ),
    (
        "invalid config yml (key path empty)",
        "web_config_noAuth_keyPath_empty.bad.yml",
        Some("tls_server_config.key_file: missing one of key or key_file"),
    ),
    (
        "invalid config yml (key empty)",
        "web_config_noAuth_key_empty.bad.yml",
        Some("tls_server_config.key_file: missing one of key or key_file"),
    ),
    (
        "invalid config yml (cert path and key path empty)",
        "web_config_noAuth_certPath_keyPath_empty.bad.yml",
        Some("tls_server_config.cert_file: missing one of cert or cert_file"),
    ),
    (
        "invalid config yml (cert path invalid)",
        "web_config_noAuth_certPath_invalid.bad.yml",
        Some("tls_server_config.cert_file: cannot read DIR/somefile: No such file or directory"),
    ),
    (
        "invalid config yml (key path invalid)",
        "web_config_noAuth_keyPath_invalid.bad.yml",
        Some("tls_server_config.cert_file: cannot read DIR/server.cert: No such file or directory"),
    ),
    (
        "invalid config yml (cert path and key path invalid)",
        "web_config_noAuth_certPath_keyPath_invalid.bad.yml",
        Some("tls_server_config.cert_file: cannot read DIR/somefile: No such file or directory"),
    ),
    (
        "invalid config yml (invalid ClientAuth)",
        "web_config_noAuth.bad.yml",
        Some(
            "tls_server_config.client_ca_file: client CA's have been configured without a Client Auth Policy",
        ),
    ),
    (
        "invalid config yml (invalid ClientCAs filepath)",
        "web_config_auth_clientCAs_invalid.bad.yml",
        Some(
            "tls_server_config.client_ca_file: cannot read DIR/somefile: No such file or directory",
        ),
    ),
    (
        "invalid config yml (invalid user list)",
        "web_config_auth_user_list_invalid.bad.yml",
        Some("basic_auth_users.john: not a bcrypt hash"),
    ),
    (
        "invalid config yml (bad cipher)",
        "web_config_noAuth_inventedCiphers.bad.yml",
        Some(
            "tls_server_config.cipher_suites: unknown cipher \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048\"",
        ),
    ),
    (
        "invalid config yml (bad curves)",
        "web_config_noAuth_inventedCurves.bad.yml",
        Some("tls_server_config.curve_preferences: unknown curve \"CurveP257\""),
    ),
    (
        "invalid config yml (bad TLS version)",
        "web_config_noAuth_wrongTLSVersion.bad.yml",
        Some("tls_server_config.min_version: unknown TLS version \"TLS111\""),
    ),
];

#[derive(Clone, Copy)]
pub(super) enum Client {
    Plain,
    Tls(Tls),
    /// Raw bytes, for what rustls will not send.
    Raw(fn() -> Vec<u8>),
}

#[derive(Clone, Copy)]
pub(super) enum Want {
    /// Every request answers 200 `OK`.
    Ok,
    /// The first answer that is not 200 has this status and body.
    Answer(u16, &'static str),
    /// The TLS client fails with an error that contains this.
    Refused(&'static str),
    /// The raw reply starts with these bytes.
    Reply(&'static [u8]),
    /// The start is refused with this (after `FILE: `).
    StartFails(&'static str),
}

#[derive(Clone, Copy)]
pub(super) enum Status {
    Passed,
    /// Why the row does not apply; `want` is what this server does instead.
    NotApplicable(&'static str),
    /// Why we differ on purpose; `want` is what this server does instead.
    Different(&'static str),
}

#[derive(Clone, Copy)]
pub(super) struct Row {
    pub(super) name: &'static str,
    pub(super) web: &'static str,
    pub(super) client: Client,
    /// The toolkit's `Requests`: the Go loop sends `requests + 1`.
    pub(super) requests: usize,
    pub(super) user: Option<(&'static str, &'static str)>,
    pub(super) want: Want,
    /// The suite the TLS client must end up with (the toolkit's `ActualCipher`).
    pub(super) suite: Option<&'static str>,
    /// What the exporter's log must then hold.
    pub(super) log: Option<&'static str>,
    pub(super) status: Status,
}

pub(super) const ROW: Row = Row {
    name: "",
    web: "",
    client: Client::Plain,
    requests: 0,
    user: None,
    want: Want::Ok,
    suite: None,
    log: None,
    status: Status::Passed,
};

pub(super) const TLS: Client = Client::Tls(Tls {
    suites: &[],
    curves: &[],
    cert: None,
});

pub(super) const fn tls_with(
    suites: &'static [&'static str],
    curves: &'static [NamedGroup],
    cert: Option<&'static str>,
) -> Client {
    Client::Tls(Tls {
        suites,
        curves,
        cert,
    })
}

/// Go's ClientHello for `MaxVersion: tls.VersionTLS11`: version 3.2, its CBC suites.
fn hello_tls11() -> Vec<u8> {
    client::client_hello(
        0x0302,
        &[0xc009, 0xc013, 0xc00a, 0xc014, 0x002f, 0x0035],
        &[0x001d, 0x0017],
    )
}

/// A TLS 1.2 ClientHello offering TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA alone.
fn hello_cbc_only() -> Vec<u8> {
    client::client_hello(0x0303, &[0xc014], &[0x001d, 0x0017])
}

/// A TLS record: alert, any version, length 2, fatal, `description`.
const fn alert(description: u8) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}
const PROTOCOL_VERSION: [u8; 7] = alert(70);
const HANDSHAKE_FAILURE: [u8; 7] = alert(40);

const P521_NOT_OFFERED: &str = "tls_server_config.curve_preferences: none of the listed curves is offered by this exporter's TLS library";

pub(super) const SERVER_BEHAVIOUR: [Row; 27] = [
    Row {
        name: "empty string YAMLConfigPath and default client",
        ..ROW
    },
    Row {
        name: "empty string YAMLConfigPath and TLS client",
        client: Client::Raw(hello_cbc_only),
        // "server gave HTTP response to HTTPS client": plain HTTP's 400 to a ClientHello.
        want: Want::Reply(b"HTTP/1.1 400 Bad Request\r\n"),
        ..ROW
    },
    Row {
        name: "valid tls config yml and default client",
        web: "web_config_noAuth.good.yml",
        want: Want::Answer(400, "Client sent an HTTP request to an HTTPS server.\n"),
        log: Some("level=warn msg=\"TLS handshake failed\" peer=127.0.0.1:"),
        ..ROW
    },
    Row {
        name: "valid tls config yml and tls client",
        web: "web_config_noAuth.good.yml",
        client: TLS,
        ..ROW
    },
    Row {
        name: "valid tls config yml (cert and key inline) and tls client",
        web: "web_config_noAuth_tlsInline.good.yml",
        client: TLS,
        ..ROW
    },
    Row {
        name: "valid tls config yml with TLS 1.1 client",
        web: "web_config_noAuth.good.yml",
        client: Client::Raw(hello_tls11),
        want: Want::Reply(&PROTOCOL_VERSION),
        log: Some("reason=\"peer is incompatible: "),
        ..ROW
    },
    Row {
        name: "valid tls config yml with all ciphers",
        web: "web_config_noAuth_allCiphers.good.yml",
        client: TLS,
        ..ROW
    },
    Row {
        name: "valid tls config yml with some ciphers",
        web: "web_config_noAuth_someCiphers.good.yml",
        client: tls_with(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], &[], None),
        ..ROW
    },
    Row {
        name: "valid tls config yml with no common cipher",
        web: "web_config_noAuth_someCiphers.good.yml",
        client: Client::Raw(hello_cbc_only),
        want: Want::Reply(&HANDSHAKE_FAILURE),
        log: Some("reason=\"peer is incompatible: NoCipherSuitesInCommon\""),
        ..ROW
    },
    Row {
        name: "valid tls config yml with multiple client ciphers",
        web: "web_config_noAuth_someCiphers.good.yml",
        client: tls_with(
            &[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ],
            &[],
            None,
        ),
        suite: Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ..ROW
    },
    Row {
        name: "valid tls config yml with multiple client ciphers, client chooses cipher",
        web: "web_config_noAuth_someCiphers_noOrder.good.yml",
        client: tls_with(
            &[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ],
            &[],
            None,
        ),
        suite: Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ..ROW
    },
    Row {
        name: "valid tls config yml with all curves",
        web: "web_config_noAuth_allCurves.good.yml",
        client: TLS,
        ..ROW
    },
    Row {
        name: "valid tls config yml with some curves",
        web: "web_config_noAuth_someCurves.good.yml",
        want: Want::StartFails(P521_NOT_OFFERED),
        status: Status::Different("CurveP521 alone: rustls with ring has no P-521"),
        ..ROW
    },
    Row {
        name: "valid tls config yml with no common curves",
        web: "web_config_noAuth_someCurves.good.yml",
        want: Want::StartFails(P521_NOT_OFFERED),
        status: Status::Different(
            "CurveP521 alone: rustls with ring has no P-521; the rule is checked with X25519 below",
        ),
        ..ROW
    },
    Row {
        name: "valid tls config yml with non-http2 ciphers",
        web: "web_config_noAuth_noHTTP2.good.yml",
        client: TLS,
        suite: Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        ..ROW
    },
    Row {
        name: "valid tls config yml with non-http2 ciphers but http2 enabled",
        web: "web_config_noAuth_noHTTP2Cipher.bad.yml",
        client: TLS,
        suite: Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        status: Status::NotApplicable("Go's HTTP/2 suite rule; this server speaks HTTP/1.1 only"),
        ..ROW
    },
    Row {
        name: "valid headers config",
        web: "web_config_headers.good.yml",
        ..ROW
    },
    Row {
        name: "invalid X-Content-Type-Options headers config",
        web: "web_config_headers_content_type_options.bad.yml",
        want: Want::StartFails(
            "http_server_config.headers.X-Content-Type-Options: \"sniff\" is not one of nosniff",
        ),
        ..ROW
    },
    Row {
        name: "invalid X-Frame-Options headers config",
        web: "web_config_headers_frame_options.bad.yml",
        want: Want::StartFails(
            "http_server_config.headers.X-Frame-Options: \"foo\" is not one of deny, sameorigin",
        ),
        ..ROW
    },
    Row {
        name: "HTTP header that can not be overridden",
        web: "web_config_headers_extra_header.bad.yml",
        want: Want::StartFails(
            "http_server_config.headers.Content-Type: this header cannot be configured",
        ),
        ..ROW
    },
    Row {
        name: "valid tls config yml and tls client with RequireAnyClientCert (present certificate)",
        web: "tls_config_noAuth.requireanyclientcert.good.yml",
        client: tls_with(&[], &[], Some("client_selfsigned")),
        ..ROW
    },
    Row {
        name: "valid tls config yml (cert from file, key inline) and tls client with RequireAnyClientCert (present certificate)",
        web: "tls_config_noAuth.requireanyclientcertkeyinline.good.yml",
        client: tls_with(&[], &[], Some("client_selfsigned")),
        ..ROW
    },
    Row {
        name: "valid tls config yml and tls client with RequireAndVerifyClientCert (present certificate)",
        web: "tls_config_noAuth.requireandverifyclientcert.good.yml",
        client: tls_with(&[], &[], Some("client_selfsigned")),
        ..ROW
    },
    Row {
        name: "valid tls config yml and tls client with VerifyPeerCertificate (present good SAN DNS entry)",
        web: "web_config_auth_client_san.good.yaml",
        client: tls_with(&[], &[], Some("client2_selfsigned")),
        ..ROW
    },
    Row {
        name: "valid tls config yml and tls client with VerifyPeerCertificate (present invalid SAN DNS entries)",
        web: "web_config_auth_client_san.bad.yaml",
        client: tls_with(&[], &[], Some("client2_selfsigned")),
        want: Want::Refused("received fatal alert: CertificateUnknown"),
        log: Some("level=warn msg=\"client certificate refused\" peer=127.0.0.1:"),
        ..ROW
    },
    Row {
        name: "valid rate limiter (no rate limiter set up) that doesn't block",
        web: "web_config_rate_limiter_nonblocking.yaml",
        requests: 10,
        ..ROW
    },
    Row {
        name: "valid rate limiter with an interval of one second",
        web: "web_config_rate_limiter_one_second.yaml",
        requests: 10,
        want: Want::Answer(429, "Too Many Requests\n"),
        ..ROW
    },
];

/// Rows of our own, each checking what an upstream row meant where its file cannot
/// run here as written.
pub(super) const EXTRA_ROWS: [Row; 2] = [
    Row {
        name: "(for: no common curves) X25519 alone, a client with CurveP384 alone",
        web: "x25519_only.yml",
        client: tls_with(&[], &[NamedGroup::secp384r1], None),
        want: Want::Refused("received fatal alert: HandshakeFailure"),
        log: Some("reason=\"peer is incompatible: NoKxGroupsInCommon\""),
        ..ROW
    },
    Row {
        name: "(for: some curves) X25519 alone, a client with X25519",
        web: "x25519_only.yml",
        client: tls_with(&[], &[NamedGroup::X25519], None),
        ..ROW
    },
];
