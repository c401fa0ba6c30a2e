//! Logs as Prometheus exporters write them: logfmt by default (`ts=… level=info
//! msg="…" key=value`), or JSON. To stderr.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, DefaultFields, Writer};
use tracing_subscriber::fmt::{
    FmtContext, FormatEvent, FormatFields, MakeWriter, SubscriberBuilder,
};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Logfmt,
    Json,
}

impl Level {
    fn directive(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Installs the log for the process: to stderr, at `level`, in `format`.
pub fn init(level: Level, format: Format) {
    let builder = builder(level, std::io::stderr);
    let _ = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        Format::Logfmt => builder.event_format(Logfmt).try_init(),
    };
}

/// The log [`init`] installs, written to `writer` instead of stderr and not installed:
/// the tests run the exporter in-process with this as its threads' default, so each
/// run's log can be read on its own.
pub fn dispatch<W>(level: Level, format: Format, writer: W) -> tracing::Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = builder(level, writer);
    match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .into(),
        Format::Logfmt => builder.event_format(Logfmt).finish().into(),
    }
}

fn builder<W>(
    level: Level,
    writer: W,
) -> SubscriberBuilder<DefaultFields, format::Format, EnvFilter, W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Our own events at the chosen level; dependencies only when they warn.
    let filter = EnvFilter::new(format!("warn,wolkvox_exporter={}", level.directive()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
}

struct Logfmt;

/// Quotes a logfmt value when it needs it.
fn value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Fields {
    msg: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, v: &str) {
        if field.name() == "message" {
            self.msg = v.to_string();
        } else {
            self.rest.push(' ');
            self.rest.push_str(field.name());
            self.rest.push('=');
            value(&mut self.rest, v);
        }
    }

    fn record_debug(&mut self, field: &Field, v: &dyn fmt::Debug) {
        self.record_str(field, &format!("{v:?}"));
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut f = Fields {
            msg: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        let mut line = String::new();
        line.push_str("ts=");
        line.push_str(
            &jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        );
        line.push_str(" level=");
        line.push_str(&event.metadata().level().as_str().to_ascii_lowercase());
        line.push_str(" msg=");
        value(&mut line, &f.msg);
        line.push_str(&f.rest);
        writeln!(w, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let mut s = String::new();
        value(&mut s, "plain");
        s.push(' ');
        value(&mut s, "two words \"q\"\nx");
        assert_eq!(s, "plain \"two words \\\"q\\\"\\nx\"");
    }
}
