//! The connection behind a limiter: runs the policy function on one of the two Rust clients.
//!
//! The policy is a Redis Functions library (Redis 7.0 or later), loaded with `FUNCTION LOAD
//! REPLACE` (on every master of a Cluster: functions are not propagated across shards) and called
//! with `FCALL`. When a server does not have it (a restart without persistence, `FUNCTION FLUSH`,
//! a node added to a Cluster), the call fails with "Function not found": both clients then load
//! the library and call once more. Arguments are byte strings, copied once into the client's
//! request.

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

use std::sync::LazyLock;

use async_trait::async_trait;
use ratelimit_limiter::BackendError;

/// The body of the policy library: its helpers and the function `policy`.
const POLICY_BODY: &str = include_str!("../script/policy.lua");

/// The policy library, as loaded into Redis.
pub(crate) struct Library {
    /// The name of the library and of its one function: `llmrl_` and the first 16 hex digits of
    /// the body's SHA1, so that processes running different versions share a server without
    /// replacing each other's library (as scripts called by SHA would).
    pub(crate) name: String,
    /// The code for `FUNCTION LOAD`: the `#!lua` line, the body, the registration.
    pub(crate) code: String,
}

/// The policy library, built once per process.
pub(crate) static POLICY: LazyLock<Library> = LazyLock::new(|| {
    let name = format!("llmrl_{}", &sha1_hex(POLICY_BODY)[..16]);
    let code =
        format!("#!lua name={name}\n{POLICY_BODY}\nredis.register_function('{name}', policy)\n");
    Library { name, code }
});

/// The SHA1 of `text`, in hex, from whichever client is compiled in (the two agree).
fn sha1_hex(text: &str) -> String {
    #[cfg(feature = "redis")]
    return redis::Script::new(text).get_hash().to_owned();
    #[cfg(not(feature = "redis"))]
    return fred::util::sha1_hash(text);
}

/// Whether a server's error message says the function is not loaded there.
pub(crate) fn is_not_loaded(message: &str) -> bool {
    message.contains("Function not found")
}

/// Whether a server's error message says it has no Redis Functions (older than 7.0).
pub(crate) fn is_unsupported(message: &str) -> bool {
    message.contains("unknown command")
}

/// What an error from a server without Redis Functions means.
pub(crate) const NEEDS_REDIS_7: &str =
    "the llm-ratelimit policy is a Redis function: Redis 7.0 or later is needed";

/// Runs the policy function.
#[async_trait]
pub(crate) trait ScriptConn: Send + Sync {
    /// Calls the policy with these keys (all sharing one hash tag) and arguments; returns its
    /// reply, a byte string. Loads the library first if the server does not have it.
    async fn run(&self, keys: &[String], args: &[&[u8]]) -> Result<Vec<u8>, BackendError>;

    /// Loads the policy library (`FUNCTION LOAD REPLACE`) on every server (every master of a
    /// Cluster).
    async fn load(&self) -> Result<(), BackendError>;
}

/// Wraps a client error.
pub(crate) fn backend_error<E: std::error::Error + Send + Sync + 'static>(
    context: &str,
    e: E,
) -> BackendError {
    BackendError::new(format!("{context}: {e}"), Some(std::sync::Arc::new(e)))
}
