//! The status page's HTML, from its [`Page`] model: plain HTML, inline SVG and a little
//! CSS, nothing loaded from anywhere, no script. Every text from outside the binary
//! (operation names, zones, error texts) goes through [`escape`].
//!
//! The elements a test or a person looks for: one `section.op` per operation with
//! `data-operation` and `data-up` (`true`, `false`, `unknown`); in it `.watermark`,
//! `.last-success`, `.last-error`, `.budget` (with a `meter`), `table.compare`,
//! `svg.chart-rows`, `svg.chart-share` and `table.cycles` (one `tbody` row per cycle).

use std::fmt::Write;

use super::page::{
    Budget, Comparison, Coverage, CycleRow, OpView, Page, PeriodView, When, grouped,
};
use super::svg;

const STYLE: &str = "\
:root{--up:#1a7f37;--down:#cf222e;--pending:#8c959f;--ink:#1f2328;--mute:#59636e;--line:#d1d9e0}\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);margin:0;background:#f6f8fa}\
header{padding:16px 24px;background:#fff;border-bottom:1px solid var(--line)}\
header h1{font-size:20px;margin:0 0 4px}header p{margin:0;color:var(--mute)}\
main{padding:16px 24px;display:grid;gap:16px}\
.op{background:#fff;border:1px solid var(--line);border-left:6px solid var(--pending);border-radius:6px;padding:12px 16px}\
.op[data-up=true]{border-left-color:var(--up)}.op[data-up=false]{border-left-color:var(--down)}\
.op h2{font-size:18px;margin:0;display:flex;gap:10px;align-items:center;flex-wrap:wrap}\
.zone{font-size:13px;font-weight:normal;color:var(--mute)}\
.badge{font-size:12px;font-weight:600;color:#fff;background:var(--pending);border-radius:10px;padding:1px 9px;text-transform:uppercase}\
.op[data-up=true] .badge{background:var(--up)}.op[data-up=false] .badge{background:var(--down)}\
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:8px 24px;margin:12px 0}\
.facts>div{min-width:0}.facts h3{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--mute);margin:0 0 2px}\
.facts p{margin:0;overflow-wrap:anywhere}.mute{color:var(--mute)}\
.last-error .reason{font-weight:600;color:var(--down)}.last-error code{font-size:12px}\
meter{width:100%;height:12px}\
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\
th,td{padding:3px 8px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}\
th{font-size:12px;color:var(--mute);font-weight:600}td.n,th.n{text-align:right}\
table.compare{width:auto;margin:4px 0}\
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:8px 24px;margin:8px 0}\
figure{margin:0}figcaption{font-size:12px;color:var(--mute)}\
svg.chart{width:100%;height:auto;display:block}\
svg .axis{stroke:#8c959f}svg .grid{stroke:#eaeef2}\
svg text{font-size:11px;fill:var(--mute)}svg text.y{text-anchor:end}\
svg .bar{fill:#0969da}svg .bar.spread{fill:#9ec5fe}\
svg .line{fill:none;stroke:#bc4c00;stroke-width:1.5}svg .point{fill:#bc4c00}svg .hit{fill:transparent}\
.cycles-wrap{overflow-x:auto}\
table.cycles tr.failed td{background:#ffebe9}table.cycles td.result{font-weight:600}\
table.cycles tr.failed td.result{color:var(--down)}\
";

/// Text for HTML content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn page(p: &Page) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let path = escape(&p.telemetry_path);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>wolkvox-exporter</title><style>{STYLE}</style></head><body>\
<header><h1>wolkvox-exporter</h1><p>Version {version}. <a href=\"{path}\">Metrics</a> · \
<a href=\"/-/healthy\">healthy</a> · <a href=\"/-/ready\">ready</a> · \
<span id=\"summary\">{n} operation{s}: {up} up, {down} down, {pending} pending</span> · \
page made {generated}</p></header><main>",
        version = escape(&p.version),
        n = p.ops.len(),
        s = if p.ops.len() == 1 { "" } else { "s" },
        up = p.up,
        down = p.down,
        pending = p.pending,
        generated = escape(&p.generated),
    );
    for (i, op) in p.ops.iter().enumerate() {
        operation(&mut out, i, op);
    }
    out.push_str("</main></body></html>\n");
    out
}

fn operation(out: &mut String, i: usize, op: &OpView) {
    let _ = write!(
        out,
        "<section class=\"op\" id=\"op-{i}\" data-operation=\"{name}\" data-up=\"{up}\">\
<h2>{name} <span class=\"badge\">{state}</span> <span class=\"zone\">{zone}{ready}</span></h2>\
<div class=\"facts\">",
        name = escape(&op.name),
        up = op.state.data_up(),
        state = op.state.label(),
        zone = escape(&op.zone),
        ready = if op.ready {
            ""
        } else {
            " · waiting for its first cycle"
        },
    );
    fact(
        out,
        "watermark",
        "Watermark (local time)",
        &when_or(op.watermark.as_ref(), "none yet"),
    );
    fact(
        out,
        "last-success",
        "Last success",
        &when_or(op.last_success.as_ref(), "none since start"),
    );
    let error = match &op.last_error {
        None => format!(
            "<span class=\"mute\">none since start ({})</span>",
            escape(&op.since)
        ),
        Some(e) => format!(
            "<span class=\"reason\">{}</span> {}<br><code class=\"text\">{}</code>",
            escape(&e.reason),
            when(&e.when),
            escape(&e.text),
        ),
    };
    fact(
        out,
        "last-error",
        "Last error (kept until the next one)",
        &error,
    );
    fact(out, "budget", "API token budget today", &budget(&op.budget));
    out.push_str("</div>");
    compare(out, &op.hour);
    let _ = write!(
        out,
        "<div class=\"charts\"><figure><figcaption>Rows per window, {cap}</figcaption>{rows}</figure>\
<figure><figcaption>Hang-up share per window, {cap}</figcaption>{share}</figure></div>",
        cap = escape(&op.charts.caption),
        rows = svg::rows(&op.charts),
        share = svg::share(&op.charts),
    );
    cycles(out, &op.cycles);
    out.push_str("</section>");
}

fn fact(out: &mut String, class: &str, title: &str, body: &str) {
    let _ = write!(
        out,
        "<div class=\"{class}\"><h3>{title}</h3><p>{body}</p></div>"
    );
}

fn when(w: &When) -> String {
    format!(
        "{} <span class=\"mute\">({})</span>",
        escape(&w.local),
        escape(&w.ago)
    )
}

fn when_or(w: Option<&When>, none: &str) -> String {
    w.map_or_else(|| format!("<span class=\"mute\">{none}</span>"), when)
}

fn budget(b: &Budget) -> String {
    let mine = format!(
        "API requests today from this exporter: {}",
        grouped(b.exporter_today)
    );
    match (b.limit, b.used) {
        (Some(limit), Some(used)) => format!(
            "<meter min=\"0\" max=\"{limit}\" low=\"{low}\" high=\"{high}\" optimum=\"0\" value=\"{used}\"></meter><br>\
<span class=\"used\">{u}</span> used of {l}, <span class=\"left\">{left}</span> left \
<span class=\"mute\">(token_info, {asof})</span><br><span class=\"mute\">{mine}</span>",
            low = limit / 2,
            high = limit / 10 * 9,
            u = grouped(used),
            l = grouped(limit),
            left = grouped(b.left.unwrap_or(0)),
            asof = b.as_of.as_ref().map_or(String::new(), |w| escape(&w.ago)),
        ),
        _ => {
            format!("<span class=\"mute\">token_info has not told the budget yet</span><br>{mine}")
        }
    }
}

fn compare(out: &mut String, c: &Comparison) {
    out.push_str(
        "<table class=\"compare\"><thead><tr><th></th><th>hours (local)</th><th class=\"n\">rows</th>\
<th class=\"n\">hung up</th><th class=\"n\">hang-up share</th><th></th></tr></thead><tbody>",
    );
    period(out, "last-hour", "Last hour", &c.last_hour);
    period(out, "yesterday", "Same hour yesterday", &c.yesterday);
    let _ = write!(
        out,
        "<tr class=\"change\"><th>Change</th><td></td><td class=\"n\">{}</td><td></td><td class=\"n\">{}</td><td></td></tr>",
        c.rows_change.as_deref().unwrap_or("–"),
        c.share_change.as_deref().unwrap_or("–"),
    );
    out.push_str("</tbody></table>");
}

fn period(out: &mut String, class: &str, title: &str, p: &PeriodView) {
    let note = match &p.coverage {
        Coverage::Full => String::new(),
        Coverage::Since(t) => format!("since start, {}", escape(t)),
        Coverage::Missing => "no data since start".to_string(),
    };
    let (rows, hung, share) = if p.coverage == Coverage::Missing {
        ("–".to_string(), "–".to_string(), "–".to_string())
    } else {
        (
            grouped(p.counts.rows),
            grouped(p.counts.hung_up),
            p.share.clone().unwrap_or_else(|| "–".to_string()),
        )
    };
    let _ = write!(
        out,
        "<tr class=\"{class}\"><th>{title}</th><td>{range}</td><td class=\"n\">{rows}</td>\
<td class=\"n\">{hung}</td><td class=\"n\">{share}</td><td class=\"mute\">{note}</td></tr>",
        range = escape(&p.range),
    );
}

fn cycles(out: &mut String, rows: &[CycleRow]) {
    out.push_str("<h3 class=\"mute\">Recent cycles</h3>");
    if rows.is_empty() {
        out.push_str("<p class=\"mute no-cycles\">No cycle has run since start.</p>");
        return;
    }
    out.push_str(
        "<div class=\"cycles-wrap\"><table class=\"cycles\"><thead><tr><th>started</th><th>range asked (local)</th>\
<th class=\"n\">parts</th><th class=\"n\">new rows</th><th class=\"n\">duplicates</th>\
<th class=\"n\">requests</th><th class=\"n\">took</th><th>result</th></tr></thead><tbody>",
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{started}</td><td>{range}</td><td class=\"n\">{parts}</td>\
<td class=\"n\">{new}</td><td class=\"n\">{dup}</td><td class=\"n\">{req}</td><td class=\"n\">{took}</td>\
<td class=\"result\"{title}>{result}</td></tr>",
            class = if r.ok { "ok" } else { "failed" },
            started = escape(&r.started),
            range = escape(&r.range),
            parts = grouped(r.parts),
            new = grouped(r.new_rows),
            dup = grouped(r.duplicates),
            req = grouped(r.requests),
            took = escape(&r.took),
            title = if r.detail.is_empty() {
                String::new()
            } else {
                format!(" title=\"{}\"", escape(&r.detail))
            },
            result = escape(&r.result),
        );
    }
    out.push_str("</tbody></table></div>");
}
