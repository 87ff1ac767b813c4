//! The window algorithms on Redis: the exact sliding log and the fixed window, with the same
//! semantics as in memory.

mod common;

use std::time::{Duration, Instant};

use ratelimit_core::{AlgorithmKind, Cost, Limit, Policy, Resource};
use ratelimit_limiter::{AcquireError, Limiter, Request};
use ratelimit_redis::{RedisConfig, RedisLimiter};

async fn limiter(test: &str, limit: Limit) -> RedisLimiter {
    common::limiter(test, Policy::builder().limit(limit).build().unwrap()).await
}

fn one() -> Request<'static> {
    Request::new(Cost::ONE_REQUEST)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_log_never_exceeds_the_limit_in_any_window() {
    let window = Duration::from_secs(1);
    let l = limiter(
        "log",
        Limit::new(Resource::Requests, 5, window).algorithm(AlgorithmKind::SlidingWindowLog),
    )
    .await;
    let started = Instant::now();
    let mut grants: Vec<Duration> = Vec::new();
    let mut early = 0;
    while started.elapsed() < Duration::from_millis(2_600) {
        match l.try_acquire(one()).await {
            Ok(p) => {
                grants.push(started.elapsed());
                drop(p);
                // Spread the grants so that windows overlap in many ways.
                tokio::time::sleep(Duration::from_millis(70)).await;
            }
            Err(AcquireError::RateLimited { retry_after }) => {
                tokio::time::sleep(retry_after).await;
                // Waiting exactly the retry-after is enough (Redis time, microseconds).
                if l.try_acquire(one()).await.map(drop).is_err() {
                    early += 1;
                } else {
                    grants.push(started.elapsed());
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(grants.len() >= 10, "{grants:?}");
    assert!(
        early <= 1,
        "waiting the retry-after was not enough {early} times"
    );
    // Grants are timed here, a network hop after Redis decided: allow 5 ms of jitter.
    let w = window - Duration::from_millis(5);
    for (i, g) in grants.iter().enumerate() {
        let inside = grants[i..].iter().take_while(|h| **h < *g + w).count();
        assert!(
            inside <= 5,
            "{inside} grants within {w:?} from {g:?}: {grants:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_log_adjusts_and_cancels_exactly() {
    let l = limiter(
        "log-adjust",
        Limit::new(Resource::Tokens, 1_000, Duration::from_secs(60))
            .algorithm(AlgorithmKind::SlidingWindowLog),
    )
    .await;
    let mut a = l
        .acquire(Request::new(Cost::request(300, 300)))
        .await
        .unwrap();
    let b = l
        .acquire(Request::new(Cost::request(200, 0)))
        .await
        .unwrap();
    assert!(
        l.try_acquire(Request::new(Cost::request(300, 0)))
            .await
            .is_err()
    );
    a.adjust(Cost::request(300, 0)).await.unwrap();
    assert_eq!(
        l.status("").await.unwrap().limits()[0].status.remaining,
        500
    );
    b.cancel().await.unwrap();
    assert_eq!(
        l.status("").await.unwrap().limits()[0].status.remaining,
        700
    );
    a.cancel().await.unwrap();
    assert_eq!(
        l.status("").await.unwrap().limits()[0].status.remaining,
        1_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_counts_per_aligned_window() {
    let l = limiter(
        "fixed",
        Limit::new(Resource::Requests, 3, Duration::from_secs(1))
            .algorithm(AlgorithmKind::FixedWindow),
    )
    .await;
    let mut got = 0;
    while l.try_acquire(one()).await.is_ok() {
        got += 1;
        assert!(got <= 6, "at most two windows' worth in this instant");
    }
    let retry = l
        .try_acquire(one())
        .await
        .unwrap_err()
        .retry_after()
        .unwrap();
    assert!(
        retry <= Duration::from_secs(1),
        "until the next boundary: {retry:?}"
    );
    tokio::time::sleep(retry).await;
    for _ in 0..3 {
        drop(l.try_acquire(one()).await.expect("a new window"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_algorithms_are_granted_all_or_nothing() {
    let policy = Policy::builder()
        .requests_per_minute(100)
        .limit(
            Limit::new(Resource::Tokens, 1_000, Duration::from_secs(60))
                .algorithm(AlgorithmKind::SlidingWindowLog),
        )
        .build()
        .unwrap();
    let l = RedisLimiter::connect(
        common::redis_url(),
        policy,
        RedisConfig::new(common::unique_name("mixed")),
    )
    .await
    .unwrap();
    let _all = l
        .acquire(Request::new(Cost::request(1_000, 0)))
        .await
        .unwrap();
    assert!(
        l.try_acquire(Request::new(Cost::request(10, 0)))
            .await
            .is_err()
    );
    let s = l.status("").await.unwrap();
    assert!(
        s.limits()[0].status.remaining >= 99,
        "no request slot taken by the refusal"
    );
}

/// `correct` on the window algorithms: a charge counts like a grant, a credit takes the newest
/// usage off (never beyond empty), and the limit still holds exactly afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_limits_take_charges_and_credits() {
    for kind in [AlgorithmKind::SlidingWindowLog, AlgorithmKind::FixedWindow] {
        // A day-long window: nothing leaves it during the test.
        let l = limiter(
            "correct",
            Limit::new(Resource::Requests, 10, Duration::from_secs(86_400)).algorithm(kind),
        )
        .await;
        let id = Policy::builder()
            .limit(Limit::new(Resource::Requests, 10, Duration::from_secs(86_400)).algorithm(kind))
            .build()
            .unwrap()
            .limits()
            .next()
            .unwrap()
            .0;
        let remaining = || async { l.status("").await.unwrap().limits()[0].status.remaining };
        for _ in 0..3 {
            drop(l.try_acquire(one()).await.unwrap());
        }
        l.correct("", id, 4).await.unwrap();
        assert_eq!(remaining().await, 3, "{kind:?}: 3 taken, 4 charged");
        l.correct("", id, -5).await.unwrap();
        assert_eq!(remaining().await, 8, "{kind:?}: 5 given back, newest first");
        l.correct("", id, -50).await.unwrap();
        assert_eq!(remaining().await, 10, "{kind:?}: never beyond empty");
        for i in 0..10 {
            drop(
                l.try_acquire(one())
                    .await
                    .unwrap_or_else(|e| panic!("{kind:?}: grant {i}: {e}")),
            );
        }
        assert!(
            l.try_acquire(one()).await.is_err(),
            "{kind:?}: the limit holds exactly after credits"
        );
    }
}
