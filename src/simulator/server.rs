//! The HTTP side of the simulator: the API's checks in a plausible order, the faults,
//! the two APIs' answers and the accept loop. Reading a request is in [`request`], the
//! per-token checks in [`tenant`], the shapes of answers (including a body that never
//! ends) in [`reply`].

mod reply;
mod request;
mod tenant;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::messages::*;
use super::{Fault, MAX_RANGE_DAYS, RequestRecord, Simulator, add_days};
use reply::{MALFORMED_BODY, Reply, ReportEnvelope, SimBody, gateway_page, not_found_page};
use request::{TokenHeader, token_header};
pub(crate) use request::{parse_api_date, parse_query};

pub(crate) const REPORT_PATH: &str = "/api/v2/reports_manager.php";
pub(crate) const INFO_PATH: &str = "/api/v2/information.php";

/// `token_limit` reported by `token_info` for a token without a budget: "unlimited"
/// has no documented form, so a large licence count stands in for it.
const UNLIMITED_TOKEN_LIMIT: u32 = 1_000_000;

impl Simulator {
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
