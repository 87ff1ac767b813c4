//! The shared conformance suite, run against real Redis (standalone, and Cluster when available).

mod common;

use std::sync::Arc;

use ratelimit_core::Policy;
use ratelimit_limiter::Limiter;
use ratelimit_redis::{RedisConfig, RedisLimiter, Target};

#[cfg(feature = "fred")]
fn with_fred(mut config: RedisConfig) -> RedisConfig {
    config.client = ratelimit_redis::Client::Fred;
    config
}

async fn standalone(policy: Policy) -> Arc<dyn Limiter> {
    let config = RedisConfig::new(common::unique_name("conformance"));
    Arc::new(
        RedisLimiter::connect(common::redis_url(), policy, config)
            .await
            .expect("connect to redis"),
    )
}

ratelimit_limiter::conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)], standalone);

/// The suite through the `fred` client.
#[cfg(feature = "fred")]
mod fred_client {
    use super::*;

    async fn standalone(policy: Policy) -> Arc<dyn Limiter> {
        let config = RedisConfig::new(common::unique_name("conformance-fred"));
        Arc::new(
            RedisLimiter::connect(common::redis_url(), policy, with_fred(config))
                .await
                .expect("connect to redis"),
        )
    }

    ratelimit_limiter::conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)], standalone);
}

/// The suite against a 3-node Redis Cluster, with both clients.
mod cluster {
    use super::*;

    fn urls() -> Vec<String> {
        common::cluster_urls().expect(
            "RATELIMIT_REDIS_CLUSTER_URLS is not set: run the suite with `cargo xtask test`, which starts a cluster",
        )
    }

    async fn redis_rs(policy: Policy) -> Arc<dyn Limiter> {
        let config = RedisConfig::new(common::unique_name("conformance-cluster"));
        Arc::new(
            RedisLimiter::connect(Target::Cluster(urls()), policy, config)
                .await
                .expect("connect to the cluster"),
        )
    }

    ratelimit_limiter::conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)], redis_rs);

    #[cfg(feature = "fred")]
    mod fred_client {
        use super::*;

        async fn fred(policy: Policy) -> Arc<dyn Limiter> {
            let config = RedisConfig::new(common::unique_name("conformance-cluster-fred"));
            Arc::new(
                RedisLimiter::connect(Target::Cluster(urls()), policy, with_fred(config))
                    .await
                    .expect("connect to the cluster"),
            )
        }

        ratelimit_limiter::conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)], fred);
    }
}
