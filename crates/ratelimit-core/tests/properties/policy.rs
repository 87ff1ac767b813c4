//! The multi-dimension policy against per-dimension models: all or nothing, the joint earliest
//! instant, first come first served, reconciliation and cancellation.

use std::time::Duration;

use proptest::prelude::*;
use ratelimit_core::{AlgorithmKind, Cost, Limit, Policy, Rejection, Reservation, Resource};

use crate::model::{
    Grant, bucket_earliest, bucket_history_conforms, log_earliest, used_in_aligned, used_in_window,
};

#[derive(Debug, Clone)]
struct Setup {
    rpm: (u64, u64),       // amount, window (gcra, burst = amount)
    tpm: (u64, u64),       // sliding log (gcra, burst = amount, if `gcra_only`)
    itpm: (u64, u64),      // fixed window (gcra, burst = amount, if `gcra_only`)
    otpm: (u64, u64, u64), // gcra with burst
    burndown: u64,
    concurrency: Option<u64>,
    /// Every limit GCRA: the policy's fast path decides (the mixed policy takes the general one).
    gcra_only: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        (1..=6u64, 100..=3_000u64),
        (50..=600u64, 100..=3_000u64),
        (50..=400u64, 100..=3_000u64),
        (20..=300u64, 100..=3_000u64, 1..=300u64),
        1..=5u64,
        proptest::option::of(1..=3u64),
        any::<bool>(),
    )
        .prop_map(
            |(rpm, tpm, itpm, otpm, burndown, concurrency, gcra_only)| Setup {
                rpm,
                tpm,
                itpm,
                otpm,
                burndown,
                concurrency,
                gcra_only,
            },
        )
}

impl Setup {
    fn build(&self) -> Policy {
        let (tokens, input) = if self.gcra_only {
            (AlgorithmKind::Gcra, AlgorithmKind::Gcra)
        } else {
            (AlgorithmKind::SlidingWindowLog, AlgorithmKind::FixedWindow)
        };
        let mut b = Policy::builder()
            .limit(Limit::new(
                Resource::Requests,
                self.rpm.0,
                Duration::from_nanos(self.rpm.1),
            ))
            .limit(
                Limit::new(
                    Resource::Tokens,
                    self.tpm.0,
                    Duration::from_nanos(self.tpm.1),
                )
                .algorithm(tokens),
            )
            .limit(
                Limit::new(
                    Resource::InputTokens,
                    self.itpm.0,
                    Duration::from_nanos(self.itpm.1),
                )
                .algorithm(input),
            )
            .limit(
                Limit::new(
                    Resource::OutputTokens,
                    self.otpm.0,
                    Duration::from_nanos(self.otpm.1),
                )
                .burst(self.otpm.2),
            )
            .burndown_rate(self.burndown as f64);
        if let Some(c) = self.concurrency {
            b = b.concurrency(c);
        }
        b.build().expect("valid setup")
    }

    /// Per-dimension amounts of a cost: requests, combined tokens, input, output.
    fn amounts(&self, c: &Cost) -> [u64; 4] {
        [
            c.requests,
            c.input_tokens + c.output_tokens * self.burndown,
            c.input_tokens,
            c.output_tokens,
        ]
    }

    fn too_large(&self, c: &Cost) -> bool {
        let a = self.amounts(c);
        a[0] > self.rpm.0
            || a[1] > self.tpm.0
            || a[2] > self.itpm.0
            || a[3] > self.otpm.2
            || self.concurrency.is_some_and(|m| c.requests.max(1) > m)
    }

    /// The joint earliest instant from the per-dimension models.
    fn earliest(&self, h: &[Vec<Grant>; 4], c: &Cost, from: u64) -> u64 {
        let a = self.amounts(c);
        if self.gcra_only {
            // Four bucket constraints: the joint instant is the latest of their earliest instants.
            let (r, t, i, o) = (self.rpm, self.tpm, self.itpm, self.otpm);
            return bucket_earliest(&h[0], a[0], from, r.0, r.1, r.0)
                .max(bucket_earliest(&h[1], a[1], from, t.0, t.1, t.0))
                .max(bucket_earliest(&h[2], a[2], from, i.0, i.1, i.0))
                .max(bucket_earliest(&h[3], a[3], from, o.0, o.1, o.2));
        }
        let fixed = {
            let k = from / self.itpm.1;
            if used_in_aligned(&h[2], k, self.itpm.1) + a[2] <= self.itpm.0 {
                from
            } else {
                (k + 1) * self.itpm.1
            }
        };
        // The joint instant is the max of each dimension's own earliest: feasibility is monotone.
        // A fixed-window answer computed from `from` may move to a later window; recompute there.
        let mut t = from
            .max(bucket_earliest(
                &h[0], a[0], from, self.rpm.0, self.rpm.1, self.rpm.0,
            ))
            .max(log_earliest(&h[1], a[1], from, self.tpm.0, self.tpm.1))
            .max(fixed)
            .max(bucket_earliest(
                &h[3],
                a[3],
                from,
                self.otpm.0,
                self.otpm.1,
                self.otpm.2,
            ));
        loop {
            let k = t / self.itpm.1;
            let fixed_ok = used_in_aligned(&h[2], k, self.itpm.1) + a[2] <= self.itpm.0
                || h[2].iter().all(|g| g.t / self.itpm.1 < k);
            let next = t
                .max(bucket_earliest(
                    &h[0], a[0], t, self.rpm.0, self.rpm.1, self.rpm.0,
                ))
                .max(log_earliest(&h[1], a[1], t, self.tpm.0, self.tpm.1))
                .max(if fixed_ok { t } else { (k + 1) * self.itpm.1 })
                .max(bucket_earliest(
                    &h[3],
                    a[3],
                    t,
                    self.otpm.0,
                    self.otpm.1,
                    self.otpm.2,
                ));
            if next == t {
                return t;
            }
            t = next;
        }
    }

    fn check_limits(&self, h: &[Vec<Grant>; 4]) -> Result<(), String> {
        bucket_history_conforms(&h[0], self.rpm.0, self.rpm.1, self.rpm.0)?;
        bucket_history_conforms(&h[3], self.otpm.0, self.otpm.1, self.otpm.2)?;
        if self.gcra_only {
            bucket_history_conforms(&h[1], self.tpm.0, self.tpm.1, self.tpm.0)?;
            return bucket_history_conforms(&h[2], self.itpm.0, self.itpm.1, self.itpm.0);
        }
        if let Some(g) = h[1].last() {
            let used = used_in_window(&h[1], g.t, self.tpm.1);
            if used > self.tpm.0 {
                return Err(format!("tokens: {used} > {} in a window", self.tpm.0));
            }
        }
        if let Some(g) = h[2].last() {
            let used = used_in_aligned(&h[2], g.t / self.itpm.1, self.itpm.1);
            if used > self.itpm.0 {
                return Err(format!(
                    "input tokens: {used} > {} in a window",
                    self.itpm.0
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Op {
    Try {
        dt: u64,
        cost: Cost,
    },
    Reserve {
        dt: u64,
        cost: Cost,
    },
    /// Refund the latest reservation to a fraction of its output tokens (the answer was shorter).
    SettleLatest {
        percent: u64,
    },
    /// Release a started request (its concurrency slot), by index.
    Release {
        index: usize,
    },
    /// Cancel the latest reservation if it has not started.
    CancelLatest,
}

fn cost() -> impl Strategy<Value = Cost> {
    (0..=2u64, 0..=250u64, 0..=120u64).prop_map(|(requests, i, o)| Cost {
        requests,
        input_tokens: i,
        output_tokens: o,
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0..=1_500u64, cost()).prop_map(|(dt, cost)| Op::Try { dt, cost }),
        2 => (0..=1_500u64, cost()).prop_map(|(dt, cost)| Op::Reserve { dt, cost }),
        2 => (0..=100u64).prop_map(|percent| Op::SettleLatest { percent }),
        2 => any::<usize>().prop_map(|index| Op::Release { index }),
        1 => Just(Op::CancelLatest),
    ];
    proptest::collection::vec(op, 1..50)
}

/// A request refused until `at` is admitted at `at` by every rate limit, and not a nanosecond
/// before (the exact boundary of every limit's test).
fn waiting_it_out_is_enough(policy: &Policy, cost: &Cost, at: u64) -> Result<(), TestCaseError> {
    let early = policy.clone().try_take(cost, at - 1);
    prop_assert!(
        matches!(early, Err(Rejection::RateLimited { retry_after: 1, .. })),
        "a nanosecond early must be refused for a nanosecond: {early:?}"
    );
    prop_assert_eq!(policy.clone().try_take(cost, at), Ok(()));
    let acquired = policy.clone().try_acquire(cost, at).map(|_| ());
    prop_assert!(
        matches!(acquired, Ok(()) | Err(Rejection::ConcurrencyFull)),
        "the rate limits must admit at {at}: {acquired:?}"
    );
    Ok(())
}

struct Held {
    reservation: Reservation,
    started: bool,
    /// Its position in the model's history.
    position: usize,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::cases()))]

    /// Every decision equals the per-dimension models combined: granted all together at the
    /// earliest instant every dimension admits, or not at all; too-large requests refused; the
    /// concurrency limit held; shorter answers refunded in every dimension, combined tokens
    /// included; cancelling the latest reservation leaves no trace.
    #[test]
    fn policy_is_the_conjunction_of_its_dimensions(s in setup(), ops in ops()) {
        let mut policy = s.build();
        let mut h: [Vec<Grant>; 4] = Default::default();
        let mut held: Vec<Held> = Vec::new();
        let mut in_flight = 0u64;
        let mut now = 10_000u64;
        let mut horizon = 0u64;
        for op in &ops {
            match op {
                Op::Try { dt, cost } | Op::Reserve { dt, cost } => {
                    now += dt;
                    let is_try = matches!(op, Op::Try { .. });
                    let before = policy.status(now);
                    if s.too_large(cost) {
                        let refused = if is_try {
                            matches!(policy.try_acquire(cost, now), Err(Rejection::TooLarge(_)))
                        } else {
                            policy.reserve(cost, now).is_err()
                        };
                        prop_assert!(refused, "oversized {cost:?} must be refused");
                        prop_assert_eq!(before, policy.status(now), "a refusal changes nothing");
                        continue;
                    }
                    let e = s.earliest(&h, cost, now.max(horizon));
                    let slots = cost.requests.max(1);
                    let conc_ok = s.concurrency.is_none_or(|m| in_flight + slots <= m);
                    let (reservation, started) = if is_try {
                        match policy.try_acquire(cost, now) {
                            Ok(r) => {
                                prop_assert_eq!(e, now, "granted but the model says {}", e);
                                prop_assert!(conc_ok, "granted beyond the concurrency limit");
                                (r, true)
                            }
                            Err(Rejection::RateLimited { retry_after, .. }) => {
                                prop_assert_eq!(now + retry_after, e);
                                prop_assert_eq!(before, policy.status(now), "a denial changes nothing");
                                waiting_it_out_is_enough(&policy, cost, now + retry_after)?;
                                continue;
                            }
                            Err(Rejection::ConcurrencyFull) => {
                                prop_assert_eq!(e, now);
                                prop_assert!(!conc_ok);
                                prop_assert_eq!(before, policy.status(now), "a denial changes nothing");
                                continue;
                            }
                            Err(Rejection::TooLarge(t)) => { prop_assert!(false, "not too large: {t}"); unreachable!() }
                        }
                    } else {
                        let r = policy.reserve(cost, now).unwrap();
                        prop_assert_eq!(r.ready_at(), e);
                        (r, false)
                    };
                    if started && s.concurrency.is_some() { in_flight += slots; }
                    let a = s.amounts(cost);
                    for (d, n) in a.iter().enumerate() { h[d].push(Grant { t: e, n: *n }); }
                    horizon = e;
                    s.check_limits(&h).map_err(TestCaseError::fail)?;
                    held.push(Held { reservation, started, position: h[0].len() - 1 });
                }
                Op::SettleLatest { percent } => {
                    let Some(last) = held.last_mut() else { continue };
                    if last.position + 1 != h[0].len() { continue; }
                    let c = last.reservation.cost();
                    let actual = Cost { output_tokens: c.output_tokens * percent / 100, ..c };
                    policy.adjust(&mut last.reservation, &actual, now);
                    let a = s.amounts(&actual);
                    for (d, n) in a.iter().enumerate() { h[d].last_mut().unwrap().n = *n; }
                    prop_assert_eq!(last.reservation.cost(), actual);
                }
                Op::Release { index } => {
                    if held.is_empty() { continue; }
                    let i = index % held.len();
                    if !held[i].started { continue; }
                    let slots = held[i].reservation.cost().requests.max(1);
                    let Held { reservation, .. } = held.remove(i);
                    policy.release(reservation);
                    if s.concurrency.is_some() { in_flight -= slots; }
                }
                Op::CancelLatest => {
                    // Only the most recent reservation, not started: its cancellation must leave
                    // the policy exactly as it was before it.
                    let Some(last) = held.last() else { continue };
                    if last.started || last.position + 1 != h[0].len() { continue; }
                    let Held { reservation, .. } = held.pop().unwrap();
                    policy.cancel(reservation, now);
                    for d in &mut h { d.pop(); }
                    horizon = h[0].last().map_or(0, |g| g.t);
                }
            }
        }
    }

    /// Reserving then cancelling leaves the policy exactly as before, for any state.
    #[test]
    fn reserve_then_cancel_leaves_no_trace(s in setup(), ops in ops(), c in cost(), probe in cost()) {
        let mut policy = s.build();
        let mut now = 10_000u64;
        for op in &ops {
            if let Op::Try { dt, cost } = op {
                now += dt;
                let _ = policy.try_acquire(cost, now);
            }
        }
        let before = (policy.status(now), policy.check(&probe, now));
        if let Ok(r) = policy.reserve(&c, now) {
            policy.cancel(r, now);
        }
        prop_assert_eq!(before, (policy.status(now), policy.check(&probe, now)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::cases()))]

    /// `try_take` decides and counts exactly like `try_acquire` followed by `release`.
    #[test]
    fn try_take_equals_try_acquire_then_release(s in setup(), ops in ops()) {
        let s = Setup { concurrency: None, ..s };
        let (mut a, mut b) = (s.build(), s.build());
        let mut now = 10_000u64;
        for op in &ops {
            if let Op::Try { dt, cost } = op {
                now += dt;
                let took = a.try_take(cost, now);
                let acquired = b.try_acquire(cost, now).map(|r| b.release(r));
                prop_assert_eq!(took, acquired);
                if let Err(Rejection::RateLimited { retry_after, .. }) = took {
                    waiting_it_out_is_enough(&a, cost, now + retry_after)?;
                }
                prop_assert_eq!(a.status(now), b.status(now));
            }
        }
    }
}
