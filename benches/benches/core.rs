//! Criterion benchmarks of `ratelimit-core` decisions, measured side by side with governor 0.10.
//!
//! Convention read by `cargo xtask bench`: each criterion *group* compares implementations of one
//! task; the function id `ours` is this project's implementation and every other function id in
//! the group is a peer (`governor`, `governor_single`). Groups with only `ours` track our own
//! algorithms over time.
//!
//! Clocks: ours takes `now` as an argument, so its "fake clock" is a plain `u64` advanced by a
//! fixed step per decision. Governor reads its own `FakeRelativeClock` (an `Arc<AtomicU64>`),
//! advanced by the same step with `clock.advance(..)` inside the timed closure. Each governor
//! iteration therefore also pays one atomic compare-and-swap for the clock step; that is the cost
//! of driving governor with a manual clock, and it is part of what `governor` measures here.
//!
//! Results: each decision's result is passed to `black_box` by reference, so it must be computed
//! and written out, but it is not copied. Passed by value, a result returned through memory (ours
//! are up to 64 bytes, governor's 40) is copied right after the call that wrote part of it, and
//! that copy waits for the write (a failed store-to-load forwarding): a few nanoseconds that
//! belong to the harness, not to the decision, and that fall on whichever side the compiler did
//! not inline.
//!
//! Every scenario is checked before it is measured (`assert!` on a dry run), so a change that
//! makes an "always allowed" group start denying (or the reverse) fails the bench instead of
//! silently measuring something else.
//!
//! Run: `cargo bench -p ratelimit-benches` (about 110 s: 20 functions, 1 s warm-up and 3 s of
//! measurement each; plots are off), `cargo bench -p ratelimit-benches -- --quick` for a fast look,
//! `cargo bench -p ratelimit-benches -- policy_` to filter, and
//! `cargo test -p ratelimit-benches --benches` to run every scenario once as a test.
//!
//! Instruction counts: wall time on a shared VM moves by tens of percent between runs, instruction
//! counts do not. With `RATELIMIT_BENCH_COUNT=<group>/<function>:<iterations>` the binary skips
//! criterion and runs that one routine (the very closure criterion times) `iterations` times. Run
//! it under valgrind twice with different counts; the difference of the two totals divided by the
//! difference of the counts is the cost of one decision, setup excluded:
//!
//! ```text
//! RATELIMIT_BENCH_COUNT=policy_rpm_tpm/ours:1000000 \
//!     valgrind --tool=cachegrind --cache-sim=no target/release/deps/core-<hash>
//! ```
//!
//! Interleaved timing: criterion times one function after the other, so a neighbour's build that
//! starts halfway through a group skews its ratios. With
//! `RATELIMIT_BENCH_INTERLEAVE=<group prefix>[:<rounds>]` the binary instead builds every routine
//! of the matching groups and times them in turns (about half a millisecond each, 200 rounds by
//! default), so that load falls on all of them alike, and prints each one's median time per
//! decision and its ratio to `ours`.
#![allow(missing_docs)]

use core::fmt::Write as _;
use core::num::NonZeroU32;
use std::hint::black_box;
use std::io::Write as _;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use governor::clock::{Clock as _, FakeRelativeClock};
use governor::{Quota as GQuota, RateLimiter};
use ratelimit_core::algorithm::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Quota, SlidingWindowCounter, SlidingWindowLog,
    TakeError,
};
use ratelimit_core::time::NANOS_PER_SEC;
use ratelimit_core::{Cost, Nanos, Policy, Rejection};

/// Single-dimension rate for the allowed groups: one unit per microsecond.
const RATE_PER_SEC: u32 = 1_000_000;
/// Clock step per decision for the allowed groups: exactly one emission interval, so a GCRA at
/// `RATE_PER_SEC` admits every decision forever (both ours and governor's).
const STEP_NS: u64 = NANOS_PER_SEC / RATE_PER_SEC as u64;
/// Units per decision in `check_n_allowed`.
const N: u32 = 10;

/// Input and output tokens of one request in the policy groups (100 tokens per request).
const INPUT_TOKENS: u64 = 80;
const OUTPUT_TOKENS: u64 = 20;
const TOKENS_PER_REQUEST: u32 = (INPUT_TOKENS + OUTPUT_TOKENS) as u32;

/// Algorithm groups: 100 units per 100 us window (one per microsecond, `ALGO_INTERVAL`), decisions
/// offered every 950 ns, so about 95% are allowed in steady state and the sliding log holds about
/// 100 entries.
const ALGO_AMOUNT: u64 = 100;
const ALGO_WINDOW: Nanos = 100_000;
const ALGO_INTERVAL: Nanos = ALGO_WINDOW / ALGO_AMOUNT;
const ALGO_STEP: Nanos = 950;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("benchmark constants are non-zero")
}

/// Where the scenarios go: to criterion, to the instruction-count driver, or to the interleaved
/// timer.
enum Harness<'c> {
    Criterion(&'c mut Criterion),
    /// Run only the routine `group/function`, `iterations` times.
    Count {
        target: String,
        iterations: u64,
        found: bool,
    },
    /// Time the routines of every group whose name starts with `prefix`, in turns.
    Interleave {
        prefix: String,
        rounds: usize,
        found: bool,
    },
}

impl Harness<'_> {
    fn group(&mut self, name: &'static str) -> Group<'_> {
        match self {
            Harness::Criterion(c) => {
                let mut group = c.benchmark_group(name);
                group.warm_up_time(Duration::from_secs(1));
                group.measurement_time(Duration::from_secs(3));
                Group::Criterion(group)
            }
            Harness::Count {
                target,
                iterations,
                found,
            } => Group::Count {
                name,
                target,
                iterations: *iterations,
                found,
            },
            Harness::Interleave {
                prefix,
                rounds,
                found,
            } => {
                let wanted = name.starts_with(prefix.as_str());
                *found |= wanted;
                Group::Interleave {
                    name,
                    wanted,
                    rounds: *rounds,
                    routines: Vec::new(),
                }
            }
        }
    }
}

/// Runs a routine `k` times and says how long that took.
type Slice<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// One criterion group, or the part of the count driver that may hold its target, or the routines
/// the interleaved timer collects.
enum Group<'a> {
    Criterion(BenchmarkGroup<'a, WallTime>),
    Count {
        name: &'static str,
        target: &'a str,
        iterations: u64,
        found: &'a mut bool,
    },
    Interleave {
        name: &'static str,
        wanted: bool,
        rounds: usize,
        routines: Vec<(String, Slice<'a>)>,
    },
}

impl<'a> Group<'a> {
    /// Times the routine that `make` builds (fresh state for each of criterion's runs): one call
    /// is one decision. Its result is kept observable where it was written (`black_box` of a
    /// reference, see the module docs), never copied.
    fn bench<O, R: FnMut() -> O + 'a>(&mut self, id: &str, make: impl Fn() -> R) {
        match self {
            Group::Criterion(group) => {
                group.bench_function(id, |b| {
                    let mut routine = make();
                    b.iter(|| {
                        black_box(&routine());
                    });
                });
            }
            Group::Count {
                name,
                target,
                iterations,
                found,
            } => {
                if target.strip_prefix(*name).and_then(|r| r.strip_prefix('/')) == Some(id) {
                    **found = true;
                    let mut routine = make();
                    for _ in 0..*iterations {
                        black_box(&routine());
                    }
                }
            }
            Group::Interleave {
                wanted, routines, ..
            } => {
                if *wanted {
                    let mut routine = make();
                    let slice = move |k: u64| {
                        let start = Instant::now();
                        for _ in 0..k {
                            black_box(&routine());
                        }
                        start.elapsed()
                    };
                    routines.push((id.to_owned(), Box::new(slice)));
                }
            }
        }
    }

    fn finish(self) {
        match self {
            Group::Criterion(group) => group.finish(),
            Group::Count { .. } => {}
            Group::Interleave {
                name,
                rounds,
                mut routines,
                ..
            } => interleave(name, rounds, &mut routines),
        }
    }
}

/// Times `routines` in turns, `rounds` times, about half a millisecond each, and prints each one's
/// median time per call and its ratio to `ours`.
fn interleave(group: &str, rounds: usize, routines: &mut [(String, Slice<'_>)]) {
    let rounds = rounds.max(1);
    if routines.is_empty() {
        return;
    }
    // Calls per turn: about 0.5 ms of each routine, from a first run of 10,000 calls.
    let calls: Vec<u64> = routines
        .iter_mut()
        .map(|(_, run)| {
            let ns = run(10_000).as_nanos().max(1);
            u64::try_from(5_000_000_000 / ns).unwrap_or(u64::MAX).max(1)
        })
        .collect();
    let mut ns_per_call = vec![Vec::with_capacity(rounds); routines.len()];
    for _ in 0..rounds {
        for ((_, run), (k, samples)) in routines.iter_mut().zip(calls.iter().zip(&mut ns_per_call))
        {
            samples.push(run(*k).as_nanos() as f64 / *k as f64);
        }
    }
    let medians: Vec<f64> = ns_per_call
        .iter_mut()
        .map(|samples| {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        })
        .collect();
    let ours = routines
        .iter()
        .position(|(id, _)| id == "ours")
        .map(|i| medians[i]);
    let mut out = String::new();
    let _ = writeln!(out, "{group} ({rounds} rounds, median ns per decision)");
    for ((id, _), median) in routines.iter().zip(&medians) {
        let _ = match ours {
            Some(ours) if id != "ours" => writeln!(
                out,
                "  {id:<16} {median:8.2}   ours / {id}: {:.2}x",
                ours / median
            ),
            _ => writeln!(out, "  {id:<16} {median:8.2}"),
        };
    }
    // A closed pipe (`| head`) is not worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
}

/// Governor's direct (un-keyed, in-memory) limiter driven by its fake clock.
type GovernorDirect = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    FakeRelativeClock,
    governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
>;

fn governor_direct(quota: GQuota) -> (GovernorDirect, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (RateLimiter::direct_with_clock(quota, clock.clone()), clock)
}

/// Our GCRA at `RATE_PER_SEC` with a burst of one second's worth.
fn our_gcra() -> Gcra {
    Gcra::new(Quota::per_second(u64::from(RATE_PER_SEC)).expect("valid quota"))
}

/// Task 1: one unit per decision, always allowed, the clock advancing one emission interval per
/// decision.
fn single_dim_allowed(h: &mut Harness<'_>) {
    let step = Duration::from_nanos(STEP_NS);

    // Dry run: both must allow every decision at this rate and step.
    {
        let mut g = our_gcra();
        let (lim, clock) = governor_direct(GQuota::per_second(nz(RATE_PER_SEC)));
        let mut now = 0;
        for _ in 0..100_000 {
            now += STEP_NS;
            clock.advance(step);
            assert!(g.try_take(1, now).is_ok(), "ours must allow");
            assert!(lim.check().is_ok(), "governor must allow");
        }
    }

    let mut group = h.group("single_dim_allowed_fake_clock");
    group.bench("ours", || {
        let mut g = our_gcra();
        let mut now: Nanos = 0;
        move || {
            now += STEP_NS;
            g.try_take(black_box(1), black_box(now))
        }
    });
    bench_governor_check(&mut group, "governor");
    group.finish();

    // Same decision through `&self`: ours behind an uncontended mutex, as a limiter shared between
    // threads must be; governor's limiter is already `&self` (an atomic compare-and-swap).
    let mut group = h.group("single_dim_allowed_shared");
    group.bench("ours", || {
        let g = Mutex::new(our_gcra());
        let mut now: Nanos = 0;
        move || {
            now += STEP_NS;
            g.lock()
                .expect("never poisoned")
                .try_take(black_box(1), black_box(now))
        }
    });
    bench_governor_check(&mut group, "governor");
    group.finish();
}

/// Task 2: both limiters exhausted, clock standing still: every decision is denied with its wait.
fn single_dim_denied(h: &mut Harness<'_>) {
    const RATE: u32 = 1_000;
    let exhausted_ours = || {
        let mut g = Gcra::new(Quota::per_second(u64::from(RATE)).expect("valid quota"));
        for _ in 0..RATE {
            g.try_take(1, 0).expect("burst is RATE");
        }
        g
    };
    let exhausted_governor = || {
        let (lim, clock) = governor_direct(GQuota::per_second(nz(RATE)));
        for _ in 0..RATE {
            lim.check().expect("burst is RATE");
        }
        (lim, clock)
    };

    // Dry run: both deny, with the same wait (one emission interval).
    {
        let mut g = exhausted_ours();
        let (lim, clock) = exhausted_governor();
        let Err(TakeError::Wait { retry_after }) = g.try_take(1, 0) else {
            panic!("ours must deny")
        };
        let wait = lim
            .check()
            .expect_err("governor must deny")
            .wait_time_from(clock.now());
        assert_eq!(Duration::from_nanos(retry_after), wait);
    }

    let mut group = h.group("single_dim_denied_fake_clock");
    group.bench("ours", || {
        let mut g = exhausted_ours();
        let now: Nanos = 0;
        move || match g.try_take(black_box(1), black_box(now)) {
            Err(TakeError::Wait { retry_after }) => retry_after,
            _ => 0,
        }
    });
    group.bench("governor", || {
        let (lim, clock) = exhausted_governor();
        move || match lim.check() {
            Err(not_until) => not_until.wait_time_from(clock.now()),
            Ok(()) => Duration::ZERO,
        }
    });
    group.finish();
}

/// Task 3: `N` units per decision, always allowed.
fn check_n_allowed(h: &mut Harness<'_>) {
    let step_ns = STEP_NS * u64::from(N);
    let step = Duration::from_nanos(step_ns);
    {
        let mut g = our_gcra();
        let (lim, clock) = governor_direct(GQuota::per_second(nz(RATE_PER_SEC)));
        let mut now = 0;
        for _ in 0..100_000 {
            now += step_ns;
            clock.advance(step);
            assert!(g.try_take(u64::from(N), now).is_ok(), "ours must allow");
            assert!(
                matches!(lim.check_n(nz(N)), Ok(Ok(()))),
                "governor must allow"
            );
        }
    }

    let mut group = h.group("check_n_allowed");
    group.bench("ours", || {
        let mut g = our_gcra();
        let mut now: Nanos = 0;
        move || {
            now += step_ns;
            g.try_take(black_box(u64::from(N)), black_box(now))
        }
    });
    group.bench("governor", || {
        let (lim, clock) = governor_direct(GQuota::per_second(nz(RATE_PER_SEC)));
        let n = nz(N);
        move || {
            clock.advance(black_box(step));
            lim.check_n(black_box(n))
        }
    });
    group.finish();
}

/// Runs `alg` for `steps` decisions, one every `step` ns after `now`; returns the new `now` and
/// how many were allowed.
fn run_algo<A: Algorithm>(alg: &mut A, mut now: Nanos, step: Nanos, steps: u32) -> (Nanos, u32) {
    let mut allowed = 0;
    for _ in 0..steps {
        now += step;
        allowed += u32::from(alg.try_take(1, now).is_ok());
    }
    (now, allowed)
}

/// Task 4: one of our algorithms alone, in steady state, one decision every `step` ns.
///
/// `allowed_per_10k` is the checked share of allowed decisions in steady state.
fn bench_algo<A: Algorithm + Clone>(
    h: &mut Harness<'_>,
    group_name: &'static str,
    fresh: A,
    step: Nanos,
    allowed_per_10k: RangeInclusive<u32>,
) -> A {
    // Reach steady state, then check the mix on a copy.
    let mut alg = fresh;
    let (now, _) = run_algo(&mut alg, 0, step, 10_000);
    let (_, allowed) = run_algo(&mut alg.clone(), now, step, 10_000);
    assert!(
        allowed_per_10k.contains(&allowed),
        "{group_name}: expected {allowed_per_10k:?} of 10000 decisions allowed, got {allowed}"
    );

    let mut group = h.group(group_name);
    group.bench("ours", || {
        let mut alg = alg.clone();
        let mut now = now;
        move || {
            now += step;
            alg.try_take(black_box(1), black_box(now))
        }
    });
    group.finish();
    alg
}

fn algorithms(h: &mut Harness<'_>) {
    let quota = Quota::new(ALGO_AMOUNT, ALGO_WINDOW).expect("valid quota");
    // Offered 1/0.95 times the rate: about 95% allowed, the rest denied with a wait.
    let mostly = 9_400..=9_600;
    bench_algo(h, "algo_gcra", Gcra::new(quota), ALGO_STEP, mostly.clone());
    // A leaky bucket has no burst: offered faster than its rate, it admits only one decision in
    // two at this step. Offered exactly at its rate, it admits every one.
    bench_algo(
        h,
        "algo_leaky_bucket",
        LeakyBucket::new(quota),
        ALGO_INTERVAL,
        10_000..=10_000,
    );
    let log = bench_algo(
        h,
        "algo_sliding_window_log",
        SlidingWindowLog::new(quota),
        ALGO_STEP,
        mostly.clone(),
    );
    // The log's cost depends on how many entries the window holds: about `ALGO_AMOUNT` here.
    assert!(
        (95..=105).contains(&log.len()),
        "the sliding log should hold about {ALGO_AMOUNT} entries in steady state, holds {}",
        log.len()
    );
    bench_algo(
        h,
        "algo_sliding_window_counter",
        SlidingWindowCounter::new(quota),
        ALGO_STEP,
        mostly.clone(),
    );
    bench_algo(
        h,
        "algo_fixed_window",
        FixedWindow::new(quota),
        ALGO_STEP,
        mostly,
    );
}

/// RPM and TPM at `RATE_PER_SEC` requests (and 100 tokens per request) per second.
fn our_policy(requests_per_sec: u64) -> Policy {
    Policy::builder()
        .requests_per_minute(requests_per_sec * 60)
        .tokens_per_minute(requests_per_sec * 60 * u64::from(TOKENS_PER_REQUEST))
        .build()
        .expect("valid policy")
}

/// Governor's single `check()` on a fake clock advancing one step per decision.
fn bench_governor_check(group: &mut Group<'_>, id: &str) {
    let step = Duration::from_nanos(STEP_NS);
    group.bench(id, || {
        let (lim, clock) = governor_direct(GQuota::per_second(nz(RATE_PER_SEC)));
        move || {
            clock.advance(black_box(step));
            lim.check()
        }
    });
}

/// Governor doing the RPM + TPM job: one limiter per request, one per token, on one fake clock.
fn governor_pair() -> (GovernorDirect, GovernorDirect, FakeRelativeClock) {
    let (requests, clock) = governor_direct(GQuota::per_second(nz(RATE_PER_SEC)));
    let tokens = RateLimiter::direct_with_clock(
        GQuota::per_second(nz(RATE_PER_SEC * TOKENS_PER_REQUEST)),
        clock.clone(),
    );
    (requests, tokens, clock)
}

/// The `governor` row of the RPM + TPM groups: `check()` then `check_n(tokens)`.
fn bench_governor_pair(group: &mut Group<'_>) {
    let step = Duration::from_nanos(STEP_NS);
    group.bench("governor", || {
        let (requests, tokens, clock) = governor_pair();
        let n = nz(TOKENS_PER_REQUEST);
        move || {
            clock.advance(black_box(step));
            requests.check().is_ok() && matches!(tokens.check_n(black_box(n)), Ok(Ok(())))
        }
    });
}

/// Task 5: the two-dimension RPM + TPM decision, always allowed.
///
/// `policy_rpm_tpm` is the like-for-like decision: ours takes now or refuses with `try_take`,
/// nothing to settle later (governor's `check` has no permit either).
/// `policy_rpm_tpm_with_reservation` is what a caller that later adjusts to the actual usage does
/// per request: ours acquires a reservation and releases it at once (`Reservation` is `#[must_use]`:
/// it holds concurrency slots when the policy has a concurrency limit, and `release` without one
/// is a no-op apart from consuming the value).
///
/// `governor` does the same job with two direct limiters (one per request, one per token):
/// `check()` then `check_n(tokens)`. Unlike ours it is not all-or-nothing (a request unit is spent
/// even when the token check fails). `governor_single` is one `check()`, the issue's yardstick: the
/// RPM + TPM decision should be within 1.5x of it.
fn policy_rpm_tpm(h: &mut Harness<'_>) {
    let step = Duration::from_nanos(STEP_NS);
    let cost = Cost::request(INPUT_TOKENS, OUTPUT_TOKENS);
    {
        let mut policy = our_policy(u64::from(RATE_PER_SEC));
        let mut taker = our_policy(u64::from(RATE_PER_SEC));
        let (requests, tokens, clock) = governor_pair();
        let mut now = 0;
        for _ in 0..100_000 {
            now += STEP_NS;
            clock.advance(step);
            let r = policy.try_acquire(&cost, now).expect("ours must allow");
            policy.release(r);
            assert!(taker.try_take(&cost, now).is_ok(), "ours must allow");
            assert!(requests.check().is_ok(), "governor must allow requests");
            assert!(
                matches!(tokens.check_n(nz(TOKENS_PER_REQUEST)), Ok(Ok(()))),
                "governor must allow tokens"
            );
        }
    }

    let mut group = h.group("policy_rpm_tpm");
    group.bench("ours", || {
        let mut policy = our_policy(u64::from(RATE_PER_SEC));
        let mut now: Nanos = 0;
        move || {
            now += STEP_NS;
            policy.try_take(black_box(&cost), black_box(now))
        }
    });
    bench_governor_pair(&mut group);
    bench_governor_check(&mut group, "governor_single");
    group.finish();

    // Governor has no equivalent of a reservation; its two-limiter check is shown for scale.
    let mut group = h.group("policy_rpm_tpm_with_reservation");
    group.bench("ours", || {
        let mut policy = our_policy(u64::from(RATE_PER_SEC));
        let mut now: Nanos = 0;
        move || {
            now += STEP_NS;
            match policy.try_acquire(black_box(&cost), black_box(now)) {
                Ok(reservation) => {
                    black_box(reservation.ready_at());
                    policy.release(reservation);
                }
                Err(rejection) => {
                    black_box(rejection);
                }
            }
        }
    });
    bench_governor_pair(&mut group);
    group.finish();
}

/// Task 6: the RPM + TPM policy exhausted (a minute's burst of requests, and so of tokens, spent at
/// `now = 0`), clock standing still: every decision is a cheap `Rejection::RateLimited` carrying
/// the wait.
///
/// `governor` runs the same two-limiter code as in `policy_rpm_tpm`; its request limiter denies,
/// so the token limiter is never consulted (and its wait is the request limiter's alone, whereas
/// ours is the wait after which *every* limit admits the request).
fn policy_denied_rpm_tpm(h: &mut Harness<'_>) {
    const REQUESTS_PER_SEC: u32 = 1_000;
    let cost = Cost::request(INPUT_TOKENS, OUTPUT_TOKENS);
    let exhausted_ours = || {
        let mut policy = our_policy(u64::from(REQUESTS_PER_SEC));
        // The request burst is one minute's worth.
        for _ in 0..REQUESTS_PER_SEC * 60 {
            let r = policy.try_acquire(&cost, 0).expect("within the burst");
            policy.release(r);
        }
        policy
    };
    let exhausted_governor = || {
        let (requests, clock) = governor_direct(GQuota::per_second(nz(REQUESTS_PER_SEC)));
        let tokens = RateLimiter::direct_with_clock(
            GQuota::per_second(nz(REQUESTS_PER_SEC * TOKENS_PER_REQUEST)),
            clock.clone(),
        );
        for _ in 0..REQUESTS_PER_SEC {
            requests.check().expect("within the burst");
        }
        (requests, tokens, clock)
    };
    {
        let mut policy = exhausted_ours();
        assert!(matches!(
            policy.try_acquire(&cost, 0),
            Err(Rejection::RateLimited { .. })
        ));
        let (requests, _, _) = exhausted_governor();
        assert!(requests.check().is_err());
    }

    let mut group = h.group("policy_denied_rpm_tpm");
    group.bench("ours", || {
        let mut policy = exhausted_ours();
        let now: Nanos = 0;
        move || match policy.try_acquire(black_box(&cost), black_box(now)) {
            Ok(reservation) => {
                policy.release(reservation);
                None
            }
            Err(rejection) => rejection.retry_after(),
        }
    });
    group.bench("governor", || {
        let (requests, tokens, clock) = exhausted_governor();
        let n = nz(TOKENS_PER_REQUEST);
        move || match requests.check() {
            Err(not_until) => not_until.wait_time_from(clock.now()),
            Ok(()) => match tokens.check_n(black_box(n)) {
                Ok(Err(not_until)) => not_until.wait_time_from(clock.now()),
                _ => Duration::ZERO,
            },
        }
    });
    group.finish();
}

fn all(h: &mut Harness<'_>) {
    single_dim_allowed(h);
    single_dim_denied(h);
    check_n_allowed(h);
    algorithms(h);
    policy_rpm_tpm(h);
    policy_denied_rpm_tpm(h);
}

fn main() {
    if let Ok(spec) = std::env::var("RATELIMIT_BENCH_INTERLEAVE") {
        let (prefix, rounds) = match spec.rsplit_once(':') {
            Some((prefix, rounds)) => (
                prefix.to_owned(),
                rounds
                    .parse()
                    .expect("RATELIMIT_BENCH_INTERLEAVE is <group prefix>[:<rounds>]"),
            ),
            None => (spec, 200),
        };
        let mut h = Harness::Interleave {
            prefix,
            rounds,
            found: false,
        };
        all(&mut h);
        if let Harness::Interleave { prefix, found, .. } = h {
            assert!(found, "no group starts with {prefix}");
        }
        return;
    }
    if let Ok(spec) = std::env::var("RATELIMIT_BENCH_COUNT") {
        let (target, iterations) = spec
            .rsplit_once(':')
            .and_then(|(t, n)| Some((t.to_owned(), n.parse().ok()?)))
            .expect("RATELIMIT_BENCH_COUNT is <group>/<function>:<iterations>");
        let mut h = Harness::Count {
            target,
            iterations,
            found: false,
        };
        all(&mut h);
        if let Harness::Count { target, found, .. } = h {
            assert!(found, "no routine named {target}");
        }
        return;
    }
    // What `criterion_group!` and `criterion_main!` would generate. `cargo xtask bench` reads only
    // `estimates.json`; the HTML plots would triple the run time.
    let mut c = Criterion::default().without_plots().configure_from_args();
    all(&mut Harness::Criterion(&mut c));
    c.final_summary();
}
