//! The injectable source of time, and a manual clock that tests move by hand.
//!
//! Nothing in this crate reads a clock: every algorithm takes `now` as an argument. The [`Clock`]
//! trait is the contract the runtime layers (`ratelimit-memory`, `ratelimit-redis`) use to obtain
//! that `now`, so that tests can swap the real clock for a [`ManualClock`].

use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::time::{Nanos, nanos_from_duration};

/// A monotonic source of time in nanoseconds since an arbitrary origin.
///
/// Implementations must be cheap to call and safe to share between threads. They *should* never go
/// backwards; the algorithms nevertheless tolerate a clock that does (they neither panic nor grant
/// extra capacity).
pub trait Clock: Send + Sync {
    /// The current instant, in nanoseconds since this clock's origin.
    fn now(&self) -> Nanos;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

/// A clock that only moves when told to. Clones share one time.
///
/// ```
/// use ratelimit_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let seen_by_limiter = clock.clone();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(seen_by_limiter.now(), 250_000_000);
/// clock.set(10);
/// assert_eq!(seen_by_limiter.now(), 10); // even backwards: tests can simulate a bad clock
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock at the given instant.
    #[must_use]
    pub fn starting_at(nanos: Nanos) -> Self {
        let clock = Self::new();
        clock.set(nanos);
        clock
    }

    /// Moves time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        self.advance_nanos(nanos_from_duration(by));
    }

    /// Moves time forward by `by` nanoseconds (saturating).
    pub fn advance_nanos(&self, by: Nanos) {
        // A CAS loop rather than fetch_add so the clock saturates instead of wrapping.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the time, forwards or backwards.
    pub fn set(&self, nanos: Nanos) {
        self.nanos.store(nanos, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.nanos.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_time() {
        let a = ManualClock::starting_at(5);
        let b = a.clone();
        a.advance_nanos(10);
        assert_eq!(b.now(), 15);
    }

    #[test]
    fn advance_saturates() {
        let c = ManualClock::starting_at(Nanos::MAX - 1);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), Nanos::MAX);
    }

    #[test]
    fn works_through_arc_dyn() {
        let c: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(3));
        assert_eq!(c.now(), 3);
    }
}
