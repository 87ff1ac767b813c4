//! The distributed llm-ratelimit backend: one budget shared by many processes and hosts.
//!
//! [`RedisLimiter`] implements the same [`Limiter`](ratelimit_limiter::Limiter) trait as the
//! in-memory backend and passes the same conformance suite. Every decision is one atomic call of a
//! Lua function (Redis 7.0 or later) that checks and records every limit of the policy together,
//! on Redis's own clock (`TIME`), so clock skew between hosts cannot break the limit.
//!
//! ```no_run
//! use ratelimit_core::{Cost, Policy};
//! use ratelimit_limiter::{Limiter, Request};
//! use ratelimit_redis::{RedisConfig, RedisLimiter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::builder().requests_per_minute(500).tokens_per_minute(90_000).build()?;
//! let limiter = RedisLimiter::connect("rediss://cache.internal:6380", policy, RedisConfig::new("gpt-4o")).await?;
//! let mut permit = limiter.acquire(Request::new(Cost::request(1_000, 500)).key("tenant-7")).await?;
//! permit.adjust(Cost::request(1_000, 120)).await?;
//! # Ok(()) }
//! ```
//!
//! - **Connections.** [`Target`]: one server (`redis://host:port/db`, or `rediss://` for TLS with
//!   rustls and the web PKI roots), a Redis Cluster, or independent servers sharded by consistent
//!   hashing. [`RedisConfig::client`] picks the `redis` or the `fred` client (features of the same
//!   names).
//! - **Keys.** `{prefix:name:key}:state`, `:slots` (with a concurrency limit) and, for sliding
//!   logs, `:t<i>` and `:c<i>`: one hash tag per budget, so a budget's keys share a Cluster slot.
//!   Every key expires 30 to 60 seconds after the budget is fully replenished, so idle budgets
//!   disappear. The state is a string of packed numbers (exact little-endian doubles) followed by
//!   the policy's layout; a state written by an earlier version (a hash) is read and replaced on
//!   the next write, so every process of a budget should be upgraded together.
//! - **Function.** The decision is a Redis Functions library, loaded once per server (`FUNCTION
//!   LOAD`, on every master of a Cluster, when a limiter connects) and called with `FCALL`; its
//!   helpers and formats are built once per load, not on every call. A server that lost it (a
//!   restart without persistence, `FUNCTION FLUSH`, a new Cluster master) answers "Function not
//!   found", and the limiter loads it again and calls once more. The library is named after its
//!   code's hash, so processes of different versions share a server without replacing each
//!   other's. Numbers travel packed, never as decimal text, and a decision reads the state once and
//!   writes only its numbers (`SETRANGE`), moving the key's expiry only when it must. Needs
//!   **Redis 7.0 or later** (Redis Functions); an older server is refused at connect.
//! - **Coalescing.** Acquires of one process on one budget that arrive while a call for that
//!   budget is in flight wait for it and then go out together in one call, which applies them in
//!   arrival order, each exactly as a call of its own would have been (FIFO, reservations,
//!   deadlines counted from when the call is made, concurrency slots). A lone caller is sent at
//!   once; under load, the server reads the clock and the state and writes the state once per
//!   call instead of once per decision (at most 128 per call).
//! - **Failures.** Each call has a timeout and is retried with exponential backoff and full jitter;
//!   then the [`FailurePolicy`] applies: refuse, grant, or enforce a share of the limit locally.
//!   The limiter tries Redis again every [`RedisConfig::probe_interval`] and recovers by itself.
//! - **Concurrency limits** are leases that expire after [`RedisConfig::lease`], so a crashed
//!   holder cannot leak a slot for ever. Waiting for a slot held by another process polls every
//!   50 ms (a release in this process wakes waiters at once).
//! - **Algorithms.** GCRA, the leaky bucket, the exact sliding window log and the fixed window
//!   run on Redis with the in-memory semantics. The sliding log keeps each grant in two sorted
//!   sets (by time and by running total), so a decision is `O(log n)` plus the entries that expire,
//!   never a scan of the window. The sliding window counter is refused at construction
//!   ([`RedisLimiterError::Unsupported`]): use the exact log.

mod conn;
mod error;
mod lane;
mod layout;
mod limiter;
mod ring;

pub use error::RedisLimiterError;
pub use limiter::{Client, FailurePolicy, RedisConfig, RedisLimiter, Target};
