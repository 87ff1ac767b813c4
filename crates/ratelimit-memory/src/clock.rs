//! Real clocks for the runtime: tokio's (pausable in tests), the standard monotonic clock, and
//! the CPU's time-stamp counter (the fastest to read).

use std::time::Instant;

use ratelimit_core::{Clock, Nanos};

/// Nanoseconds since creation on tokio's clock: under `#[tokio::test(start_paused = true)]` it
/// follows tokio's paused, auto-advancing time, so waits are deterministic and instant in tests.
/// The default clock of [`MemoryLimiter`](crate::MemoryLimiter).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Nanos {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(Nanos::MAX)
    }
}

/// Nanoseconds since creation on the standard monotonic clock ([`std::time::Instant`]), for
/// synchronous use outside tokio.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose zero is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(Nanos::MAX)
    }
}

/// Nanoseconds since creation read from the CPU's time-stamp counter through [`quanta`], where
/// the CPU has an invariant one (it falls back to the OS monotonic clock otherwise): about a
/// third of the cost of [`std::time::Instant::now`], the clock governor reads by default. For
/// hot synchronous paths such as [`MemoryLimiter::try_take`](crate::MemoryLimiter::try_take);
/// it does not follow tokio's paused time, so tests keep [`TokioClock`].
///
/// Counters of different cores can differ by a little; a reading below an earlier one is what
/// every limiter here already tolerates (a clock that steps back grants nothing extra).
///
/// ```
/// use std::sync::Arc;
/// use ratelimit_core::{Cost, Policy};
/// use ratelimit_memory::{MemoryLimiter, QuantaClock};
///
/// let policy = Policy::builder().requests_per_minute(600).build()?;
/// let limiter = MemoryLimiter::with_clock(policy, Arc::new(QuantaClock::new()));
/// assert!(limiter.try_take(&Cost::ONE_REQUEST).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct QuantaClock {
    clock: quanta::Clock,
    origin: u64,
}

impl QuantaClock {
    /// A clock whose zero is now. The first one made in a process calibrates the counter against
    /// the OS clock, which can take some milliseconds.
    #[must_use]
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        Self { clock, origin }
    }
}

impl Default for QuantaClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for QuantaClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.clock.delta_as_nanos(self.origin, self.clock.raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::new();
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(clock.now(), 3_000_000_000);
    }

    #[test]
    fn quanta_clock_counts_nanoseconds_from_zero() {
        let clock = QuantaClock::new();
        let std_start = Instant::now();
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = clock.now();
        let std_elapsed = std_start.elapsed();
        assert!(a < 20_000_000, "starts near zero: {a}");
        // It measured the sleep, and not more than the standard clock around it.
        assert!(
            b - a >= 19_000_000,
            "counted {} ns over a 20 ms sleep",
            b - a
        );
        assert!(
            u128::from(b - a) <= std_elapsed.as_nanos() + 1_000_000,
            "counted {} ns, the standard clock {} ns",
            b - a,
            std_elapsed.as_nanos()
        );
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
