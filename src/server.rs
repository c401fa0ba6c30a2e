//! The HTTP side: `/metrics` (gzip when asked), `/`, `/-/healthy`, `/-/ready`, one task
//! per connection on hyper. Scrapes read snapshots and never wait on a poll cycle.
//!
//! With `--web.config.file` ([`crate::web_config`]) connections are TLS and requests
//! need basic auth, as the Prometheus exporter-toolkit does it: every path is behind
//! the auth, `/-/healthy` included.
//!
//! Connections are guarded by [`conn`] (timeouts, and a cap that leaves room for a
//! scrape); [`handshake`] does TLS and logs its failures through [`throttle`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::metrics::Metrics;
use crate::status::{self, Statuses};
use crate::web_config::{RateLimiter, WebConfig, WebConfigFile};

mod conn;
mod handshake;
mod throttle;

use throttle::Throttle;

pub struct App {
    pub metrics: Arc<Metrics>,
    pub statuses: Arc<Statuses>,
    pub telemetry_path: String,
    /// `--web.config.file`: TLS, basic auth and extra headers. `None`: plain HTTP, open.
    pub web: Option<Arc<WebConfigFile>>,
    /// Where `POST /-/reload` asks for a config reload; `None` without
    /// `--web.enable-lifecycle`, as in Prometheus.
    pub reload: Option<ReloadRequests>,
}

/// A reload request, answered with its outcome: one line when it failed.
pub type ReloadRequests =
    tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>;

/// `POST` (or `PUT`) `/-/reload`.
async fn reload(app: &App) -> Response<Body> {
    let Some(requests) = &app.reload else {
        return response(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            "Lifecycle API is not enabled.\n",
        );
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if requests.send(tx).await.is_err() {
        return response(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "shutting down\n",
        );
    }
    match rx.await {
        Ok(Ok(())) => response(StatusCode::OK, "text/plain; charset=utf-8", "OK\n"),
        Ok(Err(e)) => response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("failed to reload config: {e}\n"),
        ),
        Err(_) => response(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "shutting down\n",
        ),
    }
}

type Body = Full<Bytes>;

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn wants_gzip(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

pub async fn handle(app: &App, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() == "/-/reload" {
        return if req.method() == Method::POST || req.method() == Method::PUT {
            reload(app).await
        } else {
            response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "method not allowed: use POST or PUT\n",
            )
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n",
        );
    }
    let path = req.uri().path();
    if path == app.telemetry_path {
        let text = app.metrics.render();
        let mut r = if wants_gzip(&req) {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            match enc.write_all(text.as_bytes()).and_then(|_| enc.finish()) {
                Ok(gz) => {
                    let mut r = response(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        gz,
                    );
                    r.headers_mut()
                        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    r
                }
                Err(_) => response(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                ),
            }
        } else {
            response(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        };
        r.headers_mut()
            .insert("vary", HeaderValue::from_static("Accept-Encoding"));
        return r;
    }
    match path {
        "/-/healthy" => response(StatusCode::OK, "text/plain; charset=utf-8", "OK\n"),
        "/-/ready" => {
            let waiting: Vec<String> = status::snapshot(&app.statuses.list())
                .into_iter()
                .filter(|s| !s.first_cycle_done)
                .map(|s| s.name)
                .collect();
            if waiting.is_empty() {
                response(StatusCode::OK, "text/plain; charset=utf-8", "OK\n")
            } else {
                response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!(
                        "waiting for the first poll cycle of: {}\n",
                        waiting.join(", ")
                    ),
                )
            }
        }
        "/" => response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            status::index(&app.statuses.list(), &app.telemetry_path),
        ),
        _ => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

/// Serves until `shutdown` turns true, then lets in-flight requests finish (up to 5 s).
/// Connections are guarded by [`conn`]: header, idle and write timeouts, and a cap that
/// always leaves room for a scrape.
pub async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let auth = Arc::new(Auth::new());
    let limiter = Arc::new(RateLimiter::default());
    let conns = conn::Connections::new(conn::cap(app.statuses.list().len()));
    tracing::info!(
        max_connections = conns.cap(),
        header_timeout = %humantime::format_duration(conn::HEADER_TIMEOUT),
        idle_timeout = %humantime::format_duration(conn::IDLE_TIMEOUT),
        "connection limits"
    );
    let sweeper = tokio::spawn(sweep(Arc::clone(&conns)));
    loop {
        tokio::select! {
            _ = conns.wait_for_room() => {}
            _ = shutdown.changed() => break,
        }
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) if out_of_descriptors(&e) => {
                    // Something else holds the descriptors: free one for this client.
                    conns.evict_oldest();
                    if let Some(n) = ACCEPT_FAILED.note(Instant::now(), 1) {
                        tracing::warn!(error = %e, suppressed = n - 1, "accept failed: out of file descriptors; closed the connection that waited longest");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        if conns.make_room()
            && let Some(n) = AT_CAP.note(Instant::now(), 1)
        {
            tracing::warn!(
                max_connections = conns.cap(),
                closed = n,
                "connection limit reached: closed the connections that waited longest for a request"
            );
        }
        let registered = conns.register();
        let slot = Arc::clone(&registered.slot);
        let stream = conn::Guarded::new(stream, Arc::clone(&slot));
        // The TLS settings in force when the connection arrives; a changed certificate
        // applies from the next connection on, as in the toolkit.
        let tls = app.web.as_ref().and_then(|w| w.current().tls.clone());
        let svc = {
            let app = Arc::clone(&app);
            let auth = Arc::clone(&auth);
            let limiter = Arc::clone(&limiter);
            let slot = Arc::clone(&slot);
            service_fn(move |req| {
                let app = Arc::clone(&app);
                let auth = Arc::clone(&auth);
                let limiter = Arc::clone(&limiter);
                let slot = Arc::clone(&slot);
                async move {
                    slot.busy();
                    let r = respond(&app, &auth, &limiter, req).await;
                    slot.idle();
                    Ok::<_, Infallible>(r)
                }
            })
        };
        // Taken before the task starts, so a shutdown that begins during a TLS handshake
        // still reaches the connection once it is up.
        let watcher = graceful.watcher();
        let builder = builder.clone();
        tokio::spawn(async move {
            let _registered = registered;
            let serving = async {
                match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(config) => {
                        let Some(tls_stream) = handshake::tls_handshake(stream, config, peer).await
                        else {
                            return Ok(());
                        };
                        let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
                        watcher.watch(conn.into_owned()).await
                    }
                }
            };
            // Closed from outside (a deadline or the cap): dropping the connection
            // closes its socket.
            let result = tokio::select! {
                r = serving => r,
                _ = slot.closed() => Ok(()),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    sweeper.abort();
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown");
    }
}

static ACCEPT_FAILED: Throttle = Throttle::new();
static AT_CAP: Throttle = Throttle::new();
static HEADER_TIMED_OUT: Throttle = Throttle::new();
static WRITE_TIMED_OUT: Throttle = Throttle::new();

/// EMFILE, ENFILE: the process or the system has no file descriptor left.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24) | Some(23))
}

/// Closes connections past their deadlines, every [`conn::SWEEP_EVERY`], and writes the
/// counts that the throttled warnings held back.
async fn sweep(conns: Arc<conn::Connections>) {
    let mut tick = tokio::time::interval(conn::SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let swept = conns.sweep();
        let now = Instant::now();
        if let Some(n) = HEADER_TIMED_OUT.note(now, swept.header) {
            tracing::warn!(connections = n, timeout = %humantime::format_duration(conn::HEADER_TIMEOUT), "closed connections that sent no complete request header in time");
        }
        if let Some(n) = WRITE_TIMED_OUT.note(now, swept.write) {
            tracing::warn!(connections = n, timeout = %humantime::format_duration(conn::WRITE_TIMEOUT), "closed connections whose client read nothing of its answer in time");
        }
        if swept.idle > 0 {
            tracing::debug!(
                connections = swept.idle,
                "closed idle keep-alive connections"
            );
        }
        if let Some(n) = AT_CAP.flush(now) {
            tracing::warn!(
                max_connections = conns.cap(),
                closed = n,
                "connection limit reached: closed the connections that waited longest for a request"
            );
        }
        handshake::flush_logs(now);
    }
}

/// Every request: the web config's rate limit and auth first, then [`handle`], then its
/// extra headers.
async fn respond(
    app: &App,
    auth: &Auth,
    limiter: &RateLimiter,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(web) = app.web.as_ref().map(|w| w.current()) else {
        return handle(app, req).await;
    };
    // As the toolkit: before the auth, and without the extra headers.
    if !limiter.allow(web.rate_limit, Instant::now()) {
        return response(
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain; charset=utf-8",
            "Too Many Requests\n",
        );
    }
    let mut r = if auth.allows(&web, &req).await {
        handle(app, req).await
    } else {
        let mut r = response(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "Unauthorized\n",
        );
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"wolkvox-exporter\""),
        );
        r
    };
    for (name, value) in &web.headers {
        r.headers_mut().insert(name.clone(), value.clone());
    }
    r
}

/// How long a verified (user, password) pair is trusted without another bcrypt: a
/// scrape every 15 s then costs one bcrypt a minute instead of one each time.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(60);
/// Bounds the cache's memory whatever clients send; only successes are cached.
const AUTH_CACHE_MAX: usize = 256;

/// Basic auth against the bcrypt hashes of `basic_auth_users`.
struct Auth {
    /// Keys are HMACs (with a key made at start) of user, hash and password, so neither
    /// the password nor a plain fast hash of it sits in memory.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    key: ring::hmac::Key,
    /// bcrypt is deliberately slow: one at a time, so wrong passwords cannot take every
    /// core from the pollers (the toolkit does the same).
    bcrypt: Semaphore,
}

impl Auth {
    fn new() -> Auth {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            // No system randomness is close to impossible; a fixed key only makes the
            // cache keys guessable to someone who can already read this process's memory.
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"wolkvox-exporter"));
        Auth {
            cache: Mutex::new(HashMap::new()),
            key,
            bcrypt: Semaphore::new(1),
        }
    }

    async fn allows(&self, web: &WebConfig, req: &Request<Incoming>) -> bool {
        if web.users.is_empty() {
            return true;
        }
        let Some((user, password)) = basic_credentials(req.headers()) else {
            return false;
        };
        let ok = self.check(web, user, password).await;
        if !ok {
            // No user name: people type passwords into the user field.
            tracing::debug!(path = %req.uri().path(), "basic auth failed");
        }
        ok
    }

    async fn check(&self, web: &WebConfig, user: Vec<u8>, password: Vec<u8>) -> bool {
        let Some(first) = web.users.first() else {
            return true;
        };
        // Every configured name is compared, in constant time, so the time taken does
        // not tell which names exist or how much of one matched.
        let mut found: Option<&str> = None;
        for u in &web.users {
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                u.name.as_bytes(),
                user.as_slice(),
            )) {
                found = Some(&u.hash);
            }
        }
        // An unknown name still pays one bcrypt (against a real hash, so at a real
        // cost) and then fails: the answer takes as long as a wrong password.
        let (hash, known) = match found {
            Some(h) => (h.to_string(), true),
            None => (first.hash.clone(), false),
        };
        let key = self.cache_key(&user, &hash, &password);
        if known && self.cached(&key) {
            return true;
        }
        let Ok(_permit) = self.bcrypt.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok && known {
            self.remember(key);
        }
        ok && known
    }

    fn cache_key(&self, user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        // Length prefixes keep ("ab","c") apart from ("a","bc").
        for part in [user, hash.as_bytes(), password] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        let cache = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cache
            .get(key)
            .is_some_and(|at| at.elapsed() < AUTH_CACHE_TTL)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if cache.len() >= AUTH_CACHE_MAX {
            cache.retain(|_, at| at.elapsed() < AUTH_CACHE_TTL);
            if cache.len() >= AUTH_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, Instant::now());
    }
}

/// `Authorization: Basic base64(user:password)`, as bytes (RFC 7617 allows any charset).
fn basic_credentials(headers: &hyper::HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine as _;
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(users: &[(&str, &str)]) -> WebConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        let mut yaml = String::from("basic_auth_users:\n");
        for (name, password) in users {
            // Cost 4, the lowest: the cost is not what is tested here.
            let hash = bcrypt::hash(password, 4).unwrap();
            yaml.push_str(&format!("  {name}: {hash}\n"));
        }
        std::fs::write(&path, yaml).unwrap();
        WebConfig::from_file(&path).unwrap().0
    }

    fn cache_len(auth: &Auth) -> usize {
        auth.cache.lock().unwrap().len()
    }

    #[tokio::test]
    async fn passwords_are_checked_and_only_successes_cached() {
        let auth = Auth::new();
        let w = web(&[("alice", "pw one"), ("bob", "pw:two")]);
        let c = |u: &str, p: &str| (u.as_bytes().to_vec(), p.as_bytes().to_vec());
        let (u, p) = c("alice", "pw one");
        assert!(auth.check(&w, u, p).await);
        assert_eq!(cache_len(&auth), 1);
        let (u, p) = c("alice", "pw one");
        assert!(auth.check(&w, u, p).await, "again, from the cache");
        assert_eq!(cache_len(&auth), 1);
        for (user, password) in [
            ("alice", "pw two"),
            ("alice", ""),
            ("ALICE", "pw one"),
            ("alic", "pw one"),
            ("mallory", "pw one"),
            ("", ""),
            ("bob", "pw one"),
        ] {
            let (u, p) = c(user, password);
            assert!(!auth.check(&w, u, p).await, "{user:?} {password:?}");
        }
        assert_eq!(cache_len(&auth), 1, "failures are never cached");
        let (u, p) = c("bob", "pw:two");
        assert!(auth.check(&w, u, p).await);
        assert_eq!(cache_len(&auth), 2);
        // Same user and password against another hash (a changed config): not cached.
        let w2 = web(&[("alice", "pw one")]);
        let (u, p) = c("alice", "pw one");
        assert_ne!(
            auth.cache_key(&u, &w.users[0].hash, &p),
            auth.cache_key(&u, &w2.users[0].hash, &p)
        );
    }

    #[test]
    fn cache_is_bounded() {
        let auth = Auth::new();
        for i in 0..(AUTH_CACHE_MAX * 3) {
            auth.remember(auth.cache_key(format!("u{i}").as_bytes(), "h", b"p"));
            assert!(cache_len(&auth) <= AUTH_CACHE_MAX);
        }
    }

    #[test]
    fn basic_credentials_are_parsed_leniently_but_safely() {
        let h = |v: &str| {
            let mut m = hyper::HeaderMap::new();
            m.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            basic_credentials(&m).map(|(u, p)| {
                (
                    String::from_utf8_lossy(&u).into_owned(),
                    String::from_utf8_lossy(&p).into_owned(),
                )
            })
        };
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(h("Basic YWxpY2U6cHc="), pair("alice", "pw"));
        assert_eq!(h("basic   YWxpY2U6cHc=  "), pair("alice", "pw"));
        // The password may hold colons; the user name cannot.
        assert_eq!(h("Basic YTpiOmM="), pair("a", "b:c"));
        assert_eq!(h("Basic OnB3"), pair("", "pw"));
        assert_eq!(h("Bearer YWxpY2U6cHc="), None);
        assert_eq!(h("Basic !!!"), None);
        assert_eq!(h("Basic YWxpY2U="), None, "no colon");
        assert_eq!(h("Basic"), None);
        assert_eq!(basic_credentials(&hyper::HeaderMap::new()), None);
    }
}
