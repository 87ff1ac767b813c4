//! Keyed limiter: per-key isolation, eviction that never hands out a fresh burst, the key cap, and
//! a million keys.

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{Cost, Policy};
use ratelimit_limiter::{AcquireError, Limiter, Request};
use ratelimit_memory::{KeyedConfig, KeyedLimiter};
use tokio::time::Instant;

fn per_key(rpm: u64) -> Policy {
    Policy::builder().requests_per_minute(rpm).build().unwrap()
}

fn req(key: &str) -> Request<'_> {
    Request::new(Cost::ONE_REQUEST).key(key)
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_budget() {
    let l = KeyedLimiter::new(per_key(2), KeyedConfig::default());
    let _a1 = l.try_acquire(req("a")).await.unwrap();
    let _a2 = l.try_acquire(req("a")).await.unwrap();
    assert!(l.try_acquire(req("a")).await.is_err());
    let _b = l.try_acquire(req("b")).await.expect("b is untouched by a");
    assert_eq!(l.status("a").await.unwrap().limits()[0].status.remaining, 0);
    assert_eq!(l.status("b").await.unwrap().limits()[0].status.remaining, 1);
    assert_eq!(
        l.status("never-seen").await.unwrap().limits()[0]
            .status
            .remaining,
        2
    );
    assert_eq!(l.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_key_does_not_hold_up_another() {
    let l = Arc::new(KeyedLimiter::new(per_key(1), KeyedConfig::default()));
    let _a = l.acquire(req("a")).await.unwrap();
    let waiter = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(req("a")).await.map(drop) }
    });
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    let _b = l.acquire(req("b")).await.unwrap();
    assert_eq!(Instant::now(), t0);
    assert_eq!(l.stats().queue_depth, 1);
    waiter.abort();
}

#[tokio::test(start_paused = true)]
async fn keys_are_evicted_only_once_fully_replenished() {
    let l = KeyedLimiter::new(per_key(60), KeyedConfig::default());
    for i in 0..10 {
        drop(l.try_acquire(req(&format!("k{i}"))).await.unwrap());
    }
    assert_eq!(
        l.evict_idle(),
        0,
        "each key used 1 of 60: a second of refill is owed"
    );
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(l.evict_idle(), 0);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(l.evict_idle(), 10);
    assert!(l.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_held_permit_keeps_its_key() {
    let l = KeyedLimiter::new(per_key(60), KeyedConfig::default());
    let permit = l.try_acquire(req("held")).await.unwrap();
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(l.evict_idle(), 0, "a permit is alive");
    drop(permit);
    assert_eq!(l.evict_idle(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_limiter_refuses_new_keys_rather_than_forgetting_usage() {
    let l = KeyedLimiter::new(per_key(60), KeyedConfig { max_keys: 100 });
    for i in 0..100 {
        drop(l.try_acquire(req(&format!("k{i}"))).await.unwrap());
    }
    let err = l.try_acquire(req("newcomer")).await.unwrap_err();
    assert!(
        matches!(err, AcquireError::TooManyKeys { max: 100 }),
        "{err}"
    );
    // Evicting "k0" now would let it burst 60 again; once everyone is replenished there is room.
    tokio::time::advance(Duration::from_secs(1)).await;
    let _ok = l.try_acquire(req("newcomer")).await.unwrap();
    let held = l.len();
    assert!(held <= 100, "idle keys made room: {held}");
    assert_eq!(l.evict_idle(), held - 1, "all but the newcomer are idle");
}

#[tokio::test(start_paused = true)]
async fn a_million_distinct_keys_stay_bounded() {
    let l = KeyedLimiter::new(
        per_key(600),
        KeyedConfig {
            max_keys: 1_000_000,
        },
    );
    let mut key = String::with_capacity(16);
    for i in 0..1_000_000u32 {
        use std::fmt::Write;
        key.clear();
        write!(key, "user-{i}").unwrap();
        drop(l.try_acquire(req(&key)).await.unwrap());
    }
    assert_eq!(l.len(), 1_000_000);
    let err = l.try_acquire(req("one-too-many")).await.unwrap_err();
    assert!(matches!(err, AcquireError::TooManyKeys { .. }));
    tokio::time::advance(Duration::from_millis(100)).await; // 600/min: one request refills in 100 ms
    let _ok = l.try_acquire(req("one-too-many")).await.unwrap();
    assert!(
        l.len() < 1_000_000,
        "a shard of replenished keys was swept to make room"
    );
    l.evict_idle();
    assert_eq!(l.len(), 1, "only the newcomer's permit is alive");
    assert_eq!(l.stats().keys, 1);
}

#[tokio::test(start_paused = true)]
async fn runtime_change_reaches_every_key_and_new_ones() {
    let policy = per_key(10);
    let id = policy.limits().next().unwrap().0;
    let l = KeyedLimiter::new(policy, KeyedConfig::default());
    drop(l.try_acquire(req("old")).await.unwrap());
    l.set_amount(id, 20).await.unwrap();
    assert_eq!(
        l.status("old").await.unwrap().limits()[0].status.remaining,
        19
    );
    assert_eq!(
        l.status("new").await.unwrap().limits()[0].status.remaining,
        20
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_and_a_correction_touch_only_their_key() {
    let l = KeyedLimiter::new(per_key(60), KeyedConfig::default());
    let id = Policy::builder()
        .requests_per_minute(60)
        .build()
        .unwrap()
        .limits()
        .next()
        .unwrap()
        .0;
    l.pause("a", Duration::from_secs(3)).await.unwrap();
    l.correct("b", id, 59).await.unwrap();
    let err = l
        .try_acquire(Request::new(Cost::ONE_REQUEST).key("a"))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    let _b = l
        .try_acquire(Request::new(Cost::ONE_REQUEST).key("b"))
        .await
        .expect("one left of b's 60 after a charge of 59");
    assert!(
        l.try_acquire(Request::new(Cost::ONE_REQUEST).key("b"))
            .await
            .is_err()
    );
    let _c = l
        .try_acquire(Request::new(Cost::ONE_REQUEST).key("c"))
        .await
        .expect("c is untouched");
    assert_eq!(
        l.evict_idle(),
        0,
        "a paused key and a charged key are not idle"
    );
}

#[tokio::test(start_paused = true)]
async fn try_take_decides_per_key_and_shares_the_budget_with_acquire() {
    let l = KeyedLimiter::new(per_key(2), KeyedConfig::default());
    assert!(l.try_take("a", &Cost::ONE_REQUEST).is_ok());
    let _a = l.try_acquire(req("a")).await.unwrap();
    let err = l.try_take("a", &Cost::ONE_REQUEST).unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(30)),
        "2 a minute: the next one in 30 s"
    );
    assert!(
        l.try_take("b", &Cost::ONE_REQUEST).is_ok(),
        "b is untouched"
    );
    assert_eq!(l.len(), 2);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(
        l.try_take("a", &Cost::ONE_REQUEST).is_ok(),
        "exact retry-after"
    );
    let three = Cost {
        requests: 3,
        ..Cost::NONE
    };
    let too_big = l.try_take("c", &three);
    assert!(
        matches!(too_big, Err(AcquireError::TooLarge(_))),
        "{too_big:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn try_take_never_overtakes_a_waiter_of_its_key() {
    let l = Arc::new(KeyedLimiter::new(per_key(1), KeyedConfig::default()));
    let _first = l.acquire(req("a")).await.unwrap();
    let waiter = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(req("a")).await.map(drop) }
    });
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_secs(59)).await;
    let err = l.try_take("a", &Cost::ONE_REQUEST).unwrap_err();
    assert!(
        err.retry_after().unwrap() > Duration::from_secs(1),
        "behind the waiter, whose turn comes in 1 s: {err}"
    );
    waiter.await.unwrap().unwrap();
}

#[test]
fn try_take_refuses_new_keys_when_full_and_counts_every_key() {
    let l = KeyedLimiter::new(per_key(60), KeyedConfig { max_keys: 3 });
    for k in ["a", "b", "c"] {
        l.try_take(k, &Cost::ONE_REQUEST).unwrap();
    }
    assert_eq!(l.len(), 3);
    let err = l.try_take("d", &Cost::ONE_REQUEST).unwrap_err();
    assert!(matches!(err, AcquireError::TooManyKeys { max: 3 }), "{err}");
    assert!(
        l.try_take("a", &Cost::ONE_REQUEST).is_ok(),
        "known keys still decide"
    );
}
