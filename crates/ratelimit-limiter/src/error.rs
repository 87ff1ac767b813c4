//! Why a limiter did not grant, or could not answer.

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::TooLarge;

/// A failure of the backend itself (Redis unreachable, a script error), shared cheaply.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// A backend error with a message and an optional cause.
    pub fn new(
        message: impl Into<String>,
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source,
        }
    }
}

/// Why [`Limiter`](crate::Limiter) did not grant a request.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// Not now: the request would fit after `retry_after` (exact; for a timeout, how long it would
    /// have had to wait from the call, which exceeded the timeout).
    #[error("rate limited: retry after {retry_after:?}")]
    RateLimited {
        /// The exact wait.
        retry_after: Duration,
    },
    /// Every concurrency slot is in use (only from `try_acquire`, or a timeout that ran out while
    /// waiting for a slot).
    #[error("all concurrency slots are in use")]
    ConcurrencyFull,
    /// The request can never fit: refused at once, never queued.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// A keyed limiter is at its maximum number of keys and none can be evicted.
    #[error("too many keys: the limiter holds its maximum of {max} and none is idle")]
    TooManyKeys {
        /// The configured maximum.
        max: usize,
    },
    /// The backend failed and its failure policy is to refuse.
    #[error("limiter backend failed: {0}")]
    Backend(#[from] BackendError),
}

impl AcquireError {
    /// The exact wait for [`AcquireError::RateLimited`].
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same request can ever succeed (false for too large).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::TooLarge(_))
    }
}
