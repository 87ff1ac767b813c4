//! `MemoryLimiter`: one in-process budget behind the `Limiter` trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ratelimit_core::{Clock, ConfigError, Cost, Decision, LimitId, Policy};
use ratelimit_limiter::{AcquireError, BackendError, Limiter, Permit, Request, Stats};

use crate::clock::TokioClock;
use crate::lane::{Engine, Handle, Lane, nanos, try_take};

/// An in-process limiter enforcing one [`Policy`] for every caller that shares it.
///
/// Waiting is exact and fair: a waiter sleeps until the instant reserved for it, first come first
/// served within its [`Priority`](ratelimit_limiter::Priority) class; a dropped waiter gives back
/// what it reserved. Cheap to clone (clones share one budget).
///
/// ```
/// use ratelimit_core::{Cost, Policy};
/// use ratelimit_limiter::{Limiter, Request};
/// use ratelimit_memory::MemoryLimiter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = MemoryLimiter::new(Policy::builder().requests_per_minute(600).tokens_per_minute(90_000).build()?);
/// let mut permit = limiter.acquire(Request::new(Cost::request(1_200, 500))).await?;
/// // ... send the request; the response says 130 completion tokens were used:
/// permit.adjust(Cost::request(1_200, 130)).await?;
/// drop(permit); // frees the concurrency slot, if the policy has one
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryLimiter {
    handle: Handle,
}

impl std::fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimiter").finish_non_exhaustive()
    }
}

impl MemoryLimiter {
    /// A limiter enforcing `policy` on tokio's clock.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self::with_clock(policy, Arc::new(TokioClock::new()))
    }

    /// A limiter enforcing `policy` on `clock`. Waits still sleep on tokio's timer, for as long as
    /// the clock says remains; use [`TokioClock`] (the default) for paused-time tests.
    #[must_use]
    pub fn with_clock(policy: Policy, clock: Arc<dyn Clock>) -> Self {
        let lane = Arc::new(Lane::new(Box::default(), policy));
        Self {
            handle: Handle {
                lane,
                engine: Engine::new(clock),
            },
        }
    }

    /// Number of requests waiting now.
    #[must_use]
    pub fn queue_depth(&self) -> usize {
        self.handle.lane.lock().queue.len()
    }

    /// Takes `cost` now from every rate limit, or refuses: the cheapest decision, synchronous and
    /// without a permit (so nothing to adjust, and the concurrency limit is not involved), like
    /// governor's `check`. It never overtakes a request that is waiting.
    ///
    /// ```
    /// use ratelimit_core::{Cost, Policy};
    /// use ratelimit_memory::MemoryLimiter;
    ///
    /// let limiter = MemoryLimiter::new(Policy::builder().requests_per_minute(1).build()?);
    /// assert!(limiter.try_take(&Cost::ONE_REQUEST).is_ok());
    /// let err = limiter.try_take(&Cost::ONE_REQUEST).unwrap_err();
    /// let wait = err.retry_after().unwrap(); // the real clock moved on a little
    /// assert!(wait <= std::time::Duration::from_secs(60) && wait > std::time::Duration::from_secs(59));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`AcquireError::RateLimited`] with the wait (exact when nobody is waiting),
    /// [`AcquireError::TooLarge`].
    pub fn try_take(&self, cost: &Cost) -> Result<(), AcquireError> {
        try_take(&self.handle.lane, &self.handle.engine, cost)
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        self.handle.acquire_inner(request, None, false).await
    }

    async fn try_acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        self.handle.acquire_inner(request, None, true).await
    }

    async fn acquire_timeout(
        &self,
        request: Request<'_>,
        timeout: Duration,
    ) -> Result<Permit, AcquireError> {
        let deadline = self
            .handle
            .engine
            .clock
            .now()
            .saturating_add(nanos(timeout));
        self.handle
            .acquire_inner(request, Some(deadline), false)
            .await
    }

    async fn status(&self, _key: &str) -> Result<Decision, BackendError> {
        let state = self.handle.lane.lock();
        Ok(state.policy.status(self.handle.engine.clock.now()))
    }

    async fn set_amount(&self, id: LimitId, amount: u64) -> Result<(), ConfigError> {
        let mut state = self.handle.lane.lock();
        let now = self.handle.engine.clock.now();
        state.policy.set_amount(id, amount, now)?;
        state.queue.wake_head();
        Ok(())
    }

    async fn correct(&self, _key: &str, id: LimitId, delta: i64) -> Result<(), BackendError> {
        self.handle.correct(id, delta)
    }

    async fn pause(&self, _key: &str, duration: Duration) -> Result<(), BackendError> {
        self.handle.pause(duration);
        Ok(())
    }

    fn stats(&self) -> Stats {
        let mut stats = self.handle.engine.stats.snapshot();
        stats.queue_depth = self.queue_depth();
        stats
    }
}
