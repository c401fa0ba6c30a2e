//! Everything `/metrics` shows, and the only way into it: [`Metrics`] holds the
//! registry and renders the page. Business totals live in plain [`Totals`] values (one
//! per operation), which a cycle updates on a copy and swaps in whole when it commits,
//! and which save and restore as data; [`BusinessCollector`] (`business.rs`) writes
//! them as text at scrape time. The exporter's own series are ordinary `prometheus`
//! metrics in [`ExporterMetrics`] (`exporter.rs`), changed only through
//! [`OpMetrics`]. `text.rs` holds the text-format pieces both writers (this one and
//! `backfill`'s OpenMetrics) share. The rest of the code never touches the
//! `prometheus` crate directly.
//!
//! [`Totals`]: crate::totals::Totals

mod business;
mod calls;
mod exporter;
#[cfg(test)]
mod tests;
pub mod text;

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::proto::MetricFamily;
use prometheus::{Registry, TextEncoder};

pub use business::{BusinessCollector, FAMILIES, SharedTotals};
pub use calls::CALL_FAMILIES;
pub use exporter::{Counters, ExporterMetrics, OpMetrics};

/// The registry and everything in it.
pub struct Metrics {
    /// The exporter's own series.
    registry: Registry,
    /// The series of each operation are resolved from it: [`ExporterMetrics::operation`].
    pub exporter: ExporterMetrics,
    /// The business series, rendered beside the registry rather than through it: at
    /// tens of thousands of series the `prometheus` encoder takes over 50 ms a scrape.
    business: BusinessCollector,
    /// The length of the last render, to size the next one's buffer.
    last_len: AtomicUsize,
}

impl Metrics {
    /// Registers every series, the standard `process_*` ones included; `ops` are the
    /// operations with their totals.
    pub fn new(
        bounds: Vec<f64>,
        ops: Vec<(String, SharedTotals)>,
    ) -> Result<Metrics, prometheus::Error> {
        let m = Metrics::without_process_series(bounds, ops)?;
        // CPU, memory, open files and start time of this process, read from /proc at
        // each scrape, as every Prometheus exporter shows them (Linux only: the
        // collector exists only there).
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// Every series but `process_*`, which [`Metrics::new`] adds. The test that pins
    /// the text byte for byte uses this alone: process values move between renders.
    fn without_process_series(
        bounds: Vec<f64>,
        ops: Vec<(String, SharedTotals)>,
    ) -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let exporter = ExporterMetrics::register(&r)?;
        for (name, _) in &ops {
            // Resolving an operation's series creates them, at 0.
            exporter.operation(name);
        }
        Ok(Metrics {
            registry: r,
            exporter,
            business: BusinessCollector::new(bounds, ops),
            last_len: AtomicUsize::new(0),
        })
    }

    /// Adds (or replaces) an operation: its series at 0 until its poller restores them.
    pub fn insert_operation(&self, name: &str, totals: SharedTotals) -> OpMetrics {
        self.business.insert(name, totals);
        self.exporter.operation(name)
    }

    /// Removes an operation that is no longer configured, and every series of it.
    pub fn remove_operation(&self, m: &OpMetrics) {
        self.business.remove(m.name());
        self.exporter.forget(m);
    }

    /// The text exposition format, version 0.0.4: the registry's families through the
    /// `prometheus` encoder, the business families written directly (see
    /// [`BusinessCollector::text_families`]), all in name order as `Registry::gather`
    /// would give them.
    pub fn render(&self) -> String {
        let exporter = self.registry.gather();
        // One buffer, sized from the last render: the text runs to megabytes, and
        // growing it by doubling (or joining parts) costs more than writing it.
        let mut out = String::with_capacity(self.last_len.load(Ordering::Relaxed) + 4096);
        let mut pending = exporter.iter().peekable();
        let encode = |mf: &MetricFamily, out: &mut String| {
            // Encoding to memory only fails on invalid names, which are all fixed here.
            if let Err(e) = TextEncoder::new().encode_utf8(std::slice::from_ref(mf), out) {
                tracing::error!(error = %e, "cannot render metrics");
            }
        };
        self.business.with_snapshot(|s| {
            for name in BusinessCollector::family_names() {
                while let Some(mf) = pending.next_if(|mf| mf.name() < name) {
                    encode(mf, &mut out);
                }
                self.business.write_family(s, name, &mut out);
            }
        });
        for mf in pending {
            encode(mf, &mut out);
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
        out
    }
}
