//! A validated quota: `amount` units per `window`, with a burst capacity.

use crate::error::ConfigError;
use crate::time::{NANOS_PER_DAY, Nanos};

/// The largest amount (and burst) a quota may have: 2^48, about 2.8 * 10^14 units.
pub const MAX_AMOUNT: u64 = 1 << 48;
/// The longest window a quota may have: 2^56 ns, about 2.3 years.
pub const MAX_WINDOW: Nanos = 1 << 56;

/// `amount` units per `window` nanoseconds, of which at most `burst` can be taken at once.
///
/// Burst is the *total* capacity: a fresh limiter grants exactly `burst` units before it has to
/// wait (not `burst + 1`). It defaults to `amount`, so a fresh "60 per minute" limiter grants 60
/// at once and then one per second, as a provider's token bucket does. Window algorithms ignore
/// the burst: they grant at most `amount` per window.
///
/// ```
/// use ratelimit_core::algorithm::Quota;
/// use ratelimit_core::time::NANOS_PER_MINUTE;
///
/// let q = Quota::new(60, NANOS_PER_MINUTE)?.with_burst(10)?;
/// assert_eq!((q.amount(), q.burst()), (60, 10));
/// assert!(Quota::new(0, NANOS_PER_MINUTE).is_err());
/// # Ok::<(), ratelimit_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    amount: u64,
    window: Nanos,
    burst: u64,
}

impl Quota {
    /// `amount` per `window` (nanoseconds), burst = `amount`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `amount` or `window` when either is zero or too large.
    pub fn new(amount: u64, window: Nanos) -> Result<Self, ConfigError> {
        check_amount("amount", amount)?;
        check_window("window", window)?;
        Ok(Self {
            amount,
            window,
            burst: amount,
        })
    }

    /// `amount` per minute.
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_minute(amount: u64) -> Result<Self, ConfigError> {
        Self::new(amount, crate::time::NANOS_PER_MINUTE)
    }

    /// `amount` per second.
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_second(amount: u64) -> Result<Self, ConfigError> {
        Self::new(amount, crate::time::NANOS_PER_SEC)
    }

    /// `amount` per day.
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_day(amount: u64) -> Result<Self, ConfigError> {
        Self::new(amount, NANOS_PER_DAY)
    }

    /// Sets the burst (total capacity).
    ///
    /// # Errors
    /// [`ConfigError`] naming `burst` when it is zero or too large.
    pub fn with_burst(mut self, burst: u64) -> Result<Self, ConfigError> {
        check_amount("burst", burst)?;
        self.burst = burst;
        Ok(self)
    }

    /// Units per window.
    #[must_use]
    #[inline]
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The window (refill period for bucket algorithms), in nanoseconds.
    #[must_use]
    #[inline]
    pub fn window(&self) -> Nanos {
        self.window
    }

    /// The total capacity of bucket algorithms.
    #[must_use]
    #[inline]
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Nanoseconds per unit, as an exact fraction `window / amount` (for documentation and
    /// adapters; the algorithms never round it).
    #[must_use]
    pub fn emission_interval(&self) -> (Nanos, u64) {
        (self.window, self.amount)
    }
}

pub(crate) fn check_amount(field: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::Zero {
            field: field.to_owned(),
        });
    }
    if value > MAX_AMOUNT {
        return Err(ConfigError::OutOfRange {
            field: field.to_owned(),
            value: value.to_string(),
            expected: "at most 2^48",
        });
    }
    Ok(())
}

pub(crate) fn check_window(field: &str, value: Nanos) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::Zero {
            field: field.to_owned(),
        });
    }
    if value > MAX_WINDOW {
        return Err(ConfigError::OutOfRange {
            field: field.to_owned(),
            value: format!("{value}ns"),
            expected: "at most 2^56 ns (about 2.3 years)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_huge_values_are_refused_with_their_field() {
        assert_eq!(Quota::new(0, 1).unwrap_err().field(), "amount");
        assert_eq!(Quota::new(1, 0).unwrap_err().field(), "window");
        assert_eq!(Quota::new(MAX_AMOUNT + 1, 1).unwrap_err().field(), "amount");
        assert_eq!(Quota::new(1, MAX_WINDOW + 1).unwrap_err().field(), "window");
        let q = Quota::new(1, 1).unwrap();
        assert_eq!(q.with_burst(0).unwrap_err().field(), "burst");
    }

    #[test]
    fn burst_defaults_to_amount() {
        let q = Quota::per_minute(60).unwrap();
        assert_eq!(q.burst(), 60);
    }
}
