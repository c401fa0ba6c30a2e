//! One generated row: kept compact while cached, written out as the report writes its
//! fields (dates in two shapes, `time` in three, a `conn_id` in Wolkvox's shape, fake
//! but plausible caller data).

use jiff::Timestamp;
use jiff::civil::DateTime;

use super::SimRow;
use super::ivr::POOL;

/// How a row writes its `time` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeStyle {
    Seconds,
    HourMinSec,
    MinSec,
}

/// A call's `conn_id`, in the shape another Wolkvox report shows
/// (`6736.4628.1040.1768782812.1814`): three numbers of the tenant and the line, the
/// call's start as UTC epoch seconds, and a sequence number that keeps two calls of the
/// same second apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ConnId {
    pub(crate) server: u16,
    pub(crate) campaign: u16,
    pub(crate) line: u16,
    pub(crate) epoch: i64,
    pub(crate) seq: u16,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}.{}",
            self.server, self.campaign, self.line, self.epoch, self.seq
        )
    }
}

/// One generated row, kept compact (static strings, numbers) so caching weeks of
/// traffic stays cheap; [`GenRow::to_sim_row`] builds the strings when served.
#[derive(Clone, Debug)]
pub(crate) struct GenRow {
    pub(crate) instant: Timestamp,
    pub(crate) at: DateTime,
    /// `at` as seconds on a civil time line ([`civil_seconds`]): cheap to compare and
    /// sort when a query covers weeks of rows.
    pub(crate) civil: i64,
    /// Seconds since the epoch from which the row is served ([`GenRow::visible_from`]).
    pub(crate) visible_secs: i64,
    /// Order of the row inside its minute, for stable sorting.
    pub(crate) index: u32,
    pub(crate) rp: usize,
    pub(crate) option: &'static str,
    pub(crate) dn: &'static str,
    pub(crate) result: &'static str,
    pub(crate) secs: u32,
    pub(crate) style: TimeStyle,
    pub(crate) compact_date: bool,
    pub(crate) ani: u64,
    /// 0 means "no customer identified": an empty `customer_id`.
    pub(crate) customer: u64,
    /// The call the row is part of.
    pub(crate) conn: ConnId,
    /// False for a row written without its `conn_id` (it then belongs to no call).
    pub(crate) conn_written: bool,
}

impl GenRow {
    pub(crate) fn customer_matches(&self, wanted: &str) -> bool {
        if self.customer == 0 {
            wanted.is_empty()
        } else {
            wanted == self.customer.to_string()
        }
    }

    /// When the report can list the row: once the interaction at that routing point
    /// has ended, like a real call-detail table written at hang-up or transfer, and for
    /// a few rows some minutes later still ([`MAX_LATENESS_SECS`](super::MAX_LATENESS_SECS)).
    pub(crate) fn visible_from(&self) -> Timestamp {
        Timestamp::from_second(self.visible_secs).unwrap_or(self.instant)
    }

    pub(crate) fn to_sim_row(&self) -> SimRow {
        let rp = &POOL[self.rp];
        let date = if self.compact_date {
            format_compact(self.at)
        } else {
            format_dashed(self.at)
        };
        let time = match self.style {
            TimeStyle::Seconds => self.secs.to_string(),
            TimeStyle::HourMinSec => format!(
                "{:02}:{:02}:{:02}",
                self.secs / 3600,
                self.secs / 60 % 60,
                self.secs % 60
            ),
            TimeStyle::MinSec => format!("{:02}:{:02}", self.secs / 60, self.secs % 60),
        };
        SimRow {
            rp_id: rp.id.to_string(),
            rp_name: rp.name.to_string(),
            cod_opc_menu: self.option.to_string(),
            dn_transfer: self.dn.to_string(),
            date,
            result: self.result.to_string(),
            ani: self.ani.to_string(),
            time,
            customer_id: if self.customer == 0 {
                String::new()
            } else {
                self.customer.to_string()
            },
            conn_id: if self.conn_written {
                self.conn.to_string()
            } else {
                String::new()
            },
            at: self.at,
            visible_from: Some(self.visible_from()),
        }
    }
}

/// Seconds from 1970-01-01 00:00:00 on the civil (zone-less) time line; sub-seconds
/// dropped. Days from the civil date by Howard Hinnant's algorithm.
pub(crate) fn civil_seconds(at: DateTime) -> i64 {
    let (month, day) = (i64::from(at.month()), i64::from(at.day()));
    let year = i64::from(at.year()) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400
        + i64::from(at.hour()) * 3600
        + i64::from(at.minute()) * 60
        + i64::from(at.second())
}

pub(crate) fn format_dashed(at: DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

pub(crate) fn format_compact(at: DateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Fake but plausible caller data, derived from a number so it is reproducible:
/// a Colombian mobile or Bogotá landline, sometimes with the country code.
pub(crate) fn fake_ani(h: u64) -> u64 {
    let digits = (h >> 8) % 10_000_000;
    let number = match h % 10 {
        0..=6 => 3_000_000_000 + ((h >> 40) % 3) * 100_000_000 + (h >> 16) % 100_000_000,
        7 | 8 => 6_010_000_000 + digits,
        _ => 573_000_000_000 + (h >> 16) % 300_000_000,
    };
    number.max(1)
}

/// A cédula-like customer number, or 0 (unidentified caller) about a quarter of the time.
pub(crate) fn fake_customer(h: u64) -> u64 {
    match h % 8 {
        0 | 1 => 0,
        2..=4 => 10_000_000 + (h >> 8) % 90_000_000,
        _ => 1_000_000_000 + (h >> 8) % 200_000_000,
    }
}

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;

    use super::*;

    #[test]
    fn civil_seconds_match_utc_epoch_seconds() {
        for text in [
            "1970-01-01T00:00:00",
            "2026-02-28T23:59:59",
            "2024-02-29T12:00:00",
            "1969-12-31T23:59:59",
            "2100-03-01T00:00:01",
        ] {
            let at: DateTime = text.parse().unwrap();
            let utc = TimeZone::UTC.to_timestamp(at).unwrap().as_second();
            assert_eq!(civil_seconds(at), utc, "{text}");
        }
    }
}
