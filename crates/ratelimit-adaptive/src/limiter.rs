//! `AdaptiveLimiter`: the async shell that feeds responses to the controller and applies what it
//! decides to any backend through the `Limiter` trait.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::HeaderMap;
use parking_lot::Mutex;
use ratelimit_core::{Clock, ConfigError, Decision, LimitId, Policy};
use ratelimit_limiter::{AcquireError, BackendError, Limiter, Permit, Request, Stats};
use ratelimit_memory::TokioClock;

use crate::controller::{Action, AdaptiveConfig, Controller, Feedback};
use crate::headers::{RetryHint, Snapshot};

/// What one response taught, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The rate-limit information read from the response.
    pub snapshot: Snapshot,
    /// When to retry, if the response said (headers first, then the body).
    pub retry: RetryHint,
    /// The changes applied to the limiter.
    pub actions: Vec<Action>,
}

/// A limiter that keeps itself in step with the provider: wrap any backend (memory or Redis),
/// acquire through it as usual, and [`observe`](Self::observe) every response.
///
/// Each grant records the limiter's state right after it, so the response's `remaining` can be
/// compared with what the limiter believed at that moment (see [`Controller`]). A 429 pauses the
/// budget for every user of the backend (across processes with Redis). Use one adaptive limiter
/// per provider budget (account and model): limit changes apply to every key of the backend.
///
/// ```
/// use std::sync::Arc;
/// use http::HeaderMap;
/// use ratelimit_adaptive::{AdaptiveConfig, AdaptiveLimiter};
/// use ratelimit_core::{Cost, Policy};
/// use ratelimit_limiter::{Limiter, Request};
/// use ratelimit_memory::MemoryLimiter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A first guess; the provider's headers will correct it.
/// let policy = Policy::builder().requests_per_minute(60).tokens_per_minute(10_000).build()?;
/// let limiter = AdaptiveLimiter::new(
///     Arc::new(MemoryLimiter::new(policy.clone())),
///     &policy,
///     AdaptiveConfig::default(),
/// )?;
/// let permit = limiter.acquire(Request::new(Cost::request(500, 200))).await?;
/// // ... send the request; the response carries OpenAI's headers:
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-limit-tokens", "450000".parse()?);
/// headers.insert("x-ratelimit-remaining-tokens", "449300".parse()?);
/// let seen = limiter.observe("", Some(&permit), 200, &headers, None).await?;
/// assert!(!seen.actions.is_empty());
/// let tokens = limiter.status("").await?.limits()[1].status;
/// assert_eq!(tokens.limit, 450_000);
/// # Ok(()) }
/// ```
pub struct AdaptiveLimiter {
    inner: Arc<dyn Limiter>,
    controller: Mutex<Controller>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AdaptiveLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveLimiter").finish_non_exhaustive()
    }
}

impl AdaptiveLimiter {
    /// Wraps `inner`, which enforces `policy` (the limits as configured at start).
    ///
    /// # Errors
    /// [`ConfigError`] when `config` is invalid.
    pub fn new(
        inner: Arc<dyn Limiter>,
        policy: &Policy,
        config: AdaptiveConfig,
    ) -> Result<Self, ConfigError> {
        Self::with_clock(inner, policy, config, Arc::new(TokioClock::new()))
    }

    /// As [`new`](Self::new), timing the controller (recovery periods, increase intervals) on
    /// `clock`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` is invalid.
    pub fn with_clock(
        inner: Arc<dyn Limiter>,
        policy: &Policy,
        config: AdaptiveConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            inner,
            controller: Mutex::new(Controller::new(policy, config)?),
            clock,
        })
    }

    /// Feeds one response to the controller and applies its decisions to the limiter.
    ///
    /// `permit` is the grant the request was sent under (its recorded state lets `remaining` be
    /// compared); `body` is the response body when it is an error (429 bodies carry waits).
    ///
    /// # Errors
    /// [`BackendError`] when the backend refuses a change; the snapshot is lost then, not the
    /// limiter's consistency.
    pub async fn observe(
        &self,
        key: &str,
        permit: Option<&Permit>,
        status: u16,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Observation, BackendError> {
        let mut snapshot = Snapshot::from_headers(headers, SystemTime::now());
        if let Some(body) = body {
            snapshot = snapshot.with_body(body);
        }
        let actions = {
            let feedback = Feedback {
                status,
                snapshot: &snapshot,
                granted: permit.and_then(Permit::grant_state),
            };
            let now = self.clock.now();
            self.controller.lock().on_response(&feedback, now)
        };
        for action in &actions {
            self.apply(key, *action).await?;
        }
        Ok(Observation {
            retry: snapshot.retry(),
            snapshot,
            actions,
        })
    }

    async fn apply(&self, key: &str, action: Action) -> Result<(), BackendError> {
        match action {
            Action::SetAmount { id, amount } => {
                tracing::info!(limit = id.index(), amount, "limit follows the provider");
                self.inner
                    .set_amount(id, amount)
                    .await
                    .map_err(|e| BackendError::new(e.to_string(), Some(Arc::new(e))))
            }
            Action::Correct { id, delta } => {
                tracing::debug!(
                    limit = id.index(),
                    delta,
                    "usage corrected to the provider's"
                );
                self.inner.correct(key, id, delta).await
            }
            Action::Pause(duration) => {
                tracing::info!(?duration, key, "provider answered 429: every user pauses");
                self.inner.pause(key, duration).await
            }
        }
    }

    /// Records the state right after a grant on `permit`.
    async fn record(&self, key: &str, mut permit: Permit) -> Result<Permit, AcquireError> {
        let at = self.clock.now();
        let state = self.inner.status(key).await?;
        permit.record_grant_state(at, state);
        Ok(permit)
    }
}

#[async_trait]
impl Limiter for AdaptiveLimiter {
    async fn acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        let permit = self.inner.acquire(request).await?;
        self.record(request.key, permit).await
    }

    async fn try_acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        let permit = self.inner.try_acquire(request).await?;
        self.record(request.key, permit).await
    }

    async fn acquire_timeout(
        &self,
        request: Request<'_>,
        timeout: Duration,
    ) -> Result<Permit, AcquireError> {
        let permit = self.inner.acquire_timeout(request, timeout).await?;
        self.record(request.key, permit).await
    }

    async fn status(&self, key: &str) -> Result<Decision, BackendError> {
        self.inner.status(key).await
    }

    async fn set_amount(&self, id: LimitId, amount: u64) -> Result<(), ConfigError> {
        self.inner.set_amount(id, amount).await?;
        self.controller.lock().set_amount(id, amount);
        Ok(())
    }

    async fn correct(&self, key: &str, id: LimitId, delta: i64) -> Result<(), BackendError> {
        self.inner.correct(key, id, delta).await
    }

    async fn pause(&self, key: &str, duration: Duration) -> Result<(), BackendError> {
        self.inner.pause(key, duration).await
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}
