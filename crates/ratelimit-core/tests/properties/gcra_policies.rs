//! Policies of one to eight GCRA limits against their bucket models: the policy's fast decision is
//! written out per number of limits, so every size is checked, through every entry point.

use std::time::Duration;

use proptest::prelude::*;
use ratelimit_core::{Cost, Limit, Policy, Rejection, Resource};

use crate::model::{Grant, bucket_earliest, bucket_history_conforms};

/// What limit `i` counts: the four resources in turn, so that limits 4 to 7 count a resource
/// again over a longer window.
const RESOURCES: [Resource; 4] = [
    Resource::Requests,
    Resource::Tokens,
    Resource::InputTokens,
    Resource::OutputTokens,
];

/// One GCRA limit: amount, window (ns), burst.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    amount: u64,
    window: u64,
    burst: u64,
}

/// One to eight limits. Limit `i` counts `RESOURCES[i % 4]` over a window longer than any limit
/// before it, and a limit that counts a resource again has at least the amount of the first, so
/// the policy is consistent.
fn buckets() -> impl Strategy<Value = Vec<Bucket>> {
    proptest::collection::vec((1..=40u64, 100..=2_000u64, 1..=80u64), 1..=8).prop_map(|raw| {
        let mut out: Vec<Bucket> = Vec::with_capacity(raw.len());
        let mut window = 0;
        for (i, (amount, step, burst)) in raw.into_iter().enumerate() {
            window += step;
            let amount = match i.checked_sub(4) {
                Some(j) => amount.max(out[j].amount),
                None => amount,
            };
            out.push(Bucket {
                amount,
                window,
                burst,
            });
        }
        out
    })
}

fn build(buckets: &[Bucket]) -> Policy {
    buckets
        .iter()
        .enumerate()
        .fold(Policy::builder(), |b, (i, q)| {
            b.limit(
                Limit::new(RESOURCES[i % 4], q.amount, Duration::from_nanos(q.window))
                    .burst(q.burst),
            )
        })
        .build()
        .expect("consistent by construction")
}

/// Units of `cost` that limit `i` counts (no burndown: output tokens count once).
fn share(i: usize, c: &Cost) -> u64 {
    match RESOURCES[i % 4] {
        Resource::Requests => c.requests,
        Resource::Tokens => c.input_tokens + c.output_tokens,
        Resource::InputTokens => c.input_tokens,
        _ => c.output_tokens,
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `try_take` after `dt`; `back` steps the clock back that far for this call only.
    Take { dt: u64, back: u64, cost: Cost },
    /// `try_acquire`, the reservation released at once.
    Acquire { dt: u64, cost: Cost },
    /// `reserve`: a grant at a future instant, which later decisions must queue behind.
    Reserve { dt: u64, cost: Cost },
}

fn cost() -> impl Strategy<Value = Cost> {
    (0..=2u64, 0..=40u64, 0..=40u64).prop_map(|(requests, i, o)| Cost {
        requests,
        input_tokens: i,
        output_tokens: o,
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        5 => (0..=400u64, prop_oneof![3 => Just(0u64), 1 => 1..=300u64], cost())
            .prop_map(|(dt, back, cost)| Op::Take { dt, back, cost }),
        3 => (0..=400u64, cost()).prop_map(|(dt, cost)| Op::Acquire { dt, cost }),
        1 => (0..=400u64, cost()).prop_map(|(dt, cost)| Op::Reserve { dt, cost }),
    ];
    proptest::collection::vec(op, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::cases()))]

    /// Every decision of an all-GCRA policy of any size equals its buckets' models combined:
    /// granted now exactly when every bucket admits now, otherwise refused with the exact wait
    /// for the latest of them (or as too large), and admitted once that wait is over, not a
    /// nanosecond before; reservations placed at that instant; and every grant conforms to every
    /// bucket. A refusal changes nothing.
    #[test]
    fn gcra_policies_of_any_size_decide_like_their_buckets(qs in buckets(), ops in ops()) {
        let mut policy = build(&qs);
        let mut hist: Vec<Vec<Grant>> = vec![Vec::new(); qs.len()];
        let mut now = 10_000u64;
        let mut horizon = 0u64;
        for op in &ops {
            let (dt, back, c, reserve) = match *op {
                Op::Take { dt, back, cost } => (dt, back, cost, false),
                Op::Acquire { dt, cost } => (dt, 0, cost, false),
                Op::Reserve { dt, cost } => (dt, 0, cost, true),
            };
            now += dt;
            let at = now - back;
            let too_large = qs.iter().enumerate().any(|(i, q)| share(i, &c) > q.burst);
            let e = qs
                .iter()
                .enumerate()
                .map(|(i, q)| bucket_earliest(&hist[i], share(i, &c), at.max(horizon), q.amount, q.window, q.burst))
                .max()
                .unwrap_or(at)
                .max(at.max(horizon));
            let before = policy.status(at);
            let granted_at = if reserve {
                match policy.reserve(&c, at) {
                    Ok(r) => {
                        prop_assert!(!too_large);
                        prop_assert_eq!(r.ready_at(), e);
                        policy.release(r);
                        Some(e)
                    }
                    Err(_) => {
                        prop_assert!(too_large, "refused to reserve {:?}", c);
                        None
                    }
                }
            } else {
                let got = match op {
                    Op::Take { .. } => policy.try_take(&c, at),
                    _ => policy.try_acquire(&c, at).map(|r| policy.release(r)),
                };
                match got {
                    Ok(()) => {
                        prop_assert!(!too_large);
                        prop_assert_eq!(e, at, "granted at {} but the buckets say {}", at, e);
                        Some(at)
                    }
                    Err(Rejection::RateLimited { retry_after, .. }) => {
                        prop_assert!(!too_large);
                        prop_assert_eq!(at + retry_after, e);
                        // On the boundary, at every size: refused a nanosecond before, granted at.
                        let early = policy.clone().try_take(&c, e - 1);
                        prop_assert_eq!(early.map_err(|r| r.retry_after()), Err(Some(1)));
                        prop_assert_eq!(policy.clone().try_take(&c, e), Ok(()));
                        None
                    }
                    Err(Rejection::TooLarge(_)) => {
                        prop_assert!(too_large, "{:?} refused as too large", c);
                        None
                    }
                    Err(Rejection::ConcurrencyFull) => {
                        prop_assert!(false, "no concurrency limit");
                        None
                    }
                }
            };
            match granted_at {
                Some(t) => {
                    for (i, (h, q)) in hist.iter_mut().zip(&qs).enumerate() {
                        h.push(Grant { t, n: share(i, &c) });
                        bucket_history_conforms(h, q.amount, q.window, q.burst)
                            .map_err(TestCaseError::fail)?;
                    }
                    horizon = horizon.max(t);
                }
                None => prop_assert_eq!(before, policy.status(at), "a refusal changes nothing"),
            }
        }
    }
}
