//! A cycle's answers into its poller, committed part by part.

use super::*;

/// A cycle's view of its poller: answers go into a working copy of the totals (which
/// `/metrics` reads) and straight into the ledger and the calls, which journal them;
/// each commit saves them and makes them current. A cycle that ends before its last
/// answers are committed (a failed part, a failed save, shutdown) undoes them: a
/// failed part changes nothing.
pub(super) struct CycleSink<'p> {
    poller: &'p mut Poller,
    totals: Totals,
}

impl<'p> CycleSink<'p> {
    pub(super) fn new(poller: &'p mut Poller) -> CycleSink<'p> {
        let totals = (*read_totals(&poller.totals)).clone();
        CycleSink { poller, totals }
    }
}

impl Drop for CycleSink<'_> {
    fn drop(&mut self) {
        self.poller.ledger.roll_back();
        self.poller.calls.roll_back();
    }
}

impl Sink for CycleSink<'_> {
    type Error = CycleError;

    type Body = Decoder;

    fn take(&mut self, body: &mut Decoder, q: &Query) -> Result<Ingested, TakeError<CycleError>> {
        let p = &mut *self.poller;
        let answer = body.finish().map_err(TakeError::Api)?;
        let taken = ingest_answer(
            answer,
            q,
            &p.op.zone,
            &mut p.ledger.begin(),
            &mut self.totals,
            &mut p.calls,
            &p.limits,
            &p.bounds,
        );
        match taken {
            Ingested::Split(..) => {
                p.metrics.window_split();
                tracing::debug!(operation = %p.op.name, "answer at the row cap; splitting its range");
            }
            Ingested::Continue { kept, .. } => {
                p.metrics.window_split();
                tracing::debug!(operation = %p.op.name, kept, "answer at the row cap; asking again from its last second");
            }
            Ingested::Applied { capped: true, .. } => {
                tracing::warn!(operation = %p.op.name, "one second of the report holds the whole row cap; some rows may be missing");
            }
            Ingested::Applied { .. } => {}
        }
        Ok(taken)
    }

    async fn commit(&mut self, through: Timestamp) -> Result<(), CycleError> {
        let p = &mut *self.poller;
        // What the commit keeps, computed before the save, done only once it is saved:
        // forget what no later query can return (this cycle's next parts start at
        // `through`, the next cycle at `through - settle` or the origin), and close the
        // calls whose latest row the watermark has passed by `close_after`; a closed id
        // is kept while a row within `close_after` of its latest row can still be
        // asked for.
        let next_start = p.next_start(through);
        let floor = window::wall_floor(next_start, &p.op.zone);
        let close_after =
            SignedDuration::try_from(p.op.calls.close_after).unwrap_or(SignedDuration::MAX);
        let close_before = window::wall_floor(
            through.saturating_sub(close_after).unwrap_or(through),
            &p.op.zone,
        );
        let forget_before = window::wall_floor(
            next_start.saturating_sub(close_after).unwrap_or(next_start),
            &p.op.zone,
        );
        let closed = p
            .calls
            .count_closing(close_before, &mut self.totals, &p.bounds);
        let saved = p
            .save(
                Some(through),
                &self.totals,
                LedgerView::committing(&p.ledger, floor),
                CallsView::committing(&p.calls, close_before, forget_before),
            )
            .await;
        let saved_at = match saved {
            Ok(at) => at,
            Err(source) => {
                p.metrics.state_save_failed();
                tracing::error!(operation = %p.op.name, file = %p.state_path.display(), error = %source, "cannot save state; the part is not committed and will be asked again");
                return Err(CycleError::State {
                    path: p.state_path.clone(),
                    source,
                });
            }
        };
        p.ledger.commit(floor);
        p.calls.commit(close_before, forget_before);
        let before = read_totals(&p.totals);
        let added = status::Counts {
            rows: self.totals.rows.saturating_sub(before.rows),
            hung_up: hung_up(&self.totals).saturating_sub(hung_up(&before)),
        };
        p.tally.parts += 1;
        p.tally.new_rows += added.rows;
        p.tally.duplicates += self.totals.duplicates.saturating_sub(before.duplicates);
        let from = p.watermark.unwrap_or(p.origin);
        p.watermark = Some(through);
        *write_lock(&p.totals) = Arc::new(self.totals.clone());
        p.metrics.committed(through, saved_at, p.ledger.len());
        let mut st = match p.status.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        };
        st.watermark = p.watermark;
        st.ledger_rows = p.ledger.len();
        st.history.record(from, through, added);
        tracing::debug!(operation = %p.op.name, watermark = %through, rows = self.totals.rows, calls_closed = closed, calls_open = p.calls.open_len(), "part committed");
        Ok(())
    }

    fn requested(&mut self, attempt: &Attempt<()>) {
        self.poller.tally.requests += 1;
        self.poller.count_request(attempt);
    }

    fn failed(&mut self, error: &ApiError, _q: &Query, retry_in: Option<Duration>) {
        self.poller.metrics.poll_error(error.reason);
        if retry_in.is_some() {
            tracing::debug!(operation = %self.poller.op.name, error = %error, "request failed; retrying");
        }
    }
}

/// Hung-up rows over every routing point.
fn hung_up(t: &Totals) -> u64 {
    t.routing_points
        .values()
        .map(|rp| rp.interactions[Outcome::HungUp.index()])
        .sum()
}
