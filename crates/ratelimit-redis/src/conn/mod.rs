//! The connection behind a limiter: runs the policy script on one of the two Rust clients.
//!
//! Both clients call the script by its SHA (`EVALSHA`) and, when the server has lost its scripts
//! (a restart, a failover, `SCRIPT FLUSH`), run it with `EVAL`, which loads it again. Arguments are
//! byte strings, copied once into the client's request.

#[cfg(feature = "fred")]
mod fred_client;
#[cfg(feature = "redis")]
mod redis_client;
mod sharded;

#[cfg(feature = "fred")]
pub(crate) use fred_client::FredConn;
#[cfg(feature = "redis")]
pub(crate) use redis_client::RedisRsConn;
pub(crate) use sharded::ShardedConn;

use async_trait::async_trait;
use ratelimit_limiter::BackendError;

/// The policy script, run atomically per decision.
pub(crate) const POLICY_SCRIPT: &str = include_str!("../script/policy.lua");

/// Runs the policy script.
#[async_trait]
pub(crate) trait ScriptConn: Send + Sync {
    /// Runs the script with these keys (all sharing one hash tag) and arguments; returns its
    /// reply, a byte string.
    async fn run(&self, keys: &[String], args: &[&[u8]]) -> Result<Vec<u8>, BackendError>;
}

/// Wraps a client error.
pub(crate) fn backend_error<E: std::error::Error + Send + Sync + 'static>(
    context: &str,
    e: E,
) -> BackendError {
    BackendError::new(format!("{context}: {e}"), Some(std::sync::Arc::new(e)))
}
