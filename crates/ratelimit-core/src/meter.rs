//! `Meter`: one enum over every time-based algorithm, so a policy can mix them without generics.

use crate::algorithm::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Quota, SlidingWindowCounter, SlidingWindowLog,
    Status, Ticket,
};
use crate::error::TooLarge;
use crate::time::Nanos;

/// Which algorithm enforces a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AlgorithmKind {
    /// Continuous token bucket (GCRA): bursts up to the burst, refills smoothly. The default, and
    /// how OpenAI and Anthropic describe their limits.
    #[default]
    Gcra,
    /// Fixed spacing, no burst.
    LeakyBucket,
    /// Exact: never more than the limit in any window.
    SlidingWindowLog,
    /// Approximate sliding window in constant memory (bounded error, see its docs).
    SlidingWindowCounter,
    /// Aligned windows (up to twice the limit around a boundary).
    FixedWindow,
}

impl AlgorithmKind {
    /// Every algorithm, the default first.
    pub const ALL: [Self; 5] = [
        Self::Gcra,
        Self::LeakyBucket,
        Self::SlidingWindowLog,
        Self::SlidingWindowCounter,
        Self::FixedWindow,
    ];

    /// Whether the algorithm has a burst capacity distinct from the amount.
    #[must_use]
    pub fn has_burst(self) -> bool {
        matches!(self, Self::Gcra | Self::LeakyBucket)
    }

    /// The snake_case name used in configuration files and messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Gcra => "gcra",
            Self::LeakyBucket => "leaky_bucket",
            Self::SlidingWindowLog => "sliding_window_log",
            Self::SlidingWindowCounter => "sliding_window_counter",
            Self::FixedWindow => "fixed_window",
        }
    }
}

/// An algorithm instance of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Meter {
    Gcra(Gcra),
    Leaky(LeakyBucket),
    // Boxed: the largest by far, and rarely used; keeps every other meter small.
    Log(Box<SlidingWindowLog>),
    Counter(SlidingWindowCounter),
    Fixed(FixedWindow),
}

macro_rules! dispatch {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            Meter::Gcra($m) => $body,
            Meter::Leaky($m) => $body,
            Meter::Log($m) => $body,
            Meter::Counter($m) => $body,
            Meter::Fixed($m) => $body,
        }
    };
}

/// The decision path of a policy: GCRA, the default and by far the most common algorithm, is
/// inlined into the caller; the others are one out-of-line call away, which keeps their code (and
/// the registers it needs) off the GCRA path.
impl Meter {
    /// [`Algorithm::earliest`] with no error to build: `None` when `n` exceeds
    /// [`Algorithm::max_cost`].
    #[inline(always)]
    pub(crate) fn earliest_within(&self, n: u64, now: Nanos) -> Option<Nanos> {
        match self {
            Meter::Gcra(g) => g.earliest_within(n, now),
            other => other.earliest_within_other(n, now),
        }
    }

    #[inline(never)]
    fn earliest_within_other(&self, n: u64, now: Nanos) -> Option<Nanos> {
        dispatch!(self, m => (n <= m.max_cost()).then(|| m.earliest_fit(n, now)))
    }

    /// [`Algorithm::record`] on the decision path.
    #[inline(always)]
    pub(crate) fn record_fast(&mut self, n: u64, at: Nanos, now: Nanos) -> Ticket {
        match self {
            Meter::Gcra(g) => g.record(n, at, now),
            other => other.record(n, at, now),
        }
    }

    pub(crate) fn new(kind: AlgorithmKind, quota: Quota) -> Self {
        match kind {
            AlgorithmKind::Gcra => Self::Gcra(Gcra::new(quota)),
            AlgorithmKind::LeakyBucket => Self::Leaky(LeakyBucket::new(quota)),
            AlgorithmKind::SlidingWindowLog => Self::Log(Box::new(SlidingWindowLog::new(quota))),
            AlgorithmKind::SlidingWindowCounter => Self::Counter(SlidingWindowCounter::new(quota)),
            AlgorithmKind::FixedWindow => Self::Fixed(FixedWindow::new(quota)),
        }
    }
}

impl Algorithm for Meter {
    fn quota(&self) -> Quota {
        dispatch!(self, m => m.quota())
    }
    #[inline(never)]
    fn max_cost(&self) -> u64 {
        dispatch!(self, m => m.max_cost())
    }
    #[inline]
    fn earliest(&self, n: u64, now: Nanos) -> Result<Nanos, TooLarge> {
        dispatch!(self, m => m.earliest(n, now))
    }
    #[inline(never)]
    fn record(&mut self, n: u64, at: Nanos, now: Nanos) -> Ticket {
        dispatch!(self, m => m.record(n, at, now))
    }
    fn adjust(&mut self, ticket: &mut Ticket, actual: u64, now: Nanos) {
        dispatch!(self, m => m.adjust(ticket, actual, now));
    }
    fn give_back(&mut self, ticket: Ticket, now: Nanos) {
        dispatch!(self, m => m.give_back(ticket, now));
    }
    fn credit(&mut self, n: u64, now: Nanos) {
        dispatch!(self, m => m.credit(n, now));
    }
    fn peek(&self, now: Nanos) -> Status {
        dispatch!(self, m => m.peek(now))
    }
    fn set_quota(&mut self, quota: Quota, now: Nanos) {
        dispatch!(self, m => m.set_quota(quota, now));
    }
}
