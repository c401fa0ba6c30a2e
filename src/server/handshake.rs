//! The TLS handshake of one connection, and what a failed one leaves in the log: a
//! warning with the peer and the reason (a refused client certificate says so), at most
//! one line per [`LOG_EVERY`](super::throttle::LOG_EVERY) of each kind, with the count
//! of the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::conn::{Guarded, HEADER_TIMEOUT};
use super::throttle::Throttle;

static HANDSHAKE_FAILED: Throttle = Throttle::new();
static CERT_REFUSED: Throttle = Throttle::new();

pub(super) type Stream = Guarded<TcpStream>;

/// The TLS handshake, or `None` when it fails. Plain HTTP sent to the TLS port gets the
/// answer Go's servers give (a 400 saying so) before the connection closes, so a
/// Prometheus job with the wrong `scheme` shows a clear error instead of a reset.
pub(super) async fn tls_handshake(
    mut stream: Stream,
    config: Arc<rustls::ServerConfig>,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<Stream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.get_ref().peek(&mut first)).await {
        Ok(Ok(1)) => {}
        // Closed without a word: a TCP health check or a port scan, not a failure.
        Ok(_) => return None,
        Err(_) => {
            failed(peer, "no TLS handshake within the header timeout");
            return None;
        }
    }
    // 0x16: a TLS handshake record. Anything else is not a TLS client.
    if first[0] != 0x16 {
        if first[0].is_ascii_uppercase() {
            failed(peer, "client sent an HTTP request to an HTTPS server");
            let answer = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                stream.write_all(answer).await?;
                stream.shutdown().await?;
                // Read what the client sent, so closing does not reset the connection
                // before it has read the answer.
                let mut sink = [0u8; 4096];
                while stream.read(&mut sink).await? > 0 {}
                Ok::<_, std::io::Error>(())
            })
            .await;
        } else {
            failed(
                peer,
                &format!("not a TLS handshake (first byte 0x{:02x})", first[0]),
            );
        }
        return None;
    }
    match tokio::time::timeout(HEADER_TIMEOUT, TlsAcceptor::from(config).accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            let tls = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let reason = match tls {
                Some(t) => crate::web_config::describe_tls_error(t),
                None => e.to_string(),
            };
            if tls.is_some_and(is_certificate_refusal) {
                if let Some(n) = CERT_REFUSED.note(Instant::now(), 1) {
                    tracing::warn!(peer = %peer, reason = %reason, suppressed = n - 1, "client certificate refused");
                }
            } else {
                failed(peer, &reason);
            }
            None
        }
        Err(_) => {
            failed(peer, "TLS handshake not finished within the header timeout");
            None
        }
    }
}

/// The server refused what the client presented (or that it presented nothing).
fn is_certificate_refusal(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}

fn failed(peer: SocketAddr, reason: &str) {
    if let Some(n) = HANDSHAKE_FAILED.note(Instant::now(), 1) {
        tracing::warn!(peer = %peer, reason = %reason, suppressed = n - 1, "TLS handshake failed");
    }
}

/// Counts of failures not written yet, once their line is due: the end of a burst.
pub(super) fn flush_logs(now: Instant) {
    if let Some(n) = HANDSHAKE_FAILED.flush(now) {
        tracing::warn!(
            count = n,
            "more TLS handshakes failed (not logged one by one)"
        );
    }
    if let Some(n) = CERT_REFUSED.flush(now) {
        tracing::warn!(
            count = n,
            "more client certificates refused (not logged one by one)"
        );
    }
}
