//! The leaky bucket as a smoothing meter: fixed spacing, no burst.
//!
//! Units leave at a constant rate of `amount` per `window`. A request of `n` units may start only
//! when everything granted before it has drained, and it then occupies `n` emission intervals. The
//! output is perfectly smooth: in any interval of length `d`, at most `d * amount / window` units
//! plus the one request in progress. Use it in front of providers that refuse bursts (Azure
//! enforces its per-minute quota over 1 s and 10 s windows). Burst sets the largest single request.

use super::gcra::Schedule;
use super::quota::Quota;
use super::{Algorithm, Status, Ticket};
use crate::error::TooLarge;
use crate::time::{Nanos, div_ceil_sat};

/// Leaky bucket meter: `amount` units per `window`, spaced evenly; no request larger than `burst`.
///
/// ```
/// use ratelimit_core::algorithm::{Algorithm, LeakyBucket, Quota};
/// use ratelimit_core::time::NANOS_PER_SEC;
///
/// let mut leaky = LeakyBucket::new(Quota::per_second(4)?);
/// let a = leaky.reserve(1, 0)?;
/// let b = leaky.reserve(1, 0)?;
/// let c = leaky.reserve(2, 0)?;
/// let d = leaky.reserve(1, 0)?;
/// assert_eq!(
///     [a.granted_at(), b.granted_at(), c.granted_at(), d.granted_at()],
///     [0, NANOS_PER_SEC / 4, NANOS_PER_SEC / 2, NANOS_PER_SEC]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakyBucket {
    quota: Quota,
    schedule: Schedule,
}

impl LeakyBucket {
    /// [`Algorithm::earliest`] for an `n` already known to fit the capacity.
    #[inline]
    pub(crate) fn earliest_fit(&self, _n: u64, now: Nanos) -> Nanos {
        let t = self.schedule.effective(now);
        if self.schedule.tat <= Schedule::scaled(t, &self.quota) {
            return t;
        }
        div_ceil_sat(self.schedule.tat, u128::from(self.quota.amount())).max(t)
    }

    /// An idle meter enforcing `quota`.
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            schedule: Schedule::default(),
        }
    }
}

impl Algorithm for LeakyBucket {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn max_cost(&self) -> u64 {
        self.quota.burst()
    }

    fn earliest(&self, n: u64, now: Nanos) -> Result<Nanos, TooLarge> {
        super::check_cost(n, self.max_cost(), self.quota.window())?;
        Ok(self.earliest_fit(n, now))
    }

    fn record(&mut self, n: u64, at: Nanos, _now: Nanos) -> Ticket {
        self.schedule.record(n, at, &self.quota)
    }

    fn adjust(&mut self, ticket: &mut Ticket, actual: u64, _now: Nanos) {
        self.schedule.adjust(ticket, actual, &self.quota);
    }

    fn give_back(&mut self, ticket: Ticket, _now: Nanos) {
        self.schedule.give_back(ticket, &self.quota);
    }

    fn credit(&mut self, n: u64, _now: Nanos) {
        self.schedule.credit(n, &self.quota);
    }

    fn peek(&self, now: Nanos) -> Status {
        let idle =
            self.schedule.tat <= Schedule::scaled(now, &self.quota) && self.schedule.latest <= now;
        Status {
            limit: self.quota.amount(),
            capacity: self.quota.burst(),
            remaining: if idle { self.quota.burst() } else { 0 },
            reset_after: self.schedule.reset_after(now, &self.quota),
        }
    }

    fn set_quota(&mut self, quota: Quota, now: Nanos) {
        self.schedule.rescale(&self.quota, &quota, now);
        self.quota = quota;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::TakeError;
    use crate::time::NANOS_PER_SEC;

    #[test]
    fn no_burst_even_when_idle_for_long() {
        let mut l = LeakyBucket::new(Quota::per_second(10).unwrap());
        l.try_take(1, 100 * NANOS_PER_SEC).unwrap();
        assert_eq!(
            l.try_take(1, 100 * NANOS_PER_SEC),
            Err(TakeError::Wait {
                retry_after: NANOS_PER_SEC / 10
            })
        );
    }

    #[test]
    fn larger_requests_occupy_proportionally_more() {
        let mut l = LeakyBucket::new(Quota::per_second(10).unwrap());
        l.try_take(5, 0).unwrap();
        assert_eq!(l.earliest(1, 0).unwrap(), NANOS_PER_SEC / 2);
        assert!(l.try_take(11, NANOS_PER_SEC).is_err());
    }
}
