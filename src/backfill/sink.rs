//! One operation's pass through its range as the fetch engine's [`Sink`]: [`OpRun`]
//! applies each answer row by row in time order and writes every window end once the
//! rows before it are in; [`BackfillSink`] adds the counts of the run, progress, and
//! the size of the next request.

use std::io::{self, Write};
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp};

use super::Summary;
use super::dates::{Windows, row_instant};
use super::openmetrics::Renderer;
use super::progress::Progress;
use super::span::{TARGET_ROWS, TARGET_ROWS_ORDERED};
use std::sync::Arc;

use crate::calls::{CallKey, CallRules, Calls};
use crate::config::{Limits, Operation};
use crate::fetch::{Sink, TakeError};
use crate::ingest::{Ingested, ROW_CAP, apply_rows, continuation, rows_of};
use crate::ledger::Ledger;
use crate::totals::Totals;
use crate::window::{self, Query, Range};
use crate::wolkvox::ApiError;
use crate::wolkvox::client::Attempt;
use crate::wolkvox::row::{RawRow, parse_date};

/// One operation's pass through its range.
pub(super) struct OpRun<'a> {
    op: &'a Operation,
    limits: Limits,
    bounds: &'a [f64],
    windows: Windows,
    totals: Totals,
    ledger: Ledger,
    calls: Calls,
    renderer: Renderer,
}

impl<'a> OpRun<'a> {
    /// A pass of `op` over `windows`, from empty totals and an empty ledger.
    pub(super) fn new(
        op: &'a Operation,
        limits: Limits,
        bounds: &'a [f64],
        windows: Windows,
        key: CallKey,
    ) -> OpRun<'a> {
        let rules = CallRules {
            key,
            self_service: op.calls.self_service.clone(),
        };
        OpRun {
            calls: Calls::new(Arc::new(rules)),
            op,
            limits,
            bounds,
            windows,
            totals: Totals::default(),
            ledger: Ledger::new(),
            renderer: Renderer::new(&op.name, bounds, windows),
        }
    }

    /// Writes the series known from the start: 0 at `from`.
    pub(super) fn start<W: Write>(&mut self, out: &mut [W]) -> io::Result<()> {
        self.renderer.start(out)
    }

    /// Window ends written so far.
    pub(super) fn windows_done(&self) -> u64 {
        self.renderer.windows_done()
    }

    /// Applies one answer to `q`: rows in time order, window by window, writing each
    /// window end once every row before it is in.
    fn take<W: Write>(
        &mut self,
        body: &[u8],
        q: &Query,
        out: &mut [W],
        summary: &mut Summary,
    ) -> Result<Ingested, TakeError<io::Error>> {
        let mut rows = rows_of(body).map_err(TakeError::Api)?;
        let answered = rows.len();
        let capped = answered >= ROW_CAP;
        let tz = &self.op.zone;
        // Each row's date read once: the cut, the check on it and the placement use it.
        let dates: Vec<Option<DateTime>> =
            rows.iter().map(|r| parse_date(r.date.as_str())).collect();
        let mut instants: Vec<Option<Timestamp>> =
            dates.iter().map(|d| row_instant(*d, q.range, tz)).collect();
        // What is complete once this answer is applied: window ends up to `through`.
        let mut through = q.range.end;
        let mut rest = None;
        if capped {
            match continuation(dates.iter().copied(), q, tz) {
                // Every kept row must lie before the cut, or its window would be
                // written before the rest's rows are in: a row at a wall time the zone
                // skips counts at the transition, which can be the cut itself.
                Some((kept, next))
                    if instants[..kept]
                        .iter()
                        .all(|t| t.is_none_or(|t| t < next.range.start)) =>
                {
                    rows.truncate(kept);
                    instants.truncate(kept);
                    through = next.range.start;
                    rest = Some(next);
                }
                _ => {
                    if let Some((a, b)) = window::bisect(q.range) {
                        return Ok(Ingested::Split(a, b));
                    }
                }
            }
        }
        let mut placed: Vec<(Timestamp, RawRow<'_>)> = Vec::with_capacity(rows.len());
        for (r, t) in rows.into_iter().zip(instants) {
            match t {
                Some(t) => placed.push((t, r)),
                None => summary.outside += 1,
            }
        }
        // Stable: copies of one row (same date) stay together in one window.
        placed.sort_by_key(|(t, _)| *t);
        let (instants, rows): (Vec<Timestamp>, Vec<RawRow<'_>>) = placed.into_iter().unzip();
        let mut batch = self.ledger.begin();
        let before = self.totals.duplicates;
        let mut new = 0;
        let mut i = 0;
        while i < rows.len() {
            let end = self.windows.end_of(instants[i]);
            let mut j = i + 1;
            while j < rows.len() && self.windows.end_of(instants[j]) == end {
                j += 1;
            }
            // Window ends before this group's window are complete: write them first.
            emit_through(
                &mut self.renderer,
                &mut self.calls,
                &mut self.totals,
                (self.op, self.bounds),
                end - SignedDuration::from_secs(1),
                out,
            )
            .map_err(TakeError::Sink)?;
            // One call per window keeps the multiset rule: a row's copies share its
            // date, hence its window.
            new += apply_rows(
                &rows[i..j],
                q,
                &mut batch,
                &mut self.totals,
                &mut self.calls,
                &self.limits,
                self.bounds,
            );
            i = j;
        }
        summary.rows += new as u64;
        summary.duplicates += self.totals.duplicates - before;
        debug_assert!(rest.is_none_or(|r: Query| r.range.start == through));
        Ok(match rest {
            Some(rest) => Ingested::Continue {
                rows: answered,
                kept: rows.len(),
                new,
                rest,
            },
            None => Ingested::Applied {
                rows: answered,
                new,
                capped,
            },
        })
    }

    /// Every row before `through` is in: writes the window ends up to it.
    fn commit<W: Write>(&mut self, through: Timestamp, out: &mut [W]) -> io::Result<()> {
        emit_through(
            &mut self.renderer,
            &mut self.calls,
            &mut self.totals,
            (self.op, self.bounds),
            through,
            out,
        )?;
        // Parts never overlap in time, but across a DST fold their wall-clock queries
        // do. `row_instant` already gives such a row to one part only; the ledger is
        // the second guard, and keeps only what a following query can still return.
        self.ledger
            .commit(window::wall_floor(through, &self.op.zone));

        Ok(())
    }
}

/// Writes every window end up to `t`, each once the calls the watermark has passed by
/// `close_after` at that end are closed, as the poller closes them at a commit. Every
/// row is seen once here, so a closed id need not be kept for late rows.
fn emit_through<W: Write>(
    renderer: &mut Renderer,
    calls: &mut Calls,
    totals: &mut Totals,
    (op, bounds): (&Operation, &[f64]),
    t: Timestamp,
    out: &mut [W],
) -> io::Result<()> {
    let close_after = SignedDuration::try_from(op.calls.close_after).unwrap_or(SignedDuration::MAX);
    while let Some(end) = renderer.next_end(t) {
        let before = window::wall_floor(end.saturating_sub(close_after).unwrap_or(end), &op.zone);
        calls.close(before, before, totals, bounds);
        renderer.emit_through(totals, end, out)?;
    }
    Ok(())
}

/// One operation's run as the engine's sink: answers into the run, progress on stderr,
/// and the next request sized from the traffic seen so far.
pub(super) struct BackfillSink<'r, 'a, W: Write> {
    run: &'r mut OpRun<'a>,
    out: &'r mut [W],
    summary: &'r mut Summary,
    progress: &'r mut Progress,
    windows_before: u64,
    /// Whether answers cut at the cap came in date order, so that one can be taken in
    /// part and continued rather than halved and asked again.
    ordered: bool,
}

impl<'r, 'a, W: Write> BackfillSink<'r, 'a, W> {
    /// `windows_before`: window ends the operations before this one wrote.
    pub(super) fn new(
        run: &'r mut OpRun<'a>,
        out: &'r mut [W],
        summary: &'r mut Summary,
        progress: &'r mut Progress,
        windows_before: u64,
    ) -> Self {
        BackfillSink {
            run,
            out,
            summary,
            progress,
            windows_before,
            ordered: false,
        }
    }

    fn show(&mut self) {
        let done = self.windows_before + self.run.renderer.windows_done();
        self.progress.show(&self.run.op.name, self.summary, done);
    }
}

impl<W: Write> Sink for BackfillSink<'_, '_, W> {
    type Error = io::Error;
    type Body = Vec<u8>;

    fn take(&mut self, body: &mut Vec<u8>, q: &Query) -> Result<Ingested, TakeError<io::Error>> {
        self.run.take(body, q, self.out, self.summary)
    }

    async fn commit(&mut self, through: Timestamp) -> io::Result<()> {
        self.run.commit(through, self.out)
    }

    fn requested(&mut self, _attempt: &Attempt<()>) {
        self.summary.requests += 1;
    }

    fn failed(&mut self, _error: &ApiError, _q: &Query, retry_in: Option<Duration>) {
        if retry_in.is_some() {
            self.summary.retries += 1;
            self.show();
        }
    }

    /// How long a query may be, learned from the answers, so that a busy range is not
    /// split from 31 days down every time.
    fn next_span(&mut self, q: &Query, taken: &Ingested) -> Option<i64> {
        let target = if self.ordered {
            TARGET_ROWS_ORDERED
        } else {
            TARGET_ROWS
        };
        let recent = self.run.renderer.recent();
        let span = match taken {
            Ingested::Split(a, _) => {
                self.summary.splits += 1;
                self.ordered = false;
                a.duration().as_secs()
            }
            Ingested::Continue { rest, kept, .. } => {
                self.summary.continued += 1;
                self.ordered = true;
                let done = Range::new(q.range.start, rest.range.start);
                self.progress.done_secs += done.duration().as_secs_f64();
                recent.next_span(done, *kept, TARGET_ROWS_ORDERED)
            }
            Ingested::Applied { rows, capped, .. } => {
                self.summary.capped += u64::from(*capped);
                self.progress.done_secs += q.range.duration().as_secs_f64();
                recent.next_span(q.range, *rows, target)
            }
        };
        self.show();
        Some(span)
    }
}
