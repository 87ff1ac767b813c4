//! The concurrency counter: at most `max` units in flight; only a release frees a slot.

use super::Status;
use crate::error::{ConfigError, LimitName, TooLarge};

/// Why [`Concurrency::try_take`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConcurrencyError {
    /// All slots are taken; wait for a release.
    #[error("all {max} concurrency slots are in use")]
    Full {
        /// The configured maximum.
        max: u64,
    },
    /// More slots than exist.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// A counter of units in flight, at most `max`.
///
/// It is not time-based, so it has no "earliest instant": a waiter waits for a
/// [`release`](Self::release).
///
/// ```
/// use ratelimit_core::algorithm::Concurrency;
///
/// let mut c = Concurrency::new(2)?;
/// c.try_take(1)?;
/// c.try_take(1)?;
/// assert!(c.try_take(1).is_err());
/// c.release(1);
/// assert!(c.try_take(1).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    max: u64,
    in_flight: u64,
}

impl Concurrency {
    /// At most `max` in flight.
    ///
    /// # Errors
    /// [`ConfigError`] naming `concurrency` when `max` is zero or too large.
    pub fn new(max: u64) -> Result<Self, ConfigError> {
        super::quota::check_amount("concurrency", max)?;
        Ok(Self { max, in_flight: 0 })
    }

    /// Whether `n` slots are free now.
    ///
    /// # Errors
    /// [`TooLarge`] when `n` exceeds the maximum.
    pub fn fits(&self, n: u64) -> Result<bool, TooLarge> {
        if n > self.max {
            return Err(TooLarge {
                requested: n,
                max: self.max,
                unit: "slots",
                limit: LimitName {
                    resource: "concurrent requests",
                    window: 0,
                },
            });
        }
        Ok(self.in_flight.saturating_add(n) <= self.max)
    }

    /// Takes `n` slots now.
    ///
    /// # Errors
    /// [`ConcurrencyError::Full`] or [`ConcurrencyError::TooLarge`].
    pub fn try_take(&mut self, n: u64) -> Result<(), ConcurrencyError> {
        if !self.fits(n)? {
            return Err(ConcurrencyError::Full { max: self.max });
        }
        self.in_flight += n;
        Ok(())
    }

    /// Takes `n` slots that [`fits`](Self::fits) has just found free.
    #[inline]
    pub(crate) fn take_free(&mut self, n: u64) {
        debug_assert_eq!(self.fits(n), Ok(true));
        self.in_flight = self.in_flight.saturating_add(n);
    }

    /// Gives `n` slots back (saturating: releasing more than was taken cannot underflow).
    pub fn release(&mut self, n: u64) {
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// Changes the maximum. Slots in flight stay taken; if the new maximum is lower, new takes wait
    /// until enough have been released.
    ///
    /// # Errors
    /// [`ConfigError`] when `max` is zero or too large.
    pub fn set_max(&mut self, max: u64) -> Result<(), ConfigError> {
        super::quota::check_amount("concurrency", max)?;
        self.max = max;
        Ok(())
    }

    /// The maximum in flight.
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Units in flight now.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The counter's state (`reset_after` is always 0: it is not time-based).
    #[must_use]
    pub fn peek(&self) -> Status {
        Status {
            limit: self.max,
            capacity: self.max,
            remaining: self.max.saturating_sub(self.in_flight),
            reset_after: 0,
        }
    }
}
