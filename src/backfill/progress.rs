//! What a backfill tells people: [`Progress`] on stderr while it runs (a line redrawn
//! in place on a terminal, plain lines otherwise) and the [`report`] at the end, with
//! how to load the output into Prometheus.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use super::Summary;
use crate::ingest::ROW_CAP;

/// Progress on stderr: a line redrawn in place on a terminal, plain lines otherwise,
/// and only once a run has taken more than a moment.
pub(super) struct Progress {
    enabled: bool,
    tty: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
    total_secs: f64,
    pub(super) done_secs: f64,
    windows_total: u64,
}

impl Progress {
    pub(super) fn new(enabled: bool, total_secs: f64, windows_total: u64) -> Progress {
        Progress {
            enabled,
            tty: io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            drawn: false,
            total_secs,
            done_secs: 0.0,
            windows_total,
        }
    }

    pub(super) fn show(&mut self, op: &str, s: &Summary, windows_done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        let every = if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        if elapsed < Duration::from_secs(1) || self.last.is_some_and(|l| now - l < every) {
            return;
        }
        self.last = Some(now);
        let left = if self.done_secs > 0.0 && self.total_secs > self.done_secs {
            let rest = elapsed.as_secs_f64() * (self.total_secs - self.done_secs) / self.done_secs;
            format!(", about {} left", human(Duration::from_secs_f64(rest)))
        } else {
            String::new()
        };
        let line = format!(
            "backfill {op}: {windows_done}/{} windows, {} rows, {} requests, {} elapsed{left}",
            self.windows_total,
            s.rows,
            s.requests,
            human(elapsed)
        );
        let mut err = io::stderr().lock();
        let _ = if self.tty {
            self.drawn = true;
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    pub(super) fn done(&mut self) {
        if self.drawn {
            let _ = write!(io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The summary for people: what was written and how to load it.
pub fn report(s: &Summary) -> String {
    let rate = if s.elapsed.as_secs_f64() > 0.0 {
        s.rows as f64 / s.elapsed.as_secs_f64()
    } else {
        0.0
    };
    let mut out = format!(
        "backfill done: {} ({}), {} windows, {} rows counted, {} requests ({} answers at the {ROW_CAP}-row cap continued, {} halved, {} retries) in {} ({:.0} rows/s)\n",
        s.operations.join(", "),
        match (s.start, s.end) {
            (Some(a), Some(b)) => format!("{a} to {b}"),
            _ => "empty range".to_string(),
        },
        s.windows,
        s.rows,
        s.requests,
        s.continued,
        s.splits,
        s.retries,
        human(s.elapsed),
        rate
    );
    if s.duplicates > 0 || s.outside > 0 {
        out.push_str(&format!(
            "  {} copies seen in more than one answer were counted once; {} rows dated outside the range their query covers (the repeated hour of a clock change counts at its first pass) were left out\n",
            s.duplicates, s.outside
        ));
    }
    if s.capped > 0 {
        out.push_str(&format!(
            "  warning: {} one-second ranges returned the whole {ROW_CAP}-row cap; rows may be missing there\n",
            s.capped
        ));
    }
    let file = s.output.display();
    out.push_str(&format!(
        "wrote {file} ({})\n\
         load it into Prometheus (promtool holds the whole file in memory and reads it once per block: week-long blocks mean one pass per week):\n  \
         promtool tsdb create-blocks-from openmetrics --max-block-duration=168h {file} ./wolkvox-blocks\n\
         then move the directories in ./wolkvox-blocks into Prometheus's data directory (--storage.tsdb.path, e.g. /var/lib/prometheus/metrics2),\n\
         owned by the user Prometheus runs as; it picks them up within a minute or two, or at its next start.\n\
         Blocks older than --storage.tsdb.retention.time are deleted at once: raise it first if the range is older.\n",
        bytes(s.bytes)
    ));
    out
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
