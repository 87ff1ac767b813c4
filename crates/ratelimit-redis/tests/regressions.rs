//! Regression tests for the defects of the Python LLMRateLimiter (see the seeds' README), each
//! one checked against real Redis.

mod common;

use std::time::Duration;

use ratelimit_core::{Cost, Limit, Policy, Resource};
use ratelimit_limiter::{AcquireError, Limiter, Request};
use ratelimit_redis::{RedisConfig, RedisLimiter};

/// Its Lua returned the wait as an integer number of seconds: sub-second waits became 0 and
/// callers fired early. Ours is exact to the microsecond.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_second_waits_are_not_truncated_to_zero() {
    let policy = Policy::builder()
        .limit(Limit::new(Resource::Requests, 10, Duration::from_secs(1)).burst(1))
        .build()
        .unwrap();
    let l = common::limiter("subsecond", policy).await;
    let _first = l
        .try_acquire(Request::new(Cost::ONE_REQUEST))
        .await
        .unwrap();
    let wait = l
        .try_acquire(Request::new(Cost::ONE_REQUEST))
        .await
        .unwrap_err()
        .retry_after()
        .unwrap();
    assert!(
        wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
        "a 100 ms spacing must say about 100 ms, got {wait:?}"
    );
    // Waiting exactly that long is enough.
    tokio::time::sleep(wait).await;
    let _second = l
        .try_acquire(Request::new(Cost::ONE_REQUEST))
        .await
        .expect("due now");
}

/// It admitted a request larger than the limit, over the limit. Ours refuses it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_the_limit_is_refused_not_admitted() {
    let l = common::limiter(
        "oversized",
        Policy::builder().tokens_per_minute(1_000).build().unwrap(),
    )
    .await;
    let err = l
        .acquire(Request::new(Cost::request(1_200, 300)))
        .await
        .unwrap_err();
    assert!(matches!(err, AcquireError::TooLarge(_)), "{err}");
    assert!(err.is_permanent());
    assert_eq!(
        l.status("").await.unwrap().limits()[0].status.remaining,
        1_000
    );
}

/// Its `adjust()` corrected the output tokens but not the combined TPM. Ours corrects every
/// dimension, combined (burndown-weighted) tokens included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adjust_corrects_the_combined_tpm() {
    let policy = Policy::builder()
        .tokens_per_minute(100_000)
        .output_tokens_per_minute(20_000)
        .burndown_rate(5.0)
        .build()
        .unwrap();
    let l = common::limiter("combined", policy).await;
    let mut permit = l
        .acquire(Request::new(Cost::request(3_000, 4_000)))
        .await
        .unwrap();
    let before = l.status("").await.unwrap();
    let reserved = before.limits()[0].status.remaining;
    assert!(
        (77_000..=77_100).contains(&reserved),
        "3,000 + 5 x 4,000 reserved: {reserved}"
    );
    permit.adjust(Cost::request(3_000, 1_000)).await.unwrap();
    let after = l.status("").await.unwrap();
    let combined = after.limits()[0].status.remaining;
    let output = after.limits()[1].status.remaining;
    assert!(
        (92_000..=92_100).contains(&combined),
        "combined should hold 3,000 + 5 x 1,000: {combined}"
    );
    assert!(
        (19_000..=19_050).contains(&output),
        "output should hold 1,000: {output}"
    );
}

/// It used each client's own clock, so skewed hosts disagreed. Ours reads Redis TIME: the
/// status's reset times are consistent across two independent clients of one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sees_redis_time() {
    let name = common::unique_name("clock");
    let policy = || Policy::builder().requests_per_minute(60).build().unwrap();
    let a = RedisLimiter::connect(
        common::redis_url(),
        policy(),
        RedisConfig::new(name.clone()),
    )
    .await
    .unwrap();
    let b = RedisLimiter::connect(common::redis_url(), policy(), RedisConfig::new(name))
        .await
        .unwrap();
    for _ in 0..30 {
        drop(
            a.try_acquire(Request::new(Cost::ONE_REQUEST))
                .await
                .unwrap(),
        );
    }
    let ra = a.status("").await.unwrap().limits()[0].status.reset_after;
    let rb = b.status("").await.unwrap().limits()[0].status.reset_after;
    // 30 used of 60 per minute: full again in 30 s, by the same clock for both.
    for r in [ra, rb] {
        assert!((29_000_000_000..=30_000_000_000).contains(&r), "{r}");
    }
    assert!(ra.abs_diff(rb) < 100_000_000, "{ra} vs {rb}");
}
