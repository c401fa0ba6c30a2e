//! What grouping rows into calls costs per row: one 59,999-row answer (three rows a
//! call) ingested 20 times, with `conn_id` (`calls`) or with it emptied (`rows`, the
//! row-only path). Time the two as whole processes and compare; the body is built the
//! same way in both, so the difference is the grouping.
//!
//! `cargo build --release --example calls_cost`, then time
//! `target/release/examples/calls_cost calls` against `... calls_cost rows`
//! (e.g. `/usr/bin/time -v`, several runs each, alternating).

use jiff::tz::TimeZone;
use wolkvox_exporter::calls::{CallKey, Calls};
use wolkvox_exporter::config::{DEFAULT_BUCKETS, Limits};
use wolkvox_exporter::ingest::ingest;
use wolkvox_exporter::ledger::Ledger;
use wolkvox_exporter::totals::Totals;
use wolkvox_exporter::window::{self, Range};

const ROWS: usize = 59_999;
const PASSES: usize = 20;

fn main() {
    let with_calls = std::env::args().nth(1).as_deref() != Some("rows");
    let tz = TimeZone::get("America/Bogota").unwrap_or(TimeZone::UTC);
    let start: jiff::Timestamp = "2026-03-03T13:00:00Z"
        .parse()
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let q = window::query_for(
        Range::new(start, start + jiff::SignedDuration::from_hours(1)),
        &tz,
    );
    let mut body =
        String::from(r#"{"code":200,"error":null,"msg":"59999 records were found","data":["#);
    for i in 0..ROWS {
        let call = i / 3;
        let (m, s) = ((i * 3600 / ROWS) / 60, (i * 3600 / ROWS) % 60);
        let conn = if with_calls {
            format!("6736.4628.1040.{}.{call}", 1_772_542_800 + call)
        } else {
            String::new()
        };
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"rp_id":"{}","rp_name":"Menú {}","cod_opc_menu":"{}","dn_transfer":"","date":"2026-03-03 08:{m:02}:{s:02}","result":"{}","ani":"300{i:07}","time":"{}","customer_id":"","conn_id":"{conn}"}}"#,
            i % 3 + 1,
            i % 3 + 1,
            ["1", "2", "PULSE"][i % 3],
            ["", "", "ok"][i % 3],
            i % 90
        ));
    }
    body.push_str("]}");
    let limits = Limits::default();
    let mut rows = 0;
    for _ in 0..PASSES {
        let mut ledger = Ledger::new();
        let mut batch = ledger.begin();
        let mut totals = Totals::default();
        let mut calls = Calls::with_key(CallKey::from_u128(1));
        if ingest(
            body.as_bytes(),
            &q,
            &tz,
            &mut batch,
            &mut totals,
            &mut calls,
            &limits,
            &DEFAULT_BUCKETS,
        )
        .is_ok()
        {
            rows += totals.rows;
        }
    }
    println!(
        "{rows} rows ingested ({})",
        if with_calls { "calls" } else { "rows only" }
    );
}
