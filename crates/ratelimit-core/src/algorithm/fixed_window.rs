//! The fixed window counter: at most `amount` units per aligned window.
//!
//! Windows are aligned on multiples of `window` since the clock's origin. It needs two numbers of
//! state and is what many servers (Envoy's ratelimit, simple Redis `INCR` limiters) enforce, but it
//! admits up to `2 * amount` units in an unaligned window straddling a boundary. Prefer
//! [`SlidingWindowLog`](super::SlidingWindowLog) to stay under a provider's limit.

use super::quota::Quota;
use super::{Algorithm, Status, Ticket, window_index};
use crate::error::TooLarge;
use crate::time::Nanos;

/// Fixed window counter: at most `amount` units in each aligned `window`.
///
/// ```
/// use ratelimit_core::algorithm::{Algorithm, FixedWindow, Quota};
/// use ratelimit_core::time::NANOS_PER_SEC;
///
/// let mut fw = FixedWindow::new(Quota::per_second(5)?);
/// fw.try_take(5, NANOS_PER_SEC / 2).unwrap();
/// assert_eq!(fw.earliest(1, NANOS_PER_SEC / 2)?, NANOS_PER_SEC);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedWindow {
    quota: Quota,
    index: u64,
    count: u64,
    horizon: Nanos,
}

impl FixedWindow {
    /// [`Algorithm::earliest`] for an `n` already known to fit the capacity.
    #[inline]
    pub(crate) fn earliest_fit(&self, n: u64, now: Nanos) -> Nanos {
        let limit = self.quota.amount();
        let t0 = now.max(self.horizon);
        if self.count_at(t0).saturating_add(n) <= limit {
            t0
        } else {
            self.window_end().max(t0)
        }
    }

    /// An empty counter enforcing `quota` (its burst is ignored).
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            index: 0,
            count: 0,
            horizon: 0,
        }
    }

    fn count_at(&self, t: Nanos) -> u64 {
        if window_index(t, self.quota.window()) == self.index {
            self.count
        } else {
            0
        }
    }

    fn window_end(&self) -> Nanos {
        self.index
            .saturating_add(1)
            .saturating_mul(self.quota.window())
    }
}

impl Algorithm for FixedWindow {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn max_cost(&self) -> u64 {
        self.quota.amount()
    }

    fn earliest(&self, n: u64, now: Nanos) -> Result<Nanos, TooLarge> {
        super::check_cost(n, self.max_cost(), self.quota.window())?;
        Ok(self.earliest_fit(n, now))
    }

    fn record(&mut self, n: u64, at: Nanos, _now: Nanos) -> Ticket {
        let prev = self.horizon;
        self.horizon = self.horizon.max(at);
        let index = window_index(self.horizon, self.quota.window());
        // `mark` keeps what a roll-over dropped (count + 1; 0 = no roll-over), to undo it.
        let mut mark = 0;
        if index != self.index {
            mark = self.count.saturating_add(1);
            self.index = index;
            self.count = 0;
        }
        self.count = self.count.saturating_add(n);
        Ticket {
            amount: n,
            at: self.horizon,
            mark,
            prev,
            gap: 0,
        }
    }

    fn adjust(&mut self, ticket: &mut Ticket, actual: u64, _now: Nanos) {
        if window_index(ticket.at, self.quota.window()) == self.index {
            self.count = self
                .count
                .saturating_sub(ticket.amount)
                .saturating_add(actual);
        }
        ticket.amount = actual;
    }

    fn give_back(&mut self, mut ticket: Ticket, now: Nanos) {
        let latest =
            ticket.at == self.horizon && window_index(ticket.at, self.quota.window()) == self.index;
        if latest && ticket.mark == 0 {
            self.count = self.count.saturating_sub(ticket.amount);
            self.horizon = ticket.prev;
        } else if latest && self.count == ticket.amount {
            // It opened this window and is all it holds: undo the roll-over.
            self.count = ticket.mark - 1;
            self.horizon = ticket.prev;
            self.index = window_index(ticket.prev, self.quota.window());
        } else {
            self.adjust(&mut ticket, 0, now);
        }
    }

    fn credit(&mut self, n: u64, _now: Nanos) {
        // Only the window of the latest grant holds anything that still counts.
        self.count = self.count.saturating_sub(n);
    }

    fn peek(&self, now: Nanos) -> Status {
        let limit = self.quota.amount();
        let t0 = now.max(self.horizon);
        let used = self.count_at(t0);
        Status {
            limit,
            capacity: limit,
            remaining: if self.horizon > now {
                0
            } else {
                limit.saturating_sub(used)
            },
            reset_after: if used > 0 {
                self.window_end().saturating_sub(now)
            } else {
                0
            },
        }
    }

    fn set_quota(&mut self, quota: Quota, _now: Nanos) {
        if quota.window() != self.quota.window() {
            // Re-align on the latest grant: the current window's usage carries over.
            let used = self.count_at(self.horizon);
            self.index = window_index(self.horizon, quota.window());
            self.count = used;
        }
        self.quota = quota;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NANOS_PER_SEC;

    #[test]
    fn admits_twice_the_limit_around_a_boundary_as_documented() {
        let mut fw = FixedWindow::new(Quota::per_second(10).unwrap());
        fw.try_take(10, NANOS_PER_SEC - 1).unwrap();
        fw.try_take(10, NANOS_PER_SEC).unwrap();
        assert!(fw.try_take(1, NANOS_PER_SEC).is_err());
    }

    #[test]
    fn refund_in_the_same_window_only() {
        let mut fw = FixedWindow::new(Quota::per_second(10).unwrap());
        let mut a = fw.try_take(10, 0).unwrap();
        fw.adjust(&mut a, 4, 0);
        assert_eq!(fw.peek(0).remaining, 6);
        fw.try_take(1, NANOS_PER_SEC).unwrap();
        fw.adjust(&mut a, 0, NANOS_PER_SEC);
        assert_eq!(fw.peek(NANOS_PER_SEC).remaining, 9);
    }
}
