//! The rate algorithms on Redis behave as in memory: GCRA grants its burst at once, the leaky
//! bucket spaces every request by its cost from the first one.

mod common;

use std::time::Duration;

use ratelimit_core::{AlgorithmKind, Cost, Limit, Policy, Resource};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_memory::MemoryLimiter;

fn one() -> Request<'static> {
    Request::new(Cost::ONE_REQUEST)
}

fn policy(kind: AlgorithmKind) -> Policy {
    // 10 per second: 100 ms per request.
    Policy::builder()
        .limit(Limit::new(Resource::Requests, 10, Duration::from_secs(1)).algorithm(kind))
        .build()
        .unwrap()
}

/// How many requests `l` grants at once, and the wait it then gives.
async fn at_once(l: &dyn Limiter) -> (usize, Duration) {
    let mut granted = 0;
    loop {
        match l.try_acquire(one()).await {
            Ok(p) => {
                drop(p);
                granted += 1;
                assert!(granted <= 20, "no limit");
            }
            Err(e) => return (granted, e.retry_after().expect("rate limited")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_and_the_leaky_bucket_grant_as_in_memory() {
    for (kind, burst) in [(AlgorithmKind::Gcra, 10), (AlgorithmKind::LeakyBucket, 1)] {
        let redis = common::limiter("algorithm", policy(kind)).await;
        let memory = MemoryLimiter::new(policy(kind));
        let (on_redis, wait) = at_once(&redis).await;
        let (in_memory, _) = at_once(&memory).await;
        assert_eq!(on_redis, burst, "{kind:?} on Redis");
        assert_eq!(in_memory, burst, "{kind:?} in memory");
        assert!(
            wait > Duration::from_millis(80) && wait <= Duration::from_millis(100),
            "{kind:?}: the next request is due 100 ms after the last, not {wait:?}"
        );
        // Then one request per 100 ms, waiting exactly the wait given.
        for _ in 0..3 {
            if let Err(e) = redis.try_acquire(one()).await.map(drop) {
                tokio::time::sleep(e.retry_after().expect("rate limited")).await;
                drop(redis.try_acquire(one()).await.expect("due after the wait"));
            }
        }
    }
}
