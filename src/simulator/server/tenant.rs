//! What the API checks per token before it answers: that the token is known, its
//! daily budget, the two simultaneous requests, and the next fault the token is to
//! meet.

use std::time::Duration;

use jiff::Timestamp;

use crate::simulator::{Fault, MAX_CONCURRENT_PER_TOKEN, Simulator, budget_day};

/// One admitted `diagram_1` request on a token; dropping it (on every exit path,
/// cancellation included) frees the slot.
pub(crate) struct InFlight {
    sim: Simulator,
    token: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.sim.lock();
        if let Some(tenant) = state.tenants.get_mut(&self.token) {
            tenant.in_flight = tenant.in_flight.saturating_sub(1);
        }
    }
}

impl Simulator {
    pub(super) fn is_known(&self, token: &str) -> bool {
        self.lock().tenants.get(token).is_some_and(|t| t.known)
    }

    /// Counts one call against the token's budget; false once the budget is spent.
    /// Refused calls count too: the vendor counts every call.
    pub(super) fn spend_budget(&self, token: &str, now: Timestamp) -> bool {
        let today = budget_day(now);
        let mut state = self.lock();
        let tenant = state.tenant(token);
        if tenant.budget_day != Some(today) {
            tenant.budget_day = Some(today);
            tenant.used_today = 0;
        }
        tenant.used_today = tenant.used_today.saturating_add(1);
        tenant
            .budget
            .is_none_or(|budget| tenant.used_today <= budget)
    }

    /// Takes an in-flight slot; the attempt is counted in `max_in_flight` even when
    /// refused, so tests see a client that overlaps too many requests.
    pub(super) fn admit(&self, token: &str) -> Option<InFlight> {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        tenant.in_flight += 1;
        tenant.max_in_flight = tenant.max_in_flight.max(tenant.in_flight);
        if tenant.in_flight > MAX_CONCURRENT_PER_TOKEN {
            tenant.in_flight -= 1;
            return None;
        }
        Some(InFlight {
            sim: self.clone(),
            token: token.to_string(),
        })
    }

    pub(super) fn next_fault(&self, token: &str) -> Option<Fault> {
        let mut state = self.lock();
        let tenant = state.tenant(token);
        if let Some(fault) = tenant.faults.pop_front() {
            return Some(fault);
        }
        let random = tenant.random_faults.as_mut()?;
        if !random.rng.chance(random.probability) {
            return None;
        }
        Some(match random.rng.below(4) {
            0 => Fault::ServerErrorHtml(502),
            1 => Fault::ServerErrorHtml(503),
            2 => Fault::Maintenance,
            _ => Fault::Slow(Duration::from_secs(2)),
        })
    }
}
