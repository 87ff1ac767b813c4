//! The exact sliding window log: never more than `amount` units in any window of length `window`.
//!
//! Each grant is kept as an entry (time, running total). A grant at `t` is admitted when the units
//! granted in `(t - window, t]` plus the request stay within the limit; since grants are made in
//! time order, that single check bounds *every* window, not just the ones ending at a grant. This
//! is how providers that say "N per minute" enforce it, so it is the right model to run just under
//! them.
//!
//! Cost: memory is one entry (16 bytes) per grant still in the window; a decision is
//! `O(log entries)` (binary search over running totals) plus the amortized cost of dropping expired
//! entries; an adjustment touches only the entries granted after the adjusted one.

use std::collections::VecDeque;

use super::quota::Quota;
use super::{Algorithm, Status, Ticket};
use crate::error::TooLarge;
use crate::time::Nanos;

/// Ticket mark for a zero-unit grant, which records no entry.
const NO_ENTRY: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    at: Nanos,
    /// Units granted since the log began, up to and including this entry (saturating).
    cum: u64,
}

/// Sliding window log: at most `amount` units in any `window`-long interval.
///
/// ```
/// use ratelimit_core::algorithm::{Algorithm, Quota, SlidingWindowLog};
/// use ratelimit_core::time::NANOS_PER_SEC;
///
/// let mut log = SlidingWindowLog::new(Quota::per_second(3)?);
/// log.try_take(2, 0).unwrap();
/// log.try_take(1, NANOS_PER_SEC / 2).unwrap();
/// // The first two units leave the window at exactly t = 1 s.
/// assert_eq!(log.earliest(2, NANOS_PER_SEC / 2)?, NANOS_PER_SEC);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindowLog {
    quota: Quota,
    entries: VecDeque<Entry>,
    /// Running total of the entries already dropped from the front.
    base_cum: u64,
    /// Sequence number of `entries[0]`.
    base_seq: u64,
    /// The latest grant instant: nothing is granted before it.
    horizon: Nanos,
    /// The latest `now` observed. Time is taken never to run back past it, which is what lets the
    /// log forget entries for good even when later grants are given back.
    seen: Nanos,
}

impl SlidingWindowLog {
    /// [`Algorithm::earliest`] for an `n` already known to fit the capacity.
    #[inline]
    pub(crate) fn earliest_fit(&self, n: u64, now: Nanos) -> Nanos {
        let limit = self.quota.amount();
        let t0 = self.effective(now);
        let last = self.last_cum();
        if last - self.cum_before(self.first_live(t0)) + n <= limit {
            return t0;
        }
        // Drop entries from the front until the rest plus `n` fits: the first entry j with
        // last - cum[j] + n <= limit, i.e. cum[j] >= last + n - limit. It leaves the window at
        // entries[j].at + window.
        let target = last.saturating_add(n) - limit;
        let j = self.entries.partition_point(|e| e.cum < target);
        let leaves = self
            .entries
            .get(j)
            .map_or(t0, |e| e.at.saturating_add(self.quota.window()));
        leaves.max(t0)
    }

    /// An empty log enforcing `quota` (its burst is ignored).
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            entries: VecDeque::new(),
            base_cum: 0,
            base_seq: 0,
            horizon: 0,
            seen: 0,
        }
    }

    /// Number of grants currently remembered (for memory accounting).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no grant is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn last_cum(&self) -> u64 {
        self.entries.back().map_or(self.base_cum, |e| e.cum)
    }

    fn cum_before(&self, index: usize) -> u64 {
        if index == 0 {
            self.base_cum
        } else {
            self.entries[index - 1].cum
        }
    }

    /// Index of the first entry still inside the window ending at `t`.
    fn first_live(&self, t: Nanos) -> usize {
        let w = self.quota.window();
        self.entries
            .partition_point(|e| e.at.saturating_add(w) <= t)
    }

    /// Units granted in `(t - window, t]`.
    fn used_at(&self, t: Nanos) -> u64 {
        self.last_cum() - self.cum_before(self.first_live(t))
    }

    fn expire(&mut self, t: Nanos) {
        let dead = self.first_live(t);
        if dead > 0 {
            self.base_cum = self.entries[dead - 1].cum;
            self.entries.drain(..dead);
            self.base_seq += dead as u64;
        }
    }

    /// The instant a decision asked at `now` is made at.
    fn effective(&self, now: Nanos) -> Nanos {
        now.max(self.horizon).max(self.seen)
    }

    fn push(&mut self, n: u64, at: Nanos) -> Ticket {
        // Drop only what no decision can need again, even if later grants are given back (which
        // restores the horizon, but never below what has been seen).
        self.expire(self.seen);
        let prev = self.horizon;
        self.horizon = self.horizon.max(at);
        let at = self.horizon;
        let seq = self.base_seq + self.entries.len() as u64;
        let cum = self.last_cum().saturating_add(n);
        self.entries.push_back(Entry { at, cum });
        Ticket {
            amount: n,
            at,
            mark: seq,
            prev,
            gap: 0,
        }
    }
}

impl Algorithm for SlidingWindowLog {
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

    fn record(&mut self, n: u64, at: Nanos, now: Nanos) -> Ticket {
        self.seen = self.seen.max(now);
        let at = at.max(self.seen);
        if n == 0 {
            let prev = self.horizon;
            self.horizon = self.horizon.max(at);
            return Ticket {
                amount: 0,
                at: self.horizon,
                mark: NO_ENTRY,
                prev,
                gap: 0,
            };
        }
        self.push(n, at)
    }

    fn adjust(&mut self, ticket: &mut Ticket, actual: u64, now: Nanos) {
        self.seen = self.seen.max(now);
        if ticket.mark == NO_ENTRY {
            if actual > 0 {
                // Nothing was recorded: the whole usage is a new charge, recorded now.
                *ticket = self.push(actual, self.effective(now));
            }
            return;
        }
        let Some(index) = ticket
            .mark
            .checked_sub(self.base_seq)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.entries.len())
        else {
            // Already out of the window: it no longer counts either way.
            ticket.amount = actual;
            return;
        };
        let old = ticket.amount;
        for e in self.entries.range_mut(index..) {
            e.cum = if actual >= old {
                e.cum.saturating_add(actual - old)
            } else {
                e.cum.saturating_sub(old - actual)
            };
        }
        ticket.amount = actual;
    }

    fn give_back(&mut self, mut ticket: Ticket, now: Nanos) {
        self.seen = self.seen.max(now);
        let last = (self.base_seq + self.entries.len() as u64).checked_sub(1);
        if ticket.mark != NO_ENTRY && Some(ticket.mark) == last && ticket.at == self.horizon {
            self.entries.pop_back();
            self.horizon = ticket.prev;
        } else if ticket.mark == NO_ENTRY && ticket.at == self.horizon {
            self.horizon = ticket.prev.max(self.entries.back().map_or(0, |e| e.at));
        } else {
            self.adjust(&mut ticket, 0, now);
        }
    }

    fn credit(&mut self, n: u64, now: Nanos) {
        // Take the units off the newest live entries, keeping every entry (tickets find theirs by
        // sequence number): an entry emptied this way just holds zero units until it expires.
        let live = self.first_live(self.effective(now));
        let mut rest = n;
        let mut removed = vec![0_u64; self.entries.len() - live];
        for (k, i) in (live..self.entries.len()).enumerate().rev() {
            if rest == 0 {
                break;
            }
            let amount = self.entries[i].cum - self.cum_before(i);
            removed[k] = amount.min(rest);
            rest -= removed[k];
        }
        let mut total = 0_u64;
        for (k, entry) in self.entries.iter_mut().skip(live).enumerate() {
            total += removed[k];
            entry.cum -= total;
        }
    }

    fn peek(&self, now: Nanos) -> Status {
        let limit = self.quota.amount();
        let t = self.effective(now);
        let remaining = if self.horizon > now.max(self.seen) {
            0
        } else {
            limit.saturating_sub(self.used_at(t))
        };
        let reset_after = match self.entries.back() {
            Some(e) if self.used_at(t) > 0 => {
                e.at.saturating_add(self.quota.window()).saturating_sub(now)
            }
            _ => 0,
        };
        Status {
            limit,
            capacity: limit,
            remaining,
            reset_after,
        }
    }

    fn set_quota(&mut self, quota: Quota, _now: Nanos) {
        self.quota = quota;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::TakeError;
    use crate::time::NANOS_PER_SEC;

    fn log(amount: u64) -> SlidingWindowLog {
        SlidingWindowLog::new(Quota::per_second(amount).unwrap())
    }

    #[test]
    fn never_more_than_the_limit_across_a_window_boundary() {
        let mut l = log(10);
        l.try_take(10, NANOS_PER_SEC - 1).unwrap();
        // A fixed window would allow 10 more at t = 1 s; the log waits a full window.
        assert_eq!(
            l.try_take(1, NANOS_PER_SEC),
            Err(TakeError::Wait {
                retry_after: NANOS_PER_SEC - 1
            })
        );
        assert!(l.try_take(10, 2 * NANOS_PER_SEC - 1).is_ok());
    }

    #[test]
    fn expired_entries_are_dropped() {
        let mut l = log(5);
        for i in 0..5 {
            l.try_take(1, i).unwrap();
        }
        l.try_take(1, NANOS_PER_SEC + 10).unwrap();
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn adjust_refunds_and_charges_in_window() {
        let mut l = log(10);
        let mut a = l.try_take(8, 0).unwrap();
        l.try_take(2, 1).unwrap();
        l.adjust(&mut a, 3, 1);
        assert_eq!(l.peek(1).remaining, 5);
        l.adjust(&mut a, 9, 1);
        assert_eq!(l.peek(1).remaining, 0);
        assert_eq!(l.earliest(1, 1).unwrap(), NANOS_PER_SEC);
    }

    #[test]
    fn adjusting_an_expired_entry_changes_nothing() {
        let mut l = log(10);
        let mut a = l.try_take(10, 0).unwrap();
        l.try_take(10, NANOS_PER_SEC).unwrap();
        l.adjust(&mut a, 0, NANOS_PER_SEC);
        assert_eq!(l.peek(NANOS_PER_SEC).remaining, 0);
    }

    #[test]
    fn zero_grant_then_charge_records_the_usage() {
        let mut l = log(10);
        let mut t = l.try_take(0, 5).unwrap();
        assert!(l.is_empty());
        l.adjust(&mut t, 4, 6);
        assert_eq!(l.peek(6).remaining, 6);
    }
}
