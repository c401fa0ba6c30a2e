//! `backfill` end to end: the binary against the simulator, its file through the real
//! `promtool tsdb create-blocks-from openmetrics`, and the blocks queried in a real
//! Prometheus. Needs `promtool` and `prometheus` (Debian: `apt-get install prometheus`);
//! fails, rather than skips, without them. `PROMTOOL` and `PROMETHEUS` name others.
//!
//! The tests, by what they check: [`blocks`] (the whole way into Prometheus),
//! [`arguments`] (bad command lines), [`counting`] (cut answers, DST gaps and folds:
//! every row once), [`failures`] (retries, and no file left behind); [`measure`] is a
//! measurement, not a check.

mod arguments;
mod blocks;
mod counting;
mod failures;
mod measure;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use jiff::civil::date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::backfill::Settings;

use crate::helpers::*;

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// Local midnight of a day in `z`.
fn midnight(z: &TimeZone, y: i16, m: i8, d: i8) -> Timestamp {
    date(y, m, d)
        .to_zoned_datetime(z.clone())
        .expect("midnight")
        .timestamp()
}

fn backfill_cmd(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("backfill")
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .expect("run backfill")
}

fn quick() -> Settings {
    Settings {
        retries: 3,
        retry_base: Duration::from_millis(20),
        progress: false,
    }
}

/// The last `wolkvox_ivr_rows_total` sample of `op` in an output file.
fn last_rows(text: &str, op: &str) -> Option<f64> {
    let prefix = format!("wolkvox_ivr_rows_total{{operation=\"{op}\"}} ");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
}
