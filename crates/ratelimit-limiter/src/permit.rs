//! A granted request: holds its capacity until settled, frees its concurrency slot when dropped.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use ratelimit_core::{Cost, Decision, Nanos};

use crate::error::BackendError;

/// What a backend keeps behind a [`Permit`]: how to settle the grant it stands for.
///
/// Implemented by backends; users hold [`Permit`]s.
#[async_trait]
pub trait PermitHandle: Send + Sync {
    /// Replaces the grant's cost with the actual usage in every dimension.
    async fn adjust(&mut self, actual: Cost) -> Result<(), BackendError>;

    /// Gives back everything the grant holds (the request never happened).
    async fn cancel(&mut self) -> Result<(), BackendError>;

    /// The request is finished: frees its concurrency slot. Called exactly once, from
    /// [`Permit`]'s drop, unless [`cancel`](Self::cancel) already settled it. Must not block.
    fn release(&mut self);
}

/// A granted request. Hold it while the request runs; dropping it releases its concurrency slot.
///
/// Call [`adjust`](Self::adjust) once the actual usage is known (the response's `usage`) so a
/// shorter answer gives its unused tokens back, and [`cancel`](Self::cancel) if the request is
/// never sent.
#[must_use = "dropping a permit at once releases it: hold it while the request runs"]
pub struct Permit {
    handle: Option<Box<dyn PermitHandle>>,
    cost: Cost,
    waited: Duration,
    at_grant: Option<Box<(Nanos, Decision)>>,
}

impl Permit {
    /// Wraps a backend's handle. `cost` is what was granted; `waited` how long the caller waited.
    pub fn new(handle: Box<dyn PermitHandle>, cost: Cost, waited: Duration) -> Self {
        Self {
            handle: Some(handle),
            cost,
            waited,
            at_grant: None,
        }
    }

    /// Records the limiter's state right after this grant, and when it was taken (on the clock of
    /// whoever records it). Layers that compare the provider's view with the limiter's (the
    /// adaptive layer) record it; backends do not, so a plain grant pays nothing for it.
    pub fn record_grant_state(&mut self, at: Nanos, state: Decision) {
        self.at_grant = Some(Box::new((at, state)));
    }

    /// The state recorded by [`record_grant_state`](Self::record_grant_state), if any.
    #[must_use]
    pub fn grant_state(&self) -> Option<(Nanos, &Decision)> {
        self.at_grant.as_deref().map(|(at, d)| (*at, d))
    }

    /// The cost the permit holds now (the estimate, or the actual usage once adjusted).
    #[must_use]
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// How long the request waited for its grant.
    #[must_use]
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Replaces the estimate with the actual usage: refunds the difference or charges the excess,
    /// in every dimension (combined tokens included).
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot be reached; the estimate then stays counted.
    pub async fn adjust(&mut self, actual: Cost) -> Result<(), BackendError> {
        if let Some(handle) = &mut self.handle {
            handle.adjust(actual).await?;
            self.cost = actual;
        }
        Ok(())
    }

    /// Gives everything back: the request was never sent.
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot be reached.
    pub async fn cancel(mut self) -> Result<(), BackendError> {
        if let Some(mut handle) = self.handle.take() {
            handle.cancel().await?;
        }
        Ok(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(mut handle) = self.handle.take() {
            handle.release();
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("cost", &self.cost)
            .field("waited", &self.waited)
            .finish_non_exhaustive()
    }
}
