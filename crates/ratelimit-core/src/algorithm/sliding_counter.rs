//! The sliding window counter: two fixed-window counts blended into an estimate of the last window.
//!
//! At an instant `e` nanoseconds into the current aligned window, the estimate is
//! `ceil(previous * (window - e) / window) + current`: the previous window's count is assumed spread
//! evenly and weighted by how much of it the sliding window still covers. A request of `n` is
//! admitted when `estimate + n <= amount`. State is three numbers, whatever the traffic.
//!
//! # Error bound
//! Every aligned window holds at most `amount`. An unaligned window `(a, a + window]` that starts `g`
//! nanoseconds into aligned window `k - 1`, whose final count is `p`, holds at most
//! `amount + floor(p * g / window)` units, so never more than `2 * amount - 1`. The bound is reached
//! only when the previous window's traffic all came at its very end; with traffic spread evenly the
//! estimate is close to exact. The derivation is in `docs/algorithms.md`, and a property test checks
//! the bound on every window of random runs.

use super::quota::Quota;
use super::{Algorithm, Status, Ticket, window_index};
use crate::error::TooLarge;
use crate::time::Nanos;

/// Sliding window counter: approximately `amount` per sliding `window`; see the module docs for
/// the exact error bound.
///
/// ```
/// use ratelimit_core::algorithm::{Algorithm, Quota, SlidingWindowCounter};
/// use ratelimit_core::time::NANOS_PER_SEC;
///
/// let mut c = SlidingWindowCounter::new(Quota::per_second(10)?);
/// c.try_take(10, 0).unwrap();
/// // Half-way into the next window, half of the previous count still weighs in.
/// assert_eq!(c.earliest(5, NANOS_PER_SEC)?, NANOS_PER_SEC + NANOS_PER_SEC / 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindowCounter {
    quota: Quota,
    index: u64,
    current: u64,
    previous: u64,
    horizon: Nanos,
}

impl SlidingWindowCounter {
    /// [`Algorithm::earliest`] for an `n` already known to fit the capacity.
    #[inline]
    pub(crate) fn earliest_fit(&self, n: u64, now: Nanos) -> Nanos {
        let w = self.quota.window();
        let t0 = now.max(self.horizon);
        let k = window_index(t0, w);
        let (previous, current) = self.counts_for(k);
        if let Some(t) = self.earliest_in(k, t0, previous, current, n) {
            return t;
        }
        let next = k.saturating_add(1);
        let next_start = next.saturating_mul(w);
        if let Some(t) = self.earliest_in(next, next_start, current, 0, n) {
            return t;
        }
        // Two windows on, both counts are zero and any n <= limit fits.
        next.saturating_add(1).saturating_mul(w)
    }

    /// An empty counter enforcing `quota` (its burst is ignored).
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            index: 0,
            current: 0,
            previous: 0,
            horizon: 0,
        }
    }

    /// (previous, current) counts as seen from aligned window `k`.
    fn counts_for(&self, k: u64) -> (u64, u64) {
        if k == self.index {
            (self.previous, self.current)
        } else if k == self.index.saturating_add(1) {
            (self.current, 0)
        } else {
            (0, 0)
        }
    }

    fn weighted(previous: u64, elapsed: Nanos, window: Nanos) -> u64 {
        let w = u128::from(window);
        let left = u128::from(window.saturating_sub(elapsed));
        crate::time::div_ceil_sat(u128::from(previous) * left, w)
    }

    fn estimate(&self, t: Nanos) -> u64 {
        let w = self.quota.window();
        let k = window_index(t, w);
        let (previous, current) = self.counts_for(k);
        Self::weighted(previous, t - k * w, w).saturating_add(current)
    }

    /// Earliest instant in aligned window `k`, not before `from`, at which `n` fits given the
    /// counts `(previous, current)`; `None` if it does not fit within that window.
    fn earliest_in(
        &self,
        k: u64,
        from: Nanos,
        previous: u64,
        current: u64,
        n: u64,
    ) -> Option<Nanos> {
        let limit = self.quota.amount();
        let w = self.quota.window();
        let room = limit.checked_sub(current.saturating_add(n))?;
        let start = k.saturating_mul(w);
        let elapsed_needed = if previous == 0 {
            0
        } else {
            // ceil(previous * (w - e) / w) <= room  <=>  previous * (w - e) <= room * w
            //                                        <=>  e >= w - floor(room * w / previous)
            let slack = u128::from(room) * u128::from(w) / u128::from(previous);
            w.saturating_sub(u64::try_from(slack).unwrap_or(u64::MAX))
        };
        let t = start.saturating_add(elapsed_needed).max(from);
        (t < start.saturating_add(w)).then_some(t)
    }
}

impl Algorithm for SlidingWindowCounter {
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
        let k = window_index(self.horizon, self.quota.window());
        // `mark` and `gap` keep what a roll-over dropped (previous + 1, current; mark 0 = no
        // roll-over), to undo it.
        let (mut mark, mut gap) = (0, 0);
        if k != self.index {
            (mark, gap) = (self.previous.saturating_add(1), self.current);
            let (previous, current) = self.counts_for(k);
            self.index = k;
            self.previous = previous;
            self.current = current;
        }
        self.current = self.current.saturating_add(n);
        Ticket {
            amount: n,
            at: self.horizon,
            mark,
            prev,
            gap,
        }
    }

    fn give_back(&mut self, mut ticket: Ticket, now: Nanos) {
        let latest =
            ticket.at == self.horizon && window_index(ticket.at, self.quota.window()) == self.index;
        if latest && ticket.mark == 0 {
            self.current = self.current.saturating_sub(ticket.amount);
            self.horizon = ticket.prev;
        } else if latest && self.current == ticket.amount {
            // It opened this window and is all it holds: undo the roll-over.
            self.previous = ticket.mark - 1;
            self.current = ticket.gap;
            self.horizon = ticket.prev;
            self.index = window_index(ticket.prev, self.quota.window());
        } else {
            self.adjust(&mut ticket, 0, now);
        }
    }

    fn adjust(&mut self, ticket: &mut Ticket, actual: u64, _now: Nanos) {
        let k = window_index(ticket.at, self.quota.window());
        let slot = if k == self.index {
            Some(&mut self.current)
        } else if k.saturating_add(1) == self.index {
            Some(&mut self.previous)
        } else {
            None
        };
        if let Some(count) = slot {
            *count = count.saturating_sub(ticket.amount).saturating_add(actual);
        }
        ticket.amount = actual;
    }

    fn credit(&mut self, n: u64, _now: Nanos) {
        // Newest usage first: the current window, then what still weighs in from the previous one.
        let from_current = n.min(self.current);
        self.current -= from_current;
        self.previous = self.previous.saturating_sub(n - from_current);
    }

    fn peek(&self, now: Nanos) -> Status {
        let limit = self.quota.amount();
        let w = self.quota.window();
        let t0 = now.max(self.horizon);
        let estimate = self.estimate(t0);
        let k = window_index(t0, w);
        let (previous, current) = self.counts_for(k);
        // Fully replenished once the current window's count has slid out: end of the next window.
        let reset_at = if current > 0 {
            k.saturating_add(2).saturating_mul(w)
        } else if previous > 0 {
            k.saturating_add(1).saturating_mul(w)
        } else {
            0
        };
        Status {
            limit,
            capacity: limit,
            remaining: if self.horizon > now {
                0
            } else {
                limit.saturating_sub(estimate)
            },
            reset_after: reset_at.saturating_sub(now),
        }
    }

    fn set_quota(&mut self, quota: Quota, _now: Nanos) {
        if quota.window() != self.quota.window() {
            // Re-align on the latest grant: its estimate carries over as the current count.
            let used = self.estimate(self.horizon);
            self.index = window_index(self.horizon, quota.window());
            self.previous = 0;
            self.current = used;
        }
        self.quota = quota;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::TakeError;
    use crate::time::NANOS_PER_SEC;

    #[test]
    fn retry_after_lands_exactly_where_the_estimate_allows() {
        let mut c = SlidingWindowCounter::new(Quota::per_second(10).unwrap());
        c.try_take(10, NANOS_PER_SEC - 1).unwrap();
        let Err(TakeError::Wait { retry_after }) = c.try_take(4, NANOS_PER_SEC) else {
            panic!("must wait")
        };
        let at = NANOS_PER_SEC + retry_after;
        assert!(c.clone().try_take(4, at - 1).is_err());
        assert!(c.try_take(4, at).is_ok());
    }

    #[test]
    fn a_full_limit_request_waits_until_the_previous_window_slid_out() {
        let mut c = SlidingWindowCounter::new(Quota::per_second(10).unwrap());
        c.try_take(1, 0).unwrap();
        assert_eq!(c.earliest(10, 0).unwrap(), 2 * NANOS_PER_SEC);
    }
}
