//! A built-in simulator of the Wolkvox "IVR call detail" report API (`diagram_1`) and
//! its `token_info` call, faithful to what `docs/wolkvox-api.md` records:
//! the JSON envelope, the 404 for an empty range, the silent 60,000-row cut, the 31-day
//! limit, the per-token limits (2 simultaneous requests, a daily budget) and the error
//! messages.
//!
//! It serves three users:
//! - `--demo` and `wolkvox-exporter simulate`: live, realistic IVR traffic generated on
//!   the fly ([`Traffic`]): callers walking menus ([`ivr`]), several rows a call, late
//!   rows, hang-up incidents ([`incidents`]) and an occasional failure
//!   ([`Simulator::set_random_faults`]);
//! - the integration tests: scripted rows ([`Simulator::add_rows`]), scripted faults
//!   ([`Simulator::push_faults`]), and exact ground truth ([`Simulator::rows_between`],
//!   [`Simulator::calls_between`], [`Simulator::served_at`], [`Simulator::requests`],
//!   [`Simulator::max_in_flight`]).
//!
//! The module is self-contained: it uses nothing else from the crate.

mod calls;
mod gen_row;
pub mod incidents;
pub mod ivr;
mod random;
mod rows;
mod server;
mod traffic;

#[cfg(test)]
mod alert_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

pub use calls::{CallOutcome, CallTruth, CallsTruth, SelfService};
use gen_row::GenRow;
pub use incidents::Incident;
pub use ivr::SELF_SERVICE_OPTIONS;
use random::SplitMix64;
pub use traffic::{MAX_LATENESS_SECS, MAX_ROWS_PER_CALL};

/// The messages the simulator answers with. The ones in the vendor's table are
/// verbatim; the others are inferred (the vendor documents no text for them).
pub mod messages {
    /// 400, a required parameter is missing (vendor's table).
    pub const MSG_PARAMETERS_REQUIRED: &str = "SOME PARAMETERS ARE REQUIRED";
    /// 400, unknown `api` (vendor's table).
    pub const MSG_API_NOT_FOUND: &str = "THE API YOU WANT TO CONSULT DOES NOT EXIST";
    /// 401, no `wolkvox-token` header (vendor's table).
    pub const MSG_ENTER_TOKEN: &str = "PLEASE ENTER THE WOLKVOX-TOKEN";
    /// 403, unknown token (vendor's table).
    pub const MSG_VALIDATE_TOKEN: &str = "PLEASE VALIDATE TOKEN";
    /// 403, daily budget spent (vendor's table).
    pub const MSG_TOKEN_LIMIT: &str = "TOKEN LIMIT EXCEEDED";
    /// 403, a third simultaneous request (vendor's table).
    pub const MSG_SIMULTANEOUS: &str = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)";
    /// 404, no rows in the range (observed by users).
    pub const MSG_NO_RECORDS: &str = "Validate dates entered";
    /// 403 during server backups. Inferred: the vendor only says "a maintenance message".
    pub const MSG_MAINTENANCE: &str =
        "THE API IS DISABLED DURING SERVER MAINTENANCE (BACKUPS), PLEASE TRY AGAIN LATER";
    /// 400, a date that is not `YYYYmmddHHiiss`. Inferred.
    pub const MSG_DATE_FORMAT: &str = "INVALID DATE FORMAT, IT MUST BE YYYYmmddHHiiss";
    /// 400, `date_end` before `date_ini`. Inferred.
    pub const MSG_DATE_ORDER: &str = "THE FINAL DATE MUST BE GREATER THAN THE INITIAL DATE";
    /// 400, more than 31 days between the dates. Inferred.
    pub const MSG_RANGE_TOO_LONG: &str = "THE MAXIMUM RANGE BETWEEN DATES IS 31 DAYS";
}

/// One row as the report returns it, plus the simulator's own bookkeeping.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SimRow {
    pub rp_id: String,
    pub rp_name: String,
    pub cod_opc_menu: String,
    pub dn_transfer: String,
    pub date: String,
    pub result: String,
    pub ani: String,
    pub time: String,
    pub customer_id: String,
    pub conn_id: String,
    /// Local wall time of the row, matched against `date_ini..=date_end`.
    #[serde(skip)]
    pub at: DateTime,
    /// Late rows: not served before this instant.
    #[serde(skip)]
    pub visible_from: Option<Timestamp>,
}

impl SimRow {
    /// A scripted row. `date` is `at` written `YYYY-mm-dd HH:MM:SS`; `ani` and
    /// `customer_id` are fake values derived from `conn_id`, so building the same row
    /// twice gives two equal rows (true duplicates) and one call keeps one caller.
    /// Sub-second parts of `at` are dropped: the report has second resolution.
    #[allow(clippy::too_many_arguments)] // the signature the tests and the demo share
    pub fn new(
        at: DateTime,
        rp_id: &str,
        rp_name: &str,
        option: &str,
        dn_transfer: &str,
        result: &str,
        time: &str,
        conn_id: &str,
    ) -> SimRow {
        let at = at.with().subsec_nanosecond(0).build().unwrap_or(at);
        let h = xxhash_rust::xxh3::xxh3_64(conn_id.as_bytes());
        let customer = gen_row::fake_customer(h.rotate_left(17));
        SimRow {
            rp_id: rp_id.to_string(),
            rp_name: rp_name.to_string(),
            cod_opc_menu: option.to_string(),
            dn_transfer: dn_transfer.to_string(),
            date: gen_row::format_dashed(at),
            result: result.to_string(),
            ani: gen_row::fake_ani(h).to_string(),
            time: time.to_string(),
            customer_id: if customer == 0 {
                String::new()
            } else {
                customer.to_string()
            },
            conn_id: conn_id.to_string(),
            at,
            visible_from: None,
        }
    }

    /// Same row, not served before `instant` (a late row).
    pub fn with_visible_from(mut self, instant: Timestamp) -> SimRow {
        self.visible_from = Some(instant);
        self
    }
}

/// How generated rows write `date`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DateFormat {
    /// `2026-11-27 08:05:00`
    #[default]
    Dashed,
    /// `20261127080500`
    Compact,
}

/// Live traffic generator for a tenant (demo, `simulate` and soak tests).
///
/// Rows of calls starting in a given UTC minute depend only on these settings, the
/// tenant's zone, its extra incidents ([`Simulator::add_incident`]) and the minute. A
/// generated row is served once its interaction has ended (`visible_from` = its
/// instant + its duration), and 3% of them some minutes later still, so rows are
/// "late" by up to [`MAX_LATENESS_SECS`], as in a real call-detail table.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub seed: u64,
    /// Mean calls per minute at an ordinary daytime hour; the daily curve scales it
    /// (about 1.8x at the morning peak, 0.25x floor at night).
    pub calls_per_minute: f64,
    pub date_format: DateFormat,
    /// In about 3 hours in 10, one routing point's hang-up rate climbs to 80-90% for
    /// half an hour ([`incidents`]).
    pub incidents: bool,
}

impl Traffic {
    /// Demo defaults: a dozen calls a minute, dashed dates, incidents on.
    pub fn new(seed: u64) -> Traffic {
        Traffic {
            seed,
            calls_per_minute: 12.0,
            date_format: DateFormat::Dashed,
            incidents: true,
        }
    }

    /// The hang-up incidents that start in `[from, to)` (empty when `incidents` is off).
    pub fn incidents_between(&self, from: Timestamp, to: Timestamp) -> Vec<Incident> {
        if !self.incidents {
            return Vec::new();
        }
        let first = from.as_second().div_euclid(3600);
        let last = to.as_second().div_euclid(3600);
        (first..=last)
            .filter_map(|hour| incidents::incident_in_hour(self.seed, hour))
            .filter(|i| i.start >= from && i.start < to)
            .collect()
    }
}

/// A scripted failure, consumed by one `diagram_1` request.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// e.g. 502 with an HTML gateway page.
    ServerErrorHtml(u16),
    /// 403, JSON envelope, a maintenance message (server backups).
    Maintenance,
    /// 403 TOKEN LIMIT EXCEEDED.
    TokenLimit,
    /// 403 EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2).
    ConcurrencyLimit,
    /// 403 PLEASE VALIDATE TOKEN.
    InvalidToken,
    /// 400 SOME PARAMETERS ARE REQUIRED.
    BadRequest,
    /// 200 with a body that is not JSON (a PHP warning page).
    MalformedBody,
    /// 200, the real body cut off in the middle, with a Content-Length that matches
    /// what is sent.
    TruncatedBody,
    /// 200, valid JSON but `data` is a string, not an array of rows.
    WrongShape,
    /// Answer correctly, but only after this delay.
    Slow(std::time::Duration),
    /// Send headers and part of the body, then never finish (until shutdown).
    Hang,
}

/// One request as the simulator saw it. The token itself is never stored.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// The `api` parameter on the two known paths (`diagram_1`, `token_info`, or
    /// whatever was sent; empty if missing), otherwise the request path.
    pub path_api: String,
    pub date_ini: Option<String>,
    pub date_end: Option<String>,
    pub customer_id: Option<String>,
    /// A `wolkvox-token` header was sent and names a tenant.
    pub token_known: bool,
    /// HTTP status sent (0 while the request is still being answered, or if the
    /// connection was dropped first, e.g. at shutdown).
    pub status: u16,
    /// Rows in the answer's `data` (0 for errors and broken answers).
    pub rows: usize,
    /// Arrival time.
    pub at: Timestamp,
}

/// Default row cap: the vendor's published 60,000 rows per response.
pub const DEFAULT_ROW_CAP: usize = 60_000;
/// The vendor's limit of simultaneous requests per token.
pub const MAX_CONCURRENT_PER_TOKEN: usize = 2;
/// The vendor's longest `date_ini`..`date_end` range, in days.
pub const MAX_RANGE_DAYS: i64 = 31;

/// Generated minutes are cached up to this many rows (about 130 bytes each), oldest
/// dropped first; anything dropped is regenerated identically when asked again.
const CACHE_MAX_ROWS: usize = 300_000;
/// ... and never for minutes older than this (the exporter's useful horizon).
const CACHE_RETENTION_SECS: i64 = 40 * 86_400;

/// The simulated Wolkvox server. Cheap to clone (an `Arc` inside); all methods take
/// `&self` and are thread-safe.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
}

struct State {
    row_cap: usize,
    tenants: HashMap<String, Tenant>,
    records: Vec<RequestRecord>,
    /// Insertion order of scripted rows, for stable ordering of equal `at`.
    next_seq: u64,
}

struct Stored {
    row: SimRow,
    /// Known instant (from [`Simulator::add_rows_at`]); otherwise derived from `at`
    /// in the tenant's zone, the earlier pass in a DST fold.
    instant: Option<Timestamp>,
    seq: u64,
}

struct RandomFaults {
    probability: f64,
    rng: SplitMix64,
}

struct Tenant {
    /// `add_tenant` was called: the server accepts this token.
    known: bool,
    zone: TimeZone,
    rows: Vec<Stored>,
    traffic: Option<Traffic>,
    /// Incidents beyond the traffic's own schedule.
    extra_incidents: Vec<Incident>,
    /// No generated call starts before this minute (seconds since the epoch / 60).
    history_from_minute: Option<i64>,
    /// Bumped when `traffic` changes, so rows generated with old settings are not cached.
    traffic_version: u64,
    cache: BTreeMap<i64, Arc<Vec<GenRow>>>,
    cached_rows: usize,
    faults: VecDeque<Fault>,
    random_faults: Option<RandomFaults>,
    budget: Option<u32>,
    budget_day: Option<Date>,
    used_today: u32,
    in_flight: usize,
    max_in_flight: usize,
}

impl Tenant {
    fn new() -> Tenant {
        Tenant {
            known: false,
            zone: TimeZone::UTC,
            rows: Vec::new(),
            traffic: None,
            extra_incidents: Vec::new(),
            history_from_minute: None,
            traffic_version: 0,
            cache: BTreeMap::new(),
            cached_rows: 0,
            faults: VecDeque::new(),
            random_faults: None,
            budget: None,
            budget_day: None,
            used_today: 0,
            in_flight: 0,
            max_in_flight: 0,
        }
    }

    /// Drops generated rows made with older settings.
    fn regenerate(&mut self) {
        self.traffic_version += 1;
        self.cache.clear();
        self.cached_rows = 0;
    }

    fn instant_of(&self, stored: &Stored) -> Option<Timestamp> {
        stored.instant.or_else(|| {
            self.zone
                .to_ambiguous_timestamp(stored.row.at)
                .compatible()
                .ok()
        })
    }
}

impl State {
    fn tenant(&mut self, token: &str) -> &mut Tenant {
        self.tenants
            .entry(token.to_string())
            .or_insert_with(Tenant::new)
    }
}

impl Default for Simulator {
    fn default() -> Self {
        Simulator::new()
    }
}

impl Simulator {
    /// Row cap 60,000, 2 concurrent requests per token, 31-day max range, no daily budget.
    pub fn new() -> Simulator {
        Simulator {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    row_cap: DEFAULT_ROW_CAP,
                    tenants: HashMap::new(),
                    records: Vec::new(),
                    next_seq: 0,
                }),
            }),
        }
    }

    /// A poisoned lock only means another thread panicked mid-update; the data is
    /// still usable for a simulator, and refusing service would hide the real error.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_row_cap(&self, cap: usize) {
        self.lock().row_cap = cap;
    }

    /// Daily request budget of a token (`None`: unlimited). Every call counts,
    /// `token_info` included; past it the answer is 403 TOKEN LIMIT EXCEEDED.
    pub fn set_daily_budget(&self, token: &str, requests: Option<u32>) {
        self.lock().tenant(token).budget = requests;
    }

    /// A token the server accepts; its rows are written in `zone`.
    pub fn add_tenant(&self, token: &str, zone: TimeZone) {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        tenant.known = true;
        if tenant.zone != zone {
            tenant.zone = zone;
            tenant.regenerate();
        }
    }

    /// Scripted rows (any time). In a DST fold a row's instant is taken as the earlier
    /// pass; use [`Simulator::add_rows_at`] to place it exactly.
    pub fn add_rows(&self, token: &str, rows: impl IntoIterator<Item = SimRow>) {
        self.add_stored(token, rows.into_iter().map(|row| (None, row)));
    }

    /// Scripted rows with their exact instant, for ground truth inside DST folds.
    /// `row.at` should be that instant's wall time in the tenant's zone.
    pub fn add_rows_at(&self, token: &str, rows: impl IntoIterator<Item = (Timestamp, SimRow)>) {
        self.add_stored(token, rows.into_iter().map(|(at, row)| (Some(at), row)));
    }

    fn add_stored(&self, token: &str, rows: impl Iterator<Item = (Option<Timestamp>, SimRow)>) {
        let mut state = self.lock();
        let mut seq = state.next_seq;
        let tenant = state.tenant(token);
        for (instant, row) in rows {
            tenant.rows.push(Stored { row, instant, seq });
            seq += 1;
        }
        state.next_seq = seq;
    }

    /// Live generated traffic for that tenant (replaces any earlier setting).
    pub fn set_traffic(&self, token: &str, traffic: Traffic) {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        tenant.traffic = Some(traffic);
        tenant.regenerate();
    }

    /// One more hang-up incident in that tenant's generated traffic, beyond its
    /// schedule (`simulate` places one around its start: [`incidents::start_incident`]).
    pub fn add_incident(&self, token: &str, incident: Incident) {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        tenant.extra_incidents.push(incident);
        tenant.regenerate();
    }

    /// How far back the tenant's generated traffic goes: no call starts before the
    /// first whole minute at or after `from` (`None`: no limit). Older ranges answer
    /// 404, as an operation created that day would.
    pub fn set_history_start(&self, token: &str, from: Option<Timestamp>) {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        tenant.history_from_minute = from.map(|t| -(-t.as_second()).div_euclid(60));
        tenant.regenerate();
    }

    /// Faults consumed one per admitted `diagram_1` request, in order (requests refused
    /// earlier, for the token or the concurrency limit, consume none).
    pub fn push_faults(&self, token: &str, faults: impl IntoIterator<Item = Fault>) {
        self.lock().tenant(token).faults.extend(faults);
    }

    /// Demo: with this probability a `diagram_1` request gets a 502/503 HTML page, a
    /// maintenance 403 or a 2-second delay. Scripted faults go first.
    pub fn set_random_faults(&self, token: &str, probability: f64, seed: u64) {
        self.lock().tenant(token).random_faults = Some(RandomFaults {
            probability,
            rng: SplitMix64::new(seed),
        });
    }

    /// Serves the API on `listener` until `shutdown` resolves, one task per connection;
    /// then drops open connections (hung and slow answers included) and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        server::serve(self, listener, shutdown).await;
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().records.clone()
    }

    /// Highest number of simultaneous `diagram_1` requests seen on that token,
    /// including ones refused for exceeding the limit (so a client that overlaps three
    /// shows 3 here).
    pub fn max_in_flight(&self, token: &str) -> usize {
        self.lock()
            .tenants
            .get(token)
            .map_or(0, |tenant| tenant.max_in_flight)
    }
}

/// Budget days are UTC days: the vendor does not say when its count resets; midnight
/// UTC is a plausible guess and keeps the simulator independent of the tenant's zone.
fn budget_day(now: Timestamp) -> Date {
    TimeZone::UTC.to_datetime(now).date()
}

/// `days` later in civil terms (a civil day is always 24 hours).
fn add_days(dt: DateTime, days: i64) -> Option<DateTime> {
    dt.checked_add(SignedDuration::from_hours(days.saturating_mul(24)))
        .ok()
}
