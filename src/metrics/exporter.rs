//! The exporter's own series (`wolkvox_up`, requests, errors, the state file, the
//! token's budget, build info): ordinary `prometheus` metrics, registered once.
//! [`OpMetrics`] is one operation's view of them and its methods are the only way the
//! rest of the code changes them; [`Counters`] is what the state file keeps of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::wolkvox::Reason;

/// The exporter's own series, per operation. The vectors are private: an operation's
/// series are reached through [`ExporterMetrics::operation`], so labels are resolved
/// in one place.
#[derive(Clone)]
pub struct ExporterMetrics {
    up: IntGaugeVec,
    last_window_end: GaugeVec,
    last_success: GaugeVec,
    poll_duration: GaugeVec,
    api_requests: IntCounterVec,
    api_requests_today: IntGaugeVec,
    poll_errors: IntCounterVec,
    window_splits: IntCounterVec,
    state_save_failures: IntCounterVec,
    state_last_save: GaugeVec,
    ledger_rows: IntGaugeVec,
    /// From the API's `token_info`, refreshed hourly; absent until it answers.
    token_limit: IntGaugeVec,
    token_used_today: IntGaugeVec,
    reload_successful: IntGauge,
    reload_success_time: Gauge,
}

/// What the state file holds of an operation's own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// `wolkvox_api_requests_total` by code.
    pub api_requests: BTreeMap<String, u64>,
    /// `wolkvox_poll_errors_total` by reason.
    pub poll_errors: BTreeMap<String, u64>,
    pub window_splits: u64,
    pub state_save_failures: u64,
}

/// One operation's own series, resolved once: the only way the poller changes them.
#[derive(Clone)]
pub struct OpMetrics {
    name: String,
    up: IntGauge,
    last_window_end: Gauge,
    last_success: Gauge,
    poll_duration: Gauge,
    api_requests: IntCounterVec,
    /// The `code` values seen so far, so their counts can be saved.
    codes: Arc<Mutex<BTreeMap<String, IntCounter>>>,
    api_requests_today: IntGauge,
    /// By [`Reason::ALL`] order.
    poll_errors: Vec<IntCounter>,
    window_splits: IntCounter,
    state_save_failures: IntCounter,
    state_last_save: Gauge,
    ledger_rows: IntGauge,
    // Absent until token_info first answers, hence resolved on use.
    token_limit: IntGaugeVec,
    token_used_today: IntGaugeVec,
}

fn seconds(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

impl OpMetrics {
    /// A request was answered with this `code` label (the status, or `error`).
    pub fn request(&self, code: &str) {
        let mut codes = match self.codes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match codes.get(code) {
            Some(c) => c.inc(),
            None => {
                let c = self.api_requests.with_label_values(&[&self.name, code]);
                c.inc();
                codes.insert(code.to_string(), c);
            }
        }
    }

    pub fn requests_today(&self, n: u64) {
        self.api_requests_today
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn poll_error(&self, reason: Reason) {
        if let Some(c) = self.poll_errors.get(reason.index()) {
            c.inc();
        }
    }

    /// An answer at the row cap: its range was cut.
    pub fn window_split(&self) {
        self.window_splits.inc();
    }

    pub fn state_save_failed(&self) {
        self.state_save_failures.inc();
    }

    /// A part was committed: the state saved at `saved_at` with this watermark.
    pub fn committed(
        &self,
        watermark: jiff::Timestamp,
        saved_at: jiff::Timestamp,
        ledger_rows: usize,
    ) {
        self.last_window_end.set(watermark.as_second() as f64);
        self.state_last_save.set(seconds(saved_at));
        self.ledger_rows(ledger_rows);
    }

    pub fn ledger_rows(&self, n: usize) {
        self.ledger_rows.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A cycle ended: `Some(when)` it succeeded, `None` it failed; it took `took`.
    pub fn cycle(&self, succeeded_at: Option<jiff::Timestamp>, took: std::time::Duration) {
        self.poll_duration.set(took.as_secs_f64());
        match succeeded_at {
            Some(t) => {
                self.up.set(1);
                self.last_success.set(t.as_second() as f64);
            }
            None => self.up.set(0),
        }
    }

    /// The token's budget from `token_info`.
    pub fn token_budget(&self, limit: Option<u64>, used_today: Option<u64>) {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        if let Some(l) = limit {
            self.token_limit.with_label_values(&[&self.name]).set(n(l));
        }
        if let Some(u) = used_today {
            self.token_used_today
                .with_label_values(&[&self.name])
                .set(n(u));
        }
    }

    /// The operation these series are of.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The counters the state file keeps.
    pub fn counters(&self) -> Counters {
        let codes = match self.codes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        Counters {
            api_requests: codes.iter().map(|(k, c)| (k.clone(), c.get())).collect(),
            poll_errors: Reason::ALL
                .iter()
                .zip(&self.poll_errors)
                .map(|(r, c)| (r.label().to_string(), c.get()))
                .collect(),
            window_splits: self.window_splits.get(),
            state_save_failures: self.state_save_failures.get(),
        }
    }

    /// Continues the counters from saved state; `watermark` and `saved_at` as saved.
    pub fn restore(
        &self,
        c: &Counters,
        watermark: Option<jiff::Timestamp>,
        saved_at: jiff::Timestamp,
        requests_today: Option<u64>,
    ) {
        {
            let mut codes = match self.codes.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            for (code, n) in &c.api_requests {
                codes
                    .entry(code.clone())
                    .or_insert_with(|| self.api_requests.with_label_values(&[&self.name, code]))
                    .inc_by(*n);
            }
        }
        for (r, counter) in Reason::ALL.iter().zip(&self.poll_errors) {
            if let Some(n) = c.poll_errors.get(r.label()) {
                counter.inc_by(*n);
            }
        }
        self.window_splits.inc_by(c.window_splits);
        self.state_save_failures.inc_by(c.state_save_failures);
        self.state_last_save.set(saved_at.as_second() as f64);
        if let Some(w) = watermark {
            self.last_window_end.set(w.as_second() as f64);
        }
        if let Some(n) = requests_today {
            self.requests_today(n);
        }
    }
}

impl ExporterMetrics {
    /// The series of operation `name`, each known one at 0 until it moves.
    pub fn operation(&self, name: &str) -> OpMetrics {
        let one = [name];
        OpMetrics {
            name: name.to_string(),
            up: self.up.with_label_values(&one),
            last_window_end: self.last_window_end.with_label_values(&one),
            last_success: self.last_success.with_label_values(&one),
            poll_duration: self.poll_duration.with_label_values(&one),
            api_requests: self.api_requests.clone(),
            codes: Arc::default(),
            api_requests_today: self.api_requests_today.with_label_values(&one),
            poll_errors: Reason::ALL
                .iter()
                .map(|r| self.poll_errors.with_label_values(&[name, r.label()]))
                .collect(),
            window_splits: self.window_splits.with_label_values(&one),
            state_save_failures: self.state_save_failures.with_label_values(&one),
            state_last_save: self.state_last_save.with_label_values(&one),
            ledger_rows: self.ledger_rows.with_label_values(&one),
            token_limit: self.token_limit.clone(),
            token_used_today: self.token_used_today.clone(),
        }
    }
}

impl ExporterMetrics {
    /// The outcome of loading the config, at start or on a reload.
    pub fn config_loaded(&self, ok: bool, at: jiff::Timestamp) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_time.set(at.as_second() as f64);
        }
    }

    /// Removes every series of the operation `m` is for: it is no longer configured.
    pub fn forget(&self, m: &OpMetrics) {
        let one = [m.name.as_str()];
        // A series that was never made (a token gauge before token_info answered)
        // has nothing to remove: the error says only that.
        let _ = self.up.remove_label_values(&one);
        let _ = self.last_window_end.remove_label_values(&one);
        let _ = self.last_success.remove_label_values(&one);
        let _ = self.poll_duration.remove_label_values(&one);
        let _ = self.api_requests_today.remove_label_values(&one);
        let _ = self.window_splits.remove_label_values(&one);
        let _ = self.state_save_failures.remove_label_values(&one);
        let _ = self.state_last_save.remove_label_values(&one);
        let _ = self.ledger_rows.remove_label_values(&one);
        let _ = self.token_limit.remove_label_values(&one);
        let _ = self.token_used_today.remove_label_values(&one);
        for r in Reason::ALL {
            let _ = self.poll_errors.remove_label_values(&[&m.name, r.label()]);
        }
        let codes = match m.codes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for code in codes.keys() {
            let _ = self.api_requests.remove_label_values(&[&m.name, code]);
        }
    }
}

fn reg<T: Collector + Clone + 'static>(r: &Registry, c: T) -> Result<T, prometheus::Error> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl ExporterMetrics {
    /// Registers the exporter's own series in `r`, build info included.
    pub(super) fn register(r: &Registry) -> Result<ExporterMetrics, prometheus::Error> {
        let op = &["operation"];
        let exporter = ExporterMetrics {
            up: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "wolkvox_up",
                        "1 if the last poll cycle of the operation succeeded.",
                    ),
                    op,
                )?,
            )?,
            last_window_end: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "wolkvox_last_window_end_timestamp_seconds",
                        "The watermark: rows up to this instant are in.",
                    ),
                    op,
                )?,
            )?,
            last_success: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "wolkvox_last_success_timestamp_seconds",
                        "When the last poll cycle committed.",
                    ),
                    op,
                )?,
            )?,
            poll_duration: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "wolkvox_poll_duration_seconds",
                        "How long the last poll cycle took.",
                    ),
                    op,
                )?,
            )?,
            api_requests: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "wolkvox_api_requests_total",
                        "Requests sent to the Wolkvox API, by HTTP status (or error when none came).",
                    ),
                    &["operation", "code"],
                )?,
            )?,
            api_requests_today: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "wolkvox_api_requests_today",
                        "Requests this exporter sent today (the operation's local day); the token's daily budget is licences x 1000.",
                    ),
                    op,
                )?,
            )?,
            poll_errors: reg(
                r,
                IntCounterVec::new(
                    Opts::new("wolkvox_poll_errors_total", "Failed requests, by reason."),
                    &["operation", "reason"],
                )?,
            )?,
            window_splits: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "wolkvox_window_splits_total",
                        "Ranges split because the answer reached the 60,000-row cap.",
                    ),
                    op,
                )?,
            )?,
            state_save_failures: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "wolkvox_state_save_failures_total",
                        "State saves that failed (the watermark was not advanced).",
                    ),
                    op,
                )?,
            )?,
            state_last_save: reg(
                r,
                GaugeVec::new(
                    Opts::new(
                        "wolkvox_state_last_save_timestamp_seconds",
                        "When the state was last saved.",
                    ),
                    op,
                )?,
            )?,
            ledger_rows: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "wolkvox_ledger_rows",
                        "Row identities remembered for de-duplication.",
                    ),
                    op,
                )?,
            )?,
            token_limit: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "wolkvox_api_token_limit",
                        "The token's daily request budget, as the API's token_info reports it.",
                    ),
                    op,
                )?,
            )?,
            token_used_today: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "wolkvox_api_token_used_today",
                        "Requests spent today on the token by every client using it, as token_info reports it.",
                    ),
                    op,
                )?,
            )?,
            reload_successful: reg(
                r,
                IntGauge::new(
                    "wolkvox_config_last_reload_successful",
                    "1 if the last load of the config file worked (at start, or a reload).",
                )?,
            )?,
            reload_success_time: reg(
                r,
                Gauge::new(
                    "wolkvox_config_last_reload_success_timestamp_seconds",
                    "When the config was last loaded successfully.",
                )?,
            )?,
        };
        let build = IntGaugeVec::new(
            Opts::new(
                "wolkvox_exporter_build_info",
                "Build information; always 1.",
            ),
            &["version", "revision"],
        )?;
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                // Set by build.rs: git, the WOLKVOX_REVISION build argument, or "unknown".
                env!("WOLKVOX_EXPORTER_REVISION"),
            ])
            .set(1);
        r.register(Box::new(build))?;
        Ok(exporter)
    }
}
