//! GCRA, the generic cell rate algorithm: a continuous token bucket kept as one number.
//!
//! The state is the *theoretical arrival time* (TAT): the instant at which the bucket would be full
//! again if nothing more were taken. Taking `n` units pushes the TAT `n` emission intervals into the
//! future; a request fits when the pushed TAT stays within the burst tolerance of `now`.
//!
//! To avoid the rounding errors of a per-unit emission interval (`window / amount` is rarely a whole
//! number of nanoseconds, and rounding it costs an off-by-one in the burst), time is kept *scaled*:
//! one unit of the scaled clock is `1 / amount` nanosecond, so one emission interval is exactly
//! `window` scaled units. All arithmetic is exact 128-bit integer arithmetic.

use super::quota::Quota;
use super::{Algorithm, Status, TakeError, Ticket};
use crate::error::TooLarge;
use crate::time::{Nanos, div_ceil_sat, div_floor_sat};

/// The virtual schedule shared by [`Gcra`] and [`LeakyBucket`](super::LeakyBucket).
///
/// Besides the scaled TAT it keeps two numbers that make refunds safe: the running total of units
/// ever recorded or charged, and the latest grant instant.
///
/// Packed to 8-byte alignment: the `u128` alone would align every meter (and a policy's every
/// limit) to 16 bytes, padding each by 16 bytes per key of a keyed limiter. The fields are only
/// ever read and written by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C, packed(8))]
pub(crate) struct Schedule {
    /// Theoretical arrival time, in scaled units (`ns * amount`).
    pub(crate) tat: u128,
    /// Units recorded or charged since creation, less refunds of the most recent grant (saturating).
    pub(crate) granted: u64,
    /// The latest instant anything was recorded at.
    pub(crate) latest: Nanos,
}

/// A decision instant and the schedule's backlog there, worked out once for both the check and
/// the record of one grant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Step {
    /// The instant: the requested one, or the latest grant instant if that is later.
    pub(crate) at: Nanos,
    /// `at` in scaled units.
    pub(crate) at_s: u128,
    /// How far the TAT is ahead of `at_s` (0 when it is not).
    pub(crate) backlog: u128,
}

impl Schedule {
    #[inline]
    pub(crate) fn scaled(t: Nanos, quota: &Quota) -> u128 {
        u128::from(t) * u128::from(quota.amount())
    }

    #[inline]
    pub(crate) fn cost(n: u64, quota: &Quota) -> u128 {
        // 64 x 64 bits: the product always fits in 128.
        u128::from(n) * u128::from(quota.window())
    }

    /// Scaled backlog: how far the TAT is ahead of `now`.
    #[inline]
    pub(crate) fn backlog(&self, now: Nanos, quota: &Quota) -> u128 {
        self.tat.saturating_sub(Self::scaled(now, quota))
    }

    /// The instant decisions are made at: never before the latest grant, so a clock that steps
    /// backwards sees the state as of the latest grant and is granted nothing extra.
    #[inline]
    pub(crate) fn effective(&self, now: Nanos) -> Nanos {
        now.max(self.latest)
    }

    /// The instant a grant requested at `at` is decided and recorded at (see
    /// [`effective`](Self::effective)) and the backlog there, worked out once for the check and
    /// the record.
    #[inline]
    pub(crate) fn step(&self, at: Nanos, quota: &Quota) -> Step {
        let at = self.effective(at);
        let at_s = Self::scaled(at, quota);
        Step {
            at,
            at_s,
            backlog: self.tat.saturating_sub(at_s),
        }
    }

    /// Records `n` units at `step`, worked out by [`step`](Self::step) on this very state.
    #[inline]
    pub(crate) fn commit(&mut self, n: u64, step: Step, quota: &Quota) -> Ticket {
        let prev = self.latest;
        let gap = u64::try_from(step.at_s.saturating_sub(self.tat)).unwrap_or(u64::MAX);
        // `at_s + backlog` is `max(tat, at_s)`: it cannot overflow.
        self.tat = (step.at_s + step.backlog).saturating_add(Self::cost(n, quota));
        self.granted = self.granted.saturating_add(n);
        // `step.at` is never before `latest` (see `effective`).
        self.latest = step.at;
        Ticket {
            amount: n,
            at: step.at,
            mark: self.granted,
            prev,
            gap,
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, n: u64, at: Nanos, quota: &Quota) -> Ticket {
        let step = self.step(at, quota);
        self.commit(n, step, quota)
    }

    /// Refund or charge a past grant.
    ///
    /// A charge pushes the TAT forward by the extra units: never less than the truth.
    ///
    /// A refund must not hand out capacity twice. Had the request cost `d` less from the start, the
    /// TAT would be `max(tat - d, later)`, where `later` is the largest contribution of the grants
    /// made after it, which the refund cannot shrink. We bound `later` from above by placing all of
    /// them at the latest grant instant (work moved later only pushes a TAT further): `later <=
    /// latest + units granted since the ticket`. So the refund is exact for the most recent grant,
    /// and for older ones it frees only what later grants have not already built upon.
    pub(crate) fn adjust(&mut self, ticket: &mut Ticket, actual: u64, quota: &Quota) {
        if actual < ticket.amount {
            let units = ticket.amount - actual;
            let refund = Self::cost(units, quota);
            let since = self.granted.saturating_sub(ticket.mark);
            if since == 0 {
                // The most recent grant: keep `granted` equal to its mark so it stays recognisable.
                self.granted -= units.min(self.granted);
                ticket.mark = self.granted;
            }
            let floor = Self::scaled(self.latest, quota).saturating_add(Self::cost(since, quota));
            self.tat = self.tat.saturating_sub(refund).max(floor).min(self.tat);
        } else {
            let extra = actual - ticket.amount;
            self.tat = self.tat.saturating_add(Self::cost(extra, quota));
            self.granted = self.granted.saturating_add(extra);
        }
        ticket.amount = actual;
    }

    /// Gives a ticket back. The most recent grant (nothing recorded or charged since) is undone:
    /// the TAT goes back by its units and the latest instant to what it was. Older ones are refunds.
    pub(crate) fn give_back(&mut self, mut ticket: Ticket, quota: &Quota) {
        if ticket.mark == self.granted && ticket.at == self.latest {
            self.tat = self
                .tat
                .saturating_sub(Self::cost(ticket.amount, quota))
                .saturating_sub(u128::from(ticket.gap));
            self.granted = self.granted.saturating_sub(ticket.amount);
            self.latest = ticket.prev;
        } else {
            self.adjust(&mut ticket, 0, quota);
        }
    }

    /// Gives back `n` units without a ticket: the TAT moves back, but never before the latest
    /// grant instant (a full bucket is as empty as it gets) and never forward.
    pub(crate) fn credit(&mut self, n: u64, quota: &Quota) {
        let floor = Self::scaled(self.latest, quota);
        self.tat = self
            .tat
            .saturating_sub(Self::cost(n, quota))
            .max(floor)
            .min(self.tat);
    }

    /// Re-expresses the backlog (in units, exactly) under a new quota.
    pub(crate) fn rescale(&mut self, old: &Quota, new: &Quota, now: Nanos) {
        let backlog = self.backlog(now, old);
        let (p_old, p_new) = (u128::from(old.window()), u128::from(new.window()));
        let (units, rest) = (backlog / p_old, backlog % p_old);
        let new_backlog = units
            .saturating_mul(p_new)
            .saturating_add((rest * p_new).div_ceil(p_old));
        self.tat = Self::scaled(now, new).saturating_add(new_backlog);
    }

    /// Nanoseconds until the TAT is reached (the bucket is full again), rounded up.
    pub(crate) fn reset_after(&self, now: Nanos, quota: &Quota) -> Nanos {
        div_ceil_sat(self.backlog(now, quota), u128::from(quota.amount()))
    }
}

/// GCRA: `amount` per `window` with a burst capacity of `burst` units.
///
/// ```
/// use ratelimit_core::algorithm::{Algorithm, Gcra, Quota, TakeError};
/// use ratelimit_core::time::NANOS_PER_SEC;
///
/// // 10 per second, burst 2: two at once, then one every 100 ms.
/// let mut gcra = Gcra::new(Quota::per_second(10)?.with_burst(2)?);
/// let now = 0;
/// assert!(gcra.try_take(1, now).is_ok());
/// assert!(gcra.try_take(1, now).is_ok());
/// assert_eq!(
///     gcra.try_take(1, now),
///     Err(TakeError::Wait { retry_after: NANOS_PER_SEC / 10 })
/// );
/// assert!(gcra.try_take(1, NANOS_PER_SEC / 10).is_ok());
/// # Ok::<(), ratelimit_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gcra {
    quota: Quota,
    schedule: Schedule,
}

impl Gcra {
    /// [`Algorithm::earliest`] for an `n` already known to fit the capacity.
    #[inline]
    pub(crate) fn earliest_fit(&self, n: u64, now: Nanos) -> Nanos {
        let step = self.schedule.step(now, &self.quota);
        match self.conforms(n, &step) {
            Ok(()) => step.at,
            Err(at) => at,
        }
    }

    /// How far the TAT may run ahead of the decision instant for `n` more units to fit: the burst
    /// less `n`, in scaled units. `n` must be at most the burst.
    ///
    /// This is the bucket test `max(tat, t) + n * window <= t + burst * window` (all scaled),
    /// rearranged as `max(tat - t, 0) <= (burst - n) * window`: the same integers, but nothing to
    /// saturate and one multiplication fewer.
    #[inline]
    fn slack(&self, n: u64) -> u128 {
        debug_assert!(n <= self.quota.burst());
        Schedule::cost(self.quota.burst() - n, &self.quota)
    }

    /// Whether `n` units (at most the burst) fit at `step`; if not, the instant they would.
    /// Exact: the first `t` with `tat <= t * amount + slack`, rounded up.
    #[inline]
    fn conforms(&self, n: u64, step: &Step) -> Result<(), Nanos> {
        let slack = self.slack(n);
        if step.backlog <= slack {
            return Ok(());
        }
        // Here tat > at_s + slack, so the first fit is `ceil((tat - slack) / amount)`, which is
        // `at + ceil((backlog - slack) / amount)` (`at_s` is `at * amount`): the same integer from
        // a far smaller dividend, which usually fits 64 bits.
        Err(step.at.saturating_add(div_ceil_sat(
            step.backlog - slack,
            u128::from(self.quota.amount()),
        )))
    }

    /// The grant of `n` units at exactly `now`, if it can be made then: within the burst, nothing
    /// granted after `now`, and the backlog within the slack. `None` exactly when
    /// [`Algorithm::try_take`] would refuse, and [`earliest_within`](Self::earliest_within) would
    /// say something other than `now`. [`commit`](Self::commit) records it.
    #[inline]
    pub(crate) fn admit_now(&self, n: u64, now: Nanos) -> Option<Step> {
        if n > self.quota.burst() || self.schedule.latest > now {
            return None;
        }
        let step = self.schedule.step(now, &self.quota);
        (step.backlog <= self.slack(n)).then_some(step)
    }

    /// Records the `n` units that [`admit_now`](Self::admit_now) admitted, on this very state.
    #[inline]
    pub(crate) fn commit(&mut self, n: u64, step: Step) -> Ticket {
        self.schedule.commit(n, step, &self.quota)
    }

    /// [`Algorithm::earliest`] with no error to build: `None` when `n` exceeds the burst.
    #[inline]
    pub(crate) fn earliest_within(&self, n: u64, now: Nanos) -> Option<Nanos> {
        (n <= self.quota.burst()).then(|| self.earliest_fit(n, now))
    }

    /// A full bucket enforcing `quota`.
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            schedule: Schedule::default(),
        }
    }

    #[inline]
    fn capacity(&self) -> u128 {
        Schedule::cost(self.quota.burst(), &self.quota)
    }
}

impl Algorithm for Gcra {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn max_cost(&self) -> u64 {
        self.quota.burst()
    }

    #[inline]
    fn earliest(&self, n: u64, now: Nanos) -> Result<Nanos, TooLarge> {
        super::check_cost(n, self.max_cost(), self.quota.window())?;
        Ok(self.earliest_fit(n, now))
    }

    #[inline]
    fn record(&mut self, n: u64, at: Nanos, _now: Nanos) -> Ticket {
        self.schedule.record(n, at, &self.quota)
    }

    /// As the trait's default (check, then record at `now`), but the grant is worked out once.
    #[inline]
    fn try_take(&mut self, n: u64, now: Nanos) -> Result<Ticket, TakeError> {
        super::check_cost(n, self.max_cost(), self.quota.window())?;
        let step = self.schedule.step(now, &self.quota);
        let at = match self.conforms(n, &step) {
            Ok(()) => step.at,
            Err(at) => at,
        };
        if at > now {
            return Err(TakeError::Wait {
                retry_after: at - now,
            });
        }
        Ok(self.schedule.commit(n, step, &self.quota))
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
        let q = &self.quota;
        let backlog = self.schedule.backlog(now, q);
        let cap = self.capacity();
        let remaining = if backlog >= cap || self.schedule.latest > now {
            0
        } else {
            div_floor_sat(cap - backlog, u128::from(q.window()))
        };
        Status {
            limit: q.amount(),
            capacity: q.burst(),
            remaining,
            reset_after: self.schedule.reset_after(now, q),
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
    use crate::time::{NANOS_PER_MINUTE, NANOS_PER_SEC};

    fn gcra(amount: u64, window: Nanos, burst: u64) -> Gcra {
        Gcra::new(
            Quota::new(amount, window)
                .unwrap()
                .with_burst(burst)
                .unwrap(),
        )
    }

    #[test]
    fn burst_is_the_total_capacity_not_one_more() {
        // 7 per minute does not divide into whole nanoseconds; the burst must still be exactly 7.
        let mut g = gcra(7, NANOS_PER_MINUTE, 7);
        for _ in 0..7 {
            g.try_take(1, 0).unwrap();
        }
        assert!(matches!(g.try_take(1, 0), Err(TakeError::Wait { .. })));
    }

    #[test]
    fn retry_after_is_exact_for_a_fractional_interval() {
        let mut g = gcra(7, NANOS_PER_MINUTE, 1);
        g.try_take(1, 0).unwrap();
        let Err(TakeError::Wait { retry_after }) = g.try_take(1, 0) else {
            panic!("second take must wait")
        };
        // 60 s / 7 = 8_571_428_571.43 ns, rounded up.
        assert_eq!(retry_after, 8_571_428_572);
        assert!(g.try_take(1, retry_after - 1).is_err());
        assert!(g.try_take(1, retry_after).is_ok());
    }

    #[test]
    fn request_larger_than_the_burst_is_refused_at_once() {
        let mut g = gcra(100, NANOS_PER_SEC, 10);
        let err = g.try_take(11, 0).unwrap_err();
        assert!(matches!(
            err,
            TakeError::TooLarge(TooLarge {
                requested: 11,
                max: 10,
                ..
            })
        ));
        assert!(g.reserve(11, 0).is_err());
        assert_eq!(g.peek(0).remaining, 10, "a refused request takes nothing");
    }

    #[test]
    fn reservations_queue_in_order() {
        let mut g = gcra(1, NANOS_PER_SEC, 1);
        let a = g.reserve(1, 0).unwrap();
        let b = g.reserve(1, 0).unwrap();
        let c = g.reserve(1, 0).unwrap();
        assert_eq!(
            (a.granted_at(), b.granted_at(), c.granted_at()),
            (0, NANOS_PER_SEC, 2 * NANOS_PER_SEC)
        );
    }

    #[test]
    fn refund_of_the_latest_grant_is_exact() {
        let mut g = gcra(10, NANOS_PER_SEC, 10);
        let mut t = g.try_take(10, 0).unwrap();
        assert_eq!(g.peek(0).remaining, 0);
        g.adjust(&mut t, 4, 0);
        assert_eq!(g.peek(0).remaining, 6);
    }

    #[test]
    fn refund_of_a_drained_grant_gives_nothing_twice() {
        // The regression from the design notes: refunding a grant whose units have already been
        // replenished must not create capacity beyond the burst.
        let mut g = gcra(10, 10 * NANOS_PER_SEC, 10); // one unit per second
        let mut first = g.try_take(10, 0).unwrap();
        let t12 = 12 * NANOS_PER_SEC;
        g.try_take(10, t12).unwrap(); // bucket was full again at t = 10 s
        g.adjust(&mut first, 5, t12);
        assert_eq!(g.peek(t12).remaining, 0, "the refund must not add capacity");
    }

    #[test]
    fn refund_cannot_undercut_a_later_grant() {
        // A takes 10 at 0; B takes 1 at 8 (one unit per ns of scaled time here: 1 per second).
        // Refunding 5 of A: had A cost 5, B would have found an idle bucket at 8 and the TAT would
        // be 9 s, not 11 - 5 = 6 s.
        let mut g = gcra(10, 10 * NANOS_PER_SEC, 10);
        let mut a = g.try_take(10, 0).unwrap();
        g.try_take(1, 8 * NANOS_PER_SEC).unwrap();
        g.adjust(&mut a, 5, 8 * NANOS_PER_SEC);
        assert_eq!(g.peek(8 * NANOS_PER_SEC).reset_after, NANOS_PER_SEC);
        assert_eq!(g.peek(8 * NANOS_PER_SEC).remaining, 9);
    }

    #[test]
    fn charge_goes_into_debt() {
        let mut g = gcra(10, 10 * NANOS_PER_SEC, 10);
        let mut t = g.try_take(5, 0).unwrap();
        g.adjust(&mut t, 15, 0);
        assert_eq!(g.peek(0).remaining, 0);
        assert_eq!(g.earliest(1, 0).unwrap(), 6 * NANOS_PER_SEC);
    }

    #[test]
    fn clock_going_backwards_grants_nothing_extra() {
        let mut g = gcra(10, 10 * NANOS_PER_SEC, 10);
        g.try_take(10, 100 * NANOS_PER_SEC).unwrap();
        assert!(g.try_take(1, 0).is_err());
        assert_eq!(g.peek(0).remaining, 0);
        assert!(g.try_take(1, 101 * NANOS_PER_SEC).is_ok());
    }

    #[test]
    fn lowering_the_rate_keeps_the_usage() {
        let mut g = gcra(10, NANOS_PER_SEC, 10);
        g.try_take(5, 0).unwrap();
        g.set_quota(Quota::new(20, NANOS_PER_SEC).unwrap(), 0);
        // 5 of the new burst of 20 are used: 15 remain, not a fresh 20.
        assert_eq!(g.peek(0).remaining, 15);
        g.set_quota(Quota::new(4, NANOS_PER_SEC).unwrap(), 0);
        assert_eq!(g.peek(0).remaining, 0, "5 used of a burst of 4: none left");
    }

    #[test]
    fn peek_reports_time_to_full() {
        let mut g = gcra(60, NANOS_PER_MINUTE, 60);
        g.try_take(30, 0).unwrap();
        let s = g.peek(0);
        assert_eq!((s.remaining, s.reset_after), (30, 30 * NANOS_PER_SEC));
    }

    #[test]
    fn far_future_instants_saturate_without_panicking() {
        let mut g = gcra(1, Nanos::MAX >> 8, 1);
        g.try_take(1, Nanos::MAX).unwrap();
        assert_eq!(g.earliest(1, Nanos::MAX).unwrap(), Nanos::MAX);
        let _ = g.peek(0);
    }
}
