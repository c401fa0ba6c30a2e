//! The one thread that runs every poller, beside the server's multi-thread runtime.
//!
//! Why a thread of their own: glibc gives each thread that allocates an arena of its own
//! and keeps what is freed there for that arena. A catch-up's part allocates tens of MB
//! (its items, new identities and open calls) and frees them at its commit; on the
//! multi-thread runtime each part ran on whichever worker polled the task, so every
//! worker's arena grew to a part's size, and peak RSS for a 900,000-row first range
//! varied from 55 to 70 MiB between runs. On one thread the parts reuse one arena
//! (51 MiB every run; docs/performance.md, "A long first range"). The server stays on
//! the multi-thread runtime, so a scrape never waits for a part being applied.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A current-thread runtime driven by a thread of its own. Dropping it ends the thread,
/// cancelling what still runs there: the fleet stops its pollers first.
#[derive(Debug)]
pub struct PollThread {
    handle: Handle,
    /// Dropped to end the thread.
    _stop: oneshot::Sender<()>,
}

impl PollThread {
    pub fn start() -> std::io::Result<PollThread> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("wolkvox-poll".into())
            // Tasks on a current-thread runtime run while its thread is in `block_on`.
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stopped.await;
                })
            })?;
        Ok(PollThread {
            handle,
            _stop: stop,
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
        // Dropped: what was still running is cancelled, not left behind.
        let pending = t.spawn(std::future::pending::<()>());
        drop(t);
        assert!(pending.await.unwrap_err().is_cancelled());
    }
}
