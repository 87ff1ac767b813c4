//! Single-dimension rate algorithms behind one small interface.
//!
//! Every time-based algorithm implements [`Algorithm`]: ask when `n` units would fit
//! ([`earliest`](Algorithm::earliest)), take them now ([`try_take`](Algorithm::try_take)), reserve
//! them for the earliest instant they fit ([`reserve`](Algorithm::reserve)), correct or give them
//! back later ([`adjust`](Algorithm::adjust), [`give_back`](Algorithm::give_back)), and look at the
//! state ([`peek`](Algorithm::peek)). `now` is always an argument; nothing here reads a clock.
//!
//! All algorithms grant in non-decreasing time order: once something is granted at `t`, nothing is
//! granted before `t`. That makes reservations first-come-first-served and makes a clock that steps
//! backwards harmless (it sees the state as of the latest grant, never a fresher one).
//!
//! The [`Concurrency`] counter is the one dimension that is not time-based: it has the same
//! take / give back / peek operations but no "earliest time", since only a release frees a slot.

mod concurrency;
mod fixed_window;
mod gcra;
mod leaky_bucket;
pub(crate) mod quota;
mod sliding_counter;
mod sliding_log;

pub use concurrency::{Concurrency, ConcurrencyError};
pub use fixed_window::FixedWindow;
pub use gcra::Gcra;
pub(crate) use gcra::Step;
pub use leaky_bucket::LeakyBucket;
pub use quota::{MAX_AMOUNT, MAX_WINDOW, Quota};
pub use sliding_counter::SlidingWindowCounter;
pub use sliding_log::SlidingWindowLog;

use crate::error::TooLarge;
use crate::time::Nanos;

/// What was taken from one dimension, kept so it can be adjusted or given back later.
///
/// A ticket belongs to the algorithm instance that issued it; handing it to another instance
/// corrupts that instance's books (it cannot panic, but the numbers become meaningless).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub(crate) amount: u64,
    pub(crate) at: Nanos,
    /// Algorithm-specific locator: units granted so far (GCRA), log sequence number, or window index.
    pub(crate) mark: u64,
    /// The algorithm's latest grant instant before this grant, restored when it is given back.
    pub(crate) prev: Nanos,
    /// Bucket algorithms: how far the schedule was moved forward to reach the grant instant
    /// (scaled units, saturating), so giving the grant back restores it exactly.
    pub(crate) gap: u64,
}

impl Ticket {
    /// The units this ticket currently holds (after any adjustment).
    #[must_use]
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The instant the units were granted at.
    #[must_use]
    pub fn granted_at(&self) -> Nanos {
        self.at
    }
}

/// Why [`Algorithm::try_take`] did not take anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// Not now: the units fit after `retry_after` nanoseconds (exact: they fit at
    /// `now + retry_after` and not a nanosecond before, unless other grants intervene).
    #[error("rate limited: retry after {retry_after} ns")]
    Wait {
        /// Nanoseconds until the request fits.
        retry_after: Nanos,
    },
    /// Never: the request is larger than the dimension can ever grant at once.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// The state of one dimension at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The configured amount per window (or the maximum in flight, for concurrency).
    pub limit: u64,
    /// The most one request can ever take (the burst, or the limit for window algorithms).
    pub capacity: u64,
    /// Units that could be taken right now.
    pub remaining: u64,
    /// Nanoseconds until the dimension is back to its initial, fully replenished state
    /// (0 when it already is). This is what providers' `reset` headers mean.
    pub reset_after: Nanos,
}

/// A time-based single-dimension rate algorithm. See the [module docs](self).
pub trait Algorithm {
    /// The quota this instance enforces.
    fn quota(&self) -> Quota;

    /// The largest `n` that can ever be granted at once; more is refused with [`TooLarge`].
    fn max_cost(&self) -> u64;

    /// The earliest instant at or after `now` at which `n` units fit, given everything granted so
    /// far. Pure: changes nothing. Feasibility is monotone: `n` also fits at any later instant,
    /// until something else is granted.
    ///
    /// # Errors
    /// [`TooLarge`] if `n` exceeds [`max_cost`](Self::max_cost).
    fn earliest(&self, n: u64, now: Nanos) -> Result<Nanos, TooLarge>;

    /// Records `n` units as used at `at` (decided at `now <= at`), whether or not they fit (usage
    /// beyond the limit becomes a debt that later requests wait out). Normal callers use
    /// [`try_take`](Self::try_take) or [`reserve`](Self::reserve), which only record at an instant
    /// returned by [`earliest`](Self::earliest).
    fn record(&mut self, n: u64, at: Nanos, now: Nanos) -> Ticket;

    /// Replaces what `ticket` holds with `actual` units: a refund when smaller, a charge when
    /// larger. Units whose window has already passed are not touched (they no longer count).
    fn adjust(&mut self, ticket: &mut Ticket, actual: u64, now: Nanos);

    /// Gives back `n` units of the most recent usage that no ticket stands for: the provider
    /// reports them free (its books say more remains than ours). Newest usage goes first; the
    /// dimension never becomes emptier than empty, and nothing before the latest grant changes
    /// (a reservation already made keeps its instant).
    fn credit(&mut self, n: u64, now: Nanos);

    /// The dimension's state as seen at `now`.
    fn peek(&self, now: Nanos) -> Status;

    /// Changes the quota at runtime. Usage already recorded keeps counting against the new quota:
    /// lowering or raising a limit never hands out a fresh burst.
    fn set_quota(&mut self, quota: Quota, now: Nanos);

    /// Takes `n` units now, or says when they would fit.
    ///
    /// # Errors
    /// [`TakeError::Wait`] with the exact wait, or [`TakeError::TooLarge`].
    #[inline]
    fn try_take(&mut self, n: u64, now: Nanos) -> Result<Ticket, TakeError> {
        let at = self.earliest(n, now)?;
        if at > now {
            return Err(TakeError::Wait {
                retry_after: at - now,
            });
        }
        Ok(self.record(n, now, now))
    }

    /// Reserves `n` units for the earliest instant they fit; the ticket's
    /// [`granted_at`](Ticket::granted_at) says when the caller may go.
    ///
    /// # Errors
    /// [`TooLarge`] if `n` can never fit.
    #[inline]
    fn reserve(&mut self, n: u64, now: Nanos) -> Result<Ticket, TooLarge> {
        let at = self.earliest(n, now)?;
        Ok(self.record(n, at, now))
    }

    /// Gives back everything `ticket` holds: the request never happened. For the most recent grant
    /// this restores the state exactly as it was before it; for older grants it is a refund to
    /// zero.
    fn give_back(&mut self, mut ticket: Ticket, now: Nanos) {
        self.adjust(&mut ticket, 0, now);
    }
}

/// Refuses `n` beyond what an algorithm can ever grant at once.
#[inline]
pub(crate) fn check_cost(n: u64, max: u64, window: Nanos) -> Result<(), TooLarge> {
    if n > max {
        return Err(too_large(n, max, window));
    }
    Ok(())
}

#[cold]
fn too_large(n: u64, max: u64, window: Nanos) -> TooLarge {
    TooLarge {
        requested: n,
        max,
        unit: "units",
        limit: crate::error::LimitName {
            resource: "units",
            window,
        },
    }
}

/// Shared conversions for the algorithms that count whole units in aligned windows.
pub(crate) fn window_index(t: Nanos, window: Nanos) -> u64 {
    t / window
}
