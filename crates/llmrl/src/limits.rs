//! Limits from the command line, and the limiter they make.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ratelimit_adaptive::{AdaptiveConfig, AdaptiveLimiter};
use ratelimit_core::{AlgorithmKind, Limit, Policy, Resource};
use ratelimit_memory::MemoryLimiter;

/// What the provider allows, when known. Without any, the limits are learned from the
/// provider's headers, starting from a cautious guess.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LimitArgs {
    /// Requests per minute.
    #[arg(long)]
    pub(crate) rpm: Option<u64>,
    /// Tokens per minute (prompt + max output, as providers count at admission).
    #[arg(long)]
    pub(crate) tpm: Option<u64>,
    /// Requests per day.
    #[arg(long)]
    pub(crate) rpd: Option<u64>,
    /// Tokens per day.
    #[arg(long)]
    pub(crate) tpd: Option<u64>,
    /// Requests in flight at once.
    #[arg(long)]
    pub(crate) concurrency: Option<u64>,
    /// Learn the limits from the provider's rate-limit headers and 429s (always on when no limit
    /// is given).
    #[arg(long)]
    pub(crate) learn: bool,
    /// Added to every window: requests reach the provider a little after their grant, so two
    /// grants a window apart can land closer together there.
    #[arg(long, default_value_t = 250)]
    pub(crate) window_margin_ms: u64,
    /// The length of a "minute" (the per-minute limits' window), in seconds; 60 for real
    /// providers.
    #[arg(long, default_value_t = 60, hide = true)]
    pub(crate) minute_secs: u64,
}

/// The guess a learning limiter starts from, before the first response says better.
const GUESS_RPM: u64 = 60;
const GUESS_TPM: u64 = 20_000;

impl LimitArgs {
    fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.rpd.is_some() || self.tpd.is_some()
    }

    /// Exact sliding windows ("never more than N in any window", as providers enforce them),
    /// each `window_margin_ms` longer than the provider's.
    pub(crate) fn policy(&self) -> Result<Policy> {
        let margin = Duration::from_millis(self.window_margin_ms);
        let minute = Duration::from_secs(self.minute_secs) + margin;
        let day = Duration::from_secs(86_400) + margin;
        let learning = !self.any();
        let mut b = Policy::builder();
        let mut add = |resource, amount: Option<u64>, window| {
            if let Some(amount) = amount {
                b = std::mem::take(&mut b).limit(
                    Limit::new(resource, amount, window).algorithm(AlgorithmKind::SlidingWindowLog),
                );
            }
        };
        add(
            Resource::Requests,
            self.rpm.or(learning.then_some(GUESS_RPM)),
            minute,
        );
        add(
            Resource::Tokens,
            self.tpm.or(learning.then_some(GUESS_TPM)),
            minute,
        );
        add(Resource::Requests, self.rpd, day);
        add(Resource::Tokens, self.tpd, day);
        if let Some(c) = self.concurrency {
            b = b.concurrency(c);
        }
        b.build().context("invalid limits")
    }

    /// The limiter: in memory, adaptive when learning.
    pub(crate) fn limiter(&self) -> Result<Limiter> {
        let policy = self.policy()?;
        let memory = Arc::new(MemoryLimiter::new(policy.clone()));
        if self.learn || !self.any() {
            let adaptive = AdaptiveLimiter::new(memory, &policy, AdaptiveConfig::default())
                .context("adaptive limiter")?;
            Ok(Limiter::Adaptive(Arc::new(adaptive)))
        } else {
            Ok(Limiter::Fixed(memory))
        }
    }
}

/// The limiter a run uses.
pub(crate) enum Limiter {
    Fixed(Arc<MemoryLimiter>),
    Adaptive(Arc<AdaptiveLimiter>),
}

impl Limiter {
    pub(crate) fn apply(
        &self,
        b: ratelimit_client::ClientBuilder,
    ) -> ratelimit_client::ClientBuilder {
        match self {
            Self::Fixed(l) => b.limiter(Arc::clone(l) as Arc<dyn ratelimit_limiter::Limiter>),
            Self::Adaptive(l) => b.adaptive(Arc::clone(l)),
        }
    }
}
