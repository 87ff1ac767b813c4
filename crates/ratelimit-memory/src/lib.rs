//! The in-process llm-ratelimit backend: an async [`Limiter`](ratelimit_limiter::Limiter) on tokio.
//!
//! [`MemoryLimiter`] enforces one [`Policy`](ratelimit_core::Policy) (requests, tokens,
//! concurrency) for every task that shares it. It is a thin shell over `ratelimit-core`: the policy
//! decides, the shell makes waiters sleep exactly until their reserved instant.
//!
//! - **Exact**: no polling; the head of the line sleeps until the instant reserved for it.
//! - **Fair**: first come, first served within a priority class; a task that re-acquires in a
//!   loop goes to the back of the line; a large request is never starved by small ones.
//! - **Priorities**: interactive before batch, with batch guaranteed one grant per
//!   [`BATCH_SHARE`](ratelimit_limiter::BATCH_SHARE) interactive ones while both wait.
//! - **Cancellation-safe**: dropping a waiting future at any point gives back what it reserved.
//! - **Concurrency**: a slot is held from the grant until the permit is dropped; a waiter never
//!   sits on rate capacity while it waits for a slot.

mod clock;
mod keyed;
mod lane;
mod limiter;
mod queue;

pub use clock::{QuantaClock, SystemClock, TokioClock};
pub use keyed::{KeyedConfig, KeyedLimiter};
pub use limiter::MemoryLimiter;
