//! The one fetch engine: a range becomes parts (31-day cut, DST-safe wall times), each
//! part becomes requests (one at a time per caller, within the token's permits), each
//! answer is classified, taken whole or cut at the 60,000-row cap (continued from its
//! last second, or halved), failures are retried with backoff and jitter, and every
//! complete part is handed to a [`Sink`] to commit, in date order.
//!
//! The poller, `backfill` and `check` all drive it; they differ only in their
//! [`RetryPolicy`] numbers and in what their [`Sink`] does with an answer. The engine
//! holds one answer at a time: memory is bounded by a part, not by the range.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::ingest::Ingested;
use crate::window::{self, Query, Range};
use crate::wolkvox::client::{Attempt, Client, Receive};
use crate::wolkvox::{ApiError, Reason};

/// How patient a caller is with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries of one request after a retryable error, before the fetch fails.
    pub retries: u32,
    /// The first retry's wait; each next one doubles, up to `max`, with equal jitter.
    pub base: Duration,
    pub max: Duration,
    /// Whether a maintenance answer (the vendor's backups) is retried like a transient
    /// error: worth it for a long backfill, not for a poll that comes back anyway.
    pub retry_maintenance: bool,
}

impl RetryPolicy {
    /// Whether an error of this class is asked again within the same fetch.
    pub fn retries_on(&self, reason: Reason) -> bool {
        reason.is_transient() || (self.retry_maintenance && reason == Reason::Maintenance)
    }

    /// The wait before retry number `n` (1-based): `base * 2^(n-1)`, capped at `max`,
    /// before jitter.
    pub fn wait(&self, n: u32) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20));
        doubled.min(self.max.max(self.base))
    }
}

/// Equal jitter (half the wait fixed, half random), so that operations and processes
/// that failed together do not retry in step. A xorshift: plenty for spreading retries.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// A random fraction in `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A second generator seeded from this one, for a fetch of its own.
    pub fn fork(&mut self) -> Jitter {
        self.next();
        Jitter::new(self.0.rotate_left(29))
    }

    /// `d / 2` plus a random part of `d / 2`.
    pub fn apply(&mut self, d: Duration) -> Duration {
        d / 2 + d.mul_f64(0.5 * self.next())
    }
}

/// An answer a sink could not take: a bad answer (retried like a failed request), or a
/// failure of the sink itself (ends the fetch).
#[derive(Debug)]
pub enum TakeError<E> {
    Api(ApiError),
    Sink(E),
}

/// Why a fetch stopped before the end of its range. Everything committed before it
/// stays committed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError<E> {
    /// A request failed and was not (or no longer) retried.
    #[error("{error}")]
    Api {
        error: ApiError,
        /// The query that failed, and how many times it was asked.
        query: Query,
        attempts: u32,
    },
    /// The sink failed: writing the output, saving the state.
    #[error("{0}")]
    Sink(E),
    /// Shutdown was asked for.
    #[error("shutting down")]
    Shutdown,
}

/// What the engine hands its answers to.
pub trait Sink {
    type Error;
    /// What an answer's body is read into as it arrives: the whole text, or a decoder
    /// that keeps only the rows. One serves every answer of a fetch.
    type Body: Receive + Default;

    /// Takes the complete rows of the answer to `q` that `body` received. A body that
    /// received nothing is a 404: no rows. Nothing may change when this returns an
    /// error.
    fn take(
        &mut self,
        body: &mut Self::Body,
        q: &Query,
    ) -> Result<Ingested, TakeError<Self::Error>>;

    /// Every row dated before `through` is taken, and every part before it: make that
    /// count (add to the metrics, move the watermark, save). Called in date order.
    fn commit(&mut self, through: Timestamp) -> impl Future<Output = Result<(), Self::Error>>;

    /// Every request sent, for the request counters.
    fn requested(&mut self, _attempt: &Attempt<()>) {}

    /// Every failed request or unreadable answer; `retry_in` is `None` when it is not
    /// asked again.
    fn failed(&mut self, _error: &ApiError, _q: &Query, _retry_in: Option<Duration>) {}

    /// The longest next query, in seconds, after `q` was answered with `taken`; `None`
    /// for as long as its part. (Backfill sizes requests from yesterday's traffic.)
    fn next_span(&mut self, _q: &Query, _taken: &Ingested) -> Option<i64> {
        None
    }
}

/// What one fetch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetched {
    pub requests: u64,
    pub retries: u64,
    /// Commits, one per complete part.
    pub parts: u64,
    /// Answers cut at the cap out of date order, whose range was halved.
    pub splits: u64,
    /// Answers cut at the cap in date order, asked again from their last second.
    pub continued: u64,
    /// Answers at the cap whose range (one second) could not be cut further.
    pub capped: u64,
    /// Rows in the answers, and those of them that were new.
    pub rows: u64,
    pub new: u64,
}

/// The engine for one operation's client and zone.
pub struct Engine<'a> {
    client: &'a Client,
    tz: &'a TimeZone,
    policy: RetryPolicy,
    jitter: &'a mut Jitter,
    shutdown: Option<watch::Receiver<bool>>,
}

impl<'a> Engine<'a> {
    pub fn new(
        client: &'a Client,
        tz: &'a TimeZone,
        policy: RetryPolicy,
        jitter: &'a mut Jitter,
    ) -> Engine<'a> {
        Engine {
            client,
            tz,
            policy,
            jitter,
            shutdown: None,
        }
    }

    /// Stops between requests and during waits once `shutdown` turns true. A commit in
    /// progress is never cut short.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Engine<'a> {
        self.shutdown = Some(shutdown);
        self
    }

    /// Fetches `range` part by part into `sink`, committing each complete part before
    /// asking for the next.
    pub async fn run<S: Sink>(
        &mut self,
        range: Range,
        sink: &mut S,
    ) -> Result<Fetched, FetchError<S::Error>> {
        // One body for every answer: a catch-up reads one large answer after another.
        let mut body = S::Body::default();
        self.parts(range, sink, &mut body).await
    }

    async fn parts<S: Sink>(
        &mut self,
        range: Range,
        sink: &mut S,
        body: &mut S::Body,
    ) -> Result<Fetched, FetchError<S::Error>> {
        let mut done = Fetched::default();
        // Each query tagged with its 31-day part: only pieces of one part are joined.
        let mut queue: VecDeque<(usize, Query)> = window::plan(range, self.tz)
            .into_iter()
            .enumerate()
            .collect();
        let mut span: Option<i64> = None;
        while let Some((part, mut q)) = queue.pop_front() {
            if let Some(s) = span
                && q.range.duration().as_secs() > s
            {
                let cut = q.range.start + SignedDuration::from_secs(s.max(1));
                queue.push_front((
                    part,
                    window::query_for(Range::new(cut, q.range.end), self.tz),
                ));
                let mut first = window::query_for(Range::new(q.range.start, cut), self.tz);
                // A continued query starts exactly at the wall time still to come.
                first.date_ini = first.date_ini.max(q.date_ini);
                q = first;
            }
            let taken = self.answer(&q, sink, body, &mut done).await?;
            let through = match &taken {
                Ingested::Split(..) => None,
                Ingested::Continue { rest, .. } => Some(rest.range.start),
                Ingested::Applied { .. } => Some(q.range.end),
            };
            match &taken {
                Ingested::Split(..) => done.splits += 1,
                Ingested::Continue { rows, new, .. } => {
                    done.continued += 1;
                    done.rows += *rows as u64;
                    done.new += *new as u64;
                }
                Ingested::Applied { rows, new, capped } => {
                    done.capped += u64::from(*capped);
                    done.rows += *rows as u64;
                    done.new += *new as u64;
                }
            }
            if let Some(through) = through {
                sink.commit(through).await.map_err(FetchError::Sink)?;
                done.parts += 1;
            }
            span = sink.next_span(&q, &taken);
            match taken {
                Ingested::Split(a, b) => {
                    queue.push_front((part, window::query_for(b, self.tz)));
                    queue.push_front((part, window::query_for(a, self.tz)));
                }
                Ingested::Continue { mut rest, .. } => {
                    // The rest of this query and the next piece of the same part are
                    // one range again.
                    if let Some((p, next)) = queue.front()
                        && *p == part
                        && next.range.start == rest.range.end
                    {
                        rest.range = Range::new(rest.range.start, next.range.end);
                        rest.date_end = rest.date_end.max(next.date_end);
                        queue.pop_front();
                    }
                    queue.push_front((part, rest));
                }
                Ingested::Applied { .. } => {}
            }
        }
        Ok(done)
    }

    /// Asks `q` until an answer is taken, retrying what the policy retries.
    async fn answer<S: Sink>(
        &mut self,
        q: &Query,
        sink: &mut S,
        body: &mut S::Body,
        done: &mut Fetched,
    ) -> Result<Ingested, FetchError<S::Error>> {
        let mut failures = 0u32;
        loop {
            if self.stopping() {
                return Err(FetchError::Shutdown);
            }
            let attempt = match self.shutdown.clone() {
                Some(mut stop) => tokio::select! {
                    a = self.client.fetch_into(q, body) => a,
                    _ = wait_for_stop(&mut stop) => return Err(FetchError::Shutdown),
                },
                None => self.client.fetch_into(q, body).await,
            };
            done.requests += 1;
            sink.requested(&attempt);
            let error = match attempt.result {
                Ok(()) => match sink.take(body, q) {
                    Ok(taken) => return Ok(taken),
                    Err(TakeError::Sink(e)) => return Err(FetchError::Sink(e)),
                    Err(TakeError::Api(e)) => e,
                },
                Err(e) => e,
            };
            failures += 1;
            if !self.policy.retries_on(error.reason) || failures > self.policy.retries {
                sink.failed(&error, q, None);
                return Err(FetchError::Api {
                    error,
                    query: *q,
                    attempts: failures,
                });
            }
            let wait = self.jitter.apply(self.policy.wait(failures));
            sink.failed(&error, q, Some(wait));
            done.retries += 1;
            if self.sleep(wait).await {
                return Err(FetchError::Shutdown);
            }
        }
    }

    fn stopping(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Sleeps for `d`; true when shutdown was asked for meanwhile.
    async fn sleep(&mut self, d: Duration) -> bool {
        match self.shutdown.as_mut() {
            None => {
                tokio::time::sleep(d).await;
                false
            }
            Some(stop) => tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = wait_for_stop(stop) => true,
            },
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub async fn wait_for_stop(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
