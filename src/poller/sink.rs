//! A cycle's answers into working copies of its poller's totals, ledger and calls,
//! committed part by part.

use super::*;

/// A cycle's view of its poller: answers go into working copies of the totals and the
/// ledger, and each commit saves them and makes them current.
pub(super) struct CycleSink<'p> {
    poller: &'p mut Poller,
    totals: Totals,
    ledger: Ledger,
    calls: Calls,
}

impl<'p> CycleSink<'p> {
    pub(super) fn new(poller: &'p mut Poller) -> CycleSink<'p> {
        let totals = (*read_totals(&poller.totals)).clone();
        let ledger = poller.ledger.clone();
        let calls = poller.calls.clone();
        CycleSink {
            poller,
            totals,
            ledger,
            calls,
        }
    }
}

impl Sink for CycleSink<'_> {
    type Error = CycleError;

    type Body = Decoder;

    fn take(&mut self, body: &mut Decoder, q: &Query) -> Result<Ingested, TakeError<CycleError>> {
        let p = &*self.poller;
        let answer = body.finish().map_err(TakeError::Api)?;
        let mut batch = self.ledger.begin();
        let taken = ingest_answer(
            answer,
            q,
            &p.op.zone,
            &mut batch,
            &mut self.totals,
            &mut self.calls,
            &p.limits,
            &p.bounds,
        );
        let changes = batch.into_changes();
        self.ledger.commit(changes);
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
        // Forget what no later query can return: this cycle's next parts start at
        // `through`, the next cycle at `through - settle` (or the origin).
        let next_start = p.next_start(through);
        self.ledger
            .forget_before(window::wall_floor(next_start, &p.op.zone));
        // Calls whose latest row the watermark has passed by `close_after` are counted;
        // a closed id is kept while a row within `close_after` of its latest row can
        // still be asked for.
        let close_after =
            SignedDuration::try_from(p.op.calls.close_after).unwrap_or(SignedDuration::MAX);
        let closed = self.calls.close(
            window::wall_floor(
                through.saturating_sub(close_after).unwrap_or(through),
                &p.op.zone,
            ),
            window::wall_floor(
                next_start.saturating_sub(close_after).unwrap_or(next_start),
                &p.op.zone,
            ),
            &mut self.totals,
            &p.bounds,
        );
        let saved = p
            .save(Some(through), &self.totals, &self.ledger, &self.calls)
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
        let before = read_totals(&p.totals);
        let added = status::Counts {
            rows: self.totals.rows.saturating_sub(before.rows),
            hung_up: hung_up(&self.totals).saturating_sub(hung_up(&before)),
        };
        p.tally.parts += 1;
        p.tally.new_rows += added.rows;
        p.tally.duplicates += self.totals.duplicates.saturating_sub(before.duplicates);
        let from = p.watermark.unwrap_or(p.origin);
        p.ledger.clone_from(&self.ledger);
        p.calls.clone_from(&self.calls);
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
