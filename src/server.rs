//! The HTTP side: `/metrics` (gzip when asked), `/`, `/-/healthy`, `/-/ready`, one task
//! per connection on hyper. Scrapes read snapshots and never wait on a poll cycle.
//!
//! With `--web.config.file` ([`crate::web_config`]) connections are TLS and requests
//! need basic auth, as the Prometheus exporter-toolkit does it: every path is behind
//! the auth, `/-/healthy` included.
//!
//! Here: the [`App`] and the accept loop that wires the pieces together. What each path
//! answers is in [`routes`], basic auth in [`auth`]. Connections are guarded by
//! [`conn`] (timeouts, and a cap that leaves room for a scrape); [`handshake`] does TLS
//! and logs its failures through [`throttle`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::status::Statuses;
use crate::web_config::{RateLimiter, WebConfigFile};

mod auth;
mod conn;
mod handshake;
mod routes;
mod throttle;

use auth::Auth;
pub use routes::handle;
use routes::{Body, response};
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
