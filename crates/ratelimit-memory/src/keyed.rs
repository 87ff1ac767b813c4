//! `KeyedLimiter`: one budget per key (user, tenant, API key, model), with bounded memory.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use parking_lot::Mutex;
use ratelimit_core::{Clock, ConfigError, Cost, Decision, LimitId, Nanos, Policy};
use ratelimit_limiter::{AcquireError, BackendError, Limiter, Permit, Request, Stats};

use crate::clock::TokioClock;
use crate::lane::{Engine, Handle, Lane, nanos, try_take};

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
    /// The lanes, found by the hash of the key each one holds (one pointer per entry).
    lanes: HashTable<Arc<Lane>>,
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
    /// Randomly seeded per limiter (foldhash): fast, and keys chosen by callers cannot be made to
    /// collide without knowing the seed.
    hasher: DefaultHashBuilder,
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
                    lanes: HashTable::new(),
                    sweep_at: 1_024,
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                engine: Engine::new(clock),
                template: Mutex::new(template),
                shards,
                hasher: DefaultHashBuilder::default(),
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

    /// The key's hash and its shard. The shard is picked from bits the table's own bucket index
    /// (low bits) and tag (top seven) do not use, so every shard's table sees well-spread hashes.
    fn locate(&self, key: &str) -> (u64, &Mutex<Shard>) {
        let hash = self.inner.hasher.hash_one(key);
        (hash, &self.inner.shards[((hash >> 32) as usize) % SHARDS])
    }

    fn sweep(&self, shard: &mut Shard, now: Nanos) -> usize {
        let before = shard.lanes.len();
        shard.lanes.retain(|lane| !is_idle(lane, now));
        let evicted = before - shard.lanes.len();
        shard.sweep_at = (shard.lanes.len() * 2).max(1_024);
        self.inner.len.fetch_sub(evicted, Ordering::Relaxed);
        evicted
    }

    /// Runs `f` on the lane of `key` (created if new) under its shard's lock.
    fn with_lane<R>(&self, key: &str, f: impl FnOnce(&Arc<Lane>) -> R) -> Result<R, AcquireError> {
        let (hash, shard_lock) = self.locate(key);
        let mut shard = shard_lock.lock();
        if let Some(lane) = shard.lanes.find(hash, |l| *l.key == *key) {
            return Ok(f(lane));
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
        let lane = Arc::new(Lane::new(key.into(), policy));
        let result = f(&lane);
        let hasher = &self.inner.hasher;
        shard
            .lanes
            .insert_unique(hash, lane, |l| hasher.hash_one(&*l.key));
        self.inner.len.fetch_add(1, Ordering::Relaxed);
        Ok(result)
    }

    /// The lane for `key`, created if new.
    fn lane(&self, key: &str) -> Result<Handle, AcquireError> {
        self.with_lane(key, |lane| Handle {
            lane: Arc::clone(lane),
            engine: Arc::clone(&self.inner.engine),
        })
    }

    /// Takes `cost` now from `key`'s rate limits, or refuses: the synchronous, permit-free
    /// decision of [`MemoryLimiter::try_take`](crate::MemoryLimiter::try_take), per key, like
    /// governor's `check_key`. It never overtakes a request waiting on the same key.
    ///
    /// ```
    /// use ratelimit_core::{Cost, Policy};
    /// use ratelimit_memory::{KeyedConfig, KeyedLimiter};
    ///
    /// let per_user = Policy::builder().requests_per_minute(1).build()?;
    /// let limiter = KeyedLimiter::new(per_user, KeyedConfig::default());
    /// assert!(limiter.try_take("alice", &Cost::ONE_REQUEST).is_ok());
    /// assert!(limiter.try_take("alice", &Cost::ONE_REQUEST).is_err());
    /// assert!(limiter.try_take("bob", &Cost::ONE_REQUEST).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`AcquireError::RateLimited`] with the wait, [`AcquireError::TooLarge`],
    /// [`AcquireError::TooManyKeys`] when the key is new and no slot can be freed.
    pub fn try_take(&self, key: &str, cost: &Cost) -> Result<(), AcquireError> {
        self.with_lane(key, |lane| try_take(lane, &self.inner.engine, cost))?
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
        let (hash, shard) = self.locate(key);
        let lane = shard.lock().lanes.find(hash, |l| *l.key == *key).cloned();
        Ok(match lane {
            Some(lane) => lane.lock().policy.status(now),
            None => self.inner.template.lock().status(now),
        })
    }

    async fn set_amount(&self, id: LimitId, amount: u64) -> Result<(), ConfigError> {
        let now = self.inner.engine.clock.now();
        self.inner.template.lock().set_amount(id, amount, now)?;
        for shard in &*self.inner.shards {
            for lane in &shard.lock().lanes {
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
