//! Limits from the command line (the batch library's `JobLimits`, as flags).

use std::time::Duration;

use anyhow::{Context, Result};
use ratelimit_batch::{JobLimiter, JobLimits};

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

impl LimitArgs {
    /// The job's limits.
    pub(crate) fn job(&self) -> JobLimits {
        JobLimits {
            rpm: self.rpm,
            tpm: self.tpm,
            rpd: self.rpd,
            tpd: self.tpd,
            concurrency: self.concurrency,
            learn: self.learn,
            window_margin: Duration::from_millis(self.window_margin_ms),
            minute: Duration::from_secs(self.minute_secs),
        }
    }

    /// The limiter they make.
    pub(crate) fn limiter(&self) -> Result<JobLimiter> {
        self.job().limiter().context("invalid limits")
    }
}
