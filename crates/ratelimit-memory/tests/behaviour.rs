//! In-memory behaviour beyond the shared suite, exact on tokio's paused clock: starvation
//! regressions, cancellation at every await point, priorities, concurrency with rates, live changes.

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{Cost, Limit, Policy, Resource};
use ratelimit_limiter::{AcquireError, Limiter, Priority, Request};
use ratelimit_memory::MemoryLimiter;
use tokio::sync::Mutex;
use tokio::time::Instant;

fn one() -> Request<'static> {
    Request::new(Cost::ONE_REQUEST)
}

fn requests(n: u64) -> Request<'static> {
    Request::new(Cost {
        requests: n,
        ..Cost::NONE
    })
}

/// `amount` per `per` with burst `burst`, on requests.
fn limiter(amount: u64, per: Duration, burst: u64) -> Arc<MemoryLimiter> {
    let policy = Policy::builder()
        .limit(Limit::new(Resource::Requests, amount, per).burst(burst))
        .build()
        .unwrap();
    Arc::new(MemoryLimiter::new(policy))
}

async fn settle() {
    // Let every spawned task run until it blocks (paused time does not advance meanwhile).
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// The peers' starvation pattern, exactly: one task looping on acquire(50) and four on acquire(1)
/// at 100/s with burst 100. Served in rotation, each task gets the same number of turns.
#[tokio::test(start_paused = true)]
async fn large_and_small_loops_take_turns_exactly() {
    let l = limiter(100, Duration::from_secs(1), 100);
    let stop = Instant::now() + Duration::from_secs(4);
    let start = Arc::new(tokio::sync::Barrier::new(5));
    let mut tasks = Vec::new();
    for n in [50u64, 1, 1, 1, 1] {
        let (l, start) = (Arc::clone(&l), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut units = 0;
            let mut turns = 0;
            while Instant::now() < stop {
                let _p = l.acquire(requests(n)).await.unwrap();
                units += n;
                turns += 1;
                // The request itself: any real work yields to the scheduler.
                tokio::task::yield_now().await;
            }
            (turns, units)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let turns: Vec<u64> = results.iter().map(|r| r.0).collect();
    let (min, max) = (*turns.iter().min().unwrap(), *turns.iter().max().unwrap());
    assert!(max - min <= 1, "rotation: {results:?}");
    // 100 at once plus 100/s for 4 s = 500 units in rounds of 54: 9 full rounds and a bit.
    assert!(results[0].0 >= 9, "the large task got {results:?}");
    let total: u64 = results.iter().map(|r| r.1).sum();
    assert!(total <= 100 + 400 + 54, "never beyond the limit: {total}");
}

/// A task that re-acquires in a loop cannot jump ahead of a task already waiting.
#[tokio::test(start_paused = true)]
async fn a_looping_task_goes_to_the_back_of_the_line() {
    let l = limiter(10, Duration::from_secs(1), 1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let looping = {
        let (l, log) = (Arc::clone(&l), Arc::clone(&log));
        tokio::spawn(async move {
            for _ in 0..5 {
                let _p = l.acquire(one()).await.unwrap();
                log.lock().await.push("loop");
            }
        })
    };
    settle().await;
    let waiting = {
        let (l, log) = (Arc::clone(&l), Arc::clone(&log));
        tokio::spawn(async move {
            let _p = l.acquire(one()).await.unwrap();
            log.lock().await.push("other");
        })
    };
    looping.await.unwrap();
    waiting.await.unwrap();
    let log = log.lock().await;
    let pos = log.iter().position(|s| *s == "other").unwrap();
    assert!(pos <= 2, "the waiting task was overtaken: {log:?}");
}

/// Cancellation while waiting for its turn (not the head): the line closes up.
#[tokio::test(start_paused = true)]
async fn dropping_a_waiter_behind_the_head_frees_its_place() {
    let l = limiter(1, Duration::from_secs(1), 1);
    let _first = l.acquire(one()).await.unwrap();
    let head = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(one()).await.map(|_| Instant::now()) }
    });
    settle().await;
    let behind = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(one()).await.map(|_| Instant::now()) }
    });
    settle().await;
    let last = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(one()).await.map(|_| Instant::now()) }
    });
    settle().await;
    assert_eq!(l.queue_depth(), 3);
    let t0 = Instant::now();
    behind.abort();
    assert!(behind.await.unwrap_err().is_cancelled());
    assert_eq!(l.queue_depth(), 2);
    let head_at = head.await.unwrap().unwrap();
    let last_at = last.await.unwrap().unwrap();
    assert_eq!(head_at - t0, Duration::from_secs(1));
    assert_eq!(
        last_at - t0,
        Duration::from_secs(2),
        "the dropped waiter's slot was not kept"
    );
    assert_eq!(l.stats().cancelled, 1);
}

/// Cancellation of the head while it sleeps on its reservation: the reservation is given back and
/// the next waiter is served at that instant.
#[tokio::test(start_paused = true)]
async fn dropping_the_head_gives_its_reservation_back() {
    let l = limiter(1, Duration::from_secs(1), 1);
    let _first = l.acquire(one()).await.unwrap();
    let t0 = Instant::now();
    let head = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(Request::new(Cost::ONE_REQUEST)).await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // the head is asleep on its reservation
    head.abort();
    let _ = head.await;
    let next = l.acquire(one()).await.unwrap();
    assert_eq!(
        Instant::now() - t0,
        Duration::from_secs(1),
        "served at the head's instant"
    );
    drop(next);
    let s = l.status("").await.unwrap();
    assert_eq!(s.limits()[0].status.remaining, 0);
}

/// Cancellation inside `select!`: the losing branch's waiter leaves no trace.
#[tokio::test(start_paused = true)]
async fn losing_a_select_leaves_no_trace() {
    let l = limiter(1, Duration::from_secs(10), 1);
    let _first = l.acquire(one()).await.unwrap();
    let before = l.status("").await.unwrap();
    tokio::select! {
        _ = l.acquire(one()) => panic!("not due for 10 s"),
        () = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
    assert_eq!(l.queue_depth(), 0);
    let after = l.status("").await.unwrap();
    assert_eq!(
        before.limits()[0].status.reset_after - 2_000_000_000,
        after.limits()[0].status.reset_after
    );
    let err = l.try_acquire(one()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(8)));
}

/// Cancellation while waiting for a concurrency slot: the slot goes to the next waiter.
#[tokio::test(start_paused = true)]
async fn dropping_a_waiter_for_a_slot_passes_the_slot_on() {
    let policy = Policy::builder()
        .requests_per_minute(1_000)
        .concurrency(1)
        .build()
        .unwrap();
    let l = Arc::new(MemoryLimiter::new(policy));
    let holder = l.acquire(one()).await.unwrap();
    let a = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(one()).await.map(drop) }
    });
    settle().await;
    let b = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(one()).await.map(drop) }
    });
    settle().await;
    a.abort();
    let _ = a.await;
    drop(holder);
    tokio::time::timeout(Duration::from_millis(1), b)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(l.queue_depth(), 0);
}

/// A waiter for a slot does not sit on rate capacity: others' rate usage is unaffected.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_slot_holds_no_rate_capacity() {
    let policy = Policy::builder()
        .requests_per_minute(10)
        .concurrency(1)
        .build()
        .unwrap();
    let l = Arc::new(MemoryLimiter::new(policy));
    let _holder = l.acquire(one()).await.unwrap();
    let _waiter = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(one()).await.map(drop) }
    });
    settle().await;
    let s = l.status("").await.unwrap();
    assert_eq!(
        s.limits()[0].status.remaining,
        9,
        "only the holder's request is counted"
    );
}

/// A batch flood does not starve interactive users, and batch still progresses.
#[tokio::test(start_paused = true)]
async fn interactive_requests_overtake_a_batch_backlog_but_batch_progresses() {
    let l = limiter(10, Duration::from_secs(1), 1);
    let batch_done = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..50 {
        let (l, done) = (Arc::clone(&l), Arc::clone(&batch_done));
        tokio::spawn(async move {
            let _p = l.acquire(one().priority(Priority::Batch)).await.unwrap();
            done.lock().await.push(Instant::now());
        });
    }
    settle().await;
    let t0 = Instant::now();
    let mut interactive = Vec::new();
    for _ in 0..8 {
        let l = Arc::clone(&l);
        interactive.push(tokio::spawn(async move {
            let _p = l.acquire(one()).await.unwrap();
            Instant::now()
        }));
    }
    let mut latest = t0;
    for t in interactive {
        latest = latest.max(t.await.unwrap());
    }
    // 8 interactive + 2 batch (one per BATCH_SHARE) + the batch head already planned = 11 slots.
    assert!(
        latest - t0 <= Duration::from_millis(1_100),
        "interactive waited {:?}",
        latest - t0
    );
    let batch_by_then = batch_done
        .lock()
        .await
        .iter()
        .filter(|t| **t <= latest)
        .count();
    assert!(
        batch_by_then >= 2,
        "batch must keep moving: {batch_by_then}"
    );
}

/// Raising a limit wakes the head, which re-plans: here it fits at once.
#[tokio::test(start_paused = true)]
async fn raising_a_limit_lets_the_waiting_head_go_at_once() {
    let policy = Policy::builder()
        .limit(Limit::new(Resource::Requests, 1, Duration::from_secs(10)))
        .build()
        .unwrap();
    let id = policy.limits().next().unwrap().0;
    let l = Arc::new(MemoryLimiter::new(policy));
    let _first = l.acquire(one()).await.unwrap();
    let t0 = Instant::now();
    let waiter = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.acquire(one()).await.map(|_| Instant::now()) }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    l.set_amount(id, 10).await.unwrap();
    let at = waiter.await.unwrap().unwrap();
    // 10 per 10 s with a burst of 10, one used: it goes at the change, not at 10 s.
    assert_eq!(at - t0, Duration::from_secs(2));
}

/// A refund wakes the head too.
#[tokio::test(start_paused = true)]
async fn a_refund_lets_the_head_go_sooner() {
    let policy = Policy::builder().tokens_per_minute(6_000).build().unwrap();
    let l = Arc::new(MemoryLimiter::new(policy));
    let mut big = l
        .acquire(Request::new(Cost::request(1_000, 5_000)))
        .await
        .unwrap();
    let waiter = tokio::spawn({
        let l = Arc::clone(&l);
        async move {
            l.acquire(Request::new(Cost::request(3_000, 0)))
                .await
                .map(|p| p.waited())
        }
    });
    settle().await;
    big.adjust(Cost::request(1_000, 1_000)).await.unwrap();
    let waited = waiter.await.unwrap().unwrap();
    assert_eq!(
        waited,
        Duration::ZERO,
        "4,000 tokens came back: it fits at once"
    );
}

/// Ten thousand waiters on one limiter are served in arrival order.
#[tokio::test(start_paused = true)]
async fn ten_thousand_waiters_come_out_in_fifo_order() {
    let l = limiter(1_000, Duration::from_secs(1), 1);
    let order = Arc::new(std::sync::Mutex::new(Vec::with_capacity(10_000)));
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let (l, order) = (Arc::clone(&l), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let _p = l.acquire(one()).await.unwrap();
            order.lock().unwrap().push(i);
        }));
        if i % 100 == 0 {
            settle().await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 10_000);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_eq!(l.stats().granted, 10_000);
}

/// A timeout shorter than the line ahead is refused at once, without queueing.
#[tokio::test(start_paused = true)]
async fn timeout_shorter_than_the_line_ahead_is_refused_at_once() {
    let l = limiter(1, Duration::from_secs(1), 1);
    let _first = l.acquire(one()).await.unwrap();
    for _ in 0..3 {
        let l = Arc::clone(&l);
        tokio::spawn(async move { l.acquire(one()).await.map(drop) });
    }
    settle().await;
    let t0 = Instant::now();
    let err = l
        .acquire_timeout(one(), Duration::from_millis(1_500))
        .await
        .unwrap_err();
    assert_eq!(Instant::now(), t0, "refused without waiting");
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(4)),
        "three ahead, one per second"
    );
    assert_eq!(l.queue_depth(), 3, "the others are untouched");
}

/// A timeout that runs out while waiting for a concurrency slot says so, and leaves the line.
#[tokio::test(start_paused = true)]
async fn timeout_waiting_for_a_slot_reports_concurrency() {
    let policy = Policy::builder()
        .requests_per_minute(1_000)
        .concurrency(1)
        .build()
        .unwrap();
    let l = Arc::new(MemoryLimiter::new(policy));
    let _holder = l.acquire(one()).await.unwrap();
    let t0 = Instant::now();
    let err = l
        .acquire_timeout(one(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, AcquireError::ConcurrencyFull), "{err}");
    assert_eq!(Instant::now() - t0, Duration::from_secs(1));
    assert_eq!(l.queue_depth(), 0);
}

/// A pause that comes while the head sleeps on a reservation moves everyone behind its end, in
/// order, and the head's reservation is given back rather than kept.
#[tokio::test(start_paused = true)]
async fn a_pause_moves_a_sleeping_head_and_its_line_behind_it() {
    let l = limiter(1, Duration::from_secs(1), 1);
    let t0 = Instant::now();
    let _first = l.acquire(one()).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (l, order) = (Arc::clone(&l), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let _p = l.acquire(one()).await.unwrap();
            order.lock().await.push((i, t0.elapsed()));
        }));
        settle().await;
    }
    // The head holds a reservation for t = 1 s; the provider says: nobody before t = 5 s.
    l.pause("", Duration::from_secs(5)).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().await.clone();
    let secs = |d: Duration| d.as_secs_f64();
    assert_eq!(order.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        order.iter().map(|(_, d)| secs(*d)).collect::<Vec<_>>(),
        [5.0, 6.0, 7.0],
        "one per second from the end of the pause"
    );
}

/// Many threads asking at once, far below the limits, with no time to wait: every one is granted.
/// (The clock used to be read before taking the lock, so a thread could find the policy already
/// granted at a later instant by another one and be refused a wait of a few microseconds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_far_below_the_limits_are_never_refused() {
    let limiter = Arc::new(MemoryLimiter::new(
        Policy::builder()
            .requests_per_minute(100_000_000)
            .tokens_per_minute(100_000_000_000)
            .build()
            .unwrap(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for _ in 0..2_000 {
                match limiter
                    .acquire_timeout(Request::new(Cost::request(100, 100)), Duration::ZERO)
                    .await
                {
                    Ok(p) => drop(p),
                    Err(_) => refused += 1,
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap();
    }
    assert_eq!(refused, 0, "refused far below the limits");
}
