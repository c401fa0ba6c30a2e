//! At most one log line per [`LOG_EVERY`] for events a client can cause at will (failed
//! handshakes, timed-out connections), with the count of those not written, so a flood
//! is visible without filling the disk.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(super) const LOG_EVERY: Duration = Duration::from_secs(10);

pub(super) struct Throttle {
    state: Mutex<State>,
}

struct State {
    last: Option<Instant>,
    /// Events noted since the last line.
    pending: u64,
}

impl Throttle {
    pub(super) const fn new() -> Throttle {
        Throttle {
            state: Mutex::new(State {
                last: None,
                pending: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Notes `n` events at `now`; `Some(all events since the last line, these
    /// included)` when a line is due now.
    pub(super) fn note(&self, now: Instant, n: u64) -> Option<u64> {
        let mut s = self.state();
        s.pending += n;
        let due = s
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= LOG_EVERY);
        if !due || s.pending == 0 {
            return None;
        }
        s.last = Some(now);
        Some(std::mem::take(&mut s.pending))
    }

    /// The events not written yet, once a line is due again: so the last of a burst is
    /// counted too.
    pub(super) fn flush(&self, now: Instant) -> Option<u64> {
        self.note(now, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_rest_counted() {
        let t = Throttle::new();
        let t0 = Instant::now();
        assert_eq!(t.note(t0, 1), Some(1), "the first one is written");
        for i in 1..100 {
            assert_eq!(t.note(t0 + Duration::from_millis(i * 10), 1), None);
        }
        assert_eq!(t.flush(t0 + Duration::from_secs(5)), None, "not due yet");
        assert_eq!(t.flush(t0 + LOG_EVERY), Some(99), "the suppressed ones");
        assert_eq!(t.flush(t0 + LOG_EVERY * 5), None, "nothing pending");
        assert_eq!(t.note(t0 + LOG_EVERY * 5, 3), Some(3));
    }
}
