//! The `Limiter` trait: one async interface over every backend.

use std::time::Duration;

use async_trait::async_trait;
use ratelimit_core::{ConfigError, Decision, LimitId};

use crate::error::{AcquireError, BackendError};
use crate::permit::Permit;
use crate::request::Request;
use crate::stats::Stats;

/// A rate limiter for LLM requests: requests, tokens and concurrency, in memory or shared.
///
/// Object-safe: clients and gateways hold an `Arc<dyn Limiter>` and work with any backend.
///
/// Guarantees every backend gives (checked by the conformance suite):
/// - a request's cost is granted in every dimension at once or not at all;
/// - waiting is exact (no polling) and first come, first served within a priority class;
/// - a request that can never fit is refused at once with [`AcquireError::TooLarge`];
/// - a waiter that is dropped (timeout, `select!`, abort) gives back what it reserved and does not
///   hold up those behind it.
#[async_trait]
pub trait Limiter: Send + Sync {
    /// Waits for the request's turn and grants it.
    ///
    /// # Errors
    /// [`AcquireError::TooLarge`] at once if the request can never fit; backend errors.
    async fn acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError>;

    /// Grants the request only if it fits now (and nobody is waiting ahead of it).
    ///
    /// # Errors
    /// [`AcquireError::RateLimited`] with the exact wait, [`AcquireError::ConcurrencyFull`],
    /// [`AcquireError::TooLarge`], backend errors.
    async fn try_acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError>;

    /// Waits at most `timeout`. When the request's turn is known to come later than that, it fails
    /// at once, without waiting for nothing.
    ///
    /// # Errors
    /// [`AcquireError::RateLimited`] with the wait the request would have needed; as `acquire`.
    async fn acquire_timeout(
        &self,
        request: Request<'_>,
        timeout: Duration,
    ) -> Result<Permit, AcquireError>;

    /// Every dimension's state for `key`: limits, remaining, reset times.
    ///
    /// # Errors
    /// Backend errors.
    async fn status(&self, key: &str) -> Result<Decision, BackendError>;

    /// Changes one limit's amount at runtime, for every key (usage already recorded keeps counting;
    /// no fresh burst).
    ///
    /// # Errors
    /// [`ConfigError`] when the new amount is invalid; nothing changes then.
    async fn set_amount(&self, id: LimitId, amount: u64) -> Result<(), ConfigError>;

    /// Corrects one limit's books under `key` by `delta` units, to agree with what the provider
    /// reports: positive charges usage this limiter did not see, negative gives back units the
    /// provider says are free (newest usage first, never beyond an empty limit). The adaptive
    /// layer calls it after comparing a response's rate-limit headers with the limiter's state.
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot be reached or `id` is not one of the policy's.
    async fn correct(&self, key: &str, id: LimitId, delta: i64) -> Result<(), BackendError>;

    /// Holds every request under `key` back for `duration` from now: new requests and those
    /// already waiting, in every process sharing the budget. A provider's `retry-after` after a
    /// 429 pauses everyone, not only the request that got it. Extends an earlier pause, never
    /// shortens it.
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot be reached.
    async fn pause(&self, key: &str, duration: Duration) -> Result<(), BackendError>;

    /// Activity counters: queue depth, limit hits, wait percentiles.
    fn stats(&self) -> Stats;
}
