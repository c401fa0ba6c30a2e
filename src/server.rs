//! The HTTP side: `/metrics` (gzip when asked), `/`, `/-/healthy`, `/-/ready`, one task
//! per connection on hyper. Scrapes read snapshots and never wait on a poll cycle.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::poller::{SharedStatus, Status};

pub struct App {
    pub metrics: Arc<Metrics>,
    pub statuses: Vec<SharedStatus>,
    pub telemetry_path: String,
}

type Body = Full<Bytes>;

fn statuses(app: &App) -> Vec<Status> {
    app.statuses
        .iter()
        .map(|s| match s.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        })
        .collect()
}

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
            let waiting: Vec<String> = statuses(app)
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
        "/" => response(StatusCode::OK, "text/html; charset=utf-8", index(app)),
        _ => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn when(t: Option<jiff::Timestamp>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn index(app: &App) -> String {
    let mut rows = String::new();
    for s in statuses(app) {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&s.name),
            html_escape(&s.zone),
            when(s.watermark),
            when(s.last_success),
            html_escape(s.last_error.as_deref().unwrap_or("none")),
            s.requests_today,
        );
    }
    let path = html_escape(&app.telemetry_path);
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>wolkvox-exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left;border-bottom:1px solid #ddd}}</style></head>\
<body><h1>wolkvox-exporter</h1><p>Version {version}. <a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">healthy</a> · <a href=\"/-/ready\">ready</a></p>\
<table><tr><th>operation</th><th>time zone</th><th>rows in up to (watermark)</th><th>last success</th><th>last error</th><th>API requests today</th></tr>{rows}</table>\
</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// Serves until `shutdown` turns true, then lets in-flight requests finish (up to 5 s).
pub async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let app = Arc::clone(&app);
        let svc = service_fn(move |req| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(handle(&app, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown");
    }
}
