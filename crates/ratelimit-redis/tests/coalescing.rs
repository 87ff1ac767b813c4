//! Coalescing: acquires of one process on one budget that arrive while a call is in flight go out
//! together in one call, applied in arrival order, each exactly as its own call would have been.
//!
//! The server is paused for writes (`CLIENT PAUSE ... WRITE`) so that the first call is held and
//! every later acquire queues behind it, in the order the test makes them.

mod common;

use std::time::Duration;

use common::PrivateServer;
use ratelimit_core::{AlgorithmKind, Cost, Limit, Policy, Resource};
use ratelimit_limiter::{AcquireError, Limiter, Request};
use ratelimit_redis::{Client, RedisConfig, RedisLimiter};

/// Every client this build has.
fn clients() -> Vec<Client> {
    vec![
        Client::Redis,
        #[cfg(feature = "fred")]
        Client::Fred,
    ]
}

fn one() -> Request<'static> {
    Request::new(Cost::ONE_REQUEST)
}

async fn admin(server: &PrivateServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// FCALL calls the server has run so far.
async fn fcalls(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_fcall:calls="))
        .and_then(|v| v.split(',').next())
        .map_or(0, |v| v.parse().unwrap())
}

/// Holds the server's writes (and so every call of the policy) for `ms` milliseconds.
async fn pause(admin: &mut redis::aio::MultiplexedConnection, ms: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("WRITE")
        .query_async(admin)
        .await
        .unwrap();
}

/// `amount` requests per `window_secs` seconds under `algorithm`.
fn requests_per(algorithm: AlgorithmKind, amount: u64, window_secs: u64) -> Policy {
    Policy::builder()
        .limit(
            Limit::new(Resource::Requests, amount, Duration::from_secs(window_secs))
                .algorithm(algorithm),
        )
        .build()
        .unwrap()
}

async fn limiter(server: &PrivateServer, client: Client, policy: Policy) -> RedisLimiter {
    let mut config = RedisConfig::new(common::unique_name("coalescing"));
    config.client = client;
    config.call_timeout = Duration::from_secs(5);
    RedisLimiter::connect(server.url(), policy, config)
        .await
        .unwrap()
}

/// A private server, an admin connection to it, and a limiter of `policy` on it through `client`.
async fn start(
    client: Client,
    policy: Policy,
) -> (
    PrivateServer,
    redis::aio::MultiplexedConnection,
    RedisLimiter,
) {
    let server = PrivateServer::start();
    let admin = admin(&server).await;
    let l = limiter(&server, client, policy).await;
    (server, admin, l)
}

/// Starts `n` acquires on the default budget, one after another, each queued before the next
/// starts (the server is paused); returns their outcomes in that order.
async fn in_order<F, Fut, T>(n: usize, op: F) -> Vec<tokio::task::JoinHandle<T>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        tasks.push(tokio::spawn(op()));
        // Long enough for the task to reach its lane before the next one starts.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_on_one_budget_are_coalesced_into_one_call_behind_the_one_in_flight() {
    for client in clients() {
        // A fixed window of an hour: the count is exact, nothing comes back meanwhile.
        let policy = requests_per(AlgorithmKind::FixedWindow, 1_000, 3_600);
        let (_server, mut admin, l) = start(client, policy).await;
        drop(l.try_acquire(one()).await.unwrap());
        let before = fcalls(&mut admin).await;
        // Shorter than the redis crate's response timeout (500 ms), which would retry the call.
        pause(&mut admin, 300).await;
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.try_acquire(one()).await.map(drop) })
            })
            .collect();
        for t in tasks {
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("{client:?}: {e}"));
        }
        // The first call, held by the pause, then the 63 that queued behind it, in one call.
        assert_eq!(fcalls(&mut admin).await - before, 2, "{client:?}");
        let remaining = l.status("").await.unwrap().limits()[0].status.remaining;
        assert_eq!(remaining, 1_000 - 65, "{client:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_acquires_are_decided_in_arrival_order() {
    for client in clients() {
        let policy = Policy::builder().requests_per_minute(10).build().unwrap();
        let (_server, mut admin, l) = start(client, policy).await;
        pause(&mut admin, 300).await;
        let tasks = in_order(20, || {
            let l = l.clone();
            async move { l.try_acquire(one()).await }
        })
        .await;
        // The first ten to arrive get the ten requests of the minute; the next ten are refused.
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(match t.await.unwrap() {
                Ok(_) => true,
                Err(AcquireError::RateLimited { .. }) => false,
                Err(e) => panic!("{client:?}: {e}"),
            });
        }
        let expected: Vec<bool> = (0..20).map(|i| i < 10).collect();
        assert_eq!(outcomes, expected, "{client:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_reservations_queue_in_arrival_order() {
    for client in clients() {
        // One request per 20 ms, no burst: each reservation 20 ms after the one before.
        let policy = requests_per(AlgorithmKind::LeakyBucket, 50, 1);
        let (_server, mut admin, l) = start(client, policy).await;
        pause(&mut admin, 300).await;
        let tasks = in_order(8, || {
            let l = l.clone();
            async move {
                let p = l.acquire(one()).await?;
                Ok::<_, AcquireError>((tokio::time::Instant::now(), p))
            }
        })
        .await;
        let mut granted = Vec::new();
        for t in tasks {
            granted.push(
                t.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{client:?}: {e}")),
            );
        }
        // Each is granted after the one that arrived before it, about 20 ms later.
        for pair in granted.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(
                gap >= Duration::from_millis(10),
                "{client:?}: granted {gap:?} after the one before"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_acquires_take_and_release_concurrency_slots_each() {
    for client in clients() {
        let policy = Policy::builder()
            .requests_per_minute(1_000)
            .concurrency(5)
            .build()
            .unwrap();
        let (_server, mut admin, l) = start(client, policy).await;
        pause(&mut admin, 300).await;
        let tasks = in_order(12, || {
            let l = l.clone();
            async move { l.try_acquire(one()).await }
        })
        .await;
        let mut permits = Vec::new();
        let mut full = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(p) => permits.push(p),
                Err(AcquireError::ConcurrencyFull) => full += 1,
                Err(e) => panic!("{client:?}: {e}"),
            }
        }
        assert_eq!((permits.len(), full), (5, 7), "{client:?}");
        let status = l.status("").await.unwrap();
        assert_eq!(status.concurrency.unwrap().remaining, 0, "{client:?}");
        // Each permit holds its own lease: released, the slots are free again.
        drop(permits);
        let started = tokio::time::Instant::now();
        loop {
            let status = l.status("").await.unwrap();
            if status.concurrency.unwrap().remaining == 5 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "{client:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 5 granted of the rate limit, the refused ones took none of it.
        assert_eq!(status.limits()[0].status.remaining, 995, "{client:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_get_exactly_the_limit() {
    for client in clients() {
        let server = PrivateServer::start();
        let policy = Policy::builder()
            .requests_per_minute(100)
            .tokens_per_minute(100_000)
            .build()
            .unwrap();
        let l = limiter(&server, client, policy).await;
        let tasks: Vec<_> = (0..300)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move {
                    l.try_acquire(Request::new(Cost::request(100, 50)))
                        .await
                        .map(drop)
                })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => granted += 1,
                Err(AcquireError::RateLimited { .. }) => {}
                Err(e) => panic!("{client:?}: {e}"),
            }
        }
        assert_eq!(granted, 100, "{client:?}");
        let status = l.status("").await.unwrap();
        assert_eq!(status.limits()[0].status.remaining, 0, "{client:?}");
        // 100 requests of 150 tokens each (and what the minute gave back since: under a second).
        let tokens = status.limits()[1].status.remaining;
        assert!(
            (85_000..86_700).contains(&tokens),
            "{client:?}: {tokens} tokens left"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_acquire_counts_its_time_in_the_queue_against_its_timeout() {
    for client in clients() {
        let policy = requests_per(AlgorithmKind::LeakyBucket, 100, 1);
        let (_server, mut admin, l) = start(client, policy).await;
        pause(&mut admin, 300).await;
        // Each may wait 100 ms; the queue alone takes longer. The first call was sent at once
        // and is placed at once; the others, sent after their deadlines, could only take a place
        // free at once, and the bucket has none left.
        let tasks = in_order(5, || {
            let l = l.clone();
            async move { l.acquire_timeout(one(), Duration::from_millis(100)).await }
        })
        .await;
        let mut granted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => granted += 1,
                Err(AcquireError::RateLimited { .. }) => {}
                Err(e) => panic!("{client:?}: {e}"),
            }
        }
        assert_eq!(granted, 1, "{client:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquires_dropped_while_their_call_is_in_flight_give_back_what_it_granted() {
    for client in clients() {
        // A fixed window of an hour: nothing comes back by itself during the test.
        let policy = requests_per(AlgorithmKind::FixedWindow, 1_000, 3_600);
        let (_server, mut admin, l) = start(client, policy).await;
        drop(l.try_acquire(one()).await.unwrap());
        pause(&mut admin, 300).await;
        // The first is sent and held by the pause; the others queue behind it.
        let tasks = in_order(10, || {
            let l = l.clone();
            async move { l.acquire(one()).await.map(drop) }
        })
        .await;
        // Every caller leaves while the server holds the call: it runs all the same once the
        // pause is over, and what it granted must come back.
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            assert!(t.await.unwrap_err().is_cancelled());
        }
        // Past the pause: the held call returns, its grant is given back; the queued ones,
        // whose callers are gone, are never sent.
        let mut remaining = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            remaining = l.status("").await.unwrap().limits()[0].status.remaining;
            if remaining == 999 {
                break;
            }
        }
        assert_eq!(
            remaining, 999,
            "{client:?}: only the first, kept, acquire counts"
        );
    }
}
