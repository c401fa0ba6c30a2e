//! What each path answers: `/metrics` (gzip when asked), `/`, `/-/healthy`, `/-/ready`
//! and `POST /-/reload`. The rate limit, auth and the web config's headers are applied
//! around these by the module root, before and after.

use std::io::Write as _;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::App;
use crate::status;

pub(super) type Body = Full<Bytes>;

pub(super) fn response(
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
