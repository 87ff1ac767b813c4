//! The limits of a batch job, and the limiter they make: exact sliding windows, learned from the
//! provider's headers when not given.

use std::sync::Arc;
use std::time::Duration;

use ratelimit_adaptive::{AdaptiveConfig, AdaptiveLimiter};
use ratelimit_client::ClientBuilder;
use ratelimit_core::{AlgorithmKind, ConfigError, Limit, Policy, Resource};
use ratelimit_limiter::Limiter;
use ratelimit_memory::MemoryLimiter;

/// What the provider allows, when known. Without any limit, they are learned from the provider's
/// headers, starting from a cautious guess ([`GUESS_RPM`], [`GUESS_TPM`]).
///
/// Every limit is an exact sliding window ("never more than N in any window", as providers
/// enforce them, and never more than a token bucket of the same figures admits), made
/// [`window_margin`](Self::window_margin) longer than the provider's: requests reach the provider
/// a little after their grant, so two grants exactly a window apart could land closer there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLimits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt + max output, as providers count at admission).
    pub tpm: Option<u64>,
    /// Requests per day.
    pub rpd: Option<u64>,
    /// Tokens per day.
    pub tpd: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: Option<u64>,
    /// Follow the provider's headers and 429s even when limits are given.
    pub learn: bool,
    /// Added to every window (default 250 ms).
    pub window_margin: Duration,
    /// The per-minute limits' window (60 s for real providers; shorter against a simulated one).
    pub minute: Duration,
}

/// The requests per minute a learning limiter starts from, before the first response says better.
pub const GUESS_RPM: u64 = 60;
/// The tokens per minute a learning limiter starts from.
pub const GUESS_TPM: u64 = 20_000;

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            rpm: None,
            tpm: None,
            rpd: None,
            tpd: None,
            concurrency: None,
            learn: false,
            window_margin: Duration::from_millis(250),
            minute: Duration::from_secs(60),
        }
    }
}

/// The limiter a job uses: fixed, or adaptive (it also gets every response).
#[derive(Debug, Clone)]
pub enum JobLimiter {
    /// Limits as given.
    Fixed(Arc<MemoryLimiter>),
    /// Limits that follow the provider.
    Adaptive(Arc<AdaptiveLimiter>),
}

impl JobLimiter {
    /// Puts the limiter into a client builder (the adaptive one also receives the responses).
    #[must_use]
    pub fn apply(&self, builder: ClientBuilder) -> ClientBuilder {
        match self {
            Self::Fixed(l) => builder.limiter(Arc::clone(l) as Arc<dyn Limiter>),
            Self::Adaptive(l) => builder.adaptive(Arc::clone(l)),
        }
    }
}

impl JobLimits {
    fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.rpd.is_some() || self.tpd.is_some()
    }

    /// Whether the limits follow the provider (asked, or nothing given).
    #[must_use]
    pub fn learns(&self) -> bool {
        self.learn || !self.any()
    }

    /// The policy.
    ///
    /// # Errors
    /// [`ConfigError`] naming the invalid limit.
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let minute = self.minute + self.window_margin;
        let day = Duration::from_secs(86_400) + self.window_margin;
        let guess = |given: Option<u64>, guess| given.or((!self.any()).then_some(guess));
        let mut b = Policy::builder();
        for (resource, amount, window) in [
            (Resource::Requests, guess(self.rpm, GUESS_RPM), minute),
            (Resource::Tokens, guess(self.tpm, GUESS_TPM), minute),
            (Resource::Requests, self.rpd, day),
            (Resource::Tokens, self.tpd, day),
        ] {
            if let Some(amount) = amount {
                b = b.limit(
                    Limit::new(resource, amount, window).algorithm(AlgorithmKind::SlidingWindowLog),
                );
            }
        }
        if let Some(c) = self.concurrency {
            b = b.concurrency(c);
        }
        b.build()
    }

    /// The limiter, in memory; adaptive when it [learns](Self::learns).
    ///
    /// # Errors
    /// [`ConfigError`] naming the invalid limit.
    pub fn limiter(&self) -> Result<JobLimiter, ConfigError> {
        let policy = self.policy()?;
        let memory = Arc::new(MemoryLimiter::new(policy.clone()));
        if self.learns() {
            let adaptive = AdaptiveLimiter::new(memory, &policy, AdaptiveConfig::default())?;
            Ok(JobLimiter::Adaptive(Arc::new(adaptive)))
        } else {
            Ok(JobLimiter::Fixed(memory))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_limits_it_learns_from_a_guess() {
        let limits = JobLimits::default();
        assert!(limits.learns());
        let policy = limits.policy().unwrap();
        let amounts: Vec<u64> = policy.limits().map(|(_, l)| l.amount()).collect();
        assert_eq!(amounts, [GUESS_RPM, GUESS_TPM]);
        assert!(matches!(limits.limiter().unwrap(), JobLimiter::Adaptive(_)));
    }

    #[test]
    fn given_limits_are_exact_windows_a_margin_longer() {
        let limits = JobLimits {
            tpm: Some(90_000),
            rpd: Some(10_000),
            ..JobLimits::default()
        };
        assert!(!limits.learns());
        let policy = limits.policy().unwrap();
        let got: Vec<(Resource, u64, u64, AlgorithmKind)> = policy
            .limits()
            .map(|(_, l)| (l.resource(), l.amount(), l.window(), l.algorithm_kind()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Resource::Tokens,
                    90_000,
                    60_250_000_000,
                    AlgorithmKind::SlidingWindowLog
                ),
                (
                    Resource::Requests,
                    10_000,
                    86_400_250_000_000,
                    AlgorithmKind::SlidingWindowLog
                ),
            ]
        );
        assert!(matches!(limits.limiter().unwrap(), JobLimiter::Fixed(_)));
        let bad = JobLimits {
            rpm: Some(0),
            ..JobLimits::default()
        };
        assert!(bad.policy().is_err());
    }
}
