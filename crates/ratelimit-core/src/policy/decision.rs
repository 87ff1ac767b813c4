//! The one flat decision type: allowed, retry-after, reset-after and every dimension's state.

use core::time::Duration;

use super::MAX_LIMITS;
use super::limit::{LimitId, Resource};
use crate::algorithm::Status;
use crate::error::TooLarge;
use crate::time::{Nanos, millis_ceil, secs_ceil};

/// Which dimension held a request back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedBy {
    /// A rate limit (the one whose wait is longest).
    Limit(LimitId),
    /// The concurrency limit: all slots in use.
    Concurrency,
}

/// One rate limit's state inside a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Which limit.
    pub id: LimitId,
    /// What it counts.
    pub resource: Resource,
    /// Its window in nanoseconds.
    pub window: Nanos,
    /// Limit, capacity, remaining and reset-after.
    pub status: Status,
}

const EMPTY_STATE: LimitState = LimitState {
    id: LimitId(0),
    resource: Resource::Requests,
    window: 0,
    status: Status {
        limit: 0,
        capacity: 0,
        remaining: 0,
        reset_after: 0,
    },
};

/// Everything a caller needs to answer or pace a request, in one flat value.
///
/// `retry_after` is exact to the nanosecond; the `*_ceil` conversions round up, so a caller who
/// waits what they say is admitted (unless someone else takes the capacity first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request fits now.
    pub allowed: bool,
    /// Nanoseconds until every rate limit admits the request (0 when allowed, or when only the
    /// concurrency limit holds it back: then only a release helps).
    pub retry_after: Nanos,
    /// Nanoseconds until every dimension is fully replenished.
    pub reset_after: Nanos,
    /// The dimension that holds the request back, if any.
    pub limited_by: Option<LimitedBy>,
    /// The concurrency limit's state, if the policy has one.
    pub concurrency: Option<Status>,
    limits: [LimitState; MAX_LIMITS],
    len: u8,
}

impl Decision {
    pub(crate) fn new(
        now_allowed: bool,
        retry_after: Nanos,
        limited_by: Option<LimitedBy>,
    ) -> Self {
        Self {
            allowed: now_allowed,
            retry_after,
            reset_after: 0,
            limited_by,
            concurrency: None,
            limits: [EMPTY_STATE; MAX_LIMITS],
            len: 0,
        }
    }

    /// Assembles a decision from its parts, for backends that compute the numbers elsewhere
    /// (the Redis backend reads them from its script). `reset_after` is the maximum over the
    /// limits'; at most [`MAX_LIMITS`] limits are kept.
    #[must_use]
    pub fn from_parts(
        allowed: bool,
        retry_after: Nanos,
        limited_by: Option<LimitedBy>,
        limits: &[LimitState],
        concurrency: Option<Status>,
    ) -> Self {
        let mut d = Self::new(allowed, retry_after, limited_by);
        for state in limits.iter().take(MAX_LIMITS) {
            d.push(*state);
        }
        d.concurrency = concurrency;
        d
    }

    pub(crate) fn push(&mut self, state: LimitState) {
        self.reset_after = self.reset_after.max(state.status.reset_after);
        self.limits[usize::from(self.len)] = state;
        self.len += 1;
    }

    /// Every rate limit's state, in the policy's order.
    #[must_use]
    pub fn limits(&self) -> &[LimitState] {
        &self.limits[..usize::from(self.len)]
    }

    /// Remaining units of one limit.
    #[must_use]
    pub fn remaining(&self, id: LimitId) -> Option<u64> {
        self.limits().get(id.index()).map(|s| s.status.remaining)
    }

    /// The state of the first limit on `resource` (the shortest window, if the policy lists them in
    /// that order), for headers such as `x-ratelimit-remaining-tokens`.
    #[must_use]
    pub fn first_of(&self, resource: Resource) -> Option<&LimitState> {
        self.limits()
            .iter()
            .filter(|s| s.resource == resource)
            .min_by_key(|s| s.window)
    }

    /// `retry_after` as a [`Duration`] (exact).
    #[must_use]
    pub fn retry_after_duration(&self) -> Duration {
        Duration::from_nanos(self.retry_after)
    }

    /// `retry_after` in whole seconds, rounded up (for HTTP `Retry-After`).
    #[must_use]
    pub fn retry_after_secs_ceil(&self) -> u64 {
        secs_ceil(self.retry_after)
    }

    /// `retry_after` in whole milliseconds, rounded up (for `retry-after-ms`).
    #[must_use]
    pub fn retry_after_millis_ceil(&self) -> u64 {
        millis_ceil(self.retry_after)
    }
}

/// Why [`Policy::try_acquire`](crate::Policy::try_acquire) granted nothing. Small and cheap; for
/// every dimension's numbers (for headers), ask [`Policy::check`](crate::Policy::check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A rate limit says not yet: the request fits in exactly `retry_after` nanoseconds.
    #[error("rate limited: retry after {retry_after} ns")]
    RateLimited {
        /// Nanoseconds until every rate limit admits the request (exact).
        retry_after: Nanos,
        /// The limit whose wait is longest.
        limited_by: LimitId,
    },
    /// Every concurrency slot is in use; retry when one is released.
    #[error("all concurrency slots are in use")]
    ConcurrencyFull,
    /// The request can never fit: refused for good.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

impl Rejection {
    /// The exact wait for a rate-limited request; `None` otherwise.
    #[must_use]
    pub fn retry_after(&self) -> Option<Nanos> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Why [`Policy::start`](crate::Policy::start) could not start a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The reservation's instant has not come yet.
    #[error("reservation is not ready for another {retry_after} ns")]
    NotYet {
        /// Nanoseconds until it is.
        retry_after: Nanos,
    },
    /// Every concurrency slot is in use.
    #[error("all concurrency slots are in use")]
    ConcurrencyFull,
}
