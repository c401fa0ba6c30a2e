//! The one thread that runs every poller, beside the server's multi-thread runtime.
//!
//! Why a thread of their own: glibc gives each thread that allocates an arena of its own
//! and keeps what is freed there for that arena. A catch-up's part allocates tens of MB
//! (its items, new identities and open calls) and frees them at its commit; on the
//! multi-thread runtime each part ran on whichever worker polled the task, so every
//! worker's arena grew to a part's size, and peak RSS for a 900,000-row first range
//! varied from 55 to 70 MiB between runs. On one thread the parts reuse one arena
//! (53.5 MiB every run, 45–46 since the ledger and calls change in place;
//! docs/performance.md, "A long first range"). The server stays on
//! the multi-thread runtime, so a scrape never waits for a part being applied.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A current-thread runtime driven by a thread of its own. Dropping it cancels what
/// still runs there and waits (a while) for the thread to end, as dropping a runtime
/// does: a crash saves nothing on the way out, and a last state save that is syncing
/// finishes before the process exits.
#[derive(Debug)]
pub struct PollThread {
    handle: Handle,
    /// Dropped to end the thread.
    stop: Option<oneshot::Sender<()>>,
    /// Disconnected once the thread has ended.
    ended: mpsc::Receiver<()>,
}

/// How long dropping waits for the thread: a disk that hangs must not hang the exit.
const END_WAIT: Duration = Duration::from_secs(10);

impl PollThread {
    pub fn start() -> std::io::Result<PollThread> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ended_tx, ended) = mpsc::channel::<()>();
        // The pollers log where the caller logs (a test's app has a logger per runtime).
        let log = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new()
            .name("wolkvox-poll".into())
            .spawn(move || {
                let _ended = ended_tx;
                tracing::dispatcher::with_default(&log, || {
                    // Tasks on a current-thread runtime run while its thread is in
                    // `block_on`.
                    runtime.block_on(async move {
                        let _ = stopped.await;
                    });
                    // Cancels the tasks left and waits for their blocking work.
                    drop(runtime);
                });
            })?;
        Ok(PollThread {
            handle,
            stop: Some(stop),
            ended,
        })
    }

    /// Runs `task` on the poll thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for PollThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        let _ = self.ended.recv_timeout(END_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_tasks_on_its_own_thread_until_dropped() {
        let t = PollThread::start().unwrap();
        let on = || {
            let me = std::thread::current();
            (me.id(), me.name().map(str::to_string))
        };
        let a = t.spawn(async move { on() });
        let b = t.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            on()
        });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a, b, "both on one thread");
        assert_eq!(a.1.as_deref(), Some("wolkvox-poll"));
        assert_ne!(a.0, std::thread::current().id());
        // Dropped: what was still running is cancelled by the time the drop returns.
        let pending = t.spawn(std::future::pending::<()>());
        drop(t);
        assert!(pending.is_finished());
        assert!(pending.await.unwrap_err().is_cancelled());
    }
}
