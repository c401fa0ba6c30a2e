//! The HTTP side of the simulator: the API's checks in a plausible order, the faults,
//! the bodies (including one that never ends), and the accept loop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use jiff::civil::DateTime;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::messages::*;
use super::{
    Fault, MAX_CONCURRENT_PER_TOKEN, MAX_RANGE_DAYS, RequestRecord, SimRow, Simulator, add_days,
    budget_day,
};

pub(crate) const REPORT_PATH: &str = "/api/v2/reports_manager.php";
pub(crate) const INFO_PATH: &str = "/api/v2/information.php";

/// `token_limit` reported by `token_info` for a token without a budget: "unlimited"
/// has no documented form, so a large licence count stands in for it.
const UNLIMITED_TOKEN_LIMIT: u32 = 1_000_000;

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

/// One admitted `diagram_1` request on a token; dropping it (on every exit path,
/// cancellation included) frees the slot.
pub(crate) struct InFlight {
    sim: Simulator,
    token: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.sim.lock();
        if let Some(tenant) = state.tenants.get_mut(&self.token) {
            tenant.in_flight = tenant.in_flight.saturating_sub(1);
        }
    }
}

/// An answer before it becomes a hyper response.
struct Reply {
    status: u16,
    body: Bytes,
    html: bool,
    rows: usize,
}

impl Reply {
    fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            html: false,
            rows: 0,
        }
    }

    /// The error envelope. Which field carries the vendor's message is not documented:
    /// both `error` and `msg` carry it, so a client reading either one works.
    fn error(status: u16, message: &str) -> Reply {
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

    fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: Bytes::from(body),
            html: true,
            rows: 0,
        }
    }

    fn into_response(self, body: SimBody) -> Response<SimBody> {
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

    fn into_full(self) -> Response<SimBody> {
        let body = SimBody::Full(Some(self.body.clone()));
        self.into_response(body)
    }
}

#[derive(serde::Serialize)]
struct ReportEnvelope<'a> {
    code: u16,
    error: Option<&'a str>,
    msg: String,
    data: &'a [SimRow],
}

enum TokenHeader {
    Missing,
    /// Present but not text (non-visible-ASCII bytes): cannot be a valid token.
    Unreadable,
    Present(String),
}

fn token_header(req: &Request<Incoming>) -> TokenHeader {
    match req.headers().get("wolkvox-token") {
        None => TokenHeader::Missing,
        Some(value) => match value.to_str() {
            Ok(text) if text.trim().is_empty() => TokenHeader::Missing,
            Ok(text) => TokenHeader::Present(text.trim().to_string()),
            Err(_) => TokenHeader::Unreadable,
        },
    }
}

/// Query string to a map (first occurrence wins), percent-decoded.
pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params
            .entry(percent_decode(key))
            .or_insert_with(|| percent_decode(value));
    }
    params
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYYmmddHHiiss` to a civil date-time; anything else is `None`.
pub(crate) fn parse_api_date(text: &str) -> Option<DateTime> {
    let text = text.trim();
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All ASCII digits, so byte slicing is on character boundaries.
    let num = |a: usize, b: usize| text[a..b].parse::<i16>().ok();
    DateTime::new(
        num(0, 4)?,
        i8::try_from(num(4, 6)?).ok()?,
        i8::try_from(num(6, 8)?).ok()?,
        i8::try_from(num(8, 10)?).ok()?,
        i8::try_from(num(10, 12)?).ok()?,
        i8::try_from(num(12, 14)?).ok()?,
        0,
    )
    .ok()
}

fn gateway_page(code: u16) -> String {
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

fn not_found_page() -> String {
    "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n\
     <title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n\
     <p>The requested URL was not found on this server.</p>\n</body></html>\n"
        .to_string()
}

/// What a PHP backend prints when its database is gone: HTML with status 200.
const MALFORMED_BODY: &str = "<br />\n<b>Warning</b>:  mysqli_connect(): (HY000/2002): \
    Connection refused in <b>/var/www/html/api/v2/reports_manager.php</b> on line <b>14</b><br />\n\
    {\"code\":500,\"error\":\"DATABASE CONNECTION\"";

impl Simulator {
    fn is_known(&self, token: &str) -> bool {
        self.lock().tenants.get(token).is_some_and(|t| t.known)
    }

    /// Counts one call against the token's budget; false once the budget is spent.
    /// Refused calls count too: the vendor counts every call.
    fn spend_budget(&self, token: &str, now: Timestamp) -> bool {
        let today = budget_day(now);
        let mut state = self.lock();
        let tenant = state.tenant(token);
        if tenant.budget_day != Some(today) {
            tenant.budget_day = Some(today);
            tenant.used_today = 0;
        }
        tenant.used_today = tenant.used_today.saturating_add(1);
        tenant
            .budget
            .is_none_or(|budget| tenant.used_today <= budget)
    }

    fn token_info(&self, token: &str) -> Reply {
        let (limit, used) = {
            let mut state = self.lock();
            let tenant = state.tenant(token);
            (
                tenant.budget.unwrap_or(UNLIMITED_TOKEN_LIMIT),
                tenant.used_today,
            )
        };
        Reply::json(
            200,
            &serde_json::json!({
                "code": 200,
                "error": null,
                "msg": "Token information",
                "data": {
                    "token_limit": limit,
                    "token_use_today": used,
                    "available_consumption_options": limit.saturating_sub(used),
                }
            }),
        )
    }

    /// Takes an in-flight slot; the attempt is counted in `max_in_flight` even when
    /// refused, so tests see a client that overlaps too many requests.
    fn admit(&self, token: &str) -> Option<InFlight> {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        tenant.in_flight += 1;
        tenant.max_in_flight = tenant.max_in_flight.max(tenant.in_flight);
        if tenant.in_flight > MAX_CONCURRENT_PER_TOKEN {
            tenant.in_flight -= 1;
            return None;
        }
        Some(InFlight {
            sim: self.clone(),
            token: token.to_string(),
        })
    }

    fn next_fault(&self, token: &str) -> Option<Fault> {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        if let Some(fault) = tenant.faults.pop_front() {
            return Some(fault);
        }
        let random = tenant.random_faults.as_mut()?;
        if !random.rng.chance(random.probability) {
            return None;
        }
        Some(match random.rng.below(4) {
            0 => Fault::ServerErrorHtml(502),
            1 => Fault::ServerErrorHtml(503),
            2 => Fault::Maintenance,
            _ => Fault::Slow(Duration::from_secs(2)),
        })
    }

    fn record_arrival(&self, record: RequestRecord) -> usize {
        let mut state = self.lock();
        state.records.push(record);
        state.records.len() - 1
    }

    fn record_outcome(&self, index: usize, status: u16, rows: usize) {
        if let Some(record) = self.lock().records.get_mut(index) {
            record.status = status;
            record.rows = rows;
        }
    }

    /// The correct `diagram_1` answer, parameters validated. CPU-bound for long ranges
    /// of generated traffic, hence run on the blocking pool by the caller.
    fn report(&self, token: &str, params: &HashMap<String, String>) -> Reply {
        let ini = params.get("date_ini").filter(|v| !v.trim().is_empty());
        let end = params.get("date_end").filter(|v| !v.trim().is_empty());
        let (Some(ini), Some(end)) = (ini, end) else {
            return Reply::error(400, MSG_PARAMETERS_REQUIRED);
        };
        let (Some(ini), Some(end)) = (parse_api_date(ini), parse_api_date(end)) else {
            return Reply::error(400, MSG_DATE_FORMAT);
        };
        if end < ini {
            return Reply::error(400, MSG_DATE_ORDER);
        }
        if add_days(ini, MAX_RANGE_DAYS).is_some_and(|limit| end > limit) {
            return Reply::error(400, MSG_RANGE_TOO_LONG);
        }
        let rows = self.query(
            token,
            ini,
            end,
            params.get("customer_id").map(String::as_str),
        );
        if rows.is_empty() {
            return Reply::error(404, MSG_NO_RECORDS);
        }
        let envelope = ReportEnvelope {
            code: 200,
            error: None,
            msg: format!("{} records were found", rows.len()),
            data: &rows,
        };
        match serde_json::to_vec(&envelope) {
            Ok(body) => Reply {
                status: 200,
                body: Bytes::from(body),
                html: false,
                rows: rows.len(),
            },
            Err(_) => Reply::error(500, "INTERNAL ERROR"),
        }
    }

    async fn report_off_thread(&self, token: &str, params: &HashMap<String, String>) -> Reply {
        let sim = self.clone();
        let token = token.to_string();
        let params = params.clone();
        tokio::task::spawn_blocking(move || sim.report(&token, &params))
            .await
            .unwrap_or_else(|_| Reply::error(500, "INTERNAL ERROR"))
    }

    /// Everything after the request is recorded: the API's checks, then faults.
    async fn respond(
        &self,
        path: &str,
        params: &HashMap<String, String>,
        token: TokenHeader,
    ) -> Response<SimBody> {
        if path != REPORT_PATH && path != INFO_PATH {
            return Reply::html(404, not_found_page()).into_full();
        }
        let token = match token {
            TokenHeader::Missing => return Reply::error(401, MSG_ENTER_TOKEN).into_full(),
            TokenHeader::Unreadable => return Reply::error(403, MSG_VALIDATE_TOKEN).into_full(),
            TokenHeader::Present(token) => token,
        };
        if !self.is_known(&token) {
            return Reply::error(403, MSG_VALIDATE_TOKEN).into_full();
        }
        if !self.spend_budget(&token, Timestamp::now()) {
            return Reply::error(403, MSG_TOKEN_LIMIT).into_full();
        }
        let api = params.get("api").map(|a| a.trim()).unwrap_or("");
        let wanted = if path == INFO_PATH {
            "token_info"
        } else {
            "diagram_1"
        };
        if api.is_empty() {
            return Reply::error(400, MSG_PARAMETERS_REQUIRED).into_full();
        }
        if api != wanted {
            return Reply::error(400, MSG_API_NOT_FOUND).into_full();
        }
        if path == INFO_PATH {
            return self.token_info(&token).into_full();
        }
        let Some(in_flight) = self.admit(&token) else {
            return Reply::error(403, MSG_SIMULTANEOUS).into_full();
        };
        let reply = match self.next_fault(&token) {
            None => self.report_off_thread(&token, params).await,
            Some(Fault::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                self.report_off_thread(&token, params).await
            }
            Some(Fault::ServerErrorHtml(code)) => {
                let code = if (100..=999).contains(&code) {
                    code
                } else {
                    502
                };
                Reply::html(code, gateway_page(code))
            }
            Some(Fault::Maintenance) => Reply::error(403, MSG_MAINTENANCE),
            Some(Fault::TokenLimit) => Reply::error(403, MSG_TOKEN_LIMIT),
            Some(Fault::ConcurrencyLimit) => Reply::error(403, MSG_SIMULTANEOUS),
            Some(Fault::InvalidToken) => Reply::error(403, MSG_VALIDATE_TOKEN),
            Some(Fault::BadRequest) => Reply::error(400, MSG_PARAMETERS_REQUIRED),
            Some(Fault::MalformedBody) => Reply {
                status: 200,
                body: Bytes::from_static(MALFORMED_BODY.as_bytes()),
                html: true,
                rows: 0,
            },
            Some(Fault::WrongShape) => Reply::json(
                200,
                &serde_json::json!({
                    "code": 200, "error": null, "msg": "1 records were found",
                    "data": "1 records were found"
                }),
            ),
            Some(Fault::TruncatedBody) => {
                let full = self.report_off_thread(&token, params).await;
                let cut = full.body.len() / 2;
                Reply {
                    status: 200,
                    body: full.body.slice(..cut),
                    html: false,
                    rows: 0,
                }
            }
            Some(Fault::Hang) => {
                let full = self.report_off_thread(&token, params).await;
                let cut = (full.body.len() / 2).max(1).min(full.body.len());
                let first = full.body.slice(..cut);
                let reply = Reply {
                    status: 200,
                    body: Bytes::new(),
                    html: false,
                    rows: 0,
                };
                return reply.into_response(SimBody::Hang {
                    first: Some(first),
                    _in_flight: Some(in_flight),
                });
            }
        };
        // Freed before the answer goes out, so a client that sends its next request
        // as soon as it has read this one never races the counter.
        drop(in_flight);
        let rows = reply.rows;
        let mut response = reply.into_full();
        response.extensions_mut().insert(RowCount(rows));
        response
    }
}

/// Rows served, passed from `respond` to the request record.
#[derive(Clone, Copy)]
struct RowCount(usize);

/// One request, end to end: recorded on arrival, answered, outcome recorded.
async fn handle(sim: Simulator, req: Request<Incoming>) -> Response<SimBody> {
    let path = req.uri().path().to_string();
    let params = parse_query(req.uri().query().unwrap_or(""));
    let token = token_header(&req);
    let known_path = path == REPORT_PATH || path == INFO_PATH;
    let token_known = match &token {
        TokenHeader::Present(t) => sim.is_known(t),
        _ => false,
    };
    let index = sim.record_arrival(RequestRecord {
        path_api: if known_path {
            params.get("api").cloned().unwrap_or_default()
        } else {
            path.clone()
        },
        date_ini: params.get("date_ini").cloned(),
        date_end: params.get("date_end").cloned(),
        customer_id: params.get("customer_id").cloned(),
        token_known,
        status: 0,
        rows: 0,
        at: Timestamp::now(),
    });
    let response = sim.respond(&path, &params, token).await;
    let status = response.status().as_u16();
    let rows = response.extensions().get::<RowCount>().map_or(0, |r| r.0);
    sim.record_outcome(index, status, rows);
    // Caller data (customer_id) stays out of logs; only the shape of the exchange.
    tracing::debug!(path = %path, status, rows, "simulated wolkvox request");
    response
}

/// Accepts connections until `shutdown` resolves, one task per connection; then drops
/// every open connection (hung bodies and slow answers included) and returns.
pub(crate) async fn serve(
    sim: Simulator,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let sim = sim.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let sim = sim.clone();
                            async move { Ok::<_, Infallible>(handle(sim, req).await) }
                        });
                        let served = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(error) = served {
                            tracing::debug!(%error, "simulator connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // e.g. out of file descriptors: wait a little instead of spinning.
                    tracing::debug!(%error, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let p = parse_query("api=diagram_1&date_ini=20261127000000&customer_id=a%20b+c&x=%zz&x=2");
        assert_eq!(p.get("api").map(String::as_str), Some("diagram_1"));
        assert_eq!(p.get("customer_id").map(String::as_str), Some("a b c"));
        assert_eq!(p.get("x").map(String::as_str), Some("%zz"));
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("%C3%BA"), "ú");
    }

    #[test]
    fn api_dates_parse_strictly() {
        assert!(parse_api_date("20261127080500").is_some());
        assert!(parse_api_date("20260230000000").is_none());
        assert!(parse_api_date("2026112708050").is_none());
        assert!(parse_api_date("2026-11-27 08:05").is_none());
        assert!(parse_api_date("２0261127080500").is_none());
        assert!(parse_api_date("20261127246000").is_none());
    }
}
