//! What a limiter reports about itself: queue depth, how often it limits, how long callers wait.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// A point-in-time snapshot of a limiter's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Requests waiting now.
    pub queue_depth: usize,
    /// Requests granted since creation.
    pub granted: u64,
    /// Requests that hit a limit: had to wait, or were refused (`try_acquire`, timeouts).
    pub limited: u64,
    /// Requests refused without a grant (rate limited, concurrency full, too large, timed out).
    pub refused: u64,
    /// Waits that were cancelled (the caller gave up).
    pub cancelled: u64,
    /// Median wait of granted requests (zero waits included).
    pub wait_p50: Duration,
    /// 95th percentile wait.
    pub wait_p95: Duration,
    /// 99th percentile wait.
    pub wait_p99: Duration,
    /// Longest wait.
    pub wait_max: Duration,
    /// Keys held (keyed limiters; 1 otherwise).
    pub keys: usize,
}

impl Stats {
    /// Share of requests that hit a limit, among those granted or refused.
    #[must_use]
    pub fn limited_rate(&self) -> f64 {
        let total = self.granted + self.refused;
        if total == 0 {
            0.0
        } else {
            self.limited as f64 / total as f64
        }
    }
}

/// Counts and a wait-time histogram (microsecond resolution, 3 significant digits, up to a day),
/// shared by the backends.
#[derive(Debug)]
pub struct StatsRecorder {
    inner: Mutex<Recorded>,
    /// Immediate grants, counted without the lock (the hot path); folded into the histogram as
    /// zero waits when a snapshot is taken.
    immediate: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Recorded {
    granted: u64,
    limited: u64,
    refused: u64,
    cancelled: u64,
    waits: Histogram<u64>,
}

const MAX_WAIT_MICROS: u64 = 86_400_000_000;

impl Default for StatsRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl StatsRecorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        let waits = Histogram::new_with_bounds(1, MAX_WAIT_MICROS, 3)
            .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is valid"));
        Self {
            immediate: std::sync::atomic::AtomicU64::new(0),
            inner: Mutex::new(Recorded {
                granted: 0,
                limited: 0,
                refused: 0,
                cancelled: 0,
                waits,
            }),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Recorded)) {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    /// A grant after waiting `waited` (zero for an immediate grant).
    pub fn granted(&self, waited: Duration) {
        if waited.is_zero() {
            self.immediate
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        self.with(|r| {
            r.granted += 1;
            if !waited.is_zero() {
                r.limited += 1;
            }
            let micros = u64::try_from(waited.as_micros()).unwrap_or(MAX_WAIT_MICROS);
            r.waits.saturating_record(micros.min(MAX_WAIT_MICROS));
        });
    }

    /// A refusal (rate limited, concurrency full, too large, too many keys, timed out).
    pub fn refused(&self) {
        self.with(|r| {
            r.refused += 1;
            r.limited += 1;
        });
    }

    /// A waiter that gave up.
    pub fn cancelled(&self) {
        self.with(|r| r.cancelled += 1);
    }

    /// A snapshot; the caller fills in `queue_depth` and `keys`.
    #[must_use]
    pub fn snapshot(&self) -> Stats {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let immediate = self.immediate.swap(0, std::sync::atomic::Ordering::Relaxed);
        if immediate > 0 {
            guard.granted += immediate;
            guard.waits.saturating_record_n(0, immediate);
        }
        let q = |p: f64| Duration::from_micros(guard.waits.value_at_quantile(p));
        Stats {
            queue_depth: 0,
            granted: guard.granted,
            limited: guard.limited,
            refused: guard.refused,
            cancelled: guard.cancelled,
            wait_p50: q(0.5),
            wait_p95: q(0.95),
            wait_p99: q(0.99),
            wait_max: Duration::from_micros(guard.waits.max()),
            keys: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_counts() {
        let r = StatsRecorder::new();
        for ms in 1..=100 {
            r.granted(Duration::from_millis(ms));
        }
        r.granted(Duration::ZERO);
        r.refused();
        let s = r.snapshot();
        assert_eq!((s.granted, s.limited, s.refused), (101, 101, 1));
        assert!(
            (49..=52).contains(&s.wait_p50.as_millis()),
            "{:?}",
            s.wait_p50
        );
        assert!(
            (94..=96).contains(&s.wait_p95.as_millis()),
            "{:?}",
            s.wait_p95
        );
        assert!(s.wait_max >= Duration::from_millis(100));
        assert!((s.limited_rate() - 101.0 / 102.0).abs() < 1e-9);
    }
}
