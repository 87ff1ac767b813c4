//! The shared conformance suite, run against the in-memory backend on tokio's paused clock.

use std::sync::Arc;

use ratelimit_core::Policy;
use ratelimit_limiter::Limiter;
use ratelimit_memory::MemoryLimiter;

async fn make(policy: Policy) -> Arc<dyn Limiter> {
    Arc::new(MemoryLimiter::new(policy))
}

ratelimit_limiter::conformance_tests!(#[tokio::test(start_paused = true)], make);

/// The same suite against the keyed limiter (every check uses one key).
mod keyed {
    use std::sync::Arc;

    use ratelimit_core::Policy;
    use ratelimit_limiter::Limiter;
    use ratelimit_memory::{KeyedConfig, KeyedLimiter};

    async fn make(policy: Policy) -> Arc<dyn Limiter> {
        Arc::new(KeyedLimiter::new(policy, KeyedConfig::default()))
    }

    ratelimit_limiter::conformance_tests!(#[tokio::test(start_paused = true)], make);
}
