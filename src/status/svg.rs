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
