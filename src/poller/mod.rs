//! One loop per operation: wait for the next window, fetch the cycle's range through the
//! [`fetch`](crate::fetch) engine, and commit it part by part: once a part and every
//! part before it are in, its new rows are added, the watermark moves to its end and the
//! state is saved. A failure, or a `kill -9`, resumes from the last committed part.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::calls::saved::BadCallId;
use crate::calls::{CallKey, CallRules, Calls};
use crate::config::{Limits, Operation};
use crate::fetch::{self, Engine, FetchError, Fetched, Jitter, RetryPolicy, Sink, TakeError};
use crate::ingest::{Decoder, Ingested, ingest_answer};
use crate::ledger::Ledger;
use crate::metrics::{Counters, OpMetrics, SharedTotals};
use crate::state::{self, CallsView, LedgerView, OpState, StateView, TotalsView};
use crate::status::{self, CycleRecord, LastError, SharedStatus, Status, Tally, TokenBudget};
use crate::totals::Totals;
use crate::window::{self, Query, Range};
use crate::wolkvox::client::{Attempt, Client};
use crate::wolkvox::row::Outcome;
use crate::wolkvox::{ApiError, Reason};

mod sink;
use sink::CycleSink;

/// Retries of one request inside a cycle before the cycle fails, for transient errors:
/// the next cycle asks again anyway, so a poll does not linger on one request.
const PART_RETRIES: u32 = 2;

/// Why a cycle did not reach the end of its range. What it committed before stays.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error("{0}")]
    Api(ApiError),
    #[error("cannot save state to {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("shutting down")]
    Shutdown,
}

impl CycleError {
    /// What `/` shows as the last error: the API's reason, or `state`.
    pub fn label(&self) -> &'static str {
        match self {
            CycleError::Api(e) => e.reason.label(),
            CycleError::State { .. } => "state",
            CycleError::Shutdown => "shutdown",
        }
    }
}

/// Why a saved state cannot be continued by this configuration.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Mixing observations made with other bucket bounds would make every quantile wrong.
    #[error(
        "{}: saved histograms use buckets {saved:?} but duration_buckets is now {configured:?}; restore the old buckets, or start with --state.reset to begin the counters again",
        path.display()
    )]
    Buckets {
        path: PathBuf,
        saved: Vec<f64>,
        configured: Vec<f64>,
    },
    #[error("{}: {source}", path.display())]
    Ledger {
        path: PathBuf,
        source: state::BadIdentity,
    },
    #[error("{}: {source}", path.display())]
    Calls { path: PathBuf, source: BadCallId },
}

pub struct Poller {
    pub op: Operation,
    client: Client,
    limits: Limits,
    bounds: Vec<f64>,
    /// What `/metrics` shows: replaced whole on each commit.
    totals: SharedTotals,
    ledger: Ledger,
    /// Open calls and recently closed ids, as of the watermark.
    calls: Calls,
    origin: Timestamp,
    pub watermark: Option<Timestamp>,
    metrics: OpMetrics,
    pub status: SharedStatus,
    state_path: PathBuf,
    /// Requests sent on the operation's local day: `(day, count)`.
    requests: Mutex<(Option<Date>, u64)>,
    /// When to ask `token_info` for the token's budget next.
    next_token_info: Timestamp,
    jitter: Jitter,
    /// What the cycle under way has done so far, for `/`'s list of cycles.
    tally: Tally,
}

impl Poller {
    /// A poller starting from `saved` state, or fresh from `now` when there is none.
    /// `counters_live`: `metrics` already count what `saved` holds (a reload).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        op: Operation,
        client: Client,
        limits: Limits,
        bounds: Vec<f64>,
        metrics: OpMetrics,
        state_dir: &std::path::Path,
        saved: Option<OpState>,
        shared: SharedTotals,
        key: CallKey,
        counters_live: bool,
        now: Timestamp,
    ) -> Result<Poller, RestoreError> {
        let name = op.name.clone();
        let path = state::path(state_dir, &name);
        let mut totals = Totals::default();
        let mut ledger = Ledger::new();
        let rules = Arc::new(CallRules {
            key,
            self_service: op.calls.self_service.clone(),
        });
        let mut calls = Calls::new(Arc::clone(&rules));
        let mut origin = window::origin(now, &op.poll);
        let mut watermark = None;
        let (mut requests_day, mut requests_today) = (None, 0);
        if let Some(s) = saved {
            if s.buckets != bounds {
                return Err(RestoreError::Buckets {
                    path,
                    saved: s.buckets,
                    configured: bounds,
                });
            }
            ledger =
                state::ledger_from_entries(&s.ledger).map_err(|source| RestoreError::Ledger {
                    path: path.clone(),
                    source,
                })?;
            calls = s
                .calls
                .restore(rules)
                .map_err(|source| RestoreError::Calls {
                    path: path.clone(),
                    source,
                })?;
            origin = s.origin;
            watermark = s.watermark;
            requests_day = s.requests_day;
            requests_today = s.requests_today;
            let today = now.to_zoned_datetime(op.zone.clone()).date();
            let counters = Counters {
                api_requests: s.api_requests,
                poll_errors: s.poll_errors,
                window_splits: s.window_splits,
                state_save_failures: s.state_save_failures,
            };
            // After a reload the series already hold these counts (the poller before
            // this one saved them on its way out): adding them again would double them.
            if !counters_live {
                metrics.restore(
                    &counters,
                    watermark,
                    s.saved_at,
                    (requests_day == Some(today)).then_some(requests_today),
                );
            }
            totals = Totals::from(s.totals);
        }
        metrics.ledger_rows(ledger.len());
        *write_lock(&shared) = Arc::new(totals);
        let mut status = Status::new(&name, &op.zone_name, op.zone.clone(), op.poll.interval, now);
        status.watermark = watermark;
        status.ledger_rows = ledger.len();
        let status = Arc::new(Mutex::new(status));
        let seed = xxhash_rust::xxh3::xxh3_64(name.as_bytes()) ^ now.as_nanosecond() as u64;
        Ok(Poller {
            state_path: path,
            op,
            client,
            limits,
            bounds,
            totals: shared,
            ledger,
            calls,
            origin,
            watermark,
            metrics,
            status,
            requests: Mutex::new((requests_day, requests_today)),
            next_token_info: now,
            jitter: Jitter::new(seed),
            tally: Tally::default(),
        })
    }

    fn name(&self) -> &str {
        &self.op.name
    }

    /// The totals `/metrics` renders for this operation.
    pub fn totals(&self) -> SharedTotals {
        Arc::clone(&self.totals)
    }

    /// This operation's own series.
    pub fn metrics(&self) -> &OpMetrics {
        &self.metrics
    }

    /// Polls until `shutdown` turns true, then saves and gives the poller back (a
    /// reload continues it with a changed operation).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Poller {
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = Timestamp::now();
            let mut token_answered = false;
            if now >= self.next_token_info {
                self.next_token_info = now + SignedDuration::from_hours(1);
                token_answered = self.refresh_token_info().await;
            }
            let Some(range) = window::cycle_range(now, self.watermark, self.origin, &self.op.poll)
            else {
                // Restored up to date: nothing to ask until the next window, and nothing
                // missing either. Ready now, not a whole interval later (a rollout
                // would wait up to `poll.interval` for every pod). Up too, when the
                // API answered for the token: an empty cycle is a successful one.
                self.mark_first_cycle_done(token_answered.then_some(now));
                let at = window::next_ready_at(self.watermark, self.origin, &self.op.poll);
                let wait = now.duration_until(at).try_into().unwrap_or(Duration::ZERO);
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    break;
                }
                continue;
            };
            let started = std::time::Instant::now();
            let result = self.cycle(range, shutdown.clone()).await;
            if matches!(result, Err(CycleError::Shutdown)) {
                break;
            }
            self.after_cycle(&result, range, now, started.elapsed());
            match result {
                Ok(f) => {
                    failures = 0;
                    tracing::info!(operation = %self.op.name, start = %range.start, end = %range.end, new_rows = f.new, parts = f.parts, requests = f.requests, "cycle committed");
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = self.backoff(failures, &e);
                    tracing::warn!(operation = %self.op.name, reason = e.label(), error = %self.safe_text(&e), watermark = ?self.watermark, retry_in = %humantime::format_duration(round_ms(wait)), "poll cycle failed; the rest of its range will be asked again");
                    if sleep_or_shutdown(wait, &mut shutdown).await {
                        break;
                    }
                }
            }
        }
        // Counters of requests and errors moved since the last commit: keep them.
        if let Err(e) = self.save_current().await {
            tracing::warn!(operation = %self.op.name, error = %e, "could not save state at shutdown");
        }
        tracing::debug!(operation = %self.op.name, "poller stopped");
        self
    }

    /// The same poller (watermark, remembered rows, open calls, totals) for a changed
    /// configuration of its operation: a rotated token, other poll keys, other calls
    /// rules, other limits. The caller has stopped it; `run` continues it.
    pub fn reconfigure(mut self, op: Operation, client: Client, limits: Limits) -> Poller {
        self.calls.set_self_service(op.calls.self_service.clone());
        {
            let mut st = match self.status.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            st.zone = op.zone_name.clone();
            st.tz = op.zone.clone();
            // Windows of another length do not add up with the old ones.
            if st.history.interval() != op.poll.interval {
                st.history = status::History::new(op.poll.interval);
            }
        }
        self.op = op;
        self.client = client;
        self.limits = limits;
        // The next cycle asks for its token's budget again: it may be another token.
        self.next_token_info = Timestamp::now();
        self
    }

    /// Fetches `range` through the engine, committing part by part.
    async fn cycle(
        &mut self,
        range: Range,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Fetched, CycleError> {
        let client = self.client.clone();
        let tz = self.op.zone.clone();
        let policy = RetryPolicy {
            retries: PART_RETRIES,
            base: self.backoff_base(),
            max: self.op.poll.interval.max(self.backoff_base()),
            retry_maintenance: false,
        };
        self.tally = Tally::default();
        let mut jitter = self.jitter.fork();
        let mut engine = Engine::new(&client, &tz, policy, &mut jitter).with_shutdown(shutdown);
        tracing::debug!(operation = %self.op.name, start = %range.start, end = %range.end, "cycle");
        let mut sink = CycleSink::new(self);
        match engine.run(range, &mut sink).await {
            Ok(f) => Ok(f),
            Err(FetchError::Api { error, .. }) => Err(CycleError::Api(error)),
            Err(FetchError::Sink(e)) => Err(e),
            Err(FetchError::Shutdown) => Err(CycleError::Shutdown),
        }
    }

    /// The first cycle had nothing to ask; `succeeded_at`: and the API answered.
    fn mark_first_cycle_done(&self, succeeded_at: Option<Timestamp>) {
        let mut st = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        st.first_cycle_done = true;
        if let Some(at) = succeeded_at {
            self.metrics.cycle(Some(at), Duration::ZERO);
            st.last_success = Some(at);
            st.up = Some(true);
        }
    }

    fn after_cycle(
        &self,
        result: &Result<Fetched, CycleError>,
        range: Range,
        started: Timestamp,
        took: Duration,
    ) {
        let now = Timestamp::now();
        let mut st = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        st.first_cycle_done = true;
        st.requests_today = self.requests().1;
        st.ledger_rows = self.ledger.len();
        st.watermark = self.watermark;
        let error = match result {
            Ok(_) => {
                self.metrics.cycle(Some(now), took);
                st.last_success = Some(now);
                st.up = Some(true);
                None
            }
            Err(e) => {
                self.metrics.cycle(None, took);
                st.up = Some(false);
                let text = self.safe_text(e);
                st.last_error = Some(LastError {
                    at: now,
                    reason: e.label().to_string(),
                    text: text.clone(),
                });
                Some((e.label().to_string(), text))
            }
        };
        st.cycles.push(CycleRecord {
            started,
            start: range.start,
            end: range.end,
            tally: self.tally,
            took,
            error,
        });
    }

    /// `e` as `/` may show it beside its class (so without it): see
    /// [`status::redact`]. The token and `customer_id` are read here only to be removed.
    fn safe_text(&self, e: &CycleError) -> String {
        let text = match e {
            CycleError::Api(a) => match a.status {
                Some(s) => format!("HTTP {s}: {}", a.detail),
                None => a.detail.clone(),
            },
            e => e.to_string(),
        };
        let customer = self.op.customer_id.as_deref().unwrap_or("");
        status::redact::safe_text(&text, &[self.op.token.expose(), customer])
    }

    /// The token's budget, for `wolkvox_api_token_limit` and the budget alert. One
    /// request an hour; a failure here is logged and never fails a cycle.
    /// Whether the API answered with the token's budget.
    async fn refresh_token_info(&self) -> bool {
        let attempt = self.client.token_info().await;
        self.count_request(&attempt);
        match attempt
            .result
            .ok()
            .and_then(|b| crate::wolkvox::parse_token_info(&b))
        {
            Some(info) => {
                self.metrics.token_budget(info.limit, info.used_today);
                let mut st = match self.status.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                st.token = Some(TokenBudget {
                    limit: info.limit,
                    used_today: info.used_today,
                    at: Timestamp::now(),
                });
                true
            }
            None => {
                tracing::debug!(operation = %self.name(), "token_info gave no budget");
                false
            }
        }
    }

    fn requests(&self) -> (Option<Date>, u64) {
        *match self.requests.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn count_request<B>(&self, a: &Attempt<B>) {
        self.metrics.request(&a.code_label());
        let today = Timestamp::now()
            .to_zoned_datetime(self.op.zone.clone())
            .date();
        let mut r = match self.requests.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if r.0 != Some(today) {
            *r = (Some(today), 0);
        }
        r.1 += 1;
        self.metrics.requests_today(r.1);
    }

    /// The earliest instant any later query can start at once the watermark is `w`:
    /// the next cycle asks from `max(w - settle, origin)`.
    fn next_start(&self, w: Timestamp) -> Timestamp {
        let poll = &self.op.poll;
        let later = w + SignedDuration::from_secs(
            poll.interval.as_secs() as i64 + poll.delay.as_secs() as i64,
        );
        window::cycle_range(later, Some(w), self.origin, poll).map_or(w, |r| r.start)
    }

    /// Saves the state as of `watermark` from the given totals and views of the ledger
    /// and calls: serialised here, where they live; written, synced and renamed on the
    /// blocking pool. Returns when it was saved.
    async fn save(
        &self,
        watermark: Option<Timestamp>,
        totals: &Totals,
        ledger: LedgerView<'_>,
        calls: CallsView<'_>,
    ) -> std::io::Result<Timestamp> {
        let c = self.metrics.counters();
        let (requests_day, requests_today) = self.requests();
        let saved_at = Timestamp::now();
        let view = StateView {
            version: state::VERSION,
            operation: self.name(),
            origin: self.origin,
            watermark,
            saved_at,
            buckets: &self.bounds,
            totals: TotalsView(totals),
            ledger,
            api_requests: c.api_requests,
            poll_errors: c.poll_errors,
            window_splits: c.window_splits,
            state_save_failures: c.state_save_failures,
            requests_day,
            requests_today,
            calls,
        };
        let unsynced = state::write(&self.state_path, &view)?;
        drop(view);
        tokio::task::spawn_blocking(move || unsynced.finish())
            .await
            .map_err(std::io::Error::other)??;
        Ok(saved_at)
    }

    async fn save_current(&mut self) -> std::io::Result<Timestamp> {
        let totals = read_totals(&self.totals);
        self.save(
            self.watermark,
            &totals,
            LedgerView::new(&self.ledger),
            CallsView::new(&self.calls),
        )
        .await
    }

    fn backoff_base(&self) -> Duration {
        (self.op.poll.interval / 20).clamp(Duration::from_millis(100), Duration::from_secs(15))
    }

    /// How long to wait before asking again after `failures` failed cycles in a row.
    fn backoff(&mut self, failures: u32, error: &CycleError) -> Duration {
        let interval = self.op.poll.interval;
        let reason = match error {
            CycleError::Api(e) => e.reason,
            _ => Reason::Other,
        };
        let d = match reason {
            // The daily budget is spent: it comes back with the day, not in seconds.
            Reason::TokenLimit => {
                let now = Timestamp::now().to_zoned_datetime(self.op.zone.clone());
                let to_midnight = now
                    .tomorrow()
                    .ok()
                    .and_then(|t| t.start_of_day().ok())
                    .and_then(|m| Duration::try_from(now.duration_until(&m)).ok())
                    .unwrap_or(Duration::from_secs(3600));
                (to_midnight + Duration::from_secs(60))
                    .min(Duration::from_secs(3600))
                    .max(interval)
            }
            // A wrong token does not fix itself quickly; don't spend the budget on it.
            Reason::InvalidToken | Reason::MissingToken => interval.max(Duration::from_secs(300)),
            _ => RetryPolicy {
                retries: u32::MAX,
                base: self.backoff_base(),
                max: interval.max(self.backoff_base()),
                retry_maintenance: true,
            }
            .wait(failures),
        };
        self.jitter.apply(d)
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

fn write_lock(t: &SharedTotals) -> std::sync::RwLockWriteGuard<'_, Arc<Totals>> {
    match t.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn read_totals(t: &SharedTotals) -> Arc<Totals> {
    match t.read() {
        Ok(g) => Arc::clone(&g),
        Err(p) => Arc::clone(&p.into_inner()),
    }
}

/// Sleeps for `d`; returns true if shutdown was asked for meanwhile.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = fetch::wait_for_stop(shutdown) => true,
    }
}
