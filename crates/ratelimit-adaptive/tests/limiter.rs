//! The adaptive limiter over the in-memory backend, on tokio's paused clock: a 429 pauses every
//! user of the budget, headers correct limits and usage through the `Limiter` trait.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use ratelimit_adaptive::{Action, AdaptiveConfig, AdaptiveLimiter};
use ratelimit_core::{Cost, Policy, Resource};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_memory::MemoryLimiter;
use tokio::time::Instant;

fn adaptive(rpm: u64, tpm: u64) -> (Arc<AdaptiveLimiter>, Policy) {
    let policy = Policy::builder()
        .requests_per_minute(rpm)
        .tokens_per_minute(tpm)
        .build()
        .unwrap();
    let inner = Arc::new(MemoryLimiter::new(policy.clone()));
    let limiter = AdaptiveLimiter::new(inner, &policy, AdaptiveConfig::default()).unwrap();
    (Arc::new(limiter), policy)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_every_user_of_the_budget_for_the_retry_after() {
    let (limiter, _) = adaptive(6_000, 1_000_000);
    let t0 = Instant::now();
    let permit = limiter
        .acquire(Request::new(Cost::request(10, 10)))
        .await
        .unwrap();
    let seen = limiter
        .observe(
            "",
            Some(&permit),
            429,
            &headers(&[("retry-after-ms", "3000")]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(seen.retry.after, Some(Duration::from_secs(3)));
    assert!(
        seen.actions
            .contains(&Action::Pause(Duration::from_secs(3)))
    );
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            let _p = limiter
                .acquire(Request::new(Cost::request(10, 10)))
                .await
                .unwrap();
            t0.elapsed()
        }));
    }
    for t in tasks {
        let waited = t.await.unwrap();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_millis(3_100),
            "granted after {waited:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_wait_is_honoured_when_headers_give_none() {
    let (limiter, _) = adaptive(6_000, 1_000_000);
    let body = br#"{"error":{"message":"Rate limit reached for gpt-4.1 on tokens per min (TPM). Please try again in 1.306s.","type":"tokens","code":"rate_limit_exceeded"}}"#;
    let seen = limiter
        .observe("", None, 429, &HeaderMap::new(), Some(body))
        .await
        .unwrap();
    assert_eq!(seen.retry.after, Some(Duration::from_millis(1_306)));
    let err = limiter
        .try_acquire(Request::new(Cost::ONE_REQUEST))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1_306)));
}

#[tokio::test(start_paused = true)]
async fn headers_set_the_limit_and_charge_what_others_used() {
    let (limiter, policy) = adaptive(60, 10_000);
    let tokens = policy.find(Resource::Tokens, 60_000_000_000).unwrap();
    let permit = limiter
        .acquire(Request::new(Cost::request(600, 400)))
        .await
        .unwrap();
    // The account's real limit is 100k; someone else already used 30k of it.
    let seen = limiter
        .observe(
            "",
            Some(&permit),
            200,
            &headers(&[
                ("x-ratelimit-limit-requests", "1000"),
                ("x-ratelimit-remaining-requests", "999"),
                ("x-ratelimit-limit-tokens", "100000"),
                ("x-ratelimit-remaining-tokens", "69000"),
            ]),
            None,
        )
        .await
        .unwrap();
    let requests = policy.find(Resource::Requests, 60_000_000_000).unwrap();
    assert_eq!(
        seen.actions,
        [
            Action::SetAmount {
                id: requests,
                amount: 1_000
            },
            Action::SetAmount {
                id: tokens,
                amount: 100_000
            },
            Action::Correct {
                id: tokens,
                delta: 30_000
            }
        ]
    );
    let status = limiter.status("").await.unwrap();
    let t = status.limits()[tokens.index()].status;
    assert_eq!((t.limit, t.remaining), (100_000, 69_000));
    // The books now agree with the provider: 69 requests of 1k fit, the 70th does not.
    for i in 0..69 {
        drop(
            limiter
                .try_acquire(Request::new(Cost::request(600, 400)))
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}")),
        );
    }
    assert!(
        limiter
            .try_acquire(Request::new(Cost::request(600, 400)))
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_without_a_recorded_grant_never_corrects_usage() {
    let (limiter, _) = adaptive(60, 10_000);
    let seen = limiter
        .observe(
            "",
            None,
            200,
            &headers(&[("x-ratelimit-remaining-tokens", "0")]),
            None,
        )
        .await
        .unwrap();
    assert!(seen.actions.is_empty(), "{:?}", seen.actions);
}
