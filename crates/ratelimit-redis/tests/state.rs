//! The state a budget keeps in Redis: when its keys expire (and that the expiry moves only when it
//! must), the sliding logs' expiry, reading a state written by an earlier version of the script,
//! and refusing a state it does not know instead of misreading it.

mod common;

use std::time::Duration;

use ratelimit_core::{AlgorithmKind, Cost, Limit, Policy, Resource};
use ratelimit_limiter::{AcquireError, Limiter, Request};
use ratelimit_redis::{RedisConfig, RedisLimiter};
use redis::AsyncCommands;

fn one() -> Request<'static> {
    Request::new(Cost::ONE_REQUEST)
}

async fn admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(common::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A limiter on the standalone server under `name`.
async fn named(name: &str, policy: Policy) -> RedisLimiter {
    RedisLimiter::connect(common::redis_url(), policy, RedisConfig::new(name))
        .await
        .unwrap()
}

async fn pttl(c: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    c.pttl(key).await.unwrap()
}

/// Redis's clock, in microseconds.
async fn redis_now_us(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(c).await.unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_expires_30_to_60_s_after_it_is_replenished() {
    let name = common::unique_name("expiry");
    // 2 per hour: each grant is owed for 30 minutes.
    let policy = Policy::builder()
        .limit(Limit::new(
            Resource::Requests,
            2,
            Duration::from_secs(3_600),
        ))
        .build()
        .unwrap();
    let l = named(&name, policy).await;
    let key = format!("{{llmrl:{name}:}}:state");
    let mut c = admin().await;
    drop(l.try_acquire(one()).await.unwrap());
    // (Bounds in ms, with 1 ms of rounding to the millisecond.)
    let half_hour = 1_800_000;
    let ttl = pttl(&mut c, &key).await;
    assert!(
        (half_hour + 30_000..=half_hour + 61_000).contains(&ttl),
        "replenished in 30 min: {ttl} ms"
    );
    // A second grant pushes the replenishment to an hour: the expiry must move with it.
    drop(l.try_acquire(one()).await.unwrap());
    let ttl = pttl(&mut c, &key).await;
    assert!(
        (2 * half_hour + 30_000..=2 * half_hour + 61_000).contains(&ttl),
        "replenished in 60 min: {ttl} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_is_not_rewritten_while_it_is_far_enough() {
    let name = common::unique_name("keepttl");
    let l = named(
        &name,
        Policy::builder()
            .requests_per_minute(1_000_000)
            .build()
            .unwrap(),
    )
    .await;
    let key = format!("{{llmrl:{name}:}}:state");
    let mut c = admin().await;
    drop(l.try_acquire(one()).await.unwrap());
    let first = pttl(&mut c, &key).await;
    assert!((30_000..=61_000).contains(&first), "{first} ms");
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(l.try_acquire(one()).await.unwrap());
    let second = pttl(&mut c, &key).await;
    // Still more than 30 s past the replenishment: the expiry stayed where it was.
    assert!(
        second > 0 && second <= first - 40,
        "moved from {first} to {second} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_log_keys_expire_also_after_the_log_emptied() {
    let name = common::unique_name("log-expiry");
    let policy = Policy::builder()
        .limit(
            Limit::new(Resource::Requests, 5, Duration::from_millis(200))
                .algorithm(AlgorithmKind::SlidingWindowLog),
        )
        .build()
        .unwrap();
    let l = named(&name, policy).await;
    let mut c = admin().await;
    let keys = [
        format!("{{llmrl:{name}:}}:t1"),
        format!("{{llmrl:{name}:}}:c1"),
    ];
    drop(l.try_acquire(one()).await.unwrap());
    for k in &keys {
        let ttl = pttl(&mut c, k).await;
        assert!((30_000..=61_000).contains(&ttl), "{k}: {ttl} ms");
    }
    // Every entry leaves the window: the next grant empties the log (Redis deletes an empty
    // sorted set) and starts it again, which must not leave it without an expiry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(l.try_acquire(one()).await.unwrap());
    for k in &keys {
        let ttl = pttl(&mut c, k).await;
        assert!(
            (30_000..=61_000).contains(&ttl),
            "{k} after emptying: {ttl} ms"
        );
    }
}

/// 60 per minute: 1,000,000 scaled units (1 s) per request, capacity 60,000,000.
fn per_minute_60() -> Policy {
    Policy::builder().requests_per_minute(60).build().unwrap()
}

/// Writes a one-limit state in the earlier script's hash format at `key`: a backlog of 30 s of
/// scaled units as of the server's now, `granted` units recorded, kept under `quota`.
async fn write_legacy_state(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
    seq: u64,
    granted: u64,
    quota: &str,
) {
    let now = redis_now_us(c).await;
    let _: () = c
        .hset_multiple(
            key,
            &[
                ("h", "0".to_owned()),
                ("p", "0".to_owned()),
                ("seq", seq.to_string()),
                ("b1", "30000000".to_owned()),
                ("l1", now.to_string()),
                ("g1", granted.to_string()),
                ("q1", quota.to_owned()),
            ],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_written_by_the_earlier_hash_format_is_read_and_replaced() {
    let name = common::unique_name("legacy");
    let key = format!("{{llmrl:{name}:}}:state");
    let mut c = admin().await;
    // The earlier script's hash: 30 requests owed as of now, under this very quota.
    write_legacy_state(&mut c, &key, 5, 30, "1:1:1000000:60000000").await;
    let l = named(&name, per_minute_60()).await;
    assert_eq!(l.status("").await.unwrap().limits()[0].status.remaining, 30);
    drop(l.try_acquire(one()).await.unwrap());
    assert_eq!(l.status("").await.unwrap().limits()[0].status.remaining, 29);
    let kind: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(kind, "string", "the first write replaces the hash");
    assert!(pttl(&mut c, &key).await > 0, "with an expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_state_under_another_quota_keeps_the_units_owed() {
    let name = common::unique_name("legacy-quota");
    let key = format!("{{llmrl:{name}:}}:state");
    let mut c = admin().await;
    // Kept under 30 per minute (2 s per request): 15 requests owed.
    write_legacy_state(&mut c, &key, 15, 15, "1:1:2000000:60000000").await;
    let l = named(&name, per_minute_60()).await;
    // The 15 requests still owed count against the new quota of 60.
    drop(l.try_acquire(one()).await.unwrap());
    let remaining = l.status("").await.unwrap().limits()[0].status.remaining;
    assert_eq!(remaining, 44, "60 - 15 owed - 1 granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_it_does_not_know_is_refused_not_misread() {
    let name = common::unique_name("garbage");
    let key = format!("{{llmrl:{name}:}}:state");
    let mut c = admin().await;
    let _: () = c.set(&key, "not a state of ours").await.unwrap();
    let mut config = RedisConfig::new(name);
    config.attempts = 1;
    let l = RedisLimiter::connect(common::redis_url(), per_minute_60(), config)
        .await
        .unwrap();
    match l.try_acquire(one()).await {
        Err(AcquireError::Backend(e)) => {
            assert!(e.to_string().contains("unknown state format"), "{e}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    let kept: String = c.get(&key).await.unwrap();
    assert_eq!(kept, "not a state of ours", "left as it was");
}
