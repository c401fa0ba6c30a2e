//! `/` in a real browser: Debian's headless Chromium loads the status page of an
//! exporter polling the simulator (traffic, a token budget, two failed cycles), its
//! DOM is checked for what the page promises, and a screenshot is written to
//! `target/artifacts/status-page.png` for CI to keep.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use wolkvox_exporter::simulator::{Fault, Traffic};

use crate::helpers::*;

/// A token shaped like a real one, to show it never reaches the page.
const TOKEN: &str = "tok-9f86d081884c7d659a2feaa0";

const OP: Op<'static> = Op {
    name: "acme",
    token: TOKEN,
    zone: "America/Bogota",
    extra: "",
};

/// Chromium, or a failure that says how to get it: the test never skips.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => panic!(
            "chromium is not installed: the status page test needs Debian's headless browser \
             (apt-get install chromium; .ci/run installs it)"
        ),
    }
}

/// What a Chromium run wrote.
struct Output {
    stdout: Vec<u8>,
}

/// Runs headless Chromium with `args` and `url`, for at most two minutes. As root it
/// needs `--no-sandbox`; a profile of its own keeps runs side by side apart. Its
/// output goes to files: a DOM larger than a pipe's buffer would block it otherwise.
fn run_chromium(args: &[&str], url: &str) -> Output {
    let scratch = tempdir();
    let (out_path, err_path) = (scratch.path().join("out"), scratch.path().join("err"));
    let file = |p: &Path| std::fs::File::create(p).expect("chromium output file");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(file(&out_path))
        .stderr(file(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {args:?} {url} did not finish in 120 s");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("waiting for chromium: {e}"),
        }
    };
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    assert!(
        status.success(),
        "chromium {args:?} failed: {status}\n{}",
        String::from_utf8_lossy(&read(&err_path))
    );
    Output {
        stdout: read(&out_path),
    }
}

/// The text between `start` (included) and the first `end` after it.
fn slice<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let i = dom
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the DOM:\n{dom}"));
    let rest = &dom[i..];
    let j = rest
        .find(end)
        .unwrap_or_else(|| panic!("no {end} after {start}"));
    &rest[..j + end.len()]
}

/// The text content of the first element that starts with `open`.
fn text_of(dom: &str, open: &str, close: &str) -> String {
    let s = slice(dom, open, close);
    let inner = &s[open.len()..s.len() - close.len()];
    // Drop any tags inside.
    let mut out = String::new();
    let mut in_tag = false;
    for c in inner.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn cycle_rows(page: &str) -> usize {
    page.find("<table class=\"cycles\">").map_or(0, |_| {
        let t = slice(page, "<table class=\"cycles\">", "</table>");
        t.matches("<tr class=\"ok\">").count() + t.matches("<tr class=\"failed\">").count()
    })
}

/// Whether the newest cycle listed succeeded.
fn newest_cycle_ok(page: &str) -> bool {
    page.find("<table class=\"cycles\">").is_some_and(|_| {
        slice(page, "<table class=\"cycles\">", "</table>").contains("<tbody><tr class=\"ok\">")
    })
}

/// Fetches `/` until `cond` holds, for up to `secs` seconds.
async fn wait_for_page(exp: &App, secs: u64, what: &str, cond: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, page) = exp.get("/").await;
        assert_eq!(status, 200);
        if cond(&page) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\n--- page ---\n{page}\n--- log ---\n{}",
                exp.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium() {
    // Fail at once, before a minute of polling, when the browser is missing.
    chromium();
    let bench = Bench::new().await;
    let sim = &bench.sim;
    bench.tenant(TOKEN, "America/Bogota");
    sim.sim.set_traffic(TOKEN, Traffic::new(7));
    sim.sim.set_daily_budget(TOKEN, Some(5000));
    // The first cycle fails: maintenance is not retried within a poll.
    sim.sim.push_faults(TOKEN, [Fault::Maintenance]);
    let exp = bench.app(&[OP], "backfill: 1h");
    let url = format!("http://{}/", exp.addr);

    // Twenty cycles and more: the first, failed one has left the list; its error stays.
    wait_for_page(&exp, 90, "21 cycles", |p| {
        cycle_rows(p) == 20 && !p.contains("<tr class=\"failed\">")
    })
    .await;
    let (_, page) = exp.get("/").await;
    assert!(
        page.contains("<span class=\"reason\">maintenance</span>"),
        "the last error is kept after the successes since: {page}"
    );

    // A cycle that fails after its two retries (a gateway's 502 page), then recovers.
    sim.sim
        .push_faults(TOKEN, std::iter::repeat_n(Fault::ServerErrorHtml(502), 3));
    wait_for_page(&exp, 60, "a failed cycle, then a good one", |p| {
        p.contains("data-up=\"true\"") && p.contains(">http_5xx</td></tr>") && newest_cycle_ok(p)
    })
    .await;

    // What the browser made of it.
    let dump = run_chromium(&["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert_eq!(
        dom.matches("<section class=\"op\"").count(),
        1,
        "one element per operation:\n{dom}"
    );
    assert!(
        dom.contains("<section class=\"op\" id=\"op-0\" data-operation=\"acme\" data-up=\"true\">"),
        "{dom}"
    );
    // The last 20 cycles, newest first: the newest good, the 502 one among them.
    let cycles = slice(&dom, "<table class=\"cycles\">", "</table>");
    let tbody = slice(cycles, "<tbody>", "</tbody>");
    assert_eq!(tbody.matches("<tr").count(), 20, "{cycles}");
    assert!(tbody.starts_with("<tbody><tr class=\"ok\">"), "{tbody}");
    assert_eq!(tbody.matches("<tr class=\"failed\">").count(), 1, "{tbody}");
    let failed = slice(tbody, "<tr class=\"failed\">", "</tr>");
    // Three requests (the first try and two retries), nothing committed.
    assert!(
        failed.contains(
            "<td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">3</td>"
        ),
        "{failed}"
    );
    assert!(failed.contains(">http_5xx</td>"), "{failed}");
    // The last error: the 502, kept although a cycle has succeeded since.
    assert_eq!(
        text_of(&dom, "<span class=\"reason\">", "</span>"),
        "http_5xx"
    );
    let error_text = text_of(&dom, "<code class=\"text\">", "</code>");
    // The gateway's page as text; the client kept 120 characters of its markup.
    assert_eq!(error_text, "HTTP 502: 502 Bad Gateway 502 Bad Gateway ngin");
    // The budget as token_info told it: its own request was the first of the day.
    let budget = slice(&dom, "<div class=\"budget\">", "</div>");
    assert!(budget.contains("<meter min=\"0\" max=\"5000\""), "{budget}");
    assert!(
        budget.contains(
            "<span class=\"used\">1</span> used of 5,000, <span class=\"left\">4,999</span> left"
        ),
        "{budget}"
    );
    // The watermark in Bogota's time.
    let watermark = text_of(
        &dom,
        "<div class=\"watermark\"><h3>Watermark (local time)</h3><p>",
        "</p>",
    );
    assert!(watermark.contains(" -05 ("), "{watermark}");
    // The hour against yesterday's: this process has no yesterday.
    let compare = slice(&dom, "<table class=\"compare\">", "</table>");
    let last_hour = slice(compare, "<tr class=\"last-hour\">", "</tr>");
    assert!(last_hour.contains("since start"), "{last_hour}");
    let yesterday = slice(compare, "<tr class=\"yesterday\">", "</tr>");
    assert!(yesterday.contains("no data since start"), "{yesterday}");
    // The two charts, with bars and a share line drawn.
    let rows_chart = slice(&dom, "<svg class=\"chart chart-rows\"", "</svg>");
    assert!(rows_chart.contains("<rect class=\"bar"), "{rows_chart}");
    let share_chart = slice(&dom, "<svg class=\"chart chart-share\"", "</svg>");
    assert!(
        share_chart.contains("<polyline class=\"line\"")
            || share_chart.contains("<circle class=\"point\""),
        "{share_chart}"
    );
    assert!(!dom.contains("<script"));
    // No token, and none of the callers' data the simulator served.
    assert!(!dom.contains(TOKEN));
    let now = Timestamp::now();
    let served = sim
        .sim
        .rows_between(TOKEN, now - SignedDuration::from_hours(1), now);
    assert!(!served.is_empty());
    for r in served.iter().take(200) {
        for v in [&r.ani, &r.conn_id, &r.customer_id] {
            if v.len() >= 4 {
                assert!(!dom.contains(v.as_str()), "caller data {v} on the page");
            }
        }
    }

    // A screenshot for CI's artifacts.
    let dir = artifacts();
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let png = dir.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1600",
        ],
        &url,
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    println!("screenshot: {} ({} bytes)", png.display(), bytes.len());
}
