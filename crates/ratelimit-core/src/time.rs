//! Integer-nanosecond time: the one representation of instants and durations in the core.
//!
//! An instant is a [`Nanos`] count since an arbitrary origin chosen by the [`Clock`](crate::Clock)
//! that produced it; a duration is a [`Nanos`] difference. All arithmetic on them saturates, so a
//! clock that jumps (forwards to the far future, or backwards) can never panic or wrap around.
//! Conversions to coarser units round *up*: a caller who waits the converted amount is never early.

use core::time::Duration;

/// Nanoseconds: an instant (since the clock's origin) or a duration.
pub type Nanos = u64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: Nanos = 1_000_000_000;
/// Nanoseconds in one millisecond.
pub const NANOS_PER_MILLI: Nanos = 1_000_000;
/// Nanoseconds in one minute.
pub const NANOS_PER_MINUTE: Nanos = 60 * NANOS_PER_SEC;
/// Nanoseconds in one hour.
pub const NANOS_PER_HOUR: Nanos = 60 * NANOS_PER_MINUTE;
/// Nanoseconds in one day.
pub const NANOS_PER_DAY: Nanos = 24 * NANOS_PER_HOUR;

/// Converts a [`Duration`] to nanoseconds, saturating at [`Nanos::MAX`].
#[must_use]
pub fn nanos_from_duration(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(Nanos::MAX)
}

/// Converts nanoseconds to a [`Duration`] (exact).
#[must_use]
pub const fn duration_from_nanos(nanos: Nanos) -> Duration {
    Duration::from_nanos(nanos)
}

/// Whole milliseconds, rounded up: waiting this many milliseconds is never too short.
///
/// ```
/// use ratelimit_core::time::millis_ceil;
/// assert_eq!(millis_ceil(1), 1);
/// assert_eq!(millis_ceil(1_000_000), 1);
/// assert_eq!(millis_ceil(1_000_001), 2);
/// assert_eq!(millis_ceil(0), 0);
/// ```
#[must_use]
pub const fn millis_ceil(nanos: Nanos) -> u64 {
    nanos.div_ceil(NANOS_PER_MILLI)
}

/// Whole seconds, rounded up: waiting this many seconds is never too short.
///
/// This is what an HTTP `Retry-After` header must carry.
///
/// ```
/// use ratelimit_core::time::secs_ceil;
/// assert_eq!(secs_ceil(1), 1);
/// assert_eq!(secs_ceil(1_000_000_000), 1);
/// assert_eq!(secs_ceil(1_000_000_001), 2);
/// ```
#[must_use]
pub const fn secs_ceil(nanos: Nanos) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

/// `ceil(a / b)` on 128-bit integers, saturated into a `u64`; `b` must not be zero.
///
/// Computed as `(a - 1) / b + 1` (for `a >= 1`), which is the same integer without the remainder
/// that `u128::div_ceil` works out and tests.
#[inline]
pub(crate) fn div_ceil_sat(a: u128, b: u128) -> u64 {
    debug_assert!(b != 0);
    if a == 0 {
        return 0;
    }
    // Most operands fit 64 bits: one 64-bit division instead of a 128-bit one (a library call).
    if let (Ok(a), Ok(b)) = (u64::try_from(a - 1), u64::try_from(b)) {
        return a / b + 1;
    }
    u64::try_from((a - 1) / b + 1).unwrap_or(u64::MAX)
}

/// `floor(a / b)` on 128-bit integers, saturated into a `u64`; `b` must not be zero.
pub(crate) fn div_floor_sat(a: u128, b: u128) -> u64 {
    debug_assert!(b != 0);
    u64::try_from(a / b).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_up_never_down() {
        assert_eq!(secs_ceil(0), 0);
        assert_eq!(secs_ceil(999_999_999), 1);
        assert_eq!(secs_ceil(Nanos::MAX), Nanos::MAX.div_ceil(NANOS_PER_SEC));
        assert_eq!(millis_ceil(1_500_000), 2);
    }

    #[test]
    fn duration_round_trip_saturates() {
        assert_eq!(
            nanos_from_duration(Duration::from_millis(3)),
            3 * NANOS_PER_MILLI
        );
        assert_eq!(nanos_from_duration(Duration::MAX), Nanos::MAX);
        assert_eq!(duration_from_nanos(5), Duration::from_nanos(5));
    }

    #[test]
    fn wide_division_saturates() {
        assert_eq!(div_ceil_sat(u128::MAX, 1), u64::MAX);
        assert_eq!(div_ceil_sat(7, 2), 4);
        assert_eq!(div_ceil_sat(8, 2), 4);
        assert_eq!(div_ceil_sat(0, 3), 0);
        assert_eq!(div_ceil_sat(1, 3), 1);
        assert_eq!(div_ceil_sat(u128::from(u64::MAX) * 3, 3), u64::MAX);
        assert_eq!(div_ceil_sat(u128::from(u64::MAX) * 3 + 1, 3), u64::MAX);
        assert_eq!(div_floor_sat(7, 2), 3);
    }
}
