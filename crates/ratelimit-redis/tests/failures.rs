//! Failures: Redis going away and coming back, each failure policy.

mod common;

use std::time::Duration;

use common::PrivateServer;
use ratelimit_core::{Cost, Policy};
use ratelimit_limiter::{AcquireError, Limiter, Request};
use ratelimit_redis::{Client, FailurePolicy, RedisConfig, RedisLimiter};

fn config(test: &str, on_failure: FailurePolicy) -> RedisConfig {
    let mut c = RedisConfig::new(common::unique_name(test));
    c.call_timeout = Duration::from_millis(200);
    c.attempts = 2;
    c.backoff = Duration::from_millis(10);
    c.probe_interval = Duration::from_millis(100);
    c.on_failure = on_failure;
    c
}

fn one() -> Request<'static> {
    Request::new(Cost::ONE_REQUEST)
}

fn rpm(n: u64) -> Policy {
    Policy::builder().requests_per_minute(n).build().unwrap()
}

/// A limiter on `server` with a failure policy (tight timeouts, so failing is quick).
async fn on(
    server: &PrivateServer,
    policy: Policy,
    test: &str,
    on_failure: FailurePolicy,
) -> RedisLimiter {
    RedisLimiter::connect(server.url(), policy, config(test, on_failure))
        .await
        .unwrap()
}

/// Retries `acquire` until Redis answers again (it reconnects by itself).
async fn until_back(l: &RedisLimiter) -> ratelimit_limiter::Permit {
    for _ in 0..100 {
        if let Ok(p) = l.try_acquire(one()).await {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the limiter did not recover when Redis came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_redis_is_down_and_recovers_by_itself() {
    let mut server = PrivateServer::start();
    let l = on(&server, rpm(100), "closed", FailurePolicy::FailClosed).await;
    drop(l.acquire(one()).await.unwrap());
    server.stop();
    let started = std::time::Instant::now();
    let err = l.acquire(one()).await.unwrap_err();
    assert!(matches!(err, AcquireError::Backend(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failing took {:?}",
        started.elapsed()
    );
    // While down, refusals are immediate (no retry storm until the next probe).
    let t = std::time::Instant::now();
    assert!(l.try_acquire(one()).await.is_err());
    assert!(t.elapsed() < Duration::from_millis(100));
    server.restart();
    drop(until_back(&l).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_grants_while_redis_is_down() {
    let mut server = PrivateServer::start();
    let l = on(&server, rpm(1), "open", FailurePolicy::FailOpen).await;
    drop(l.try_acquire(one()).await.unwrap());
    assert!(
        l.try_acquire(one()).await.is_err(),
        "the limit holds while Redis is up"
    );
    server.stop();
    for _ in 0..5 {
        drop(l.try_acquire(one()).await.expect("fail-open grants"));
    }
    server.restart();
    drop(until_back(&l).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fallback_enforces_its_share_while_redis_is_down() {
    let mut server = PrivateServer::start();
    let policy = rpm(10);
    let l = on(
        &server,
        policy,
        "fallback",
        FailurePolicy::LocalFallback { share: 0.5 },
    )
    .await;
    server.stop();
    for i in 0..5 {
        drop(
            l.try_acquire(one())
                .await
                .unwrap_or_else(|e| panic!("local grant {i}: {e}")),
        );
    }
    let err = l.try_acquire(one()).await.unwrap_err();
    assert!(
        matches!(err, AcquireError::RateLimited { .. }),
        "half of 10 per minute: {err}"
    );
    server.restart();
    drop(until_back(&l).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_fallback_share_is_refused() {
    let err = RedisLimiter::connect(
        common::redis_url(),
        rpm(10),
        config("share", FailurePolicy::LocalFallback { share: 1.5 }),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("on_failure.share"), "{err}");
}

/// Every client this build has.
fn clients() -> Vec<Client> {
    vec![
        Client::Redis,
        #[cfg(feature = "fred")]
        Client::Fred,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_fails_closed_and_recovers() {
    for client in clients() {
        let mut server = PrivateServer::start();
        let mut c = config("down", FailurePolicy::FailClosed);
        c.client = client;
        let l = RedisLimiter::connect(server.url(), rpm(100), c)
            .await
            .unwrap();
        drop(l.acquire(one()).await.unwrap());
        server.stop();
        assert!(
            matches!(l.acquire(one()).await, Err(AcquireError::Backend(_))),
            "{client:?}"
        );
        server.restart();
        drop(until_back(&l).await);
    }
}
