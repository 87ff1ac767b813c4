//! What a policy limits: resources, windows and per-limit settings, as the user writes them.

use core::time::Duration;

use crate::meter::AlgorithmKind;
use crate::time::Nanos;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum Resource {
    /// Requests (each request costs [`Cost::requests`](crate::Cost::requests), normally 1).
    Requests = 0,
    /// Input (prompt) tokens only.
    InputTokens = 1,
    /// Output (completion) tokens only.
    OutputTokens = 2,
    /// Input plus output tokens, output weighted by the policy's burndown rate.
    Tokens = 3,
}

impl Resource {
    /// The unit name for messages (`requests`, `tokens`, ...).
    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::InputTokens => "input tokens",
            Self::OutputTokens => "output tokens",
        }
    }
}

/// One limit as configured: `amount` of `resource` per `window`.
///
/// ```
/// use ratelimit_core::{AlgorithmKind, Limit, Resource};
/// use std::time::Duration;
///
/// // Azure-style: 1,000 tokens per 10 seconds, never more in any 10 s window.
/// let limit = Limit::new(Resource::Tokens, 1_000, Duration::from_secs(10))
///     .algorithm(AlgorithmKind::SlidingWindowLog);
/// assert_eq!(limit.amount(), 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub(crate) resource: Resource,
    pub(crate) amount: u64,
    pub(crate) window: Nanos,
    pub(crate) burst: Option<u64>,
    pub(crate) algorithm: AlgorithmKind,
}

impl Limit {
    /// `amount` of `resource` per `window`, enforced by GCRA with burst = amount (unless the
    /// policy's burst multiplier says otherwise). Validated when the policy is built.
    #[must_use]
    pub fn new(resource: Resource, amount: u64, window: Duration) -> Self {
        Self {
            resource,
            amount,
            window: crate::time::nanos_from_duration(window),
            burst: None,
            algorithm: AlgorithmKind::Gcra,
        }
    }

    /// Sets an explicit burst (total capacity); only for [`AlgorithmKind::Gcra`] and
    /// [`AlgorithmKind::LeakyBucket`]. Overrides the policy's burst multiplier.
    #[must_use]
    pub fn burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Chooses the algorithm.
    #[must_use]
    pub fn algorithm(mut self, algorithm: AlgorithmKind) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// What is counted.
    #[must_use]
    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// Units per window.
    #[must_use]
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The window, in nanoseconds.
    #[must_use]
    pub fn window(&self) -> Nanos {
        self.window
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm_kind(&self) -> AlgorithmKind {
        self.algorithm
    }

    /// The explicit burst, if one was set.
    #[must_use]
    pub fn explicit_burst(&self) -> Option<u64> {
        self.burst
    }
}

/// Identifies a limit within its policy (its position in [`Policy::limits`](crate::Policy::limits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitId(pub(crate) u8);

impl LimitId {
    /// The position of the limit in its policy.
    #[must_use]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}
