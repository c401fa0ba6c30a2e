//! The status page's two charts as inline SVG, drawn from [`Charts`]: rows per window
//! (bars) and the hang-up share per window (a line, broken where a window has no rows).
//! Pure text, no script: hovering a bar or a point shows its `<title>`.

use std::fmt::Write;

use jiff::Timestamp;

use super::history::Window;
use super::page::{Charts, grouped, percent};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;
/// Labels along the time axis, ends included.
const TICKS: i64 = 5;

fn plot_w() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_h() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `v` (and at least 1).
pub fn nice_ceiling(v: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for m in [1, 2, 5] {
            let c = unit.saturating_mul(m);
            if c >= v || c == u64::MAX {
                return c;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// The share axis' top: the next 10 % at or above `max`, from 10 % to 100 %.
pub fn share_ceiling(max: f64) -> f64 {
    // Less a hair, so that 0.3 (0.30000000000000004 times ten) stays 30 %.
    ((max * 10.0 - 1e-9).ceil() / 10.0).clamp(0.1, 1.0)
}

struct Frame<'a> {
    c: &'a Charts,
}

impl Frame<'_> {
    fn span(&self) -> f64 {
        (self.c.to.as_second() - self.c.from.as_second()).max(1) as f64
    }

    /// The x of an instant, clamped to the plot.
    fn x(&self, t: i64) -> f64 {
        let f = (t - self.c.from.as_second()) as f64 / self.span();
        LEFT + f.clamp(0.0, 1.0) * plot_w()
    }

    fn label(&self, t: Timestamp) -> String {
        let fmt = if self.span() < 600.0 {
            "%H:%M:%S"
        } else {
            "%H:%M"
        };
        self.c.tz.to_datetime(t).strftime(fmt).to_string()
    }

    /// The frame: axes, the two y labels, the time labels.
    fn axes(&self, out: &mut String, top_label: &str) {
        let (x0, x1, y0, y1) = (LEFT, LEFT + plot_w(), TOP, TOP + plot_h());
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{x0:.1}\" y1=\"{y1:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\"/>\
<line class=\"grid\" x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y0:.1}\"/>\
<text class=\"y\" x=\"{lx:.1}\" y=\"{ty:.1}\">{top_label}</text>\
<text class=\"y\" x=\"{lx:.1}\" y=\"{by:.1}\">0</text>",
            lx = LEFT - 6.0,
            ty = y0 + 4.0,
            by = y1,
        );
        let (from, to) = (self.c.from.as_second(), self.c.to.as_second());
        for i in 0..TICKS {
            let t = from + (to - from) * i / (TICKS - 1);
            let anchor = match i {
                0 => "start",
                i if i == TICKS - 1 => "end",
                _ => "middle",
            };
            let at = Timestamp::from_second(t).unwrap_or(self.c.from);
            let _ = write!(
                out,
                "<text class=\"x\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                self.x(t),
                HEIGHT - 6.0,
                self.label(at),
            );
        }
    }

    fn empty(&self, out: &mut String) {
        let _ = write!(
            out,
            "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no windows yet</text>",
            LEFT + plot_w() / 2.0,
            TOP + plot_h() / 2.0,
        );
    }

    /// `[start, end)` of a window.
    fn bounds(&self, w: &Window) -> (i64, i64) {
        let end = w.end.as_second();
        (end - self.c.interval, end)
    }
}

fn open(out: &mut String, class: &str, label: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart {class}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{label}\">"
    );
}

/// Rows per window: one bar per window, lighter where a commit was spread.
pub fn rows(c: &Charts) -> String {
    let f = Frame { c };
    let mut out = String::new();
    open(&mut out, "chart-rows", "Rows per window");
    let max = c.windows.iter().map(|w| w.counts.rows).max().unwrap_or(0);
    let top = nice_ceiling(max);
    f.axes(&mut out, &grouped(top));
    if c.windows.is_empty() {
        f.empty(&mut out);
    }
    for w in &c.windows {
        let (start, end) = f.bounds(w);
        let (x0, x1) = (f.x(start), f.x(end));
        let h = w.counts.rows as f64 / top as f64 * plot_h();
        let class = if w.spread { "bar spread" } else { "bar" };
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{} · {} rows{}</title></rect>",
            TOP + plot_h() - h,
            (x1 - x0).max(1.0),
            f.label(w.end),
            grouped(w.counts.rows),
            if w.spread {
                " (spread over a catch-up)"
            } else {
                ""
            },
        );
    }
    out.push_str("</svg>");
    out
}

/// Each window's hang-up share; for a run of windows spread from one catch-up, the
/// run's own (rounding a commit's hung-up rows into each window would draw a saw).
pub fn shares(windows: &[Window]) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(windows.len());
    let mut i = 0;
    while let Some(w) = windows.get(i) {
        if !w.spread {
            out.push(w.counts.share());
            i += 1;
            continue;
        }
        let run = windows[i..].iter().take_while(|x| x.spread).count();
        let (rows, hung) = windows[i..i + run].iter().fold((0u64, 0u64), |(r, h), x| {
            (r + x.counts.rows, h + x.counts.hung_up)
        });
        let share = (rows > 0).then(|| hung as f64 / rows as f64);
        for x in &windows[i..i + run] {
            out.push(share.filter(|_| x.counts.rows > 0));
        }
        i += run;
    }
    out
}

/// The hang-up share per window: a line through the windows with rows, a dot where a
/// window with rows stands alone.
pub fn share(c: &Charts) -> String {
    let f = Frame { c };
    let mut out = String::new();
    open(&mut out, "chart-share", "Hang-up share per window");
    let shares = shares(&c.windows);
    let max = shares.iter().flatten().fold(0.0, |a: f64, b| a.max(*b));
    let top = share_ceiling(max);
    f.axes(&mut out, &format!("{:.0} %", top * 100.0));
    if c.windows.is_empty() {
        f.empty(&mut out);
    }
    let y = |s: f64| TOP + plot_h() - s / top * plot_h();
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    for (w, share) in c.windows.iter().zip(&shares) {
        match share {
            Some(s) => {
                let s = *s;
                let (start, end) = f.bounds(w);
                run.push(((f.x(start) + f.x(end)) / 2.0, y(s)));
            }
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    for r in &runs {
        if let [(x, y)] = r.as_slice() {
            let _ = write!(
                out,
                "<circle class=\"point\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"/>"
            );
        } else {
            out.push_str("<polyline class=\"line\" points=\"");
            for (i, (x, y)) in r.iter().enumerate() {
                let sep = if i == 0 { "" } else { " " };
                let _ = write!(out, "{sep}{x:.1},{y:.1}");
            }
            out.push_str("\"/>");
        }
    }
    // Titles on invisible targets, one per window with rows.
    for (w, share) in c.windows.iter().zip(&shares) {
        if let Some(s) = *share {
            let (start, end) = f.bounds(w);
            let what = if w.spread {
                format!("{} hung up over a catch-up", percent(s))
            } else {
                format!(
                    "{} of {} rows hung up ({})",
                    grouped(w.counts.hung_up),
                    grouped(w.counts.rows),
                    percent(s)
                )
            };
            let _ = write!(
                out,
                "<circle class=\"hit\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"><title>{} · {what}</title></circle>",
                (f.x(start) + f.x(end)) / 2.0,
                y(s),
                f.label(w.end),
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    use super::*;
    use crate::status::Counts;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn c(rows: u64, hung_up: u64) -> Counts {
        Counts { rows, hung_up }
    }

    fn window(end: &str, rows: u64, hung_up: u64, spread: bool) -> Window {
        Window {
            end: ts(end),
            counts: c(rows, hung_up),
            spread,
        }
    }

    /// Two 5-minute windows from 12:00 UTC: 10 rows with 2 hung up, then none.
    fn two_windows() -> Charts {
        Charts {
            from: ts("2026-04-10T12:00:00Z"),
            to: ts("2026-04-10T12:10:00Z"),
            interval: 300,
            windows: vec![
                window("2026-04-10T12:05:00Z", 10, 2, false),
                window("2026-04-10T12:10:00Z", 0, 0, false),
            ],
            caption: "since start, 12:00".into(),
            tz: TimeZone::UTC,
        }
    }

    /// The frame both charts share: plot from x 52 to 628, y 10 to 146.
    const AXES: &str = "<line class=\"axis\" x1=\"52.0\" y1=\"146.0\" x2=\"628.0\" y2=\"146.0\"/>\
    <line class=\"grid\" x1=\"52.0\" y1=\"10.0\" x2=\"628.0\" y2=\"10.0\"/>";
    const TICKS: &str = "<text class=\"x\" x=\"52.0\" y=\"164.0\" text-anchor=\"start\">12:00</text>\
    <text class=\"x\" x=\"196.0\" y=\"164.0\" text-anchor=\"middle\">12:02</text>\
    <text class=\"x\" x=\"340.0\" y=\"164.0\" text-anchor=\"middle\">12:05</text>\
    <text class=\"x\" x=\"484.0\" y=\"164.0\" text-anchor=\"middle\">12:07</text>\
    <text class=\"x\" x=\"628.0\" y=\"164.0\" text-anchor=\"end\">12:10</text>";

    #[test]
    fn the_rows_chart_exactly() {
        let expected = format!(
            "<svg class=\"chart chart-rows\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 640 170\" role=\"img\" aria-label=\"Rows per window\">\
    {AXES}<text class=\"y\" x=\"46.0\" y=\"14.0\">10</text><text class=\"y\" x=\"46.0\" y=\"146.0\">0</text>{TICKS}\
    <rect class=\"bar\" x=\"52.0\" y=\"10.0\" width=\"288.0\" height=\"136.0\"><title>12:05 · 10 rows</title></rect>\
    <rect class=\"bar\" x=\"340.0\" y=\"146.0\" width=\"288.0\" height=\"0.0\"><title>12:10 · 0 rows</title></rect></svg>"
        );
        assert_eq!(rows(&two_windows()), expected);
    }

    #[test]
    fn the_share_chart_exactly() {
        let expected = format!(
            "<svg class=\"chart chart-share\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 640 170\" role=\"img\" aria-label=\"Hang-up share per window\">\
    {AXES}<text class=\"y\" x=\"46.0\" y=\"14.0\">20 %</text><text class=\"y\" x=\"46.0\" y=\"146.0\">0</text>{TICKS}\
    <circle class=\"point\" cx=\"196.0\" cy=\"10.0\" r=\"2.5\"/>\
    <circle class=\"hit\" cx=\"196.0\" cy=\"10.0\" r=\"4\"><title>12:05 · 2 of 10 rows hung up (20.0 %)</title></circle></svg>"
        );
        assert_eq!(share(&two_windows()), expected);
    }

    #[test]
    fn the_share_line_breaks_at_windows_without_rows() {
        let mut ch = two_windows();
        ch.to = ts("2026-04-10T12:20:00Z");
        ch.windows = vec![
            window("2026-04-10T12:05:00Z", 10, 5, false),
            window("2026-04-10T12:10:00Z", 10, 0, false),
            window("2026-04-10T12:15:00Z", 0, 0, false),
            window("2026-04-10T12:20:00Z", 4, 1, false),
        ];
        let out = share(&ch);
        // Top 50 %: x of window middles 124, 268, 556; y 10 (50 %), 146 (0 %), 78 (25 %).
        assert!(
            out.contains("<polyline class=\"line\" points=\"124.0,10.0 268.0,146.0\"/>"),
            "{out}"
        );
        assert!(out.contains("<circle class=\"point\" cx=\"556.0\" cy=\"78.0\" r=\"2.5\"/>"));
        assert_eq!(out.matches("<polyline").count(), 1);
        assert_eq!(out.matches("class=\"point\"").count(), 1);
        assert_eq!(out.matches("class=\"hit\"").count(), 3);
        // Spans under 10 minutes label seconds.
        ch.to = ts("2026-04-10T12:05:00Z");
        ch.windows.truncate(1);
        assert!(rows(&ch).contains(">12:01:15</text>"));
    }

    #[test]
    fn spread_windows_are_marked_and_share_their_run() {
        let windows = vec![
            window("2026-04-10T12:05:00Z", 10, 2, false),
            window("2026-04-10T12:10:00Z", 11, 1, true),
            window("2026-04-10T12:15:00Z", 9, 2, true),
            window("2026-04-10T12:20:00Z", 0, 0, true),
            window("2026-04-10T12:25:00Z", 0, 0, false),
            window("2026-04-10T12:30:00Z", 5, 5, true),
        ];
        assert_eq!(
            shares(&windows),
            vec![Some(0.2), Some(0.15), Some(0.15), None, None, Some(1.0)]
        );
        let mut ch = two_windows();
        ch.to = ts("2026-04-10T12:30:00Z");
        ch.windows = windows;
        let rows = rows(&ch);
        assert_eq!(rows.matches("<rect class=\"bar spread\"").count(), 4);
        assert_eq!(rows.matches("<rect class=\"bar\"").count(), 2);
        assert!(rows.contains("<title>12:10 · 11 rows (spread over a catch-up)</title>"));
        assert!(share(&ch).contains("<title>12:10 · 15.0 % hung up over a catch-up</title>"));
    }

    #[test]
    fn empty_charts_say_so() {
        let mut ch = two_windows();
        ch.windows.clear();
        for out in [rows(&ch), share(&ch)] {
            assert_eq!(out.matches("no windows yet").count(), 1, "{out}");
            assert!(!out.contains("<rect") && !out.contains("<polyline"));
        }
    }

    #[test]
    fn axis_ceilings() {
        let cases = [
            (0, 1),
            (1, 1),
            (3, 5),
            (7, 10),
            (10, 10),
            (11, 20),
            (150, 200),
            (501, 1000),
            (u64::MAX, u64::MAX),
        ];
        for (v, top) in cases {
            assert_eq!(nice_ceiling(v), top, "{v}");
        }
        for (v, top) in [
            (0.0, 0.1),
            (0.05, 0.1),
            (0.25, 0.3),
            (0.3, 0.3),
            (0.95, 1.0),
            (1.0, 1.0),
        ] {
            assert_eq!(share_ceiling(v), top, "{v}");
        }
    }
}
