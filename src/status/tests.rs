//! Tests of the page model and its HTML, with exact expected values (the charts' are
//! in [`super::svg`]).

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::page::{
    self, Budget, Comparison, Coverage, CycleRow, ErrorView, PeriodView, State, When,
};
use super::{Counts, CycleRecord, LastError, Status, Tally, TokenBudget, render};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn bogota() -> TimeZone {
    TimeZone::get("America/Bogota").unwrap()
}

fn c(rows: u64, hung_up: u64) -> Counts {
    Counts { rows, hung_up }
}

/// 14:00 in Bogota.
const NOW: &str = "2026-04-10T19:00:00Z";
/// 13:55 in Bogota.
const WATERMARK: &str = "2026-04-10T18:55:00Z";

/// An operation up for 26 hours in 5-minute windows: 12 rows (3 hung up) a window in
/// the last hour, 10 (1 hung up) in the same hour yesterday, 5 (none) otherwise; an
/// error half an hour ago, a success since, and two cycles listed.
fn busy() -> Status {
    let w = ts(WATERMARK);
    let since = w - SignedDuration::from_hours(26);
    let mut s = Status::new(
        "acme",
        "America/Bogota",
        bogota(),
        Duration::from_secs(300),
        since,
    );
    for k in 0..312 {
        let end = since + SignedDuration::from_secs(300 * (k + 1));
        let back = w.duration_since(end).as_secs();
        let counts = if back < 3600 {
            c(12, 3)
        } else if (24 * 3600..25 * 3600).contains(&back) {
            c(10, 1)
        } else {
            c(5, 0)
        };
        s.history
            .record(end - SignedDuration::from_secs(300), end, counts);
    }
    s.first_cycle_done = true;
    s.up = Some(true);
    s.watermark = Some(w);
    s.last_success = Some(ts("2026-04-10T18:59:30Z"));
    s.last_error = Some(LastError {
        at: ts("2026-04-10T18:30:00Z"),
        reason: "http_5xx".into(),
        text: "HTTP 502: Bad Gateway".into(),
    });
    s.requests_today = 42;
    s.token = Some(TokenBudget {
        limit: Some(1000),
        used_today: Some(250),
        at: ts("2026-04-10T18:00:00Z"),
    });
    s.cycles.push(CycleRecord {
        started: ts("2026-04-10T18:50:00Z"),
        start: ts("2026-04-10T18:40:00Z"),
        end: ts("2026-04-10T18:50:00Z"),
        tally: Tally {
            requests: 3,
            ..Tally::default()
        },
        took: Duration::from_millis(1500),
        error: Some(("http_5xx".into(), "HTTP 502: Bad Gateway".into())),
    });
    s.cycles.push(CycleRecord {
        started: ts("2026-04-10T18:55:05Z"),
        start: ts("2026-04-10T18:25:00Z"),
        end: w,
        tally: Tally {
            requests: 2,
            parts: 1,
            new_rows: 144,
            duplicates: 30,
        },
        took: Duration::from_millis(340),
        error: None,
    });
    s
}

fn when(local: &str, ago: &str) -> When {
    When {
        local: local.into(),
        ago: ago.into(),
    }
}

#[test]
fn the_model_of_a_busy_operation() {
    let s = busy();
    let v = page::op_view(&s, ts(NOW));
    assert_eq!(v.name, "acme");
    assert_eq!(v.zone, "America/Bogota");
    assert_eq!(v.state, State::Up);
    assert!(v.ready);
    assert_eq!(
        v.watermark,
        Some(when("2026-04-10 13:55:00 -05", "5 min ago"))
    );
    assert_eq!(
        v.last_success,
        Some(when("2026-04-10 13:59:30 -05", "30 s ago"))
    );
    assert_eq!(
        v.last_error,
        Some(ErrorView {
            when: when("2026-04-10 13:30:00 -05", "30 min ago"),
            reason: "http_5xx".into(),
            text: "HTTP 502: Bad Gateway".into(),
        })
    );
    assert_eq!(
        v.hour,
        Comparison {
            last_hour: PeriodView {
                range: "12:55–13:55".into(),
                counts: c(144, 36),
                share: Some("25.0 %".into()),
                coverage: Coverage::Full,
            },
            yesterday: PeriodView {
                range: "12:55–13:55".into(),
                counts: c(120, 12),
                share: Some("10.0 %".into()),
                coverage: Coverage::Full,
            },
            rows_change: Some("+20 %".into()),
            share_change: Some("+15.0 pts".into()),
        }
    );
    assert_eq!(
        v.budget,
        Budget {
            limit: Some(1000),
            used: Some(250),
            left: Some(750),
            as_of: Some(when("2026-04-10 13:00:00 -05", "1 h ago")),
            exporter_today: 42,
        }
    );
    assert_eq!(
        v.cycles,
        vec![
            CycleRow {
                started: "13:55:05".into(),
                range: "13:25:00 → 13:55:00 (30 min)".into(),
                parts: 1,
                new_rows: 144,
                duplicates: 30,
                requests: 2,
                took: "340 ms".into(),
                ok: true,
                result: "ok".into(),
                detail: String::new(),
            },
            CycleRow {
                started: "13:50:00".into(),
                range: "13:40:00 → 13:50:00 (10 min)".into(),
                parts: 0,
                new_rows: 0,
                duplicates: 0,
                requests: 3,
                took: "1.5 s".into(),
                ok: false,
                result: "http_5xx".into(),
                detail: "HTTP 502: Bad Gateway".into(),
            },
        ]
    );
    // The charts: the last 24 h of windows, 288 of them, ending at the watermark.
    assert_eq!(v.charts.caption, "last 24 h");
    assert_eq!(v.charts.to, ts(WATERMARK));
    assert_eq!(v.charts.from, ts("2026-04-09T18:55:00Z"));
    assert_eq!(v.charts.interval, 300);
    assert_eq!(v.charts.windows.len(), 288);
    assert_eq!(
        v.charts.windows.first().map(|w| w.end),
        Some(ts("2026-04-09T19:00:00Z"))
    );
    assert_eq!(v.since, "2026-04-09 11:55:00 -05");
}

#[test]
fn a_down_operation_keeps_its_error_and_the_page_counts_states() {
    let mut down = busy();
    down.name = "andina".into();
    down.up = Some(false);
    let fresh = Status::new(
        "nueva",
        "America/Bogota",
        bogota(),
        Duration::from_secs(300),
        ts(NOW),
    );
    let p = page::build(&[busy(), down, fresh], ts(NOW), "1.2.3", "/metrics");
    assert_eq!((p.up, p.down, p.pending), (1, 1, 1));
    assert_eq!(p.generated, "2026-04-10 19:00:00 UTC");
    assert_eq!(p.version, "1.2.3");
    let states: Vec<State> = p.ops.iter().map(|o| o.state).collect();
    assert_eq!(states, vec![State::Up, State::Down, State::Pending]);
    assert_eq!(
        p.ops[1].last_error.as_ref().map(|e| e.reason.as_str()),
        Some("http_5xx")
    );
}

#[test]
fn the_model_before_any_cycle() {
    let s = Status::new(
        "nueva",
        "America/Bogota",
        bogota(),
        Duration::from_secs(300),
        ts(NOW),
    );
    let v = page::op_view(&s, ts(NOW));
    assert_eq!(v.state, State::Pending);
    assert!(!v.ready);
    assert_eq!(
        (&v.watermark, &v.last_success, &v.last_error),
        (&None, &None, &None)
    );
    let missing = PeriodView {
        range: String::new(),
        counts: c(0, 0),
        share: None,
        coverage: Coverage::Missing,
    };
    assert_eq!(
        v.hour,
        Comparison {
            last_hour: missing.clone(),
            yesterday: missing,
            rows_change: None,
            share_change: None,
        }
    );
    assert_eq!(
        v.budget,
        Budget {
            limit: None,
            used: None,
            left: None,
            as_of: None,
            exporter_today: 0,
        }
    );
    assert!(v.cycles.is_empty());
    assert_eq!(v.charts.caption, "since start, 14:00");
    assert_eq!((v.charts.from, v.charts.to), (ts(NOW), ts(NOW)));
    assert!(v.charts.windows.is_empty());
}

#[test]
fn a_history_shorter_than_an_hour_says_since_when() {
    let w = ts(WATERMARK);
    let mut s = Status::new(
        "acme",
        "America/Bogota",
        bogota(),
        Duration::from_secs(300),
        w,
    );
    s.watermark = Some(w);
    // The first cycle: half an hour in one commit, spread over six windows.
    s.history
        .record(w - SignedDuration::from_mins(30), w, c(60, 6));
    let v = page::op_view(&s, ts(NOW));
    assert_eq!(
        v.hour.last_hour,
        PeriodView {
            range: "12:55–13:55".into(),
            counts: c(60, 6),
            share: Some("10.0 %".into()),
            coverage: Coverage::Since("13:25".into()),
        }
    );
    assert_eq!(v.hour.yesterday.coverage, Coverage::Missing);
    assert_eq!(v.hour.yesterday.counts, c(0, 0));
    assert_eq!((v.hour.rows_change, v.hour.share_change), (None, None));
    assert_eq!(v.charts.caption, "since start, 13:25");
    assert_eq!(v.charts.windows.len(), 6);
    assert!(v.charts.windows.iter().all(|w| w.spread));
}

#[test]
fn no_change_against_an_hour_without_rows() {
    // Hour windows: the watermark on the hour.
    let w = ts(NOW);
    let mut s = Status::new("a", "UTC", TimeZone::UTC, Duration::from_secs(3600), w);
    s.watermark = Some(w);
    for k in (0..26).rev() {
        let end = w - SignedDuration::from_hours(k);
        let rows = if k == 0 { 5 } else { 0 };
        s.history
            .record(end - SignedDuration::from_hours(1), end, c(rows, 0));
    }
    let v = page::op_view(&s, ts(NOW));
    assert_eq!(v.hour.last_hour.counts, c(5, 0));
    assert_eq!(v.hour.last_hour.share, Some("0.0 %".into()));
    assert_eq!(v.hour.yesterday.coverage, Coverage::Full);
    assert_eq!(v.hour.yesterday.share, None);
    assert_eq!((v.hour.rows_change, v.hour.share_change), (None, None));
}

#[test]
fn local_times_follow_the_zone_and_its_offset() {
    let santiago = TimeZone::get("America/Santiago").unwrap();
    // Both passes of Santiago's repeated hour of April 2026.
    assert_eq!(
        page::local(ts("2026-04-05T02:30:00Z"), &santiago),
        "2026-04-04 23:30:00 -03"
    );
    assert_eq!(
        page::local(ts("2026-04-05T03:30:00Z"), &santiago),
        "2026-04-04 23:30:00 -04"
    );
    let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
    assert_eq!(
        page::local(ts("2026-04-10T19:00:00Z"), &kolkata),
        "2026-04-11 00:30:00 +05:30"
    );
    assert_eq!(
        page::local(ts("2026-04-10T19:00:00Z"), &TimeZone::UTC),
        "2026-04-10 19:00:00 +00"
    );
    // The time alone on the local day of `now`, else the date too.
    let now = ts(NOW);
    assert_eq!(
        page::short(ts("2026-04-10T05:00:00Z"), &bogota(), now),
        "00:00:00"
    );
    assert_eq!(
        page::short(ts("2026-04-10T04:59:59Z"), &bogota(), now),
        "2026-04-09 23:59:59"
    );
}

#[test]
fn durations_read_at_a_glance() {
    let now = ts(NOW);
    let ago = |secs: i64| page::ago(now, now - SignedDuration::from_secs(secs));
    assert_eq!(ago(0), "just now");
    assert_eq!(ago(-5), "just now");
    assert_eq!(ago(45), "45 s ago");
    assert_eq!(ago(300), "5 min ago");
    assert_eq!(ago(245), "4 min 5 s ago");
    assert_eq!(ago(3 * 3600 + 12 * 60 + 59), "3 h 12 min ago");
    assert_eq!(ago(2 * 86_400 + 4 * 3600), "2 d 4 h ago");
    let took = |ms: u64| page::took(Duration::from_millis(ms));
    assert_eq!(took(0), "0 ms");
    assert_eq!(took(999), "999 ms");
    assert_eq!(took(1000), "1.0 s");
    assert_eq!(took(2500), "2.5 s");
    assert_eq!(took(65_000), "1 min 5 s");
    assert_eq!(took(3_600_000), "1 h");
}

#[test]
fn numbers_and_shares() {
    assert_eq!(page::grouped(0), "0");
    assert_eq!(page::grouped(999), "999");
    assert_eq!(page::grouped(1000), "1,000");
    assert_eq!(page::grouped(1_234_567), "1,234,567");
    assert_eq!(page::grouped(u64::MAX), "18,446,744,073,709,551,615");
    assert_eq!(page::percent(0.182), "18.2 %");
    assert_eq!(page::percent(1.0), "100.0 %");
}

#[test]
fn the_html_of_a_busy_operation() {
    let p = page::build(&[busy()], ts(NOW), "1.2.3", "/metrics");
    let html = render::page(&p);
    for fragment in [
        "<a href=\"/metrics\">Metrics</a>",
        "<span id=\"summary\">1 operation: 1 up, 0 down, 0 pending</span>",
        "<section class=\"op\" id=\"op-0\" data-operation=\"acme\" data-up=\"true\">",
        "<h2>acme <span class=\"badge\">up</span> <span class=\"zone\">America/Bogota</span></h2>",
        "<div class=\"watermark\"><h3>Watermark (local time)</h3><p>2026-04-10 13:55:00 -05 <span class=\"mute\">(5 min ago)</span></p></div>",
        "<div class=\"last-success\"><h3>Last success</h3><p>2026-04-10 13:59:30 -05 <span class=\"mute\">(30 s ago)</span></p></div>",
        "<div class=\"last-error\"><h3>Last error (kept until the next one)</h3><p><span class=\"reason\">http_5xx</span> 2026-04-10 13:30:00 -05 <span class=\"mute\">(30 min ago)</span><br><code class=\"text\">HTTP 502: Bad Gateway</code></p></div>",
        "<meter min=\"0\" max=\"1000\" low=\"500\" high=\"900\" optimum=\"0\" value=\"250\"></meter><br><span class=\"used\">250</span> used of 1,000, <span class=\"left\">750</span> left <span class=\"mute\">(token_info, 1 h ago)</span><br><span class=\"mute\">API requests today from this exporter: 42</span>",
        "<tr class=\"last-hour\"><th>Last hour</th><td>12:55–13:55</td><td class=\"n\">144</td><td class=\"n\">36</td><td class=\"n\">25.0 %</td><td class=\"mute\"></td></tr>",
        "<tr class=\"yesterday\"><th>Same hour yesterday</th><td>12:55–13:55</td><td class=\"n\">120</td><td class=\"n\">12</td><td class=\"n\">10.0 %</td><td class=\"mute\"></td></tr>",
        "<tr class=\"change\"><th>Change</th><td></td><td class=\"n\">+20 %</td><td></td><td class=\"n\">+15.0 pts</td><td></td></tr>",
        "<figcaption>Rows per window, last 24 h</figcaption><svg class=\"chart chart-rows\"",
        "<figcaption>Hang-up share per window, last 24 h</figcaption><svg class=\"chart chart-share\"",
        "<tr class=\"ok\"><td>13:55:05</td><td>13:25:00 → 13:55:00 (30 min)</td><td class=\"n\">1</td><td class=\"n\">144</td><td class=\"n\">30</td><td class=\"n\">2</td><td class=\"n\">340 ms</td><td class=\"result\">ok</td></tr>",
        "<tr class=\"failed\"><td>13:50:00</td><td>13:40:00 → 13:50:00 (10 min)</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">3</td><td class=\"n\">1.5 s</td><td class=\"result\" title=\"HTTP 502: Bad Gateway\">http_5xx</td></tr>",
    ] {
        assert!(html.contains(fragment), "missing {fragment}\n{html}");
    }
    // One bar per window of the last 24 h.
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 288);
    assert_eq!(html.matches("<tr class=\"ok\">").count(), 1);
    assert_eq!(html.matches("<tr class=\"failed\">").count(), 1);
}

#[test]
fn the_html_loads_nothing_and_runs_nothing() {
    let p = page::build(&[busy()], ts(NOW), "1.2.3", "/metrics");
    let html = render::page(&p);
    for banned in ["<script", "<link", "src=", "@import", "url(", "https://"] {
        assert!(!html.contains(banned), "{banned}");
    }
    // The one address is the SVG namespace, which is a name, not a load.
    assert_eq!(
        html.matches("http://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
}

#[test]
fn the_html_of_an_operation_before_any_cycle() {
    let s = Status::new(
        "nueva",
        "America/Bogota",
        bogota(),
        Duration::from_secs(300),
        ts(NOW),
    );
    let html = render::page(&page::build(&[s], ts(NOW), "1.2.3", "/metrics"));
    for fragment in [
        "data-up=\"unknown\"",
        "<span class=\"badge\">pending</span> <span class=\"zone\">America/Bogota · waiting for its first cycle</span>",
        "<p><span class=\"mute\">none yet</span></p>",
        "<p><span class=\"mute\">none since start (2026-04-10 14:00:00 -05)</span></p>",
        "<span class=\"mute\">token_info has not told the budget yet</span><br>API requests today from this exporter: 0",
        "<tr class=\"last-hour\"><th>Last hour</th><td></td><td class=\"n\">–</td><td class=\"n\">–</td><td class=\"n\">–</td><td class=\"mute\">no data since start</td></tr>",
        "<p class=\"mute no-cycles\">No cycle has run since start.</p>",
        "no windows yet",
    ] {
        assert!(html.contains(fragment), "missing {fragment}\n{html}");
    }
    assert!(!html.contains("<table class=\"cycles\">"));
}

#[test]
fn text_from_outside_is_escaped() {
    let mut s = busy();
    s.name = "a<b>&\"c'".into();
    s.zone = "<i>".into();
    s.last_error = Some(LastError {
        at: ts("2026-04-10T18:30:00Z"),
        reason: "other".into(),
        text: "<img src=x onerror=alert(1)>".into(),
    });
    let html = render::page(&page::build(&[s], ts(NOW), "1.2.3", "/m\"x"));
    assert!(html.contains("data-operation=\"a&lt;b&gt;&amp;&quot;c&#39;\""));
    assert!(html.contains("<span class=\"zone\">&lt;i&gt;</span>"));
    assert!(html.contains("<code class=\"text\">&lt;img src=x onerror=alert(1)&gt;</code>"));
    assert!(html.contains("<a href=\"/m&quot;x\">"));
    assert!(!html.contains("<img"));
    assert!(!html.contains("<i>"));
}
