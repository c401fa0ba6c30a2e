//! The HTTP client for the report API: one request at a time per permit, a hard cap on
//! the body size, and every failure turned into an [`ApiError`] with its [`Reason`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use tokio::sync::Semaphore;

use super::{ApiError, Reason, classify, excerpt, row};
use crate::secret::Secret;
use crate::window::Query;

/// The API's documented largest answer: past this we stop reading and fail the cycle.
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// One request's outcome: the status for `wolkvox_api_requests_total{code}` (`None`
/// when no answer came) and the body of a 200 (empty for a 404) or the error. With
/// [`Client::fetch_into`] the body went to a [`Receive`] as it came, and `B` is `()`.
#[derive(Debug)]
pub struct Attempt<B = Bytes> {
    pub status: Option<u16>,
    pub result: Result<B, ApiError>,
}

/// Where a 200 answer's body goes, piece by piece as it arrives, so that a reader that
/// decodes as it goes never needs the whole body at once.
pub trait Receive {
    /// A new answer begins: forget the last one (keeping any buffers).
    fn start(&mut self);
    /// The body's length, when the answer says it (`Content-Length`).
    fn expect(&mut self, _bytes: usize) {}
    /// The next piece of the body. An error ends the read: the answer is bad, and is
    /// retried like any other.
    fn extend(&mut self, bytes: &[u8]) -> Result<(), ApiError>;
}

impl Receive for Vec<u8> {
    fn start(&mut self) {
        self.clear();
    }
    // One allocation of the answer's size: growing a 12 MB body by doubling leaves
    // freed blocks of every size behind, which the allocator keeps.
    fn expect(&mut self, bytes: usize) {
        self.reserve(bytes);
    }
    fn extend(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

impl<B> Attempt<B> {
    /// The `code` label: the HTTP status, or `error` when there was no answer.
    pub fn code_label(&self) -> String {
        self.status
            .map_or_else(|| "error".to_string(), |s| s.to_string())
    }
}

/// Why a client cannot be built for an operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS back end could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// The API paths cannot be joined to the base URL (one that cannot be a base).
    /// Boxed: the `url` crate's error is not re-exported by reqwest.
    #[error("base URL: {0}")]
    BaseUrl(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    report_url: Url,
    info_url: Url,
    token: Secret,
    customer_id: Option<String>,
    /// Shared by every operation that uses the same token: the API counts per token.
    permits: Arc<Semaphore>,
    max_body: usize,
}

impl Client {
    pub fn new(
        base_url: &Url,
        token: Secret,
        customer_id: Option<String>,
        timeout: Duration,
        permits: Arc<Semaphore>,
    ) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("wolkvox-exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        let join = |p: &str| base_url.join(p).map_err(|e| ClientError::BaseUrl(e.into()));
        Ok(Client {
            http,
            report_url: join("api/v2/reports_manager.php")?,
            info_url: join("api/v2/information.php")?,
            token,
            customer_id,
            permits,
            max_body: MAX_BODY_BYTES,
        })
    }

    /// The client for one operation of the config: its URL, token, customer filter and
    /// timeout; `permits` are its token's.
    pub fn for_operation(
        op: &crate::config::Operation,
        permits: Arc<Semaphore>,
    ) -> Result<Client, ClientError> {
        Client::new(
            &op.base_url,
            op.token.clone(),
            op.customer_id.clone(),
            op.poll.timeout,
            permits,
        )
    }

    /// For tests of the size cap.
    pub fn with_max_body(mut self, max_body: usize) -> Client {
        self.max_body = max_body;
        self
    }

    /// The full request URL for a query (no token in it: that goes in a header).
    pub fn report_url(&self, q: &Query) -> Url {
        let mut url = self.report_url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("api", "diagram_1")
                .append_pair("date_ini", &q.date_ini_string())
                .append_pair("date_end", &q.date_end_string());
            if let Some(c) = &self.customer_id {
                pairs.append_pair("customer_id", c);
            }
        }
        url
    }

    /// Asks for one query's rows. A 200 gives its body, a 404 an empty body.
    pub async fn fetch(&self, q: &Query) -> Attempt {
        let mut body = Vec::new();
        let a = self.fetch_into(q, &mut body).await;
        Attempt {
            status: a.status,
            result: a.result.map(|()| Bytes::from(body)),
        }
    }

    /// [`Client::fetch`], with a 200's body handed to `body` as it arrives (a 404 hands
    /// it nothing).
    pub async fn fetch_into(&self, q: &Query, body: &mut impl Receive) -> Attempt<()> {
        self.get(self.report_url(q), body).await
    }

    /// `information.php?api=token_info`: the token's budget. Costs one request.
    pub async fn token_info(&self) -> Attempt {
        let mut url = self.info_url.clone();
        url.query_pairs_mut().append_pair("api", "token_info");
        let mut body = Vec::new();
        let a = self.get(url, &mut body).await;
        Attempt {
            status: a.status,
            result: a.result.map(|()| Bytes::from(body)),
        }
    }

    async fn get(&self, url: Url, body: &mut impl Receive) -> Attempt<()> {
        body.start();
        let Ok(_permit) = self.permits.acquire().await else {
            return Attempt {
                status: None,
                result: Err(error(Reason::Other, None, "client closed")),
            };
        };
        let response = match self
            .http
            .get(url)
            .header("wolkvox-token", self.token.expose())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Attempt {
                    status: None,
                    result: Err(transport(e)),
                };
            }
        };
        let status = response.status().as_u16();
        let result = if status == 200 {
            read_capped(response, self.max_body, body).await
        } else {
            // A 404's body says nothing; another status's says why.
            let mut text = Vec::new();
            match read_capped(response, self.max_body, &mut text).await {
                Err(e) => Err(e),
                Ok(()) if status == 404 => Ok(()),
                Ok(()) => {
                    let msg = error_message(&text);
                    Err(error(classify(status, &msg), Some(status), &msg))
                }
            }
        };
        Attempt {
            status: Some(status),
            result,
        }
    }
}

fn error(reason: Reason, status: Option<u16>, detail: &str) -> ApiError {
    ApiError {
        reason,
        status,
        detail: excerpt(detail),
    }
}

fn transport(e: reqwest::Error) -> ApiError {
    let reason = if e.is_timeout() {
        Reason::Timeout
    } else {
        Reason::Network
    };
    error(reason, None, &describe(&e))
}

/// A request that got no answer, in plain words: the cause at the end of reqwest's
/// chain (`connection refused`), not its own "error sending request". Never the URL:
/// reqwest's text holds it, and a report URL's query holds dates and `customer_id`.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut chain = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s);
        source = s.source();
    }
    let io = chain
        .iter()
        .rev()
        .find_map(|s| s.downcast_ref::<std::io::Error>());
    let cause = match io {
        Some(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
            std::io::ErrorKind::ConnectionAborted => "connection aborted".to_string(),
            std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
            _ => io.to_string(),
        },
        None => match chain.last() {
            Some(s) => s.to_string(),
            // reqwest's own text would bring the URL.
            None if e.is_body() => "error reading the answer".to_string(),
            None if e.is_redirect() => "too many redirects".to_string(),
            None => "request failed".to_string(),
        },
    };
    // hyper-util names a failed lookup only in the middle of the chain.
    if chain.iter().any(|s| s.to_string() == "dns error") {
        format!("cannot resolve the host name: {cause}")
    } else {
        cause
    }
}

async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
    body: &mut impl Receive,
) -> Result<(), ApiError> {
    let too_large = |status| {
        error(
            Reason::Other,
            Some(status),
            &format!("answer larger than {max} bytes"),
        )
    };
    let status = response.status().as_u16();
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large(status));
    }
    if let Some(n) = response.content_length() {
        body.expect(n as usize);
    }
    let mut read = 0usize;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                if read > max {
                    return Err(too_large(status));
                }
                body.extend(&chunk)?;
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                let mut err = transport(e);
                if err.reason == Reason::Network {
                    err.detail = format!("answer cut off: {}", err.detail);
                }
                return Err(err);
            }
        }
    }
}

/// The `msg` of an error envelope, or the start of whatever the body was (an HTML
/// gateway page, say).
fn error_message(body: &[u8]) -> String {
    match row::decode(body) {
        Ok(env) => env.msg.map(|m| m.as_str().to_string()).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request to `url` with a short timeout, and its failure in words.
    async fn failure(url: &str) -> String {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        describe(&http.get(url).send().await.unwrap_err())
    }

    #[tokio::test]
    async fn transport_failures_say_their_cause_without_the_url() {
        // A port that was just let go: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(
            failure(&format!("http://127.0.0.1:{port}/?customer_id=77")).await,
            "connection refused"
        );
        // Accepted by the kernel, never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        assert_eq!(failure(&url).await, "timed out");
        assert_eq!(
            failure("ftp://127.0.0.1/").await,
            "URL scheme is not allowed"
        );
    }
}
