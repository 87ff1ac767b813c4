//! The adaptive layer over Redis: what one process learns from the provider (a 429, the real
//! limit, others' usage) reaches every process sharing the budget.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use ratelimit_adaptive::{AdaptiveConfig, AdaptiveLimiter};
use ratelimit_core::{Cost, Policy, Resource};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_redis::{RedisConfig, RedisLimiter};

async fn adaptive(name: &str, policy: &Policy) -> AdaptiveLimiter {
    let inner = RedisLimiter::connect(
        common::redis_url(),
        policy.clone(),
        RedisConfig::new(name.to_owned()),
    )
    .await
    .expect("connect to redis");
    AdaptiveLimiter::new(Arc::new(inner), policy, AdaptiveConfig::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_seen_by_one_process_pauses_the_other() {
    let name = common::unique_name("adaptive-pause");
    let policy = Policy::builder()
        .requests_per_minute(6_000)
        .build()
        .unwrap();
    let (a, b) = (
        adaptive(&name, &policy).await,
        adaptive(&name, &policy).await,
    );
    let permit = a.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap();
    let mut h = HeaderMap::new();
    h.insert("retry-after-ms", "800".parse().unwrap());
    let started = Instant::now();
    a.observe("", Some(&permit), 429, &h, None).await.unwrap();
    let err = b
        .try_acquire(Request::new(Cost::ONE_REQUEST))
        .await
        .unwrap_err();
    let wait = err.retry_after().expect("paused");
    assert!(
        wait > Duration::from_millis(600) && wait <= Duration::from_millis(800),
        "{wait:?}"
    );
    drop(b.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap());
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_seen_by_one_process_correct_the_shared_books() {
    let name = common::unique_name("adaptive-sync");
    let day = Duration::from_secs(86_400);
    let policy = Policy::builder()
        .limit(ratelimit_core::Limit::new(Resource::Tokens, 10_000, day))
        .build()
        .unwrap();
    let (a, b) = (
        adaptive(&name, &policy).await,
        adaptive(&name, &policy).await,
    );
    let permit = a
        .acquire(Request::new(Cost::request(1_000, 0)))
        .await
        .unwrap();
    // The provider: 10k a day, of which 6k are gone (5k by someone we never saw).
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-limit-tokens", "10000".parse().unwrap());
    h.insert("x-ratelimit-remaining-tokens", "4000".parse().unwrap());
    a.observe("", Some(&permit), 200, &h, None).await.unwrap();
    let left = b.status("").await.unwrap().limits()[0].status.remaining;
    assert_eq!(left, 4_000, "the other process sees the corrected books");
}
