//! The pollers of one run, one per configured operation, and the config reload that
//! changes them (contract, "Command line": SIGHUP and `POST /-/reload`).
//!
//! A reload keeps every operation whose configuration (and whose token's group) did
//! not change running untouched. A changed one is stopped, which saves its state, and
//! continued by the same [`Poller`] with its new configuration: watermark, remembered
//! rows, open calls and every counter go on, so no series resets. An added one starts
//! from its state file if it has one, a removed one stops and its series leave
//! `/metrics` (its state file stays, for the day it comes back). Everything that can
//! fail is checked before anything is stopped: a reload that fails changes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::calls::CallKey;
use crate::config::{Config, Limits, Operation};
use crate::metrics::{Metrics, OpMetrics, SharedTotals};
use crate::poll_thread::PollThread;
use crate::poller::{Poller, RestoreError};
use crate::state::{self, OpState, StateError};
use crate::status::{SharedStatus, Statuses};
use crate::wolkvox::client::{Client, ClientError};

/// Why a reload was refused; the running configuration stays as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Load(String),
    #[error(
        "duration_buckets: cannot change while running (saved histograms use the old buckets); restart with the new buckets and --state.reset"
    )]
    Buckets,
    #[error("state_dir: cannot change while running ({} to {}); restart instead", old.display(), new.display())]
    StateDir { old: PathBuf, new: PathBuf },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("operations ({operation}): {source}")]
    Client {
        operation: String,
        source: ClientError,
    },
    #[error("shutting down")]
    Shutdown,
}

/// What a reload did, by operation name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

struct Running {
    op: Operation,
    stop: watch::Sender<bool>,
    task: JoinHandle<Poller>,
    totals: SharedTotals,
    status: SharedStatus,
    metrics: OpMetrics,
}

pub struct Fleet {
    state_dir: PathBuf,
    limits: Limits,
    buckets: Vec<f64>,
    key: CallKey,
    metrics: Arc<Metrics>,
    statuses: Arc<Statuses>,
    /// Where the pollers run. Declared (so dropped) before `running`: a fleet dropped
    /// without [`Fleet::stop`] cancels its pollers before they could see their stop
    /// channels close and save.
    poll: PollThread,
    /// In config order.
    running: Vec<Running>,
    /// One set of permits per token: the API limits simultaneous requests per token.
    permits: HashMap<String, Arc<Semaphore>>,
}

/// The smallest `max_concurrent_requests` of the operations on each token.
fn token_limits(ops: &[Operation]) -> HashMap<String, usize> {
    let mut m: HashMap<String, usize> = HashMap::new();
    for op in ops {
        let e = m.entry(op.token.expose().to_string()).or_insert(2);
        *e = (*e).min(op.max_concurrent_requests);
    }
    m
}

impl Fleet {
    /// Starts a poller for every operation of `config`, each from its `saved` state (in
    /// config order). Their totals are registered in `metrics` here.
    pub fn start(
        config: &Config,
        key: CallKey,
        metrics: Arc<Metrics>,
        saved: Vec<Option<OpState>>,
        now: Timestamp,
    ) -> Result<Fleet, crate::StartError> {
        let permits = token_limits(&config.operations)
            .into_iter()
            .map(|(t, n)| (t, Arc::new(Semaphore::new(n))))
            .collect();
        let mut fleet = Fleet {
            state_dir: config.state_dir.clone(),
            limits: config.limits,
            buckets: config.buckets.clone(),
            key,
            metrics,
            statuses: Arc::new(Statuses::default()),
            poll: PollThread::start().map_err(crate::StartError::PollThread)?,
            running: Vec::new(),
            permits,
        };
        for (op, saved) in config.operations.iter().zip(saved) {
            let client = fleet
                .client(op)
                .map_err(|source| crate::StartError::Client {
                    operation: op.name.clone(),
                    source,
                })?;
            let restored = saved.is_some();
            let p = fleet.poller(op, client, saved, None, now)?;
            if restored {
                tracing::info!(operation = %op.name, watermark = ?p.watermark, "state restored");
            }
            fleet.launch(p, None);
        }
        fleet.publish_statuses();
        Ok(fleet)
    }

    /// What `/` and `/-/ready` read.
    pub fn statuses(&self) -> Arc<Statuses> {
        Arc::clone(&self.statuses)
    }

    fn client(&self, op: &Operation) -> Result<Client, ClientError> {
        let permits = self
            .permits
            .get(op.token.expose())
            .cloned()
            .unwrap_or_else(|| Arc::new(Semaphore::new(1)));
        Client::for_operation(op, permits)
    }

    /// A new poller for `op` from `saved`; `live`: the series of an operation that
    /// already counted what `saved` holds.
    fn poller(
        &self,
        op: &Operation,
        client: Client,
        saved: Option<OpState>,
        live: Option<(SharedTotals, OpMetrics)>,
        now: Timestamp,
    ) -> Result<Poller, RestoreError> {
        let counters_live = live.is_some();
        let (totals, metrics) = match live {
            Some(l) => l,
            None => {
                let totals = SharedTotals::default();
                let m = self.metrics.insert_operation(&op.name, Arc::clone(&totals));
                (totals, m)
            }
        };
        Poller::new(
            op.clone(),
            client,
            self.limits,
            self.buckets.clone(),
            metrics,
            &self.state_dir,
            saved,
            totals,
            self.key,
            counters_live,
            now,
        )
    }

    /// Runs `p` in a task of its own, at config position `at` (appended when `None`).
    fn launch(&mut self, p: Poller, at: Option<usize>) {
        tracing::info!(operation = %p.op.name, zone = %p.op.zone_name, interval = %humantime::format_duration(p.op.poll.interval), "polling");
        let (stop, rx) = watch::channel(false);
        let running = Running {
            op: p.op.clone(),
            totals: p.totals(),
            status: Arc::clone(&p.status),
            metrics: p.metrics().clone(),
            stop,
            task: self.poll.spawn(p.run(rx)),
        };
        match at {
            Some(i) if i <= self.running.len() => self.running.insert(i, running),
            _ => self.running.push(running),
        }
    }

    fn publish_statuses(&self) {
        self.statuses
            .set(self.running.iter().map(|r| Arc::clone(&r.status)).collect());
    }

    /// Applies `config` (already validated) to the running pollers.
    pub async fn reload(&mut self, config: Config) -> Result<Changes, ReloadError> {
        if config.buckets != self.buckets {
            return Err(ReloadError::Buckets);
        }
        if config.state_dir != self.state_dir {
            return Err(ReloadError::StateDir {
                old: self.state_dir.clone(),
                new: config.state_dir,
            });
        }
        let limits_changed = config.limits != self.limits;
        // A token whose operations or limit change: every operation on it is restarted
        // with one new set of permits, so together they keep to the API's limit.
        let old_limits = token_limits(
            &self
                .running
                .iter()
                .map(|r| r.op.clone())
                .collect::<Vec<_>>(),
        );
        let new_limits = token_limits(&config.operations);
        let mut dirty: std::collections::HashSet<String> = std::collections::HashSet::new();
        for r in &self.running {
            let same = config.operations.contains(&r.op);
            if !same {
                dirty.insert(r.op.token.expose().to_string());
            }
        }
        for op in &config.operations {
            if !self.running.iter().any(|r| r.op == *op) {
                dirty.insert(op.token.expose().to_string());
            }
        }
        for (t, n) in &new_limits {
            if old_limits.get(t) != Some(n) {
                dirty.insert(t.clone());
            }
        }
        let mut permits = self.permits.clone();
        permits.retain(|t, _| new_limits.contains_key(t));
        for t in &dirty {
            if let Some(n) = new_limits.get(t) {
                permits.insert(t.clone(), Arc::new(Semaphore::new(*n)));
            }
        }

        // Everything that can fail, before anything stops: clients, and the state of
        // operations that start now.
        enum Plan {
            Keep,
            Continue(Client),
            Start(Client, Box<Option<OpState>>),
        }
        let old_permits = std::mem::replace(&mut self.permits, permits);
        let mut plans = Vec::new();
        let mut changes = Changes::default();
        let prepared: Result<(), ReloadError> = (|| {
            for op in &config.operations {
                let current = self.running.iter().find(|r| r.op.name == op.name);
                let token_dirty = dirty.contains(op.token.expose());
                let plan = match current {
                    Some(r) if r.op == *op && !token_dirty && !limits_changed => Plan::Keep,
                    Some(_) => {
                        Plan::Continue(self.client(op).map_err(|source| ReloadError::Client {
                            operation: op.name.clone(),
                            source,
                        })?)
                    }
                    None => {
                        let client = self.client(op).map_err(|source| ReloadError::Client {
                            operation: op.name.clone(),
                            source,
                        })?;
                        let saved = state::load(&state::path(&self.state_dir, &op.name))?;
                        Plan::Start(client, Box::new(saved))
                    }
                };
                plans.push(plan);
            }
            Ok(())
        })();
        if let Err(e) = prepared {
            self.permits = old_permits;
            return Err(e);
        }

        // Stop what is removed or continued, and collect the stopped pollers.
        let mut stopped: HashMap<String, (Poller, SharedTotals, OpMetrics)> = HashMap::new();
        let running = std::mem::take(&mut self.running);
        let mut kept = Vec::new();
        for (r, keep) in running.into_iter().map(|r| {
            let keep = config
                .operations
                .iter()
                .zip(&plans)
                .any(|(o, p)| o.name == r.op.name && matches!(p, Plan::Keep));
            (r, keep)
        }) {
            if keep {
                kept.push(r);
                continue;
            }
            let _ = r.stop.send(true);
            match tokio::time::timeout(Duration::from_secs(7), r.task).await {
                Ok(Ok(p)) => {
                    stopped.insert(r.op.name.clone(), (p, r.totals, r.metrics));
                }
                // It did not stop in time, or it failed: its last committed state is on
                // disk, and a poller made from it continues the same series.
                _ => {
                    tracing::warn!(operation = %r.op.name, "a poller did not stop cleanly; continuing from its saved state");
                    let saved = state::load(&state::path(&self.state_dir, &r.op.name))?;
                    let client = self.client(&r.op).map_err(|source| ReloadError::Client {
                        operation: r.op.name.clone(),
                        source,
                    })?;
                    let p = self.poller(
                        &r.op,
                        client,
                        saved,
                        Some((r.totals.clone(), r.metrics.clone())),
                        Timestamp::now(),
                    )?;
                    stopped.insert(r.op.name.clone(), (p, r.totals, r.metrics));
                }
            }
        }
        for (name, (_, _, m)) in &stopped {
            if !config.operations.iter().any(|o| &o.name == name) {
                self.metrics.remove_operation(m);
                changes.removed.push(name.clone());
            }
        }

        // The new order: the config's.
        let mut kept: HashMap<String, Running> =
            kept.into_iter().map(|r| (r.op.name.clone(), r)).collect();
        for (i, (op, plan)) in config.operations.iter().zip(plans).enumerate() {
            match plan {
                Plan::Keep => {
                    if let Some(r) = kept.remove(&op.name) {
                        self.running.push(r);
                        changes.unchanged.push(op.name.clone());
                    }
                }
                Plan::Continue(client) => {
                    if let Some((p, _, _)) = stopped.remove(&op.name) {
                        let p = p.reconfigure(op.clone(), client, config.limits);
                        self.launch(p, Some(i));
                        changes.changed.push(op.name.clone());
                    }
                }
                Plan::Start(client, saved) => {
                    let p = self.poller(op, client, *saved, None, Timestamp::now())?;
                    self.launch(p, Some(i));
                    changes.added.push(op.name.clone());
                }
            }
        }
        self.limits = config.limits;
        self.publish_statuses();
        Ok(changes)
    }

    /// Stops every poller (each saves its state), waiting at most `budget`.
    pub async fn stop(self, budget: Duration) {
        for r in &self.running {
            let _ = r.stop.send(true);
        }
        let all = async {
            for r in self.running {
                let _ = r.task.await;
            }
        };
        if tokio::time::timeout(budget, all).await.is_err() {
            tracing::warn!("a poller did not stop in time; its last committed state is on disk");
        }
    }
}
