//! `KeyedLimiter`: one budget per key (user, tenant, API key, model), with bounded memory.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use ratelimit_core::{Clock, ConfigError, Decision, LimitId, Nanos, Policy};
use ratelimit_limiter::{AcquireError, BackendError, Limiter, Permit, Request, Stats};

use crate::clock::TokioClock;
use crate::lane::{Engine, Handle, Lane, State, nanos};

const SHARDS: usize = 16;

/// How a [`KeyedLimiter`] bounds its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedConfig {
    /// The most keys held at once. A new key beyond it first makes room by evicting idle keys; if
    /// none is idle, the request is refused with [`AcquireError::TooManyKeys`]. Default 1,000,000.
    pub max_keys: usize,
}

impl Default for KeyedConfig {
    fn default() -> Self {
        Self {
            max_keys: 1_000_000,
        }
    }
}

struct Shard {
    lanes: HashMap<Box<str>, Arc<Lane>>,
    /// Sweep again when the shard grows past this.
    sweep_at: usize,
}

/// One [`Policy`] per key, created from a template on first use.
///
/// **Eviction.** A key is *idle* when nobody waits on it, no permit of it is alive and its policy
/// is back to its initial state (every limit fully replenished): forgetting it then loses nothing,
/// since a fresh budget from the template is identical. Idle keys are swept whenever a shard has
/// doubled since its last sweep (amortized constant time per new key), whenever the limiter is
/// full, and on [`evict_idle`](Self::evict_idle). A key whose usage still counts is **never**
/// evicted, because a fresh budget would hand out a burst the key has already used: when every
/// slot holds such a key, new keys are refused instead, with [`AcquireError::TooManyKeys`].
///
/// ```
/// use ratelimit_core::{Cost, Policy};
/// use ratelimit_limiter::{Limiter, Request};
/// use ratelimit_memory::{KeyedConfig, KeyedLimiter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let per_tenant = Policy::builder().requests_per_minute(60).tokens_per_minute(10_000).build()?;
/// let limiter = KeyedLimiter::new(per_tenant, KeyedConfig { max_keys: 100_000 });
/// let _a = limiter.acquire(Request::new(Cost::request(9_000, 0)).key("tenant-a")).await?;
/// // tenant-b has its own budget:
/// let _b = limiter.try_acquire(Request::new(Cost::request(9_000, 0)).key("tenant-b")).await?;
/// assert_eq!(limiter.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyedLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    template: Mutex<Policy>,
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    len: AtomicUsize,
    config: KeyedConfig,
}

impl std::fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("keys", &self.len())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl KeyedLimiter {
    /// A limiter giving each key its own copy of `template`, on tokio's clock.
    #[must_use]
    pub fn new(template: Policy, config: KeyedConfig) -> Self {
        Self::with_clock(template, config, Arc::new(TokioClock::new()))
    }

    /// The same on `clock`.
    #[must_use]
    pub fn with_clock(template: Policy, config: KeyedConfig, clock: Arc<dyn Clock>) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    lanes: HashMap::new(),
                    sweep_at: 1_024,
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                engine: Engine::new(clock),
                template: Mutex::new(template),
                shards,
                hasher: std::collections::hash_map::RandomState::new(),
                len: AtomicUsize::new(0),
                config,
            }),
        }
    }

    /// Keys held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every idle key now (see the type's docs); returns how many. Call it periodically to
    /// return memory promptly after a burst of one-off keys.
    pub fn evict_idle(&self) -> usize {
        let now = self.inner.engine.clock.now();
        self.inner
            .shards
            .iter()
            .map(|shard| self.sweep(&mut shard.lock(), now))
            .sum()
    }

    fn shard_of(&self, key: &str) -> &Mutex<Shard> {
        let h = self.inner.hasher.hash_one(key);
        &self.inner.shards[(h as usize) % SHARDS]
    }

    fn sweep(&self, shard: &mut Shard, now: Nanos) -> usize {
        let before = shard.lanes.len();
        shard.lanes.retain(|_, lane| !is_idle(lane, now));
        let evicted = before - shard.lanes.len();
        shard.sweep_at = (shard.lanes.len() * 2).max(1_024);
        self.inner.len.fetch_sub(evicted, Ordering::Relaxed);
        evicted
    }

    /// The lane for `key`, created if new.
    fn lane(&self, key: &str) -> Result<Handle, AcquireError> {
        let handle = |lane: &Arc<Lane>| Handle {
            lane: Arc::clone(lane),
            engine: Arc::clone(&self.inner.engine),
        };
        let shard_lock = self.shard_of(key);
        let mut shard = shard_lock.lock();
        if let Some(lane) = shard.lanes.get(key) {
            return Ok(handle(lane));
        }
        let now = self.inner.engine.clock.now();
        if shard.lanes.len() >= shard.sweep_at {
            self.sweep(&mut shard, now);
        }
        if self.len() >= self.inner.config.max_keys {
            self.sweep(&mut shard, now);
            drop(shard);
            // Still full: make room anywhere.
            if self.len() >= self.inner.config.max_keys && self.evict_idle() == 0 {
                self.inner.engine.stats.refused();
                return Err(AcquireError::TooManyKeys {
                    max: self.inner.config.max_keys,
                });
            }
            shard = shard_lock.lock();
        }
        let policy = self.inner.template.lock().clone();
        let lane = Arc::new(Mutex::new(State::new(policy)));
        let h = handle(&lane);
        shard.lanes.insert(key.into(), lane);
        self.inner.len.fetch_add(1, Ordering::Relaxed);
        Ok(h)
    }
}

/// Idle: nobody holds the lane (no waiter, no permit) and its policy is back to the start.
fn is_idle(lane: &Arc<Lane>, now: Nanos) -> bool {
    Arc::strong_count(lane) == 1 && lane.try_lock().is_some_and(|s| s.is_idle(now))
}

#[async_trait]
impl Limiter for KeyedLimiter {
    async fn acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        self.lane(request.key)?
            .acquire_inner(request, None, false)
            .await
    }

    async fn try_acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        self.lane(request.key)?
            .acquire_inner(request, None, true)
            .await
    }

    async fn acquire_timeout(
        &self,
        request: Request<'_>,
        timeout: Duration,
    ) -> Result<Permit, AcquireError> {
        let deadline = self.inner.engine.clock.now().saturating_add(nanos(timeout));
        self.lane(request.key)?
            .acquire_inner(request, Some(deadline), false)
            .await
    }

    async fn status(&self, key: &str) -> Result<Decision, BackendError> {
        let now = self.inner.engine.clock.now();
        let lane = self.shard_of(key).lock().lanes.get(key).cloned();
        Ok(match lane {
            Some(lane) => lane.lock().policy.status(now),
            None => self.inner.template.lock().status(now),
        })
    }

    async fn set_amount(&self, id: LimitId, amount: u64) -> Result<(), ConfigError> {
        let now = self.inner.engine.clock.now();
        self.inner.template.lock().set_amount(id, amount, now)?;
        for shard in &*self.inner.shards {
            for lane in shard.lock().lanes.values() {
                let mut state = lane.lock();
                state.policy.set_amount(id, amount, now)?;
                state.queue.wake_head();
            }
        }
        Ok(())
    }

    async fn correct(&self, key: &str, id: LimitId, delta: i64) -> Result<(), BackendError> {
        self.lane(key).map_err(key_error)?.correct(id, delta)
    }

    async fn pause(&self, key: &str, duration: Duration) -> Result<(), BackendError> {
        self.lane(key).map_err(key_error)?.pause(duration);
        Ok(())
    }

    fn stats(&self) -> Stats {
        let mut stats = self.inner.engine.stats.snapshot();
        stats.queue_depth = self.inner.engine.waiting.load(Ordering::Relaxed);
        stats.keys = self.len();
        stats
    }
}

/// A key that cannot be created (the key limit is reached) as a backend error.
fn key_error(e: AcquireError) -> BackendError {
    BackendError::new(e.to_string(), Some(Arc::new(e)))
}
