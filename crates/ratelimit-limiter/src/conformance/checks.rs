//! The checks themselves; see the module above for how they are run.

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{AlgorithmKind, Cost, Limit, Policy, Resource};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Factory, SLACK};
use crate::{AcquireError, Request};

fn one() -> Request<'static> {
    Request::new(Cost::ONE_REQUEST)
}

fn tokens(n: u64) -> Request<'static> {
    Request::new(Cost::request(n, 0))
}

/// `amount` requests per `per`, burst 1: evenly spaced grants.
fn spaced(amount: u64, per: Duration) -> Policy {
    Policy::builder()
        .limit(Limit::new(Resource::Requests, amount, per).burst(1))
        .build()
        .expect("valid policy")
}

fn assert_between(what: &str, got: Duration, low: Duration, high: Duration) {
    assert!(
        got >= low && got <= high,
        "{what}: {got:?} is not within [{low:?}, {high:?}]"
    );
}

/// A fresh limiter grants exactly its burst at once, then refuses with the exact wait.
pub async fn grants_up_to_the_burst_then_says_exactly_when<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .requests_per_minute(10)
                .build()
                .expect("valid"),
        )
        .await;
    let mut permits = Vec::new();
    for i in 0..10 {
        permits.push(
            limiter
                .try_acquire(one())
                .await
                .unwrap_or_else(|e| panic!("grant {i} of a burst of 10: {e}")),
        );
    }
    let err = limiter
        .try_acquire(one())
        .await
        .expect_err("the 11th must wait");
    let retry = err.retry_after().expect("rate limited, with a wait");
    // One request every 6 s; a real backend's clock has moved on a little since the burst.
    assert_between(
        "retry-after",
        retry,
        Duration::from_secs(6) - SLACK,
        Duration::from_secs(6),
    );
}

/// A request no limit could ever admit is refused at once, not queued, and takes nothing.
pub async fn refuses_a_request_too_large_at_once<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .tokens_per_minute(1_000)
                .concurrency(4)
                .build()
                .expect("valid"),
        )
        .await;
    let started = Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(5), limiter.acquire(tokens(1_001)))
        .await
        .expect("must not hang");
    assert!(matches!(got, Err(AcquireError::TooLarge(_))), "{got:?}");
    assert!(started.elapsed() < SLACK);
    let too_many_slots = Request::new(Cost {
        requests: 5,
        ..Cost::NONE
    });
    assert!(matches!(
        limiter.acquire(too_many_slots).await,
        Err(AcquireError::TooLarge(_))
    ));
    let status = limiter.status("").await.expect("status");
    assert_eq!(status.limits()[0].status.remaining, 1_000);
}

/// Requests and tokens are granted together or not at all.
pub async fn grants_all_dimensions_or_none<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .requests_per_minute(100)
                .tokens_per_minute(1_000)
                .build()
                .expect("valid"),
        )
        .await;
    let _all_tokens = limiter.try_acquire(tokens(1_000)).await.expect("fits");
    assert!(limiter.try_acquire(tokens(500)).await.is_err());
    let status = limiter.status("").await.expect("status");
    assert_eq!(
        status.limits()[0].status.remaining,
        99,
        "the refused request must not have taken a request slot"
    );
}

/// `acquire` sleeps until its turn, no longer.
pub async fn waits_exactly_for_its_turn<F: Factory>(factory: &F) {
    let limiter = factory.make(spaced(10, Duration::from_secs(1))).await;
    let started = Instant::now();
    for _ in 0..4 {
        let _p = limiter.acquire(one()).await.expect("granted");
    }
    // Grants at 0, 100, 200 and 300 ms.
    assert_between(
        "four spaced grants",
        started.elapsed(),
        Duration::from_millis(300) - Duration::from_millis(1),
        Duration::from_millis(300) + SLACK,
    );
}

/// Waiters are served in arrival order.
pub async fn serves_waiters_first_come_first_served<F: Factory>(factory: &F) {
    let limiter = factory.make(spaced(20, Duration::from_secs(1))).await;
    let _first = limiter.acquire(one()).await.expect("granted");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (limiter, order) = (Arc::clone(&limiter), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let _p = limiter.acquire(one()).await.expect("granted");
            order.lock().await.push(i);
        }));
        // Let task i enqueue before task i + 1 starts.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(*order.lock().await, (0..8).collect::<Vec<_>>());
}

/// One task looping on a large request against four looping on small ones: with first come, first
/// served, each gets its turn in rotation (governor's `until_n_ready` gives the large one nothing;
/// leaky-bucket's fair mode lets one task take nearly everything).
pub async fn does_not_starve_a_large_request<F: Factory>(factory: &F) {
    let policy = Policy::builder()
        .limit(Limit::new(Resource::Requests, 100, Duration::from_secs(1)))
        .build()
        .expect("valid");
    let limiter = factory.make(policy).await;
    let stop = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for (i, n) in [50u64, 1, 1, 1, 1].into_iter().enumerate() {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            let mut grants = 0u64;
            while Instant::now() < stop {
                let cost = Cost {
                    requests: n,
                    ..Cost::NONE
                };
                let _p = limiter.acquire(Request::new(cost)).await.expect("granted");
                grants += 1;
            }
            (i, grants)
        }));
        tokio::task::yield_now().await;
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.expect("task").1);
    }
    let large = counts[0];
    // 100 units at once, then 100/s: about (100 + 400) / 54 rounds of 50 + 4 x 1.
    assert!(large >= 5, "the large request was starved: {counts:?}");
    let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
    // In rotation every task gets the same number of turns; over a network, a task whose
    // request reaches the server a little late at the start or the end can lose one or two.
    // (Starving peers differ by hundreds; the in-memory backend's own test asserts at most one.)
    assert!(
        max.unwrap_or(0) - min.unwrap_or(0) <= 3,
        "turns were not shared in rotation: {counts:?}"
    );
}

/// A waiter dropped while waiting gives its place back: the next one is served at its time, not
/// after the dropped one's.
pub async fn a_dropped_waiter_gives_back_its_place<F: Factory>(factory: &F) {
    let limiter = factory.make(spaced(1, Duration::from_secs(1))).await;
    let _first = limiter.acquire(one()).await.expect("granted");
    let dropped = tokio::time::timeout(Duration::from_millis(100), limiter.acquire(one())).await;
    assert!(dropped.is_err(), "the waiter was dropped by the timeout");
    let started = Instant::now();
    let _second = limiter.acquire(one()).await.expect("granted");
    // Due at 1 s after the first grant; 100 ms have passed.
    assert!(
        started.elapsed() <= Duration::from_millis(900) + SLACK,
        "waited {:?}: the dropped waiter kept its reservation",
        started.elapsed()
    );
}

/// With a timeout shorter than the known wait, `acquire_timeout` fails at once with that wait.
pub async fn a_timeout_fails_at_once_when_the_turn_is_too_far<F: Factory>(factory: &F) {
    let limiter = factory.make(spaced(1, Duration::from_secs(60))).await;
    let _first = limiter.acquire(one()).await.expect("granted");
    let started = Instant::now();
    let err = limiter
        .acquire_timeout(one(), Duration::from_secs(1))
        .await
        .expect_err("a minute away");
    assert!(
        started.elapsed() < SLACK,
        "it waited {:?} for nothing",
        started.elapsed()
    );
    let retry = err.retry_after().expect("rate limited");
    assert_between(
        "retry-after",
        retry,
        Duration::from_secs(60) - SLACK,
        Duration::from_secs(60),
    );
    // And within the timeout, it waits and succeeds.
    let limiter = factory.make(spaced(10, Duration::from_secs(1))).await;
    let _a = limiter.acquire(one()).await.expect("granted");
    let _b = limiter
        .acquire_timeout(one(), Duration::from_secs(1))
        .await
        .expect("due in 100 ms");
}

/// A concurrency slot is held from the grant until the permit is dropped.
pub async fn holds_concurrency_until_the_permit_is_dropped<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .requests_per_minute(1_000)
                .concurrency(2)
                .build()
                .expect("valid"),
        )
        .await;
    let a = limiter.acquire(one()).await.expect("slot 1");
    let _b = limiter.acquire(one()).await.expect("slot 2");
    assert!(matches!(
        limiter.try_acquire(one()).await,
        Err(AcquireError::ConcurrencyFull)
    ));
    let waiter = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { limiter.acquire(one()).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "no slot is free yet");
    drop(a);
    tokio::time::timeout(SLACK, waiter)
        .await
        .expect("released slot must wake the waiter")
        .expect("task")
        .expect("granted");
}

/// A shorter answer than estimated gives the unused tokens back.
pub async fn adjust_refunds_unused_tokens<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .tokens_per_minute(1_000)
                .build()
                .expect("valid"),
        )
        .await;
    let mut permit = limiter
        .acquire(Request::new(Cost::request(200, 800)))
        .await
        .expect("fits");
    assert!(limiter.try_acquire(tokens(500)).await.is_err());
    permit
        .adjust(Cost::request(200, 100))
        .await
        .expect("adjusted");
    assert_eq!(permit.cost(), Cost::request(200, 100));
    let _more = limiter
        .try_acquire(tokens(700))
        .await
        .expect("700 came back");
}

/// Adjusting corrects input, output and combined (burndown-weighted) token limits alike.
pub async fn adjust_corrects_every_dimension_including_combined_tokens<F: Factory>(factory: &F) {
    let policy = Policy::builder()
        .tokens_per_minute(10_000)
        .input_tokens_per_minute(8_000)
        .output_tokens_per_minute(4_000)
        .burndown_rate(2.0)
        .build()
        .expect("valid");
    let limiter = factory.make(policy).await;
    let mut permit = limiter
        .acquire(Request::new(Cost::request(1_000, 2_000)))
        .await
        .expect("fits");
    permit
        .adjust(Cost::request(1_000, 500))
        .await
        .expect("adjusted");
    let s = limiter.status("").await.expect("status");
    let remaining: Vec<u64> = s.limits().iter().map(|l| l.status.remaining).collect();
    // Combined: 1,000 + 2 x 500 = 2,000 used. A real backend refills a little meanwhile.
    let expect = [8_000u64, 7_000, 3_500];
    for (got, want) in remaining.iter().zip(expect) {
        assert!(
            *got >= want && *got <= want + 50,
            "remaining {remaining:?}, want {expect:?}"
        );
    }
}

/// Cancelling a permit gives everything back.
pub async fn cancel_gives_everything_back<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .requests_per_minute(10)
                .tokens_per_minute(1_000)
                .concurrency(1)
                .build()
                .expect("valid"),
        )
        .await;
    let permit = limiter
        .acquire(Request::new(Cost::request(600, 400)))
        .await
        .expect("fits");
    permit.cancel().await.expect("cancelled");
    let _again = limiter
        .try_acquire(Request::new(Cost::request(600, 400)))
        .await
        .expect("all of it came back, slot included");
}

/// `try_acquire` does not jump ahead of a request that is already waiting.
pub async fn try_acquire_never_overtakes_a_waiter<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .limit(Limit::new(Resource::Tokens, 100, Duration::from_secs(1)))
                .build()
                .expect("valid"),
        )
        .await;
    let _all = limiter.acquire(tokens(100)).await.expect("fits");
    let big = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { limiter.acquire(tokens(100)).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    // 60 tokens have refilled: a small request would fit, but the large one came first.
    assert!(limiter.try_acquire(tokens(10)).await.is_err());
    big.await.expect("task").expect("granted");
}

/// Raising or lowering a limit on a live limiter keeps the usage: no fresh burst.
pub async fn runtime_limit_change_keeps_usage<F: Factory>(factory: &F) {
    let policy = Policy::builder()
        .limit(
            Limit::new(Resource::Requests, 10, Duration::from_secs(3_600))
                .algorithm(AlgorithmKind::Gcra),
        )
        .build()
        .expect("valid");
    let id = policy.limits().next().expect("one limit").0;
    let limiter = factory.make(policy).await;
    let mut permits = Vec::new();
    for _ in 0..10 {
        permits.push(limiter.try_acquire(one()).await.expect("burst"));
    }
    limiter.set_amount(id, 20).await.expect("valid change");
    let s = limiter.status("").await.expect("status");
    assert_eq!(
        s.limits()[0].status.remaining,
        10,
        "20 - 10 used, not a fresh 20"
    );
    assert!(
        limiter.set_amount(id, 0).await.is_err(),
        "invalid amounts are refused"
    );
}

/// The stats count grants, limit hits and waits.
pub async fn stats_count_grants_and_hits<F: Factory>(factory: &F) {
    let limiter = factory.make(spaced(10, Duration::from_secs(1))).await;
    for _ in 0..3 {
        let _p = limiter.acquire(one()).await.expect("granted");
    }
    let _ = limiter.try_acquire(one()).await;
    let s = limiter.stats();
    assert_eq!(s.granted, 3);
    assert!(s.limited >= 2, "two waits and one refusal: {s:?}");
    assert!(s.wait_max >= Duration::from_millis(99), "{s:?}");
    assert_eq!(s.queue_depth, 0);
}

/// A pause holds new requests and waiters back until it ends, and is never shortened.
pub async fn pause_holds_everyone_back_until_it_ends<F: Factory>(factory: &F) {
    let limiter = factory
        .make(
            Policy::builder()
                .requests_per_minute(600)
                .build()
                .expect("valid"),
        )
        .await;
    let started = Instant::now();
    limiter
        .pause("", Duration::from_secs(2))
        .await
        .expect("pause");
    limiter
        .pause("", Duration::from_secs(1))
        .await
        .expect("a shorter pause is accepted and changes nothing");
    let err = limiter
        .try_acquire(one())
        .await
        .expect_err("paused: nothing is granted");
    assert_between(
        "retry-after during a pause",
        err.retry_after().expect("a wait"),
        Duration::from_secs(2) - SLACK,
        Duration::from_secs(2),
    );
    let waiter = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move {
            let permit = limiter
                .acquire(one())
                .await
                .expect("granted after the pause");
            (Instant::now(), permit)
        })
    };
    let (granted_at, _permit) = waiter.await.expect("waiter");
    assert_between(
        "a waiter is granted when the pause ends",
        granted_at - started,
        Duration::from_secs(2),
        Duration::from_secs(2) + SLACK,
    );
    assert!(
        limiter.try_acquire(one()).await.is_ok(),
        "after the pause, the budget is whole again"
    );
}

/// `correct` charges and credits one limit, leaves the others alone, and never credits beyond an
/// empty limit.
pub async fn correct_charges_and_credits_one_limit<F: Factory>(factory: &F) {
    let day = Duration::from_secs(86_400);
    let policy = Policy::builder()
        .limit(Limit::new(Resource::Requests, 10, day))
        .limit(Limit::new(Resource::Tokens, 1_000, day))
        .build()
        .expect("valid");
    let tokens_id = policy
        .find(Resource::Tokens, 86_400 * 1_000_000_000)
        .expect("tokens limit");
    let limiter = factory.make(policy).await;
    let _permit = limiter.try_acquire(tokens(100)).await.expect("fits");
    let remaining = |s: &ratelimit_core::Decision, i: usize| s.limits()[i].status.remaining;

    limiter.correct("", tokens_id, 500).await.expect("charge");
    let s = limiter.status("").await.expect("status");
    assert_eq!(remaining(&s, 1), 400, "1000 - 100 taken - 500 charged");
    assert_eq!(remaining(&s, 0), 9, "the requests limit is untouched");

    limiter.correct("", tokens_id, -300).await.expect("credit");
    let s = limiter.status("").await.expect("status");
    assert_eq!(remaining(&s, 1), 700, "300 given back");

    limiter
        .correct("", tokens_id, -1_000_000)
        .await
        .expect("credit");
    let s = limiter.status("").await.expect("status");
    assert_eq!(remaining(&s, 1), 1_000, "never beyond an empty limit");
    assert!(
        limiter.try_acquire(tokens(1_000)).await.is_ok()
            && limiter.try_acquire(tokens(1)).await.is_err(),
        "after a credit the limit still holds exactly"
    );
}
