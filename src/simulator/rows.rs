//! Which rows a range holds: scripted rows, generated minutes (made on demand and
//! cached), and the two ways to ask: as the API answers a query at an instant
//! ([`Simulator::served_at`]) and as ground truth by instant
//! ([`Simulator::rows_between`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::DateTime;

use super::gen_row::{self, GenRow};
use super::traffic;
use super::{CACHE_MAX_ROWS, CACHE_RETENTION_SECS, MAX_RANGE_DAYS, SimRow, Simulator};

/// Sort key of a served row: `at` (civil seconds, sub-second nanoseconds), then
/// generated rows before scripted ones, then their own order (minute and index, or
/// insertion order).
type RowKey = (i64, i32, u8, i64, u64);

impl Simulator {
    /// Ground truth: every row whose instant falls in `[from, to)`, scripted and
    /// generated, visible yet or not, in time order. Generated traffic is included for
    /// calls that started up to now. A scripted row added with [`Simulator::add_rows`]
    /// inside a DST fold counts at the earlier pass. Generating traffic costs about a
    /// second per month of range in a debug build: keep ranges to what a test needs.
    pub fn rows_between(&self, token: &str, from: Timestamp, to: Timestamp) -> Vec<SimRow> {
        self.rows_with_instants(token, from, to)
            .into_iter()
            .map(|(_, row)| row)
            .collect()
    }

    /// [`Simulator::rows_between`], each row with its instant.
    pub fn rows_with_instants(
        &self,
        token: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<(Timestamp, SimRow)> {
        let now = Timestamp::now();
        let mut keyed: Vec<((Timestamp, u8, i64, u64), SimRow)> = Vec::new();
        {
            let state = self.lock();
            let Some(tenant) = state.tenants.get(token) else {
                return Vec::new();
            };
            for stored in &tenant.rows {
                if let Some(instant) = tenant.instant_of(stored)
                    && instant >= from
                    && instant < to
                {
                    keyed.push(((instant, 1, 0, stored.seq), stored.row.clone()));
                }
            }
        }
        let lo = from
            .as_second()
            .saturating_sub(GEN_SLACK_SECS)
            .div_euclid(60);
        let hi = to.min(now).as_second().div_euclid(60);
        for (minute, rows) in self.generated(token, lo, hi, now) {
            for row in rows.iter() {
                if row.instant >= from && row.instant < to {
                    keyed.push((
                        (row.instant, 0, minute, u64::from(row.index)),
                        row.to_sim_row(),
                    ));
                }
            }
        }
        keyed.sort_by_key(|entry| entry.0);
        keyed.into_iter().map(|(key, row)| (key.0, row)).collect()
    }

    /// Generated minutes `lo..=hi` (never past `now`), from the cache or freshly made.
    fn generated(
        &self,
        token: &str,
        lo: i64,
        hi: i64,
        now: Timestamp,
    ) -> Vec<(i64, Arc<Vec<GenRow>>)> {
        let hi = hi.min(now.as_second().div_euclid(60));
        if hi < lo {
            return Vec::new();
        }
        let (traffic, extra, zone, version, mut found, lo) = {
            let state = self.lock();
            let Some(tenant) = state.tenants.get(token) else {
                return Vec::new();
            };
            let Some(traffic) = tenant.traffic.clone() else {
                return Vec::new();
            };
            let lo = lo.max(tenant.history_from_minute.unwrap_or(i64::MIN));
            let found: BTreeMap<i64, Arc<Vec<GenRow>>> = tenant
                .cache
                .range(lo..=hi)
                .map(|(m, rows)| (*m, Arc::clone(rows)))
                .collect();
            (
                traffic,
                tenant.extra_incidents.clone(),
                tenant.zone.clone(),
                tenant.traffic_version,
                found,
                lo,
            )
        };
        // Generate outside the lock: a 31-day range takes a while.
        let mut fresh = Vec::new();
        for minute in lo..=hi {
            if let std::collections::btree_map::Entry::Vacant(slot) = found.entry(minute) {
                let rows = Arc::new(traffic::generate_minute(&traffic, &extra, &zone, minute));
                fresh.push((minute, Arc::clone(&rows)));
                slot.insert(rows);
            }
        }
        if !fresh.is_empty() {
            let oldest_kept = now
                .as_second()
                .saturating_sub(CACHE_RETENTION_SECS)
                .div_euclid(60);
            let mut state = self.lock();
            if let Some(tenant) = state.tenants.get_mut(token)
                && tenant.traffic_version == version
            {
                for (minute, rows) in fresh {
                    if minute >= oldest_kept {
                        tenant.cached_rows += rows.len();
                        if let Some(old) = tenant.cache.insert(minute, rows) {
                            tenant.cached_rows -= old.len();
                        }
                    }
                }
                while let Some(entry) = tenant.cache.first_entry() {
                    if tenant.cached_rows <= CACHE_MAX_ROWS && *entry.key() >= oldest_kept {
                        break;
                    }
                    let rows = entry.remove();
                    tenant.cached_rows -= rows.len();
                }
            }
        }
        found.into_iter().collect()
    }

    /// The rows a `diagram_1` query returns now.
    pub(super) fn query(
        &self,
        token: &str,
        ini: DateTime,
        end: DateTime,
        customer: Option<&str>,
    ) -> Vec<SimRow> {
        self.served_at(token, ini, end, customer, Timestamp::now())
    }

    /// Ground truth of one answer: the rows a `diagram_1` query for `date_ini..=date_end`
    /// returns when asked at `now`: `date_ini <= at <= date_end` in civil terms (so both
    /// passes of a DST fold), visible by `now`, matching `customer_id` if given, ordered
    /// by `at`, cut at the row cap. Generated calls that start after `now` are not made.
    pub fn served_at(
        &self,
        token: &str,
        ini: DateTime,
        end: DateTime,
        customer: Option<&str>,
        now: Timestamp,
    ) -> Vec<SimRow> {
        let customer = customer.filter(|c| !c.is_empty());
        let mut scripted: Vec<(RowKey, SimRow)> = Vec::new();
        let (cap, zone) = {
            let state = self.lock();
            let Some(tenant) = state.tenants.get(token) else {
                return Vec::new();
            };
            for stored in &tenant.rows {
                let row = &stored.row;
                if row.at >= ini
                    && row.at <= end
                    && row.visible_from.is_none_or(|v| v <= now)
                    && customer.is_none_or(|c| row.customer_id == c)
                {
                    let key = (
                        gen_row::civil_seconds(row.at),
                        row.at.subsec_nanosecond(),
                        1,
                        0,
                        stored.seq,
                    );
                    scripted.push((key, row.clone()));
                }
            }
            (state.row_cap, tenant.zone.clone())
        };
        // Instants that can carry a wall time in [ini, end]: widen by the zone's
        // ambiguity, then by the longest call, whose later rows follow its start minute.
        let lo = zone
            .to_ambiguous_timestamp(ini)
            .earlier()
            .map_or(i64::MIN / 2, |t| t.as_second())
            .saturating_sub(GEN_SLACK_SECS)
            .div_euclid(60);
        let hi = zone
            .to_ambiguous_timestamp(end)
            .later()
            .map_or(i64::MAX / 2, |t| t.as_second())
            .div_euclid(60);
        let generated = if lo.saturating_add(MAX_QUERY_MINUTES) < hi {
            Vec::new() // unreachable through HTTP (31-day limit); just a guard
        } else {
            self.generated(token, lo, hi, now)
        };
        let mut keyed: Vec<(RowKey, Row<'_>)> = scripted
            .iter()
            .map(|(key, row)| (*key, Row::Scripted(row)))
            .collect();
        // Generated rows have whole seconds, so civil seconds compare exactly.
        let (ini_key, end_key, now_secs) = (
            gen_row::civil_seconds(ini),
            gen_row::civil_seconds(end),
            now.as_second(),
        );
        for (minute, rows) in &generated {
            for row in rows.iter() {
                if row.civil >= ini_key
                    && row.civil <= end_key
                    && row.visible_secs <= now_secs
                    && customer.is_none_or(|c| row.customer_matches(c))
                {
                    let key = (row.civil, 0, 0, *minute, u64::from(row.index));
                    keyed.push((key, Row::Generated(row)));
                }
            }
        }
        // Only the first `cap` rows are served: select them before sorting.
        if cap == 0 {
            keyed.clear();
        } else if keyed.len() > cap {
            keyed.select_nth_unstable_by_key(cap - 1, |entry| entry.0);
            keyed.truncate(cap);
        }
        keyed.sort_unstable_by_key(|entry| entry.0);
        keyed
            .into_iter()
            .map(|(_, row)| match row {
                Row::Scripted(row) => row.clone(),
                Row::Generated(row) => row.to_sim_row(),
            })
            .collect()
    }
}

enum Row<'a> {
    Scripted(&'a SimRow),
    Generated(&'a GenRow),
}

/// Generated calls last at most a few minutes; an hour covers them and any DST shift.
const GEN_SLACK_SECS: i64 = 3_600;
/// 31 days plus the slack, in minutes.
const MAX_QUERY_MINUTES: i64 = (MAX_RANGE_DAYS + 2) * 24 * 60;
