//! Every open connection, so that no client can take `/metrics` away from Prometheus:
//!
//! - a request header must be complete within [`HEADER_TIMEOUT`] of the connection (TLS
//!   handshake included) or of its first byte on a kept-alive connection;
//! - a kept-alive connection with no request for [`IDLE_TIMEOUT`] is closed, and so is
//!   one whose client reads nothing of its answer for [`WRITE_TIMEOUT`];
//! - open connections are capped below the process's file descriptor limit; at the
//!   cap, a new connection closes the one that has waited longest for a request (a slow
//!   header or an idle keep-alive), so a scrape always finds room.
//!
//! A [`Slot`] per connection tracks its phase; the I/O wrapper [`Guarded`] and the
//! service mark it; [`Connections::sweep`], run every second, closes what has run out
//! of time.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// From the connection (or a kept-alive connection's next byte) to a complete request
/// header. Prometheus sends its request at once; 10 s leaves room for slow links.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than a one-minute scrape interval, so Prometheus keeps its connection.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// A client that reads nothing of its answer for this long is not going to.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request still being answered after this long (waiting its turn for bcrypt under a
/// flood of passwords, say) may be closed to make room at the cap.
const BUSY_EVICTABLE: Duration = Duration::from_secs(10);
/// How often deadlines are looked at: the timeouts above are kept to within this.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// More connections than an exporter ever needs, whatever the descriptor limit.
const MAX_CONNECTIONS: usize = 1024;
const MIN_CONNECTIONS: usize = 16;

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// One connection's state, shared by its task, its I/O and the registry.
pub(super) struct Slot {
    id: u64,
    epoch: Instant,
    phase: AtomicU8,
    /// When the phase began, in ms since `epoch`.
    since: AtomicU64,
    /// When a write last found the socket full and nothing has been written since, in
    /// ms since `epoch`, plus one; 0: not blocked.
    blocked: AtomicU64,
    closing: AtomicBool,
    close: Notify,
}

impl Slot {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request head is complete: the service has it.
    pub(super) fn busy(&self) {
        self.since.store(self.now(), Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// The answer is handed over; the connection waits for the next request.
    pub(super) fn idle(&self) {
        self.since.store(self.now(), Ordering::Relaxed);
        self.phase.store(IDLE, Ordering::Relaxed);
    }

    fn read_some(&self) {
        // The first byte of the next request starts its header's clock.
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.since.store(self.now(), Ordering::Relaxed);
            self.phase.store(HEAD, Ordering::Relaxed);
        }
    }

    fn write_blocked(&self) {
        let now = self.now() + 1;
        let _ = self
            .blocked
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn wrote(&self) {
        self.blocked.store(0, Ordering::Relaxed);
    }

    /// Resolves when the registry wants this connection closed.
    pub(super) async fn closed(&self) {
        self.close.notified().await
    }

    fn shut(&self) {
        self.closing.store(true, Ordering::Relaxed);
        // A stored permit: works even before the task waits for it.
        self.close.notify_one();
    }

    /// What the connection is waiting for at `now` (ms), if it has waited too long.
    fn expired(&self, now: u64) -> Option<Expiry> {
        let since = self.since.load(Ordering::Relaxed);
        let blocked = self.blocked.load(Ordering::Relaxed);
        let past =
            |start: u64, limit: Duration| now.saturating_sub(start) >= limit.as_millis() as u64;
        if blocked != 0 && past(blocked - 1, WRITE_TIMEOUT) {
            return Some(Expiry::Write);
        }
        match self.phase.load(Ordering::Relaxed) {
            HEAD if past(since, HEADER_TIMEOUT) => Some(Expiry::Header),
            IDLE if past(since, IDLE_TIMEOUT) => Some(Expiry::Idle),
            _ => None,
        }
    }

    /// Whether it may be closed to make room, and then how long it has waited (older
    /// goes first).
    fn evictable(&self, now: u64) -> Option<u64> {
        if self.closing.load(Ordering::Relaxed) {
            return None;
        }
        let waited = now.saturating_sub(self.since.load(Ordering::Relaxed));
        match self.phase.load(Ordering::Relaxed) {
            BUSY if waited < BUSY_EVICTABLE.as_millis() as u64 => None,
            _ => Some(waited),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    Header,
    Idle,
    Write,
}

/// What one sweep closed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Swept {
    pub(super) header: u64,
    pub(super) idle: u64,
    pub(super) write: u64,
}

pub(super) struct Connections {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next: AtomicU64,
    cap: usize,
    epoch: Instant,
    /// Signalled when a connection goes, for an accept loop waiting at the cap.
    room: Notify,
}

/// A connection's place in the registry; leaving it (the task ending) frees it.
pub(super) struct Registered {
    conns: Arc<Connections>,
    pub(super) slot: Arc<Slot>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.slot.id);
        self.conns.room.notify_one();
    }
}

impl Connections {
    pub(super) fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            slots: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            cap: cap.max(1),
            epoch: Instant::now(),
            room: Notify::new(),
        })
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        match self.slots.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// A new connection, waiting for its first request header.
    pub(super) fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            epoch: self.epoch,
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(self.now()),
            blocked: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(id, Arc::clone(&slot));
        Registered {
            conns: Arc::clone(self),
            slot,
        }
    }

    /// Whether one more connection fits, at once or by closing one that waits.
    fn has_room(&self, now: u64) -> bool {
        let slots = self.lock();
        slots.len() < self.cap || slots.values().any(|s| s.evictable(now).is_some())
    }

    /// Returns once a new connection can be taken without going past the cap.
    pub(super) async fn wait_for_room(&self) {
        while !self.has_room(self.now()) {
            // Time passing makes busy connections evictable too: look again now and then.
            let _ = tokio::time::timeout(Duration::from_millis(100), self.room.notified()).await;
        }
    }

    /// At the cap, closes the connection that has waited longest for a request; true
    /// when one was closed.
    pub(super) fn make_room(&self) -> bool {
        self.make_room_at(self.now())
    }

    fn make_room_at(&self, now: u64) -> bool {
        if self.lock().len() < self.cap {
            return false;
        }
        self.evict_oldest_at(now)
    }

    /// Closes the connection that has waited longest for a request, if any may be.
    pub(super) fn evict_oldest(&self) -> bool {
        self.evict_oldest_at(self.now())
    }

    fn evict_oldest_at(&self, now: u64) -> bool {
        let slots = self.lock();
        let victim = slots
            .values()
            .filter_map(|s| s.evictable(now).map(|waited| (waited, s)))
            .max_by_key(|(waited, s)| (*waited, std::cmp::Reverse(s.id)));
        match victim {
            Some((_, s)) => {
                s.shut();
                true
            }
            None => false,
        }
    }

    /// Closes every connection past its deadline.
    pub(super) fn sweep(&self) -> Swept {
        self.sweep_at(self.now())
    }

    fn sweep_at(&self, now: u64) -> Swept {
        let mut swept = Swept::default();
        for s in self.lock().values() {
            if s.closing.load(Ordering::Relaxed) {
                continue;
            }
            let Some(why) = s.expired(now) else {
                continue;
            };
            s.shut();
            match why {
                Expiry::Header => swept.header += 1,
                Expiry::Idle => swept.idle += 1,
                Expiry::Write => swept.write += 1,
            }
        }
        swept
    }
}

/// How many connections may be open at once: the soft `RLIMIT_NOFILE`, less what is
/// open now and a reserve for the pollers' own connections and files.
pub(super) fn cap(operations: usize) -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| soft_open_files(&t));
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    cap_for(limit, open, operations)
}

fn cap_for(limit: Option<usize>, open: usize, operations: usize) -> usize {
    let reserve = 64 + 4 * operations;
    match limit {
        Some(l) => l
            .saturating_sub(open + reserve)
            .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS),
        None => MAX_CONNECTIONS,
    }
}

/// The soft limit from `/proc/self/limits` (`Max open files  1024  4096  files`);
/// `None` when unlimited or unreadable.
fn soft_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A connection's socket, telling its [`Slot`] about reads and blocked writes.
pub(super) struct Guarded<S> {
    inner: S,
    slot: Arc<Slot>,
}

impl<S> Guarded<S> {
    pub(super) fn new(inner: S, slot: Arc<Slot>) -> Guarded<S> {
        Guarded { inner, slot }
    }

    pub(super) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.slot.read_some();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> Guarded<S> {
    fn track<T>(
        &self,
        r: Poll<io::Result<T>>,
        progress: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match &r {
            Poll::Pending => self.slot.write_blocked(),
            Poll::Ready(Ok(v)) if progress(v) => self.slot.wrote(),
            _ => {}
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(r, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(r, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(r, |_| true)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn set(slot: &Slot, phase: u8, since: u64) {
        slot.phase.store(phase, Ordering::Relaxed);
        slot.since.store(since, Ordering::Relaxed);
    }

    #[test]
    fn deadlines_by_phase() {
        let conns = Connections::new(10);
        let a = conns.register();
        set(&a.slot, HEAD, 0);
        assert_eq!(a.slot.expired(9 * S), None);
        assert_eq!(a.slot.expired(10 * S), Some(Expiry::Header));
        set(&a.slot, BUSY, 0);
        assert_eq!(
            a.slot.expired(3600 * S),
            None,
            "an answer in progress has no deadline"
        );
        set(&a.slot, IDLE, 0);
        assert_eq!(a.slot.expired(74 * S), None);
        assert_eq!(a.slot.expired(75 * S), Some(Expiry::Idle));
        // A byte of the next request: its header now has 10 s from that byte.
        a.slot.read_some();
        assert_eq!(a.slot.phase.load(Ordering::Relaxed), HEAD);
        let since = a.slot.since.load(Ordering::Relaxed);
        assert_eq!(a.slot.expired(since + 9 * S), None);
        assert_eq!(a.slot.expired(since + 10 * S), Some(Expiry::Header));
        // Reads while busy change nothing.
        set(&a.slot, BUSY, 0);
        a.slot.read_some();
        assert_eq!(a.slot.phase.load(Ordering::Relaxed), BUSY);
        // A write the client never reads, whatever the phase.
        a.slot.blocked.store(5 * S + 1, Ordering::Relaxed);
        assert_eq!(a.slot.expired(34 * S), None);
        assert_eq!(a.slot.expired(35 * S), Some(Expiry::Write));
        a.slot.wrote();
        assert_eq!(a.slot.expired(35 * S), None);
    }

    #[test]
    fn sweep_closes_what_ran_out_of_time_once() {
        let conns = Connections::new(10);
        let slow = conns.register();
        let idle = conns.register();
        let busy = conns.register();
        let fresh = conns.register();
        set(&slow.slot, HEAD, 0);
        set(&idle.slot, IDLE, 0);
        set(&busy.slot, BUSY, 0);
        set(&fresh.slot, HEAD, 70 * S);
        let swept = conns.sweep_at(76 * S);
        assert_eq!(
            swept,
            Swept {
                header: 1,
                idle: 1,
                write: 0
            }
        );
        assert!(slow.slot.closing.load(Ordering::Relaxed));
        assert!(idle.slot.closing.load(Ordering::Relaxed));
        assert!(!busy.slot.closing.load(Ordering::Relaxed));
        assert!(!fresh.slot.closing.load(Ordering::Relaxed));
        assert_eq!(
            conns.sweep_at(77 * S),
            Swept::default(),
            "each is closed once"
        );
        drop(slow);
        assert_eq!(conns.len(), 3, "a connection leaves when its task ends");
    }

    #[test]
    fn at_the_cap_the_longest_waiting_goes_first_never_a_fresh_answer() {
        let conns = Connections::new(3);
        let old_idle = conns.register();
        let slow = conns.register();
        let busy = conns.register();
        set(&old_idle.slot, IDLE, 100 * S);
        set(&slow.slot, HEAD, 103 * S);
        set(&busy.slot, BUSY, 100 * S);
        let now = 105 * S;
        assert!(conns.has_room(now));
        assert!(conns.make_room_at(now));
        assert!(
            old_idle.slot.closing.load(Ordering::Relaxed),
            "oldest waiting first"
        );
        assert!(conns.make_room_at(now));
        assert!(slow.slot.closing.load(Ordering::Relaxed));
        assert!(
            !conns.make_room_at(now),
            "a request being answered is left alone"
        );
        assert!(!busy.slot.closing.load(Ordering::Relaxed));
        assert!(!conns.has_room(now));
        // ... unless it has been at it for long: then it is stuck, and goes.
        assert!(conns.has_room(110 * S));
        assert!(conns.make_room_at(110 * S));
        assert!(busy.slot.closing.load(Ordering::Relaxed));
        drop(old_idle);
        assert!(
            conns.has_room(now) && !conns.make_room_at(now),
            "below the cap: nothing to close"
        );
    }

    #[test]
    fn cap_follows_the_descriptor_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            1024                 4096                 files\n";
        assert_eq!(soft_open_files(limits), Some(1024));
        assert_eq!(
            soft_open_files("Max open files  unlimited  unlimited  files\n"),
            None
        );
        assert_eq!(soft_open_files(""), None);
        assert_eq!(cap_for(Some(1024), 20, 1), 1024 - 20 - 68);
        assert_eq!(cap_for(Some(1_048_576), 20, 1), MAX_CONNECTIONS);
        assert_eq!(cap_for(Some(64), 20, 1), MIN_CONNECTIONS);
        assert_eq!(cap_for(None, 20, 1), MAX_CONNECTIONS);
    }
}
