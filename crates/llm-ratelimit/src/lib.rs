//! `llm-ratelimit`: use LLM APIs at full speed without getting throttled.
//!
//! This facade re-exports the workspace's layers; enable a feature per layer you need, so you
//! compile only what you use:
//!
//! | feature | layer | what it adds |
//! |---|---|---|
//! | *(always)* | [`core`] | pure algorithms and the multi-dimension LLM [`Policy`] |
//! | `memory` (default) | [`limiter`], [`memory`] | the async [`Limiter`] trait and the in-process [`MemoryLimiter`] on tokio |
//! | `redis` / `fred` | `redis` | `RedisLimiter`: one budget shared through Redis or Redis Cluster, with either client |
//! | `adaptive` | [`adaptive`] | `AdaptiveLimiter`: follows the provider's limits from its headers and 429s |
//! | `client` | [`openai`], [`client`], [`batch`] | the OpenAI-compatible `Client` with limiting built in, and the JSONL batch runner |
//!
//! ```
//! use llm_ratelimit::{Cost, Policy};
//!
//! let mut policy = Policy::builder()
//!     .requests_per_minute(500)
//!     .tokens_per_minute(30_000)
//!     .build()?;
//! let now = 0; // nanoseconds from your clock
//! let grant = policy.try_acquire(&Cost::request(1_000, 200), now).expect("fits");
//! policy.release(grant);
//! # Ok::<(), llm_ratelimit::ConfigError>(())
//! ```

/// The sans-I/O core: algorithms, policy, clock trait. See [`ratelimit_core`].
pub use ratelimit_core as core;

/// The async `Limiter` trait, permits, requests and stats. See [`ratelimit_limiter`].
#[cfg(feature = "memory")]
pub use ratelimit_limiter as limiter;
/// The in-process backend. See [`ratelimit_memory`].
#[cfg(feature = "memory")]
pub use ratelimit_memory as memory;

/// The distributed backend. See [`ratelimit_redis`].
#[cfg(any(feature = "redis", feature = "fred"))]
pub use ratelimit_redis as redis;
#[cfg(any(feature = "redis", feature = "fred"))]
pub use ratelimit_redis::{FailurePolicy, RedisConfig, RedisLimiter, Target};

/// The adaptive layer: header parsers and the controller. See [`ratelimit_adaptive`].
#[cfg(feature = "adaptive")]
pub use ratelimit_adaptive as adaptive;
#[cfg(feature = "adaptive")]
pub use ratelimit_adaptive::{AdaptiveConfig, AdaptiveLimiter};

/// The JSONL batch runner. See [`ratelimit_batch`].
#[cfg(feature = "client")]
pub use ratelimit_batch as batch;
/// The OpenAI-compatible client. See [`ratelimit_client`].
#[cfg(feature = "client")]
pub use ratelimit_client as client;
#[cfg(feature = "client")]
pub use ratelimit_client::Client;
/// The OpenAI wire format and token estimates. See [`ratelimit_openai`].
#[cfg(feature = "client")]
pub use ratelimit_openai as openai;

#[cfg(feature = "memory")]
pub use ratelimit_limiter::{AcquireError, Limiter, Permit, Priority, Request, Stats};
#[cfg(feature = "memory")]
pub use ratelimit_memory::MemoryLimiter;

pub use ratelimit_core::{
    AlgorithmKind, Clock, ConfigError, Cost, Decision, Limit, LimitId, LimitState, LimitedBy,
    ManualClock, Nanos, Policy, PolicyBuilder, Rejection, Reservation, Resource, StartError,
    TooLarge,
};

/// The README's examples, compiled and run as doc tests so they cannot go stale.
#[doc = include_str!("../../../README.md")]
#[cfg(all(doctest, feature = "redis"))]
pub struct ReadmeDoctests;
