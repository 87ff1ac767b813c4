//! GCRA and the leaky bucket against the bucket and spacing models.

use proptest::prelude::*;
use ratelimit_core::algorithm::{Algorithm, Gcra, LeakyBucket, Quota, TakeError, Ticket};

use crate::model::{Grant, bucket_earliest, bucket_history_conforms, spacing_earliest};

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Take {
        dt: u64,
        n: u64,
    },
    Reserve {
        dt: u64,
        n: u64,
    },
    /// Refund the most recent grant down to `percent` of what it holds.
    RefundLatest {
        percent: u64,
    },
    /// Adjust any earlier grant (by index modulo the count) to `percent` of it, up to 300%.
    Adjust {
        index: usize,
        percent: u64,
    },
    ClockBack {
        by: u64,
    },
}

pub(crate) fn ops(max_n: u64, max_dt: u64, adjust_any: bool) -> impl Strategy<Value = Vec<Op>> {
    let take = (0..=max_dt, 0..=max_n + 2).prop_map(|(dt, n)| Op::Take { dt, n });
    let reserve = (0..=max_dt, 0..=max_n + 1).prop_map(|(dt, n)| Op::Reserve { dt, n });
    let refund = (0..=100u64).prop_map(|percent| Op::RefundLatest { percent });
    let adjust =
        (any::<usize>(), 0..=300u64).prop_map(|(index, percent)| Op::Adjust { index, percent });
    let back = (0..=max_dt).prop_map(|by| Op::ClockBack { by });
    let op = if adjust_any {
        prop_oneof![6 => take, 2 => reserve, 1 => refund, 3 => adjust, 1 => back].boxed()
    } else {
        prop_oneof![6 => take, 2 => reserve, 2 => refund, 1 => back].boxed()
    };
    proptest::collection::vec(op, 1..60)
}

/// Quota: amount, window (ns), burst.
fn quota() -> impl Strategy<Value = (u64, u64, u64)> {
    (1..=20u64, 1..=5_000u64).prop_flat_map(|(a, w)| (Just(a), Just(w), 1..=2 * a + 3))
}

/// Runs `ops` against an algorithm and a model that says when `n` fits. With `exact`, every answer
/// must equal the model's; otherwise every grant must merely conform (`conforms`).
fn run<A: Algorithm + Clone>(
    mut alg: A,
    ops: &[Op],
    max_cost: u64,
    exact: bool,
    earliest: impl Fn(&[Grant], u64, u64) -> u64,
    conforms: impl Fn(&[Grant]) -> Result<(), String>,
) -> Result<(), TestCaseError> {
    let mut now = 1_000_000u64;
    let mut hist: Vec<Grant> = Vec::new();
    let mut tickets: Vec<Ticket> = Vec::new();
    let mut latest_is_last_grant = false;
    for op in ops {
        let horizon = hist.last().map_or(0, |g| g.t);
        match *op {
            Op::Take { dt, n } => {
                now += dt;
                let got = alg.try_take(n, now);
                if n > max_cost {
                    prop_assert!(
                        matches!(got, Err(TakeError::TooLarge(_))),
                        "oversized must be refused: {got:?}"
                    );
                    continue;
                }
                let e = earliest(&hist, n, now.max(horizon));
                match got {
                    Ok(ticket) => {
                        if exact {
                            prop_assert_eq!(
                                e,
                                now,
                                "granted {} at {} but the model says {}",
                                n,
                                now,
                                e
                            );
                        }
                        hist.push(Grant { t: now, n });
                        tickets.push(ticket);
                        latest_is_last_grant = true;
                        conforms(&hist).map_err(TestCaseError::fail)?;
                    }
                    Err(TakeError::Wait { retry_after }) => {
                        prop_assert!(retry_after > 0);
                        if exact {
                            prop_assert_eq!(
                                now + retry_after,
                                e,
                                "retry-after disagrees with the model"
                            );
                        }
                        // Waiting it out is enough, a nanosecond less is not.
                        prop_assert!(alg.clone().try_take(n, now + retry_after).is_ok());
                        prop_assert!(alg.clone().try_take(n, now + retry_after - 1).is_err());
                    }
                    Err(TakeError::TooLarge(e)) => {
                        prop_assert!(false, "{n} <= {max_cost} refused as too large: {e}")
                    }
                }
            }
            Op::Reserve { dt, n } => {
                now += dt;
                let got = alg.reserve(n, now);
                if n > max_cost {
                    prop_assert!(got.is_err());
                    continue;
                }
                let ticket = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
                if exact {
                    prop_assert_eq!(ticket.granted_at(), earliest(&hist, n, now.max(horizon)));
                }
                prop_assert!(ticket.granted_at() >= now.max(horizon));
                hist.push(Grant {
                    t: ticket.granted_at(),
                    n,
                });
                tickets.push(ticket);
                latest_is_last_grant = true;
                conforms(&hist).map_err(TestCaseError::fail)?;
            }
            Op::RefundLatest { percent } => {
                if latest_is_last_grant {
                    let (ticket, grant) = (tickets.last_mut().unwrap(), hist.last_mut().unwrap());
                    let actual = ticket.amount() * percent / 100;
                    alg.adjust(ticket, actual, now);
                    grant.n = actual;
                    prop_assert_eq!(ticket.amount(), actual);
                }
            }
            Op::Adjust { index, percent } => {
                if !tickets.is_empty() {
                    let i = index % tickets.len();
                    let actual = tickets[i].amount() * percent / 100;
                    alg.adjust(&mut tickets[i], actual, now);
                    hist[i].n = actual;
                    latest_is_last_grant = false;
                }
            }
            Op::ClockBack { by } => now = now.saturating_sub(by),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::cases()))]

    /// GCRA grants exactly what the bucket constraint allows, with exact retry-after, through
    /// reservations, refunds of the latest grant and a clock that steps backwards.
    #[test]
    fn gcra_is_exactly_the_bucket_model((amount, window, burst) in quota(), ops in ops(45, 3_000, false)) {
        let q = Quota::new(amount, window).unwrap().with_burst(burst).unwrap();
        run(Gcra::new(q), &ops, burst, true,
            |h, n, from| bucket_earliest(h, n, from, amount, window, burst),
            |h| bucket_history_conforms(h, amount, window, burst))?;
    }

    /// Whatever is refunded or charged, and on which grant, GCRA never grants beyond the bucket
    /// constraint applied to the adjusted history.
    #[test]
    fn gcra_stays_within_the_bucket_under_any_adjustment((amount, window, burst) in quota(), ops in ops(45, 3_000, true)) {
        let q = Quota::new(amount, window).unwrap().with_burst(burst).unwrap();
        run(Gcra::new(q), &ops, burst, false,
            |h, n, from| bucket_earliest(h, n, from, amount, window, burst),
            |h| bucket_history_conforms(h, amount, window, burst))?;
    }

    /// The same with the realistic scale of an LLM limit: minutes and hundreds of thousands of
    /// tokens, where the emission interval is not a whole number of nanoseconds.
    #[test]
    fn gcra_is_exact_at_llm_scale(
        amount in 1_000..=2_000_000u64,
        burst_pct in 1..=200u64,
        ops in ops(50_000, 5_000_000_000, false),
    ) {
        let window = 60_000_000_000;
        let burst = (amount * burst_pct / 100).max(1);
        let q = Quota::new(amount, window).unwrap().with_burst(burst).unwrap();
        run(Gcra::new(q), &ops, burst, true,
            |h, n, from| bucket_earliest(h, n, from, amount, window, burst),
            |h| bucket_history_conforms(h, amount, window, burst))?;
    }

    /// The leaky bucket spaces work exactly: a request starts once all earlier work has drained.
    #[test]
    fn leaky_bucket_is_exactly_the_spacing_model((amount, window, burst) in quota(), ops in ops(45, 3_000, false)) {
        let q = Quota::new(amount, window).unwrap().with_burst(burst).unwrap();
        run(LeakyBucket::new(q), &ops, burst, true,
            |h, _n, from| spacing_earliest(h, from, amount, window),
            |h| {
                for k in 0..h.len() {
                    let e = spacing_earliest(&h[..k], h[k].t, amount, window);
                    if e > h[k].t { return Err(format!("grant {k} started before earlier work drained")); }
                }
                Ok(())
            })?;
    }

    /// Giving back the latest grant restores the state exactly: same remaining, same answers.
    #[test]
    fn gcra_give_back_balances_the_books((amount, window, burst) in quota(), ops in ops(45, 3_000, false), n in 0..=45u64, probe in 0..=20u64) {
        let probe = probe.min(burst);
        let q = Quota::new(amount, window).unwrap().with_burst(burst).unwrap();
        let mut g = Gcra::new(q);
        let mut now = 1_000_000u64;
        for op in &ops {
            if let Op::Take { dt, n } = *op { now += dt; let _ = g.try_take(n, now); }
        }
        let (peek, earliest) = (g.peek(now), g.earliest(probe, now).unwrap());
        if let Ok(ticket) = g.reserve(n, now) {
            g.give_back(ticket, now);
        }
        prop_assert_eq!(peek, g.peek(now));
        prop_assert_eq!(earliest, g.earliest(probe, now).unwrap());
    }

    /// Changing the quota at runtime never hands out a fresh burst: right after the change, the
    /// units still outstanding are exactly those of before, re-expressed at the new rate.
    #[test]
    fn gcra_runtime_change_keeps_usage((amount, window, burst) in quota(), (a2, b2) in (1..=20u64, 1..=40u64), used in 0..=40u64) {
        let q = Quota::new(amount, window).unwrap().with_burst(burst).unwrap();
        let mut g = Gcra::new(q);
        let used = used.min(burst);
        g.try_take(used, 0).unwrap();
        g.set_quota(Quota::new(a2, window).unwrap().with_burst(b2).unwrap(), 0);
        prop_assert_eq!(g.peek(0).remaining, b2.saturating_sub(used));
    }
}
