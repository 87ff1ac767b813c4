//! The distributed llm-ratelimit backend: one budget shared by many processes and hosts.
//!
//! [`RedisLimiter`] implements the same [`Limiter`](ratelimit_limiter::Limiter) trait as the
//! in-memory backend and passes the same conformance suite. Every decision is one atomic Lua script
//! that checks and records every limit of the policy together, on Redis's own clock (`TIME`), so
//! clock skew between hosts cannot break the limit.

mod conn;
mod error;
mod layout;
mod limiter;
mod ring;

pub use error::RedisLimiterError;
pub use limiter::{FailurePolicy, RedisConfig, RedisLimiter};
