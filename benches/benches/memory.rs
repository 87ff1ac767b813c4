//! Criterion benchmarks of `ratelimit-memory` (the in-process limiter) against governor 0.10 and
//! leaky-bucket 1.1.
//!
//! Convention read by `cargo xtask bench`: each criterion *group* compares implementations of one
//! task; the function id `ours` is this project's implementation and every other function id in
//! the group is a peer (`governor`, `governor_monotonic`, `leaky-bucket`). Groups with only `ours`
//! track our own machinery over time.
//!
//! Groups:
//! - `memory_try_take_uncontended`: "take one now" on a shared limiter with a real clock, always
//!   allowed. Ours is `MemoryLimiter::try_take` on [`QuantaClock`] (the CPU's TSC through quanta).
//!   `governor` is a direct limiter on its default clock (quanta too: the same clock);
//!   `governor_monotonic` the same on `MonotonicClock` (`std::time::Instant`).
//!   `leaky-bucket` is `try_acquire(1)` with the default builder settings, which are *fair*: a fair
//!   limiter skips its lock-free fast path and takes its lock and reads the clock (tokio's
//!   `Instant`) on every call, as ours does.
//! - `memory_try_take_std_clock`: the same on `std::time::Instant` for both: ours on
//!   [`SystemClock`], `governor` on its `MonotonicClock`.
//! - `memory_try_acquire_permit`: ours only, the async `Limiter::try_acquire` returning a `Permit`
//!   that is dropped at once, in a current-thread tokio runtime: the cost of the permit machinery
//!   (boxed future, boxed permit handle, stats, release) on top of `try_take`.
//! - `memory_10k_waiters`: ours only, 10,000 tasks queued on one limiter (current-thread runtime,
//!   reused), drained at 1,000,000 requests per second with a burst of 1; the time from opening the
//!   line to the last grant. The tasks join one at a time (each is in the line before the next is
//!   spawned) behind a gate request that would wait an hour; aborting the gate opens the line. The
//!   grant order is asserted to be the enqueue order (FIFO) on every iteration. Printed to stderr at
//!   the end: the overhead per grant, (measured - 10,000 / rate) / 10,000, the grant-to-grant gaps
//!   and the stalls (gaps over 500 us: a head that slept on tokio's millisecond timer).
//! - `keyed_decision_1m_keys`: one decision per call, cycling over 1,000,000 distinct `String` keys
//!   (`user-000000` ..), every key already present. Ours is `KeyedLimiter::try_take` (synchronous,
//!   no permit, on [`QuantaClock`]): lookup and decision. Governor is `RateLimiter::keyed`
//!   (DashMap, quanta clock) `check_key`. Per-key quota: 1 per minute with a burst of 10^8, so
//!   every decision is allowed and no key of ours becomes idle (and evictable) while the million
//!   keys are inserted.
//! - `keyed_decision_hot_key`: the same, always on one key, in fresh limiters (1,000,000,000 per
//!   second per key).
//! - `keyed_try_acquire_permit_hot_key`: ours only, the hot key through the async
//!   `Limiter::try_acquire` in a current-thread runtime: lookup, decision, a `Permit` that is
//!   dropped (what the client and gateway pay per key).
//!
//! Memory per key (not a criterion timing): before the groups, the bench inserts 1,000,000 keys
//! into a governor keyed limiter and into our `KeyedLimiter` (one-limit policy, and RPM + TPM),
//! counting the live heap bytes with a counting global allocator (requested sizes, so malloc's own
//! per-chunk overhead is not included). The caller's copy of each key is dropped after its
//! insertion, so only the limiter's copy counts. Ours runs on a frozen `ManualClock` so no key turns
//! idle and is evicted. The bytes per key are printed to stderr and written to
//! `target/criterion/memory_bytes_per_key.json`. `cargo test --benches` runs it with 10,000 keys
//! and writes nothing; `RATELIMIT_BENCH_BYTES_PER_KEY=0` skips it.
//!
//! Clocks are real everywhere (no fake clock): every decision of every implementation pays its own
//! clock read, as in production.
//!
//! Every scenario is checked before it is measured (`assert!` on a dry run).
//!
//! Run: `cargo bench -p ratelimit-benches --bench memory` (about 70 s on 2 cores once built; plots
//! are off), `cargo bench -p ratelimit-benches --bench memory -- keyed_` to filter, and
//! `cargo test -p ratelimit-benches --bench memory` to run every scenario once as a test.
#![allow(missing_docs)]

use core::num::NonZeroU32;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, OnceCell};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, measurement::WallTime};
use governor::clock::MonotonicClock;
use governor::{Quota as GQuota, RateLimiter};
use ratelimit_core::{Cost, Limit, ManualClock, Policy, Resource};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_memory::{KeyedConfig, KeyedLimiter, MemoryLimiter, QuantaClock, SystemClock};
use tokio::runtime::Runtime;

// ---------------------------------------------------------------------------------------------
// Counting allocator.

/// The system allocator, counting live bytes while [`COUNTING`] is on (one relaxed load per call
/// otherwise, so the timings are not perturbed).
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed while counting (signed: a block allocated before counting
/// started may be freed during it).
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

// The only unsafe code of the workspace: a `GlobalAlloc` cannot be written without it. Every call
// is forwarded unchanged to `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Live heap bytes counted since [`start_counting`].
fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn start_counting() {
    LIVE_BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
}

fn stop_counting() {
    COUNTING.store(false, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Shared settings.

/// Rate of the "always allowed" limiters: one unit per nanosecond, far above any call rate.
const HUGE_PER_SEC: u32 = 1_000_000_000;

/// Keys in the million-key groups and the bytes-per-key measurement (bench mode).
const MANY_KEYS: usize = 1_000_000;
/// The same in test mode (`cargo test --benches`), where the bench runs unoptimised.
const TEST_KEYS: usize = 10_000;

/// Per-key quota of the million-key group: 1 per minute, burst 10^8. Governor's burst tolerance is
/// `period * burst` in u64 nanoseconds, which this keeps far from overflow.
const KEYED_BURST: u32 = 100_000_000;

/// Waiters in `memory_10k_waiters` and the rate they are drained at.
const WAITERS: usize = 10_000;
const WAITER_RATE: u64 = 1_000_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("benchmark constants are non-zero")
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
}

/// Whether criterion runs in bench mode (`cargo bench` passes `--bench`); otherwise it runs each
/// function once as a test.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn key_count() -> usize {
    if bench_mode() { MANY_KEYS } else { TEST_KEYS }
}

fn key(i: usize) -> String {
    format!("user-{i:06}")
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One request per nanosecond (RPM 6e10): always allowed.
fn huge_policy() -> Policy {
    Policy::builder()
        .requests_per_minute(u64::from(HUGE_PER_SEC) * 60)
        .build()
        .expect("valid policy")
}

/// Ours on the same clock as governor's default.
fn ours_direct() -> MemoryLimiter {
    MemoryLimiter::with_clock(huge_policy(), Arc::new(QuantaClock::new()))
}

/// Ours on `std::time::Instant`.
fn ours_std_clock() -> MemoryLimiter {
    MemoryLimiter::with_clock(huge_policy(), Arc::new(SystemClock::new()))
}

fn leaky_bucket() -> leaky_bucket::RateLimiter {
    let huge = usize::MAX / 4;
    leaky_bucket::RateLimiter::builder()
        .max(huge)
        .initial(huge)
        .refill(huge)
        .interval(Duration::from_millis(1))
        .build()
}

// ---------------------------------------------------------------------------------------------
// 1. Uncontended "take one now".

fn try_take_uncontended(c: &mut Criterion) {
    // Dry run: every implementation allows every decision; leaky-bucket measures its default.
    {
        let ours = ours_direct();
        let gov = RateLimiter::direct(GQuota::per_second(nz(HUGE_PER_SEC)));
        let gov_mono =
            RateLimiter::direct_with_clock(GQuota::per_second(nz(HUGE_PER_SEC)), MonotonicClock);
        let lb = leaky_bucket();
        assert!(lb.is_fair(), "leaky-bucket's default is fair");
        for _ in 0..100_000 {
            assert!(ours.try_take(&Cost::ONE_REQUEST).is_ok(), "ours must allow");
            assert!(gov.check().is_ok(), "governor must allow");
            assert!(gov_mono.check().is_ok(), "governor_monotonic must allow");
            assert!(lb.try_acquire(1), "leaky-bucket must allow");
        }
    }

    let mut group = c.benchmark_group("memory_try_take_uncontended");
    configure(&mut group);
    group.bench_function("ours", |b| {
        let limiter = ours_direct();
        b.iter(|| black_box(limiter.try_take(black_box(&Cost::ONE_REQUEST))));
    });
    group.bench_function("governor", |b| {
        let limiter = RateLimiter::direct(GQuota::per_second(nz(HUGE_PER_SEC)));
        b.iter(|| black_box(limiter.check()));
    });
    group.bench_function("governor_monotonic", |b| {
        let limiter =
            RateLimiter::direct_with_clock(GQuota::per_second(nz(HUGE_PER_SEC)), MonotonicClock);
        b.iter(|| black_box(limiter.check()));
    });
    group.bench_function("leaky-bucket", |b| {
        let limiter = leaky_bucket();
        b.iter(|| black_box(limiter.try_acquire(black_box(1))));
    });
    group.finish();

    let mut group = c.benchmark_group("memory_try_take_std_clock");
    configure(&mut group);
    group.bench_function("ours", |b| {
        let limiter = ours_std_clock();
        assert!(
            limiter.try_take(&Cost::ONE_REQUEST).is_ok(),
            "ours must allow"
        );
        b.iter(|| black_box(limiter.try_take(black_box(&Cost::ONE_REQUEST))));
    });
    group.bench_function("governor", |b| {
        let limiter =
            RateLimiter::direct_with_clock(GQuota::per_second(nz(HUGE_PER_SEC)), MonotonicClock);
        b.iter(|| black_box(limiter.check()));
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. The async try_acquire with its permit.

fn try_acquire_permit(c: &mut Criterion) {
    let rt = current_thread();
    rt.block_on(async {
        let limiter = ours_direct();
        for _ in 0..10_000 {
            let permit = limiter.try_acquire(Request::new(Cost::ONE_REQUEST)).await;
            assert!(permit.is_ok(), "ours must allow");
        }
    });

    let mut group = c.benchmark_group("memory_try_acquire_permit");
    configure(&mut group);
    group.bench_function("ours", |b| {
        let limiter = &ours_direct();
        b.to_async(&rt).iter(|| async move {
            let permit = limiter
                .try_acquire(black_box(Request::new(Cost::ONE_REQUEST)))
                .await;
            // Dropped here: releases the (absent) concurrency slot.
            black_box(permit)
        });
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. 10,000 waiters, FIFO.

/// What every gate acquisition costs: one request and one token.
const GATE: Cost = Cost::request(1, 0);

/// `WAITER_RATE` requests per second with a burst of 1, and a gate: one token per hour (burst 1).
/// Waiters cost no token, so only the request limit paces them.
fn waiters_policy() -> Policy {
    Policy::builder()
        .limit(Limit::new(Resource::Requests, WAITER_RATE, Duration::from_secs(1)).burst(1))
        .limit(Limit::new(Resource::Tokens, 1, Duration::from_secs(3_600)).burst(1))
        .build()
        .expect("valid policy")
}

async fn wait_depth(limiter: &MemoryLimiter, depth: usize) {
    while limiter.queue_depth() < depth {
        tokio::task::yield_now().await;
    }
}

/// A gap between two consecutive grants longer than this is a stall (the pace is 1 us).
const STALL: Duration = Duration::from_micros(500);

/// What one run of `drain_waiters` saw.
struct Drain {
    /// From opening the line to the last grant.
    elapsed: Duration,
    /// For each grant, in grant order, the index of the task it went to.
    order: Vec<usize>,
    /// Time between consecutive grants, sorted.
    gaps: Vec<Duration>,
}

impl Drain {
    fn stalls(&self) -> impl Iterator<Item = Duration> + '_ {
        self.gaps.iter().copied().filter(|&g| g > STALL)
    }
}

/// One run: `WAITERS` tasks join the line one after the other (each is in the line before the next
/// is spawned), behind a gate request that holds the head for an hour. The gate is then aborted
/// (its reservation is given back) and the line drains at `WAITER_RATE`.
async fn drain_waiters() -> Drain {
    let limiter = MemoryLimiter::new(waiters_policy());
    // The token limit's only unit is spent, so the gate waits an hour at the head of the line.
    limiter
        .try_take(&GATE)
        .expect("a fresh limiter admits the gate's cost");
    let gate = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire(Request::new(GATE)).await.is_ok() })
    };
    wait_depth(&limiter, 1).await;

    let granted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(WAITERS);
    for i in 0..WAITERS {
        let waiter = limiter.clone();
        let granted = Arc::clone(&granted);
        tasks.push(tokio::spawn(async move {
            let permit = waiter
                .acquire(Request::new(Cost::ONE_REQUEST))
                .await
                .expect("every waiter is granted");
            // On a current-thread runtime the grant and this line run in one poll, so positions
            // are handed out in grant order.
            let at = Instant::now();
            let position = granted.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            (i, position, at)
        }));
        wait_depth(&limiter, i + 2).await;
    }

    let start = Instant::now();
    gate.abort();
    let mut order = vec![usize::MAX; WAITERS];
    let mut granted_at = vec![start; WAITERS];
    for task in tasks {
        let (i, position, at) = task.await.expect("waiter task completes");
        order[position] = i;
        granted_at[position] = at;
    }
    assert!(gate.await.is_err(), "the gate was aborted, not granted");
    assert_eq!(limiter.queue_depth(), 0);
    let mut gaps: Vec<Duration> = granted_at.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    Drain {
        elapsed: granted_at
            .iter()
            .max()
            .map_or(Duration::ZERO, |&last| last - start),
        order,
        gaps,
    }
}

fn assert_fifo(order: &[usize]) {
    if let Some((position, &i)) = order.iter().enumerate().find(|&(p, &i)| p != i) {
        panic!("grant #{position} went to waiter #{i}: not first come, first served");
    }
}

fn waiters_10k(c: &mut Criterion) {
    let rt = current_thread();
    {
        let run = rt.block_on(drain_waiters());
        assert_fifo(&run.order);
        assert!(
            run.elapsed < Duration::from_secs(5),
            "10k waiters took {:?}",
            run.elapsed
        );
    }

    let runs: Mutex<Vec<Drain>> = Mutex::new(Vec::new());
    let mut group = c.benchmark_group("memory_10k_waiters");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let run = rt.block_on(drain_waiters());
                assert_fifo(&run.order);
                total += run.elapsed;
                runs.lock().expect("never poisoned").push(run);
            }
            total
        });
    });
    group.finish();

    let mut runs = runs.into_inner().expect("never poisoned");
    if runs.is_empty() {
        return;
    }
    runs.sort_by_key(|r| r.elapsed);
    let n = runs.len();
    let ideal = Duration::from_secs_f64(WAITERS as f64 / WAITER_RATE as f64);
    let per_grant = |d: Duration| (d.as_secs_f64() - ideal.as_secs_f64()) / WAITERS as f64 * 1e9;
    let mean = runs.iter().map(|r| r.elapsed).sum::<Duration>() / n as u32;
    let median = runs[n / 2].elapsed;
    // Grant-to-grant gaps: the typical one (median of the runs' medians) and the stalls.
    let mut gap_medians: Vec<Duration> = runs.iter().map(|r| r.gaps[r.gaps.len() / 2]).collect();
    gap_medians.sort();
    let mut gap_p99s: Vec<Duration> = runs
        .iter()
        .map(|r| r.gaps[r.gaps.len() * 99 / 100])
        .collect();
    gap_p99s.sort();
    let stalls: usize = runs.iter().map(|r| r.stalls().count()).sum();
    let stalled: Duration = runs.iter().flat_map(Drain::stalls).sum();
    eprintln!(
        "memory_10k_waiters: {n} runs, FIFO held in every run; ideal {ideal:?} ({WAITERS} grants \
         at {WAITER_RATE}/s); measured mean {mean:?}, median {median:?}, min {:?}; overhead per \
         grant: mean {:.0} ns, median {:.0} ns, min {:.0} ns; grant-to-grant gap: median {:?}, \
         p99 {:?}; stalls over {STALL:?}: {:.1} per run, {:?} per run on average",
        runs[0].elapsed,
        per_grant(mean),
        per_grant(median),
        per_grant(runs[0].elapsed),
        gap_medians[n / 2],
        gap_p99s[n / 2],
        stalls as f64 / n as f64,
        stalled / n as u32,
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Keyed decisions.

/// Ours for the million keys: 1 request per minute per key, burst `KEYED_BURST`.
fn keyed_policy() -> Policy {
    Policy::builder()
        .limit(
            Limit::new(Resource::Requests, 1, Duration::from_secs(60))
                .burst(u64::from(KEYED_BURST)),
        )
        .build()
        .expect("valid policy")
}

fn governor_keyed_quota() -> GQuota {
    GQuota::per_minute(nz(1)).allow_burst(nz(KEYED_BURST))
}

fn ours_keyed(policy: Policy, max_keys: usize) -> KeyedLimiter {
    KeyedLimiter::with_clock(
        policy,
        KeyedConfig { max_keys },
        Arc::new(QuantaClock::new()),
    )
}

async fn ours_allows(limiter: &KeyedLimiter, key: &str) -> bool {
    limiter
        .try_acquire(Request::new(Cost::ONE_REQUEST).key(key))
        .await
        .is_ok()
}

/// The key at `next`, and `next` moved on (cyclically).
fn next_key<'k>(next: &Cell<usize>, keys: &'k [String]) -> &'k String {
    let i = next.get();
    next.set(if i + 1 == keys.len() { 0 } else { i + 1 });
    &keys[i]
}

fn keyed_many(c: &mut Criterion) {
    let n = key_count();
    let keys: Vec<String> = (0..n).map(key).collect();
    let rt = current_thread();

    // Filled on first use (criterion calls a function's closure once per sample), so a filter that
    // skips a function skips its fill too.
    let ours_filled: OnceCell<KeyedLimiter> = OnceCell::new();
    let governor_filled = OnceCell::new();
    // Where each function is in its walk over the keys, kept across samples so that every key is
    // visited, not only the first few thousand of each sample.
    let ours_next = Cell::new(0);
    let governor_next = Cell::new(0);

    let mut group = c.benchmark_group("keyed_decision_1m_keys");
    configure(&mut group);
    group.bench_function("ours", |b| {
        let limiter = ours_filled.get_or_init(|| {
            let limiter = ours_keyed(keyed_policy(), n);
            rt.block_on(async {
                for k in &keys {
                    assert!(ours_allows(&limiter, k).await, "ours must allow");
                }
                assert!(ours_allows(&limiter, &keys[0]).await, "ours must allow");
            });
            assert_eq!(limiter.len(), n, "every key is held");
            limiter
        });
        b.iter(|| {
            let key = next_key(&ours_next, &keys);
            black_box(limiter.try_take(black_box(key), black_box(&Cost::ONE_REQUEST)))
        });
        assert_eq!(limiter.len(), n, "no key was evicted");
    });
    group.bench_function("governor", |b| {
        let limiter = governor_filled.get_or_init(|| {
            let limiter = RateLimiter::keyed(governor_keyed_quota());
            for k in &keys {
                assert!(limiter.check_key(k).is_ok(), "governor must allow");
            }
            assert!(limiter.check_key(&keys[0]).is_ok(), "governor must allow");
            assert_eq!(limiter.len(), n, "every key is held");
            limiter
        });
        b.iter(|| {
            let key = next_key(&governor_next, &keys);
            black_box(limiter.check_key(black_box(key)))
        });
    });
    group.finish();
}

fn keyed_hot(c: &mut Criterion) {
    let hot = key(123_456);
    let rt = current_thread();
    {
        let ours = ours_keyed(huge_policy(), 16);
        let gov = RateLimiter::keyed(GQuota::per_second(nz(HUGE_PER_SEC)));
        rt.block_on(async {
            for _ in 0..10_000 {
                assert!(ours_allows(&ours, &hot).await, "ours must allow");
                assert!(gov.check_key(&hot).is_ok(), "governor must allow");
            }
        });
    }

    let mut group = c.benchmark_group("keyed_decision_hot_key");
    configure(&mut group);
    group.bench_function("ours", |b| {
        let limiter = ours_keyed(huge_policy(), 16);
        assert!(
            limiter.try_take(&hot, &Cost::ONE_REQUEST).is_ok(),
            "ours must allow"
        );
        b.iter(|| black_box(limiter.try_take(black_box(&hot), black_box(&Cost::ONE_REQUEST))));
    });
    group.bench_function("governor", |b| {
        let limiter = RateLimiter::keyed(GQuota::per_second(nz(HUGE_PER_SEC)));
        b.iter(|| black_box(limiter.check_key(black_box(&hot))));
    });
    group.finish();

    let mut group = c.benchmark_group("keyed_try_acquire_permit_hot_key");
    configure(&mut group);
    group.bench_function("ours", |b| {
        let limiter = &ours_keyed(huge_policy(), 16);
        let hot = hot.as_str();
        b.to_async(&rt).iter(|| async move {
            black_box(
                limiter
                    .try_acquire(Request::new(Cost::ONE_REQUEST).key(black_box(hot)))
                    .await,
            )
        });
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 5. Memory per key.

/// Live heap bytes per key of a limiter holding `n` keys: counted from just after the (empty)
/// limiter is built, so its fixed size is left out. Each key is formatted, inserted by `insert`,
/// and dropped; only the limiter's own copy stays.
fn bytes_per_key<L>(n: usize, build: impl FnOnce() -> L, mut insert: impl FnMut(&L, &str)) -> f64 {
    let limiter = build();
    start_counting();
    for i in 0..n {
        let k = key(i);
        insert(&limiter, &k);
    }
    let bytes = live_bytes();
    stop_counting();
    drop(limiter);
    bytes as f64 / n as f64
}

fn measure_bytes_per_key() {
    if std::env::var_os("RATELIMIT_BENCH_BYTES_PER_KEY").is_some_and(|v| v == "0")
        || std::env::args().any(|a| a == "--list")
    {
        return;
    }
    let n = key_count();
    let rt = current_thread();
    rt.block_on(async {}); // any lazy runtime state is allocated before counting

    let governor = bytes_per_key(
        n,
        || RateLimiter::keyed(GQuota::per_minute(nz(1_000_000))),
        |limiter, k| {
            assert!(limiter.check_key(&k.to_owned()).is_ok());
        },
    );
    // A frozen clock: no key ever replenishes, so none turns idle and is evicted.
    let ours = |policy: Policy| {
        bytes_per_key(
            n,
            || {
                let frozen = Arc::new(ManualClock::new());
                KeyedLimiter::with_clock(policy, KeyedConfig { max_keys: n }, frozen)
            },
            |limiter, k| {
                assert!(rt.block_on(ours_allows(limiter, k)), "ours must allow");
            },
        )
    };
    let ours_one_limit = ours(
        Policy::builder()
            .requests_per_minute(1_000_000)
            .build()
            .expect("valid policy"),
    );
    let ours_rpm_tpm = ours(
        Policy::builder()
            .requests_per_minute(1_000_000)
            .tokens_per_minute(100_000_000)
            .build()
            .expect("valid policy"),
    );

    eprintln!(
        "bytes per key at {n} keys (live heap, requested sizes): governor {governor:.1}, \
         ours_one_limit {ours_one_limit:.1} ({:.2}x), ours_rpm_tpm {ours_rpm_tpm:.1} ({:.2}x)",
        ours_one_limit / governor,
        ours_rpm_tpm / governor,
    );
    if !bench_mode() {
        return;
    }
    let dir = ratelimit_benches::criterion_dir();
    let path = dir.join("memory_bytes_per_key.json");
    let json = format!(
        "{{\"governor\": {governor:.1}, \"ours_one_limit\": {ours_one_limit:.1}, \
         \"ours_rpm_tpm\": {ours_rpm_tpm:.1}}}\n"
    );
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
        eprintln!("could not write {}: {e}", path.display());
    } else {
        eprintln!("wrote {}", path.display());
    }
}

criterion_group! {
    name = benches;
    // `cargo xtask bench` reads only `estimates.json`; the HTML plots would triple the run time.
    config = Criterion::default().without_plots();
    targets =
        try_take_uncontended,
        try_acquire_permit,
        waiters_10k,
        keyed_many,
        keyed_hot
}

// `criterion_main!` with the bytes-per-key measurement first.
fn main() {
    measure_bytes_per_key();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
