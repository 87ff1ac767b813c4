//! Errors of the Redis backend.

use ratelimit_core::ConfigError;
use ratelimit_limiter::BackendError;

/// Why a [`RedisLimiter`](crate::RedisLimiter) could not be built or could not reach Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisLimiterError {
    /// The policy uses an algorithm the Redis backend does not run (yet).
    #[error(
        "the {0} algorithm is not available on the Redis backend; use gcra, leaky_bucket, sliding_window_log or fixed_window"
    )]
    Unsupported(&'static str),
    /// A limit so large that even coarse time units cannot keep the script's arithmetic exact.
    #[error(
        "a limit of {amount} with a burst of {burst} is too large for exact arithmetic in Redis"
    )]
    TooLargeForRedis {
        /// The limit's amount.
        amount: u64,
        /// Its burst.
        burst: u64,
    },
    /// The policy or configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Connecting to Redis failed.
    #[error("could not connect to Redis: {0}")]
    Connect(String),
}

impl From<RedisLimiterError> for BackendError {
    fn from(e: RedisLimiterError) -> Self {
        BackendError::new(e.to_string(), None)
    }
}
