//! Many clients, one budget: independent connections and separate OS processes sharing a limit
//! never exceed it together, and share it fairly. Also the budgets spread over independent servers.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::PrivateServer;
use ratelimit_core::{Cost, Limit, Policy, Resource};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_redis::{RedisConfig, RedisLimiter, Target};

/// 20 per second, burst 5.
fn policy() -> Policy {
    Policy::builder()
        .limit(Limit::new(Resource::Requests, 20, Duration::from_secs(1)).burst(5))
        .build()
        .unwrap()
}

/// Most a (burst 5, 20/s) bucket admits in any interval of `d`.
fn bound(d: Duration) -> u64 {
    5 + (d.as_secs_f64() * 20.0).ceil() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_connections_share_one_limit_fairly() {
    let name = common::unique_name("sharing");
    let run_for = Duration::from_secs(2);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..4 {
        let l = RedisLimiter::connect(
            common::redis_url(),
            policy(),
            RedisConfig::new(name.clone()),
        )
        .await
        .unwrap();
        tasks.push(tokio::spawn(async move {
            let mut grants = Vec::new();
            while started.elapsed() < run_for {
                let _p = l.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap();
                grants.push(started.elapsed());
            }
            grants
        }));
    }
    let mut per_client = Vec::new();
    let mut all = Vec::new();
    for t in tasks {
        let g = t.await.unwrap();
        per_client.push(g.len() as u64);
        all.extend(g);
    }
    all.sort();
    let total = all.len() as u64;
    let elapsed = all.last().copied().unwrap_or_default();
    // Allow 50 ms of client-side scheduling on the observed span.
    assert!(
        total <= bound(elapsed + Duration::from_millis(50)),
        "{total} grants in {elapsed:?}"
    );
    assert!(total >= 30, "the limit was not used: {total}");
    for c in &per_client {
        assert!(*c * 4 >= total / 2, "unfair shares: {per_client:?}");
    }
}

/// Entry point of the worker processes of the next test (run by it, not on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "worker process of several_processes_share_one_limit"]
async fn worker() {
    let url = std::env::var("WORKER_URL").unwrap();
    let name = std::env::var("WORKER_NAME").unwrap();
    let ms: u64 = std::env::var("WORKER_MS").unwrap().parse().unwrap();
    let l = RedisLimiter::connect(url.as_str(), policy(), RedisConfig::new(name))
        .await
        .unwrap();
    let stop = Instant::now() + Duration::from_millis(ms);
    let mut grants = 0;
    while Instant::now() < stop {
        let _p = l.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap();
        grants += 1;
    }
    #[allow(clippy::print_stdout)] // the parent process reads this line
    {
        println!("WORKER-GRANTS {grants}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_processes_share_one_limit() {
    let name = common::unique_name("processes");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("WORKER_URL", common::redis_url())
                .env("WORKER_NAME", &name)
                .env("WORKER_MS", "2500")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut per_process = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "worker failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let grants: u64 = text
            .lines()
            .find_map(|l| l.split("WORKER-GRANTS ").nth(1))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in worker output:\n{text}"));
        per_process.push(grants);
    }
    let total: u64 = per_process.iter().sum();
    let span = started.elapsed();
    assert!(
        total <= bound(span),
        "{total} grants across processes in {span:?}: {per_process:?}"
    );
    assert!(total >= 30, "the processes barely ran: {per_process:?}");
    for g in &per_process {
        assert!(
            *g * 3 >= total / 2,
            "unfair shares across processes: {per_process:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_spread_over_independent_servers_by_consistent_hashing() {
    let servers: Vec<PrivateServer> = (0..3).map(|_| PrivateServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(PrivateServer::url).collect();
    let name = common::unique_name("sharded");
    let l = RedisLimiter::connect(
        Target::Sharded(urls.clone()),
        policy(),
        RedisConfig::new(name.clone()),
    )
    .await
    .unwrap();
    let mut used = [0usize; 3];
    for i in 0..30 {
        let key = format!("tenant-{i}");
        drop(
            l.try_acquire(Request::new(Cost::ONE_REQUEST).key(&key))
                .await
                .unwrap(),
        );
        let home = RedisLimiter::shard_of(&urls, "llmrl", &name, &key);
        used[home] += 1;
        // The budget's state is on its home server, and only there.
        for (s, url) in urls.iter().enumerate() {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let exists: bool = redis::cmd("EXISTS")
                .arg(format!("{{llmrl:{name}:{key}}}:state"))
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(exists, s == home, "{key} on server {s}, home {home}");
        }
    }
    assert!(
        used.iter().all(|&n| n > 0),
        "every server holds some budgets: {used:?}"
    );
}

/// A pause taken through one connection holds back a request that another connection had already
/// reserved and is sleeping on: a 429 seen by any process pauses them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_from_one_connection_holds_a_sleeping_reservation_of_another() {
    let name = common::unique_name("pause");
    let spaced = || {
        Policy::builder()
            .limit(Limit::new(Resource::Requests, 2, Duration::from_secs(1)).burst(1))
            .build()
            .unwrap()
    };
    let connect = || async {
        RedisLimiter::connect(
            common::redis_url(),
            spaced(),
            RedisConfig::new(name.clone()),
        )
        .await
        .unwrap()
    };
    let (a, b) = (connect().await, connect().await);
    drop(a.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap());
    let started = Instant::now();
    // b reserves the next slot, 500 ms from now, and sleeps on it.
    let waiter = tokio::spawn(async move {
        let p = b.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap();
        drop(p);
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.pause("", Duration::from_millis(1_500)).await.unwrap();
    let granted = waiter.await.unwrap();
    assert!(
        granted >= Duration::from_millis(1_600) && granted < Duration::from_millis(2_100),
        "granted after {granted:?}: the pause (until ~1.6 s) must hold it"
    );
}
