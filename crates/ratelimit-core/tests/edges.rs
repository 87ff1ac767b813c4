//! Named edge cases of the policy: each one a behaviour a user can rely on.
#![allow(unused_must_use)] // most edges take a grant and never settle it: the policy is dropped.

use std::time::Duration;

use ratelimit_core::time::{NANOS_PER_MINUTE, NANOS_PER_SEC};
use ratelimit_core::{
    AlgorithmKind, ConfigError, Cost, Limit, LimitedBy, Policy, Rejection, Resource, StartError,
};

const MIN: u64 = NANOS_PER_MINUTE;

fn rpm_tpm(rpm: u64, tpm: u64) -> Policy {
    Policy::builder()
        .requests_per_minute(rpm)
        .tokens_per_minute(tpm)
        .build()
        .unwrap()
}

#[test]
fn burst_is_the_total_capacity_of_a_fresh_limiter() {
    let mut p = Policy::builder().requests_per_minute(60).build().unwrap();
    for i in 0..60 {
        assert!(
            p.try_acquire(&Cost::ONE_REQUEST, 0).is_ok(),
            "request {i} of 60"
        );
    }
    let Err(Rejection::RateLimited { retry_after, .. }) = p.try_acquire(&Cost::ONE_REQUEST, 0)
    else {
        panic!("the 61st must wait")
    };
    assert_eq!(retry_after, NANOS_PER_SEC, "one request per second refills");
}

#[test]
fn burst_multiplier_scales_the_capacity_not_the_rate() {
    let mut p = Policy::builder()
        .requests_per_minute(60)
        .burst_multiplier(0.1)
        .build()
        .unwrap();
    for _ in 0..6 {
        p.try_acquire(&Cost::ONE_REQUEST, 0).unwrap();
    }
    assert_eq!(
        p.try_acquire(&Cost::ONE_REQUEST, 0)
            .unwrap_err()
            .retry_after(),
        Some(NANOS_PER_SEC)
    );
}

#[test]
fn a_request_larger_than_any_limit_allows_is_refused_at_once_and_takes_nothing() {
    let mut p = rpm_tpm(10, 1_000);
    let before = p.status(0);
    let err = p.try_acquire(&Cost::request(900, 200), 0).unwrap_err();
    let Rejection::TooLarge(t) = err else {
        panic!("{err:?}")
    };
    assert_eq!((t.requested, t.max, t.unit), (1_100, 1_000, "tokens"));
    assert_eq!(
        t.to_string(),
        "request needs 1100 tokens but the tokens per 1m limit can never grant more than 1000 at once"
    );
    assert!(
        p.reserve(&Cost::request(900, 200), 0).is_err(),
        "never queued either"
    );
    assert_eq!(before, p.status(0));
}

#[test]
fn too_large_wins_over_rate_limited() {
    let mut p = rpm_tpm(1, 1_000);
    p.try_acquire(&Cost::request(1, 1), 0).unwrap();
    assert!(matches!(
        p.try_acquire(&Cost::request(2_000, 0), 0),
        Err(Rejection::TooLarge(_))
    ));
}

#[test]
fn all_dimensions_are_granted_together_or_not_at_all() {
    // Requests are free, tokens are not: the known defect would take a request slot and then wait
    // on tokens while holding it.
    let mut p = rpm_tpm(100, 1_000);
    p.try_acquire(&Cost::request(1_000, 0), 0).unwrap();
    let before = p.status(0);
    assert!(p.try_acquire(&Cost::request(500, 0), 0).is_err());
    assert_eq!(
        before,
        p.status(0),
        "no request slot was taken by the denied request"
    );
    assert_eq!(before.limits()[0].status.remaining, 99);
}

#[test]
fn a_reservation_waits_for_the_joint_instant_and_holds_nothing_before() {
    let mut p = rpm_tpm(60, 6_000); // 1 request/s, 100 tokens/s
    p.try_acquire(&Cost::request(6_000, 0), 0).unwrap();
    let r = p.reserve(&Cost::request(300, 0), 0).unwrap();
    assert_eq!(r.ready_at(), 3 * NANOS_PER_SEC, "tokens bind, not requests");
    // Someone arriving later queues behind it, even if they would fit sooner on their own.
    let later = p.reserve(&Cost::request(0, 0), 0).unwrap();
    assert!(later.ready_at() >= r.ready_at());
}

#[test]
fn burndown_weights_output_tokens_in_the_combined_limit_only() {
    let mut p = Policy::builder()
        .tokens_per_minute(100_000)
        .output_tokens_per_minute(10_000)
        .burndown_rate(5.0)
        .build()
        .unwrap();
    assert_eq!(
        p.amount(Resource::Tokens, &Cost::request(3_000, 1_000)),
        8_000
    );
    assert_eq!(
        p.amount(Resource::OutputTokens, &Cost::request(3_000, 1_000)),
        1_000
    );
    p.try_acquire(&Cost::request(3_000, 1_000), 0).unwrap();
    let s = p.status(0);
    assert_eq!(s.limits()[0].status.remaining, 92_000);
    assert_eq!(s.limits()[1].status.remaining, 9_000);
}

#[test]
fn fractional_burndown_rounds_up() {
    let p = Policy::builder()
        .tokens_per_minute(1_000)
        .burndown_rate(1.5)
        .build()
        .unwrap();
    assert_eq!(p.amount(Resource::Tokens, &Cost::request(0, 3)), 5);
}

#[test]
fn adjust_refunds_every_dimension_including_the_combined_tokens() {
    let mut p = Policy::builder()
        .tokens_per_minute(10_000)
        .input_tokens_per_minute(8_000)
        .output_tokens_per_minute(4_000)
        .burndown_rate(2.0)
        .build()
        .unwrap();
    let mut r = p.try_acquire(&Cost::request(1_000, 2_000), 0).unwrap();
    assert_eq!(p.status(0).limits()[0].status.remaining, 5_000);
    p.adjust(&mut r, &Cost::request(1_000, 500), 0);
    let s = p.status(0);
    assert_eq!(
        s.limits()[0].status.remaining,
        8_000,
        "combined: 1,000 + 2 x 500"
    );
    assert_eq!(s.limits()[1].status.remaining, 7_000);
    assert_eq!(s.limits()[2].status.remaining, 3_500);
    assert_eq!(r.cost(), Cost::request(1_000, 500));
}

#[test]
fn adjust_charges_usage_beyond_the_estimate_as_debt() {
    let mut p = rpm_tpm(100, 1_000);
    let mut r = p.try_acquire(&Cost::request(100, 100), 0).unwrap();
    p.adjust(&mut r, &Cost::request(100, 1_400), 0);
    let d = p.check(&Cost::request(1, 0), 0);
    assert!(!d.allowed);
    // 500 tokens over the limit, 1,000 per minute: the debt is paid back in 30 s, then 1 more.
    assert_eq!(d.retry_after, 30 * NANOS_PER_SEC + 60_000_000);
}

#[test]
fn cancelling_a_reservation_gives_its_capacity_back() {
    let mut p = rpm_tpm(10, 1_000);
    let before = p.status(0);
    let r = p.reserve(&Cost::request(600, 300), 0).unwrap();
    p.cancel(r, 0);
    assert_eq!(before, p.status(0));
}

#[test]
fn clock_going_backwards_neither_panics_nor_grants_extra() {
    let mut p = rpm_tpm(2, 1_000);
    p.try_acquire(&Cost::request(1, 1), 100 * NANOS_PER_SEC)
        .unwrap();
    p.try_acquire(&Cost::request(1, 1), 100 * NANOS_PER_SEC)
        .unwrap();
    for t in [0, 50 * NANOS_PER_SEC, 99 * NANOS_PER_SEC] {
        let err = p.try_acquire(&Cost::request(1, 1), t).unwrap_err();
        // The wait is measured from the backwards reading: never shorter than from the real time.
        assert!(err.retry_after().unwrap() >= 100 * NANOS_PER_SEC - t + 30 * NANOS_PER_SEC);
    }
    let _ = p.status(0);
    let _ = p.check(&Cost::request(1, 1), 0);
}

#[test]
fn lowering_a_limit_at_runtime_keeps_the_usage() {
    let mut p = rpm_tpm(100, 10_000);
    p.try_acquire(&Cost::request(6_000, 0), 0).unwrap();
    let tpm = p.find(Resource::Tokens, MIN).unwrap();
    p.set_amount(tpm, 20_000, 0).unwrap();
    assert_eq!(
        p.status(0).remaining(tpm),
        Some(14_000),
        "raised: no fresh burst"
    );
    p.set_amount(tpm, 5_000, 0).unwrap();
    assert_eq!(
        p.status(0).remaining(tpm),
        Some(0),
        "lowered below the usage: nothing left"
    );
    assert!(p.try_acquire(&Cost::request(1, 0), 0).is_err());
}

#[test]
fn a_runtime_change_that_breaks_the_policy_is_refused_and_changes_nothing() {
    let mut p = Policy::builder()
        .tokens_per_minute(1_000)
        .tokens_per_day(100_000)
        .build()
        .unwrap();
    let tpm = p.find(Resource::Tokens, MIN).unwrap();
    let err = p.set_amount(tpm, 200_000, 0).unwrap_err();
    assert_eq!(err.field(), "tokens_per_day");
    assert_eq!(p.limits().next().unwrap().1.amount(), 1_000);
    assert_eq!(
        p.set_amount(tpm, 0, 0).unwrap_err().field(),
        "tokens_per_minute"
    );
}

#[test]
fn concurrency_is_held_from_start_to_release() {
    let mut p = Policy::builder()
        .requests_per_minute(100)
        .concurrency(1)
        .build()
        .unwrap();
    let a = p.try_acquire(&Cost::ONE_REQUEST, 0).unwrap();
    assert_eq!(
        p.try_acquire(&Cost::ONE_REQUEST, 0),
        Err(Rejection::ConcurrencyFull)
    );
    assert_eq!(
        p.check(&Cost::ONE_REQUEST, 0).limited_by,
        Some(LimitedBy::Concurrency)
    );
    let mut b = p.reserve(&Cost::ONE_REQUEST, 0).unwrap();
    let ready = b.ready_at();
    assert_eq!(p.start(&mut b, ready), Err(StartError::ConcurrencyFull));
    p.release(a);
    p.start(&mut b, ready).unwrap();
    assert!(b.is_started());
    p.release(b);
    assert_eq!(p.concurrency().unwrap().in_flight(), 0);
}

#[test]
fn a_reservation_cannot_start_early() {
    let mut p = Policy::builder().requests_per_minute(1).build().unwrap();
    p.try_acquire(&Cost::ONE_REQUEST, 0).unwrap();
    let mut r = p.reserve(&Cost::ONE_REQUEST, 0).unwrap();
    assert_eq!(
        p.start(&mut r, 1),
        Err(StartError::NotYet {
            retry_after: MIN - 1
        })
    );
}

#[test]
fn retry_after_rounds_up_in_coarse_units() {
    let mut p = Policy::builder()
        .requests_per_minute(7)
        .burst_multiplier(0.15)
        .build()
        .unwrap();
    p.try_acquire(&Cost::ONE_REQUEST, 0).unwrap();
    let d = p.check(&Cost::ONE_REQUEST, 0);
    assert_eq!(d.retry_after, 8_571_428_572);
    assert_eq!(d.retry_after_secs_ceil(), 9);
    assert_eq!(d.retry_after_millis_ceil(), 8_572);
    assert_eq!(
        d.retry_after_duration(),
        Duration::from_nanos(8_571_428_572)
    );
}

#[test]
fn sliding_log_policy_never_exceeds_the_limit_in_any_window() {
    let mut p = Policy::builder()
        .limit(
            Limit::new(Resource::Requests, 3, Duration::from_secs(1))
                .algorithm(AlgorithmKind::SlidingWindowLog),
        )
        .build()
        .unwrap();
    let ms = NANOS_PER_SEC / 1000;
    for t in [0, 400 * ms, 999 * ms] {
        p.try_acquire(&Cost::ONE_REQUEST, t).unwrap();
    }
    assert_eq!(
        p.try_acquire(&Cost::ONE_REQUEST, 999 * ms)
            .unwrap_err()
            .retry_after(),
        Some(ms)
    );
    assert!(p.try_acquire(&Cost::ONE_REQUEST, 1_000 * ms).is_ok());
}

// Validation: every bad setting is refused by the builder, naming its field.

#[test]
fn zero_limits_are_refused() {
    for (b, field) in [
        (
            Policy::builder().requests_per_minute(0),
            "requests_per_minute",
        ),
        (Policy::builder().tokens_per_day(0), "tokens_per_day"),
        (Policy::builder().concurrency(0), "concurrency"),
        (
            Policy::builder().limit(Limit::new(Resource::Tokens, 10, Duration::ZERO)),
            "limits[0].window",
        ),
        (
            Policy::builder()
                .limit(Limit::new(Resource::Tokens, 10, Duration::from_secs(1)).burst(0)),
            "limits[0].burst",
        ),
    ] {
        let err = b.build().unwrap_err();
        assert!(matches!(err, ConfigError::Zero { .. }), "{err}");
        assert_eq!(err.field(), field);
    }
}

#[test]
fn nan_infinite_and_negative_settings_are_refused() {
    for (b, field) in [
        (
            Policy::builder().burst_multiplier(f64::NAN),
            "burst_multiplier",
        ),
        (
            Policy::builder().burst_multiplier(f64::INFINITY),
            "burst_multiplier",
        ),
        (Policy::builder().burst_multiplier(-1.0), "burst_multiplier"),
        (Policy::builder().burndown_rate(f64::NAN), "burndown_rate"),
        (Policy::builder().burndown_rate(0.0), "burndown_rate"),
        (Policy::builder().burndown_rate(-5.0), "burndown_rate"),
        (
            Policy::builder()
                .requests_per_minute(10)
                .burst_multiplier(0.01),
            "burst_multiplier",
        ),
    ] {
        assert_eq!(b.build().unwrap_err().field(), field);
    }
}

#[test]
fn inconsistent_settings_are_refused() {
    let err = Policy::builder()
        .tokens_per_minute(100_000)
        .tokens_per_day(50_000)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "tokens_per_day");
    assert!(err.to_string().contains("could then never bind"), "{err}");
    let err = Policy::builder()
        .tokens_per_minute(1)
        .limit(Limit::new(Resource::Tokens, 5, Duration::from_secs(60)))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "limits[1]");
    let err = Policy::builder()
        .limit(
            Limit::new(Resource::Requests, 5, Duration::from_secs(1))
                .algorithm(AlgorithmKind::FixedWindow)
                .burst(10),
        )
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "limits[0].burst");
    let mut b = Policy::builder();
    for i in 1..=9 {
        b = b.limit(Limit::new(
            Resource::Requests,
            i * 10,
            Duration::from_secs(i),
        ));
    }
    assert_eq!(b.build().unwrap_err().field(), "limits");
}

#[test]
fn an_empty_policy_allows_everything() {
    let mut p = Policy::builder().build().unwrap();
    for _ in 0..1_000 {
        p.try_acquire(&Cost::request(1_000_000, 1_000_000), 0)
            .unwrap();
    }
}

#[test]
fn an_empty_policy_still_grants_in_time_order() {
    // Nothing is granted before the latest grant, limits or not: a clock that steps back waits.
    let mut p = Policy::builder().build().unwrap();
    p.try_take(&Cost::ONE_REQUEST, 10).unwrap();
    assert_eq!(
        p.try_take(&Cost::ONE_REQUEST, 4).unwrap_err().retry_after(),
        Some(6)
    );
    assert_eq!(
        p.try_acquire(&Cost::ONE_REQUEST, 4)
            .unwrap_err()
            .retry_after(),
        Some(6)
    );
    assert!(p.try_take(&Cost::ONE_REQUEST, 10).is_ok());
}

#[test]
fn saturating_time_never_panics() {
    let mut p = rpm_tpm(1, 1);
    p.try_acquire(&Cost::request(1, 0), u64::MAX).unwrap();
    let _ = p.try_acquire(&Cost::request(1, 0), u64::MAX);
    let _ = p.reserve(&Cost::request(1, 0), u64::MAX);
    let _ = p.check(&Cost::request(1, 0), 0);
}

#[test]
fn a_policy_is_idle_only_once_fully_replenished() {
    let mut p = rpm_tpm(60, 6_000);
    assert!(p.is_idle(0));
    let r = p.try_acquire(&Cost::request(600, 0), 0).unwrap();
    assert!(!p.is_idle(0));
    assert!(
        !p.is_idle(5 * NANOS_PER_SEC),
        "600 tokens take 6 s to refill"
    );
    assert!(p.is_idle(6 * NANOS_PER_SEC));
    p.release(r);
    let mut c = Policy::builder().concurrency(1).build().unwrap();
    let held = c.try_acquire(&Cost::ONE_REQUEST, 0).unwrap();
    assert!(!c.is_idle(MIN), "a request in flight");
    c.release(held);
    assert!(c.is_idle(MIN));
}

#[test]
fn try_take_is_try_acquire_without_a_reservation() {
    let mut p = rpm_tpm(2, 1_000);
    p.try_take(&Cost::request(400, 100), 0).unwrap();
    p.try_take(&Cost::request(400, 100), 0).unwrap();
    let err = p.try_take(&Cost::request(1, 0), 0).unwrap_err();
    assert_eq!(err.retry_after(), Some(30 * NANOS_PER_SEC));
    assert!(matches!(
        p.try_take(&Cost::request(2_000, 0), 0),
        Err(Rejection::TooLarge(_))
    ));
    // It counts like a grant: a reservation before it is no longer the latest to cancel.
    let mut q = rpm_tpm(10, 1_000);
    let r = q.reserve(&Cost::request(100, 0), 0).unwrap();
    q.try_take(&Cost::request(100, 0), 0).unwrap();
    q.cancel(r, 0);
    assert_eq!(q.status(0).limits()[1].status.remaining, 900);
}

fn one_limit(kind: AlgorithmKind) -> Policy {
    Policy::builder()
        .limit(Limit::new(Resource::Requests, 10, Duration::from_secs(60)).algorithm(kind))
        .build()
        .unwrap()
}

fn remaining(p: &Policy, now: u64) -> u64 {
    p.status(now).limits()[0].status.remaining
}

#[test]
fn correct_charges_usage_the_policy_did_not_see_in_every_algorithm() {
    for kind in AlgorithmKind::ALL {
        let mut p = one_limit(kind);
        let id = p.limits().next().unwrap().0;
        if kind == AlgorithmKind::LeakyBucket {
            // No burst: a charge of 6 is 6 spacings (36 s at 10 per minute) before the next one.
            p.correct(id, 6, 0).unwrap();
            let wait = p.try_take(&Cost::ONE_REQUEST, 0).unwrap_err().retry_after();
            assert_eq!(wait, Some(36 * NANOS_PER_SEC), "{kind:?}");
            continue;
        }
        p.try_take(&Cost::ONE_REQUEST, 0).unwrap();
        p.correct(id, 6, 0).unwrap();
        assert_eq!(remaining(&p, 0), 3, "{kind:?}: 10 - 1 taken - 6 charged");
    }
}

#[test]
fn correct_credits_the_newest_usage_and_never_more_than_empty() {
    for kind in AlgorithmKind::ALL {
        if kind == AlgorithmKind::LeakyBucket {
            continue; // no capacity to report: checked below through its wait
        }
        let mut p = one_limit(kind);
        let id = p.limits().next().unwrap().0;
        for _ in 0..8 {
            p.try_take(&Cost::ONE_REQUEST, 0).unwrap();
        }
        p.correct(id, -3, 0).unwrap();
        assert_eq!(remaining(&p, 0), 5, "{kind:?}: 8 used, 3 given back");
        p.correct(id, -100, 0).unwrap();
        assert_eq!(remaining(&p, 0), 10, "{kind:?}: never beyond the capacity");
        for _ in 0..10 {
            p.try_take(&Cost::ONE_REQUEST, 0).unwrap();
        }
        assert!(
            p.try_take(&Cost::ONE_REQUEST, 0).is_err(),
            "{kind:?}: still exactly the limit after a credit"
        );
    }
    let mut leaky = one_limit(AlgorithmKind::LeakyBucket);
    let id = leaky.limits().next().unwrap().0;
    leaky.try_take(&Cost::ONE_REQUEST, 0).unwrap();
    leaky.correct(id, -1, 0).unwrap();
    assert!(
        leaky.try_take(&Cost::ONE_REQUEST, 0).is_ok(),
        "the spacing was given back"
    );
}

#[test]
fn a_credit_never_moves_a_reservation_already_made() {
    let mut p = rpm_tpm(1, 1_000);
    let id = p.limits().next().unwrap().0;
    p.try_take(&Cost::ONE_REQUEST, 0).unwrap();
    let r = p.reserve(&Cost::ONE_REQUEST, 0).unwrap();
    assert_eq!(r.ready_at(), MIN);
    p.correct(id, -5, 0).unwrap();
    // The reservation is the latest grant: what it stands on is not given back from under it.
    let err = p.try_take(&Cost::ONE_REQUEST, 0).unwrap_err();
    assert!(err.retry_after().unwrap() >= MIN, "{err:?}");
}

#[test]
fn correcting_an_unknown_limit_is_refused() {
    let mut p = Policy::builder().requests_per_minute(10).build().unwrap();
    let bogus = Policy::builder()
        .requests_per_minute(1)
        .requests_per_day(10)
        .tokens_per_minute(10)
        .build()
        .unwrap()
        .limits()
        .nth(2)
        .unwrap()
        .0;
    assert!(matches!(
        p.correct(bogus, 1, 0),
        Err(ConfigError::OutOfRange { .. })
    ));
    assert_eq!(remaining(&p, 0), 10);
}

#[test]
fn a_cancelled_reservation_that_was_charged_still_orders_later_grants() {
    // The tokens limit places a reservation 1 s ahead; a charge then keeps it from being undone
    // exactly in the requests limit, which still counts a grant at 1 s once the policy has
    // cancelled it. Nothing may be granted in that limit before 1 s: a request at 0.5 s that every
    // bucket has room for waits the half second, by either path.
    let mut p = rpm_tpm(60, 600);
    p.try_take(&Cost::request(600, 0), 0).unwrap();
    let mut r = p.reserve(&Cost::request(10, 0), 0).unwrap();
    assert_eq!(r.ready_at(), NANOS_PER_SEC);
    p.adjust(
        &mut r,
        &Cost {
            requests: 3,
            ..Cost::request(10, 0)
        },
        0,
    );
    p.cancel(r, 0);
    let half = NANOS_PER_SEC / 2;
    let wait = Some(half);
    assert_eq!(
        p.clone()
            .try_take(&Cost::ONE_REQUEST, half)
            .unwrap_err()
            .retry_after(),
        wait
    );
    assert_eq!(
        p.try_acquire(&Cost::ONE_REQUEST, half)
            .unwrap_err()
            .retry_after(),
        wait
    );
    assert!(p.try_take(&Cost::ONE_REQUEST, NANOS_PER_SEC).is_ok());
}
