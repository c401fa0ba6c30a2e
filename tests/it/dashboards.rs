//! Every query of every dashboard, run against a real Prometheus the way Grafana runs
//! them: dashboards/check.py lists the template variables and panel queries as written;
//! query variables are filled with real label values from that Prometheus (`All`, the
//! busiest value, the two busiest), the built-ins (`$__interval`, `$__rate_interval`,
//! `$__range`) as Grafana computes them for the given scrape interval. Used by
//! `prometheus_e2e` (the demo scraped every second) and `stack` (demo/stack.sh).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use jiff::Timestamp;
use serde_json::Value;

use crate::prom::{Prometheus, assert_success};

/// How the Grafana in front of that Prometheus would fill the built-ins.
#[derive(Clone, Copy, Debug)]
pub struct Grafana {
    /// The data source's scrape interval (Prometheus's), seconds.
    pub scrape_secs: u64,
    /// The dashboard time range, seconds: 3600 is Grafana's "Last 1 hour".
    pub range_secs: u64,
    /// Grafana's `$__interval` without a panel minimum: the range divided by the data
    /// points (about the panel width), rounded by Grafana's table.
    pub auto_interval_secs: u64,
}

pub struct Var {
    name: String,
    kind: String,
    query: String,
    multi: bool,
    include_all: bool,
    all_value: Option<String>,
    current: Option<String>,
}

pub struct Target {
    ref_id: String,
    expr: String,
}

pub struct Panel {
    title: String,
    /// The panel's "Min interval", e.g. `$window`.
    interval: Option<String>,
    pub targets: Vec<Target>,
}

pub struct Dashboard {
    pub file: String,
    vars: Vec<Var>,
    pub panels: Vec<Panel>,
}

/// One run of a dashboard query.
pub struct Ran {
    pub what: String,
    pub expr: String,
    pub series: usize,
    /// A variable's `label_values` rather than a panel query.
    pub variable: bool,
}

/// What a pass over the dashboards found.
#[derive(Debug, PartialEq, Eq)]
pub struct Totals {
    pub dashboards: usize,
    pub panels: usize,
    /// Panel queries as written.
    pub queries: usize,
    /// Panel query runs (once per variable choice) and `label_values` runs.
    pub query_runs: usize,
    pub variable_runs: usize,
    /// Runs without a single series.
    pub empty: usize,
}

impl Totals {
    pub fn of(dashes: &[Dashboard], ran: &[Ran]) -> Totals {
        let variable_runs = ran.iter().filter(|r| r.variable).count();
        Totals {
            dashboards: dashes.len(),
            panels: dashes.iter().map(|d| d.panels.len()).sum(),
            queries: dashes
                .iter()
                .flat_map(|d| &d.panels)
                .map(|p| p.targets.len())
                .sum(),
            query_runs: ran.len() - variable_runs,
            variable_runs,
            empty: ran.iter().filter(|r| r.series == 0).count(),
        }
    }
}

/// The runs without data, one line each.
pub fn empty(ran: &[Ran]) -> Vec<String> {
    ran.iter()
        .filter(|r| r.series == 0)
        .map(|r| format!("{}: empty: {}", r.what, r.expr))
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dashboards' variables and queries, as dashboards/check.py finds them.
pub fn dashboards() -> Vec<Dashboard> {
    let script = root().join("dashboards").join("check.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--list-queries")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 {}: {e} (install python3)",
                script.display()
            )
        });
    assert_success(
        &format!("python3 {} --list-queries", script.display()),
        &out,
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("check.py --list-queries: JSON");
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    v["dashboards"]
        .as_array()
        .expect("dashboards")
        .iter()
        .map(|d| Dashboard {
            file: s(&d["file"]),
            vars: d["variables"]
                .as_array()
                .expect("variables")
                .iter()
                .map(|v| Var {
                    name: s(&v["name"]),
                    kind: s(&v["type"]),
                    query: s(&v["query"]),
                    multi: v["multi"].as_bool().unwrap_or(false),
                    include_all: v["includeAll"].as_bool().unwrap_or(false),
                    all_value: v["allValue"].as_str().map(str::to_string),
                    current: v["current"].as_str().map(str::to_string),
                })
                .collect(),
            panels: d["panels"]
                .as_array()
                .expect("panels")
                .iter()
                .map(|p| Panel {
                    title: s(&p["title"]),
                    interval: p["interval"].as_str().map(str::to_string),
                    targets: p["targets"]
                        .as_array()
                        .expect("targets")
                        .iter()
                        .map(|t| Target {
                            ref_id: s(&t["refId"]),
                            expr: s(&t["expr"]),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// Replaces `$name` and `${name}` (Grafana's forms; `[[name]]` is deprecated and unused)
/// Replaces `$name` and `${name}` (Grafana's forms; `[[name]]` is deprecated and unused)
/// from `values`. An unknown variable is left as it is, so the query fails visibly.
fn interpolate(expr: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (braced[..end].split(':').next().unwrap_or(""), end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match values.get(name) {
            Some(v) if len > 0 => {
                out.push_str(v);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Grafana's `prometheusSpecialRegexEscape`, for values of multi-value or "All" variables
/// (doubled backslashes: the regex sits inside a PromQL string).
fn regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Grafana's `prometheusRegularEscape`, for single-value variables.
fn plain_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\\\'")
}

/// How the multi-value variables are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// "All": the variable's allValue (`.*`).
    All,
    /// One value each: the busiest (see [`Run::options`]).
    One,
    /// The two busiest values, which Grafana renders as `(a|b)`.
    Two,
}

fn duration_secs(s: &str) -> u64 {
    humantime_secs(s).unwrap_or_else(|| panic!("not a duration: {s:?}"))
}

/// `5m`, `1h`, `30s`: the forms the dashboards' interval options use.
fn humantime_secs(s: &str) -> Option<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return None,
    })
}

struct Run<'a> {
    prom: &'a Prometheus,
    grafana: Grafana,
}

impl Run<'_> {
    /// A query variable's values, as Grafana asks for `label_values(selector, label)`:
    /// the label's values among the selector's series over the dashboard range. Ordered
    /// busiest first (the most increase over the last 15 minutes, then by name): a test
    /// picking "one routing point" then gets one that has calls in a short window even
    /// at night, where Grafana would show the first one alphabetically.
    async fn options(&self, selector: &str, label: &str) -> Vec<String> {
        let now = Timestamp::now().as_second();
        let data = self
            .prom
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[
                    ("match[]", selector.to_string()),
                    ("start", (now - self.grafana.range_secs as i64).to_string()),
                    ("end", now.to_string()),
                ],
            )
            .await;
        let mut values: Vec<String> = data
            .as_array()
            .expect("label values")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let mut busy: BTreeMap<String, f64> = BTreeMap::new();
        for (labels, v) in self
            .prom
            .query(
                &format!("sum by ({label}) (increase({selector}[15m]))"),
                None,
            )
            .await
        {
            if let Some(l) = labels.get(label) {
                busy.insert(l.clone(), v);
            }
        }
        values.sort_by(|a, b| {
            let (x, y) = (busy.get(a).unwrap_or(&0.0), busy.get(b).unwrap_or(&0.0));
            y.total_cmp(x).then(a.cmp(b))
        });
        values
    }

    /// Every variable of `d` resolved in order (later ones use earlier ones), as Grafana
    /// renders each into a query; or None when `choice` would repeat [`Choice::One`].
    async fn variables(
        &self,
        d: &Dashboard,
        choice: Choice,
        ran: &mut Vec<Ran>,
    ) -> Option<BTreeMap<String, String>> {
        let mut values = BTreeMap::new();
        let mut differs = choice == Choice::One;
        for v in &d.vars {
            match v.kind.as_str() {
                // Picks the data source; never part of an expression.
                "datasource" => {}
                "custom" | "interval" | "constant" | "textbox" => {
                    let current = v.current.clone().unwrap_or_else(|| {
                        v.query.split(',').next().unwrap_or("").trim().to_string()
                    });
                    values.insert(v.name.clone(), current);
                }
                "query" => {
                    let inner = v
                        .query
                        .trim()
                        .strip_prefix("label_values(")
                        .and_then(|q| q.strip_suffix(')'))
                        .unwrap_or_else(|| {
                            panic!("{} ${}: not label_values(selector, label)", d.file, v.name)
                        });
                    let (selector, label) = inner.rsplit_once(',').unwrap_or_else(|| {
                        panic!("{} ${}: label_values needs a selector", d.file, v.name)
                    });
                    let selector = interpolate(selector.trim(), &values);
                    let options = self.options(&selector, label.trim()).await;
                    ran.push(Ran {
                        what: format!("{} variable ${} ({choice:?})", d.file, v.name),
                        expr: format!("label_values({selector}, {})", label.trim()),
                        series: options.len(),
                        variable: true,
                    });
                    if options.is_empty() {
                        // Not scraped yet, or a broken variable: the caller waits, then fails.
                        return None;
                    }
                    let multi = v.multi || v.include_all;
                    let rendered = match choice {
                        Choice::All if v.include_all => {
                            differs = true;
                            v.all_value.clone().unwrap_or_else(|| {
                                let all: Vec<String> =
                                    options.iter().map(|o| regex_escape(o)).collect();
                                format!("({})", all.join("|"))
                            })
                        }
                        Choice::Two if v.multi && options.len() >= 2 => {
                            differs = true;
                            format!(
                                "({}|{})",
                                regex_escape(&options[0]),
                                regex_escape(&options[1])
                            )
                        }
                        _ if multi => regex_escape(&options[0]),
                        _ => plain_escape(&options[0]),
                    };
                    values.insert(v.name.clone(), rendered);
                }
                other => panic!("{} ${}: variable type {other} not handled", d.file, v.name),
            }
        }
        differs.then_some(values)
    }
}

/// Grafana's built-ins for one panel: `$__interval` is the auto interval raised to the
/// panel's "Min interval"; `$__rate_interval` is max(`$__interval` + scrape interval,
/// 4 x scrape interval), with the data source's scrape interval set to Prometheus's.
fn builtins(
    g: Grafana,
    panel: &Panel,
    vars: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let min = panel
        .interval
        .as_deref()
        .map(|i| duration_secs(&interpolate(i, vars)))
        .unwrap_or(0);
    let interval = g.auto_interval_secs.max(min).max(g.scrape_secs);
    let rate = (interval + g.scrape_secs).max(4 * g.scrape_secs);
    let mut b = vars.clone();
    b.insert("__interval".into(), format!("{interval}s"));
    b.insert("__interval_ms".into(), (interval * 1000).to_string());
    b.insert("__rate_interval".into(), format!("{rate}s"));
    let range = g.range_secs;
    b.insert("__range".into(), format!("{range}s"));
    b.insert("__range_s".into(), range.to_string());
    b.insert("__range_ms".into(), (range * 1000).to_string());
    b
}

/// Runs every query of every dashboard once per variable choice; any API error panics.
pub async fn run_dashboards(prom: &Prometheus, grafana: Grafana, dashes: &[Dashboard]) -> Vec<Ran> {
    let run = Run { prom, grafana };
    let mut out = Vec::new();
    for d in dashes {
        for choice in [Choice::All, Choice::One, Choice::Two] {
            let Some(vars) = run.variables(d, choice, &mut out).await else {
                continue;
            };
            for p in &d.panels {
                let values = builtins(grafana, p, &vars);
                for t in &p.targets {
                    let expr = interpolate(&t.expr, &values);
                    assert!(
                        !expr.contains('$'),
                        "{} {:?} {}: a variable is left after interpolation: {expr}",
                        d.file,
                        p.title,
                        t.ref_id
                    );
                    let series = prom.query(&expr, None).await.len();
                    out.push(Ran {
                        what: format!("{} / {} / {} ({choice:?})", d.file, p.title, t.ref_id),
                        expr,
                        series,
                        variable: false,
                    });
                }
            }
        }
    }
    out
}
