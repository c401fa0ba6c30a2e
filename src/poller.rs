//! One loop per operation: wait for the next window, fetch the cycle's range part by
//! part, and commit it whole (totals, ledger, watermark, saved state) or not at all.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::config::{Limits, Operation};
use crate::ingest::{Ingested, ingest};
use crate::ledger::Ledger;
use crate::metrics::{ExporterMetrics, SharedTotals, Totals};
use crate::state::{self, OpState, SavedTotals};
use crate::window::{self, Query, Range};
use crate::wolkvox::client::{Attempt, Client};
use crate::wolkvox::{ApiError, Reason};

/// Retries of one request inside a cycle before the cycle fails, for transient errors.
const PART_RETRIES: u32 = 2;

/// What `/` and `/-/ready` show about an operation.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub name: String,
    pub zone: String,
    pub first_cycle_done: bool,
    pub watermark: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<String>,
    pub requests_today: u64,
    pub ledger_rows: usize,
}

pub type SharedStatus = Arc<Mutex<Status>>;

pub struct Poller {
    pub op: Operation,
    pub client: Client,
    pub limits: Limits,
    pub bounds: Vec<f64>,
    pub totals: SharedTotals,
    pub ledger: Ledger,
    pub origin: Timestamp,
    pub watermark: Option<Timestamp>,
    pub metrics: ExporterMetrics,
    pub status: SharedStatus,
    pub state_path: PathBuf,
    /// Requests sent on the operation's local day: `(day, count)`.
    requests: Mutex<(Option<Date>, u64)>,
    /// When to ask `token_info` for the token's budget next.
    next_token_info: Timestamp,
    rng: u64,
}

/// A cycle's result, ready to commit.
struct Fetched {
    range: Range,
    totals: Totals,
    ledger: Ledger,
}

impl Poller {
    /// A poller starting from `saved` state, or fresh from `now` when there is none.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        op: Operation,
        client: Client,
        limits: Limits,
        bounds: Vec<f64>,
        metrics: ExporterMetrics,
        state_dir: &std::path::Path,
        saved: Option<OpState>,
        shared: SharedTotals,
        now: Timestamp,
    ) -> Result<Poller, String> {
        let name = op.name.clone();
        let mut totals = Totals::default();
        let mut ledger = Ledger::new();
        let mut origin = window::origin(now, &op.poll);
        let mut watermark = None;
        let (mut requests_day, mut requests_today) = (None, 0);
        if let Some(s) = saved {
            let path = state::path(state_dir, &name);
            if s.buckets != bounds {
                return Err(format!(
                    "{}: saved histograms use buckets {:?} but duration_buckets is now {:?}; restore the old buckets, or start with --state.reset to begin the counters again",
                    path.display(),
                    s.buckets,
                    bounds
                ));
            }
            ledger = state::ledger_from_entries(&s.ledger)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            totals = Totals::from(s.totals);
            origin = s.origin;
            watermark = s.watermark;
            let m = &metrics;
            for (code, n) in &s.api_requests {
                m.api_requests.with_label_values(&[&name, code]).inc_by(*n);
            }
            for (reason, n) in &s.poll_errors {
                m.poll_errors.with_label_values(&[&name, reason]).inc_by(*n);
            }
            m.window_splits
                .with_label_values(&[&name])
                .inc_by(s.window_splits);
            m.state_save_failures
                .with_label_values(&[&name])
                .inc_by(s.state_save_failures);
            m.state_last_save
                .with_label_values(&[&name])
                .set(s.saved_at.as_second() as f64);
            if let Some(w) = watermark {
                m.last_window_end
                    .with_label_values(&[&name])
                    .set(w.as_second() as f64);
            }
            requests_day = s.requests_day;
            requests_today = s.requests_today;
            let today = now.to_zoned_datetime(op.zone.clone()).date();
            if requests_day == Some(today) {
                m.api_requests_today
                    .with_label_values(&[&name])
                    .set(requests_today as i64);
            }
        }
        metrics
            .ledger_rows
            .with_label_values(&[&name])
            .set(ledger.len() as i64);
        *write_lock(&shared) = Arc::new(totals);
        let status = Arc::new(Mutex::new(Status {
            name: name.clone(),
            zone: op.zone_name.clone(),
            watermark,
            ledger_rows: ledger.len(),
            ..Status::default()
        }));
        let seed = xxhash_rust::xxh3::xxh3_64(name.as_bytes()) ^ now.as_nanosecond() as u64;
        let poller = Poller {
            state_path: state::path(state_dir, &name),
            op,
            client,
            limits,
            bounds,
            totals: shared,
            ledger,
            origin,
            watermark,
            metrics,
            status,
            requests: Mutex::new((requests_day, requests_today)),
            next_token_info: now,
            rng: seed | 1,
        };
        Ok(poller)
    }

    fn name(&self) -> &str {
        &self.op.name
    }

    /// Polls until `shutdown` turns true, then saves and returns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = Timestamp::now();
            if now >= self.next_token_info {
                self.next_token_info = now + SignedDuration::from_hours(1);
                self.refresh_token_info().await;
            }
            let Some(range) = window::cycle_range(now, self.watermark, self.origin, &self.op.poll)
            else {
                let at = window::next_ready_at(self.watermark, self.origin, &self.op.poll);
                let wait = now.duration_until(at).try_into().unwrap_or(Duration::ZERO);
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    break;
                }
                continue;
            };
            let started = std::time::Instant::now();
            let mut abort = shutdown.clone();
            let fetched = tokio::select! {
                r = self.fetch_cycle(range, &mut abort) => r,
                _ = shutdown.changed() => break,
            };
            let result = match fetched {
                Ok(f) => self.commit(f).await,
                Err(e) => Err(e),
            };
            self.metrics
                .poll_duration
                .with_label_values(&[self.name()])
                .set(started.elapsed().as_secs_f64());
            self.after_cycle(&result);
            match result {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = self.backoff(failures, e.reason);
                    tracing::warn!(operation = %self.op.name, error = %e, retry_in = %humantime::format_duration(round_ms(wait)), "poll cycle failed; its range will be asked again");
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
    }

    fn after_cycle(&self, result: &Result<(), ApiError>) {
        let m = &self.metrics;
        let name = self.name();
        let mut st = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        st.first_cycle_done = true;
        st.requests_today = self.requests().1;
        st.ledger_rows = self.ledger.len();
        match result {
            Ok(()) => {
                let now = Timestamp::now();
                m.up.with_label_values(&[name]).set(1);
                m.last_success
                    .with_label_values(&[name])
                    .set(now.as_second() as f64);
                st.last_success = Some(now);
                st.watermark = self.watermark;
                st.last_error = None;
            }
            Err(e) => {
                m.up.with_label_values(&[name]).set(0);
                st.last_error = Some(e.reason.label().to_string());
            }
        }
    }

    /// Fetches every part of `range` and applies new rows to a copy of the totals.
    async fn fetch_cycle(
        &self,
        range: Range,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Fetched, ApiError> {
        let tz = self.op.zone.clone();
        let mut parts: VecDeque<Query> = window::plan(range, &tz).into();
        let current = read_totals(&self.totals);
        let mut next: Totals = (*current).clone();
        let mut batch = self.ledger.begin();
        let mut retries = 0;
        tracing::debug!(operation = %self.op.name, start = %range.start, end = %range.end, parts = parts.len(), "cycle");
        while let Some(q) = parts.pop_front() {
            let attempt = self.client.fetch(&q).await;
            self.count_request(&attempt);
            let result = match attempt.result {
                Ok(body) => ingest(
                    &body,
                    &q,
                    &tz,
                    &mut batch,
                    &mut next,
                    &self.limits,
                    &self.bounds,
                ),
                Err(e) => Err(e),
            };
            let result = match result {
                Ok(Ingested::Split(a, b)) => {
                    self.metrics
                        .window_splits
                        .with_label_values(&[&self.op.name])
                        .inc();
                    tracing::debug!(operation = %self.op.name, "answer at the row cap; splitting its range");
                    parts.push_front(window::query_for(b, &tz));
                    parts.push_front(window::query_for(a, &tz));
                    Ok(())
                }
                Ok(Ingested::Continue { kept, rest, .. }) => {
                    self.metrics
                        .window_splits
                        .with_label_values(&[&self.op.name])
                        .inc();
                    tracing::debug!(operation = %self.op.name, kept, "answer at the row cap; asking again from its last second");
                    parts.push_front(rest);
                    Ok(())
                }
                Ok(Ingested::Applied { capped: true, .. }) => {
                    tracing::warn!(operation = %self.op.name, "one second of the report holds the whole row cap; some rows may be missing");
                    Ok(())
                }
                Ok(Ingested::Applied { .. }) => Ok(()),
                Err(e) => Err(e),
            };
            let Err(e) = result else {
                retries = 0;
                continue;
            };
            self.metrics
                .poll_errors
                .with_label_values(&[&self.op.name, e.reason.label()])
                .inc();
            if !e.reason.is_transient() || retries >= PART_RETRIES {
                return Err(e);
            }
            retries += 1;
            let wait = self.backoff_base() * 2u32.saturating_pow(retries - 1);
            tracing::debug!(operation = %self.op.name, error = %e, "request failed; retrying");
            if sleep_or_shutdown(wait, shutdown).await {
                return Err(ApiError {
                    reason: Reason::Other,
                    status: None,
                    detail: "shutting down".into(),
                });
            }
            parts.push_front(q);
        }
        let changes = batch.into_changes();
        let mut ledger = self.ledger.clone();
        ledger.commit(changes);
        // Forget what the next cycle's query, or any after it, can no longer return.
        let next_start = window::cycle_range(
            range.end
                + SignedDuration::from_secs(
                    self.op.poll.interval.as_secs() as i64 + self.op.poll.delay.as_secs() as i64,
                ),
            Some(range.end),
            self.origin,
            &self.op.poll,
        )
        .map_or(range.end, |r| r.start);
        ledger.forget_before(window::wall_floor(next_start, &tz));
        Ok(Fetched {
            range,
            totals: next,
            ledger,
        })
    }

    /// The token's budget, for `wolkvox_api_token_limit` and the budget alert. One
    /// request an hour; a failure here is logged and never fails a cycle.
    async fn refresh_token_info(&self) {
        let attempt = self.client.token_info().await;
        self.count_request(&attempt);
        let name = self.name();
        match attempt
            .result
            .ok()
            .and_then(|b| crate::wolkvox::parse_token_info(&b))
        {
            Some(info) => {
                if let Some(l) = info.limit {
                    self.metrics
                        .token_limit
                        .with_label_values(&[name])
                        .set(i64::try_from(l).unwrap_or(i64::MAX));
                }
                if let Some(u) = info.used_today {
                    self.metrics
                        .token_used_today
                        .with_label_values(&[name])
                        .set(i64::try_from(u).unwrap_or(i64::MAX));
                }
            }
            None => tracing::debug!(operation = %name, "token_info gave no budget"),
        }
    }

    fn requests(&self) -> (Option<Date>, u64) {
        *match self.requests.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn count_request(&self, a: &Attempt) {
        self.metrics
            .api_requests
            .with_label_values(&[&self.op.name, &a.code_label()])
            .inc();
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
        self.metrics
            .api_requests_today
            .with_label_values(&[&self.op.name])
            .set(r.1 as i64);
    }

    /// Saves the cycle's result, then makes it current. A save that fails leaves the
    /// watermark where it was: the range is asked again and nothing is counted twice.
    async fn commit(&mut self, f: Fetched) -> Result<(), ApiError> {
        let snapshot = self.snapshot(Some(f.range.end), &f.totals, &f.ledger);
        let path = self.state_path.clone();
        let saved = tokio::task::spawn_blocking(move || state::save(&path, &snapshot))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let name = self.op.name.clone();
        if let Err(e) = saved {
            self.metrics
                .state_save_failures
                .with_label_values(&[&name])
                .inc();
            tracing::error!(operation = %name, file = %self.state_path.display(), error = %e, "cannot save state; the cycle is not committed and will be retried");
            return Err(ApiError {
                reason: Reason::Other,
                status: None,
                detail: format!("state save failed: {e}"),
            });
        }
        let added = f.totals.rows - read_totals(&self.totals).rows;
        self.ledger = f.ledger;
        self.watermark = Some(f.range.end);
        *write_lock(&self.totals) = Arc::new(f.totals);
        let m = &self.metrics;
        m.state_last_save
            .with_label_values(&[&name])
            .set(Timestamp::now().as_second() as f64);
        m.last_window_end
            .with_label_values(&[&name])
            .set(f.range.end.as_second() as f64);
        m.ledger_rows
            .with_label_values(&[&name])
            .set(self.ledger.len() as i64);
        tracing::info!(operation = %name, start = %f.range.start, end = %f.range.end, new_rows = added, "cycle committed");
        Ok(())
    }

    fn snapshot(&self, watermark: Option<Timestamp>, totals: &Totals, ledger: &Ledger) -> OpState {
        let name = self.name();
        let m = &self.metrics;
        let mut api_requests = std::collections::BTreeMap::new();
        for mf in prometheus::core::Collector::collect(&m.api_requests) {
            for metric in mf.get_metric() {
                let labels = metric.get_label();
                if labels
                    .iter()
                    .any(|l| l.name() == "operation" && l.value() == name)
                    && let Some(code) = labels.iter().find(|l| l.name() == "code")
                {
                    api_requests.insert(
                        code.value().to_string(),
                        metric.get_counter().get_value() as u64,
                    );
                }
            }
        }
        let poll_errors = Reason::ALL
            .iter()
            .map(|r| {
                (
                    r.label().to_string(),
                    m.poll_errors.with_label_values(&[name, r.label()]).get(),
                )
            })
            .collect();
        OpState {
            version: state::VERSION,
            operation: name.to_string(),
            origin: self.origin,
            watermark,
            saved_at: Timestamp::now(),
            buckets: self.bounds.clone(),
            totals: SavedTotals::from(totals),
            ledger: state::ledger_entries(ledger),
            api_requests,
            poll_errors,
            window_splits: m.window_splits.with_label_values(&[name]).get(),
            state_save_failures: m.state_save_failures.with_label_values(&[name]).get(),
            requests_day: self.requests().0,
            requests_today: self.requests().1,
        }
    }

    async fn save_current(&self) -> std::io::Result<u64> {
        let totals = read_totals(&self.totals);
        let snapshot = self.snapshot(self.watermark, &totals, &self.ledger);
        let path = self.state_path.clone();
        tokio::task::spawn_blocking(move || state::save(&path, &snapshot))
            .await
            .map_err(std::io::Error::other)?
    }

    fn backoff_base(&self) -> Duration {
        (self.op.poll.interval / 20).clamp(Duration::from_millis(100), Duration::from_secs(15))
    }

    /// How long to wait before asking again after `failures` failed cycles in a row.
    fn backoff(&mut self, failures: u32, reason: Reason) -> Duration {
        let interval = self.op.poll.interval;
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
            _ => {
                let exp = self
                    .backoff_base()
                    .saturating_mul(1u32 << failures.min(16).saturating_sub(1));
                exp.min(interval.max(self.backoff_base()))
            }
        };
        self.jitter(d)
    }

    /// Equal jitter: half the wait fixed, half random, so operations do not retry in step.
    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64: plenty for spreading retries.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        d / 2 + d.mul_f64(0.5 * frac)
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
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
    }
}
