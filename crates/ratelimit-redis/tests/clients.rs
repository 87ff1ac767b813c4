//! What each Rust client puts on the wire: decisions of concurrent tasks share one connection
//! and are pipelined (sent without waiting for each other's replies), with both clients;
//! decisions of concurrent tasks on one budget are coalesced into few calls.

mod common;

use std::time::Duration;

use common::PrivateServer;
use ratelimit_core::{Cost, Policy};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_redis::{Client, RedisConfig, RedisLimiter};

/// Every client this build has.
fn clients() -> Vec<Client> {
    vec![
        Client::Redis,
        #[cfg(feature = "fred")]
        Client::Fred,
    ]
}

/// The bytes the server has received from its clients but not yet run (`qbuf` of CLIENT LIST),
/// largest first.
async fn queued(admin: &mut redis::aio::MultiplexedConnection) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    let mut q: Vec<u64> = list
        .lines()
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("qbuf="))
                .and_then(|v| v.parse().ok())
        })
        .collect();
    q.sort_unstable_by(|a, b| b.cmp(a));
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_are_pipelined_on_one_connection() {
    for client in clients() {
        // A server of its own: pausing it holds nobody else's tests.
        let server = PrivateServer::start();
        let mut config = RedisConfig::new(common::unique_name("pipelined"));
        config.client = client;
        config.call_timeout = Duration::from_secs(5);
        let policy = Policy::builder()
            .requests_per_minute(1_000_000)
            .build()
            .unwrap();
        let l = RedisLimiter::connect(server.url(), policy, config)
            .await
            .unwrap();
        drop(
            l.try_acquire(Request::new(Cost::ONE_REQUEST))
                .await
                .unwrap(),
        );
        let mut admin = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        // Scripts wait while writes are paused; what a client sends meanwhile stays queued.
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(2_000)
            .arg("WRITE")
            .query_async(&mut admin)
            .await
            .unwrap();
        // Each on a budget of its own: decisions on one budget are coalesced instead (see
        // `decisions_on_one_budget_are_coalesced_into_few_calls`).
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let l = l.clone();
                tokio::spawn(async move {
                    let key = format!("k{i}");
                    l.try_acquire(Request::new(Cost::ONE_REQUEST).key(&key))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let waiting = queued(&mut admin).await;
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut admin)
            .await
            .unwrap();
        for t in tasks {
            drop(t.await.unwrap().unwrap());
        }
        // One decision is held by the pause; the other seven were sent behind it. Without
        // pipelining they would still be in the client, waiting for the first reply.
        let most = waiting.first().copied().unwrap_or(0);
        assert!(
            most > 500,
            "{client:?}: only {most} bytes queued behind the paused decision ({waiting:?})"
        );
    }
}
