//! What the simulator answers with: bodies (whole, or one that never ends), the JSON
//! envelopes, and the HTML pages a gateway or a broken backend sends instead.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::tenant::InFlight;
use crate::simulator::SimRow;

/// Response body: whole, or a first chunk and then nothing ever again (the Hang fault).
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    Hang {
        first: Option<Bytes>,
        /// Keeps the request counted as in flight while the body hangs.
        _in_flight: Option<InFlight>,
    },
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            SimBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Hang { first, .. } => match first.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                // Never woken on purpose: the connection is dropped at shutdown.
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            // Exact: hyper then sends a Content-Length that matches what is sent.
            SimBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            SimBody::Full(None) => SizeHint::with_exact(0),
            // Unknown: chunked, so a hang is not a lying Content-Length.
            SimBody::Hang { .. } => SizeHint::default(),
        }
    }
}

/// An answer before it becomes a hyper response.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Bytes,
    pub(super) html: bool,
    pub(super) rows: usize,
}

impl Reply {
    pub(super) fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            html: false,
            rows: 0,
        }
    }

    /// The error envelope. Which field carries the vendor's message is not documented:
    /// both `error` and `msg` carry it, so a client reading either one works.
    pub(super) fn error(status: u16, message: &str) -> Reply {
        let data = if status == 404 {
            serde_json::json!([])
        } else {
            serde_json::Value::Null
        };
        Reply::json(
            status,
            &serde_json::json!({"code": status, "error": message, "msg": message, "data": data}),
        )
    }

    pub(super) fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: Bytes::from(body),
            html: true,
            rows: 0,
        }
    }

    pub(super) fn into_response(self, body: SimBody) -> Response<SimBody> {
        let mut response = Response::new(body);
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = if self.html {
            "text/html; charset=UTF-8"
        } else {
            "application/json; charset=utf-8"
        };
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    pub(super) fn into_full(self) -> Response<SimBody> {
        let body = SimBody::Full(Some(self.body.clone()));
        self.into_response(body)
    }
}

#[derive(serde::Serialize)]
pub(super) struct ReportEnvelope<'a> {
    pub(super) code: u16,
    pub(super) error: Option<&'a str>,
    pub(super) msg: String,
    pub(super) data: &'a [SimRow],
}

pub(super) fn gateway_page(code: u16) -> String {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n\
         <center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n\
         </body>\r\n</html>\r\n"
    )
}

pub(super) fn not_found_page() -> String {
    "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n\
     <title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n\
     <p>The requested URL was not found on this server.</p>\n</body></html>\n"
        .to_string()
}

/// What a PHP backend prints when its database is gone: HTML with status 200.
pub(super) const MALFORMED_BODY: &str = "<br />\n<b>Warning</b>:  mysqli_connect(): (HY000/2002): \
    Connection refused in <b>/var/www/html/api/v2/reports_manager.php</b> on line <b>14</b><br />\n\
    {\"code\":500,\"error\":\"DATABASE CONNECTION\"";
