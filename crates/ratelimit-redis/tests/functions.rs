//! The policy as a Redis Functions library: loaded at connect, loaded again by every client when a
//! server has lost it (`FUNCTION FLUSH`, a restart, a Cluster node that never had it), with no
//! decision lost or counted twice.

mod common;

use std::time::Duration;

use common::PrivateServer;
use ratelimit_core::{Cost, Policy};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_redis::{Client, RedisConfig, RedisLimiter, Target};

/// Every client this build has.
fn clients() -> Vec<Client> {
    vec![
        Client::Redis,
        #[cfg(feature = "fred")]
        Client::Fred,
    ]
}

fn rpm(n: u64) -> Policy {
    Policy::builder().requests_per_minute(n).build().unwrap()
}

fn config(test: &str, client: Client) -> RedisConfig {
    let mut c = RedisConfig::new(common::unique_name(test));
    c.client = client;
    c.call_timeout = Duration::from_secs(5);
    c
}

fn one_on(key: &str) -> Request<'_> {
    Request::new(Cost::ONE_REQUEST).key(key)
}

/// A plain connection to one server (or one Cluster node).
async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every function library of one server or node.
async fn flush_functions(url: &str) {
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut admin(url).await)
        .await
        .unwrap();
}

/// The names of the llm-ratelimit libraries on one server or node.
async fn our_libraries(url: &str) -> Vec<String> {
    let list: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("llmrl_*")
        .query_async(&mut admin(url).await)
        .await
        .unwrap();
    let redis::Value::Array(libraries) = list else {
        panic!("FUNCTION LIST replied {list:?}");
    };
    libraries
        .iter()
        .map(|library| {
            // Each library: a flat list of names and values (RESP2), its name after
            // `library_name`.
            let redis::Value::Array(fields) = library else {
                panic!("a library entry {library:?}");
            };
            let at = fields
                .iter()
                .position(|f| matches!(f, redis::Value::BulkString(b) if b == b"library_name"))
                .expect("a library_name field");
            match &fields[at + 1] {
                redis::Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("a library name {other:?}"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_loads_one_library_that_every_client_shares() {
    let server = PrivateServer::start();
    let name = common::unique_name("load");
    let mut limiters = Vec::new();
    for client in clients() {
        let mut c = RedisConfig::new(name.clone());
        c.client = client;
        limiters.push(
            RedisLimiter::connect(server.url(), rpm(100), c)
                .await
                .unwrap(),
        );
        let libraries = our_libraries(&server.url()).await;
        assert_eq!(libraries.len(), 1, "{client:?}: {libraries:?}");
        assert!(libraries[0].starts_with("llmrl_"), "{libraries:?}");
    }
    for l in &limiters {
        drop(l.try_acquire(one_on("")).await.unwrap());
    }
    let remaining = limiters[0].status("").await.unwrap().limits()[0]
        .status
        .remaining;
    assert_eq!(remaining, 100 - limiters.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_library_is_loaded_again_by_every_client() {
    for client in clients() {
        let server = PrivateServer::start();
        let l = RedisLimiter::connect(server.url(), rpm(100), config("flush", client))
            .await
            .unwrap();
        drop(l.acquire(one_on("")).await.unwrap());
        flush_functions(&server.url()).await;
        assert!(our_libraries(&server.url()).await.is_empty());
        drop(
            l.acquire(one_on(""))
                .await
                .unwrap_or_else(|e| panic!("{client:?}: {e}")),
        );
        assert_eq!(our_libraries(&server.url()).await.len(), 1, "{client:?}");
        // The budget's state was never touched: both decisions count, once each.
        assert_eq!(l.status("").await.unwrap().limits()[0].status.remaining, 98);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_meeting_a_flushed_library_all_get_exact_decisions() {
    for client in clients() {
        let server = PrivateServer::start();
        let l = RedisLimiter::connect(server.url(), rpm(50), config("flush-many", client))
            .await
            .unwrap();
        flush_functions(&server.url()).await;
        // 64 tasks at once all find the library gone; each loads it and calls again. 50 are
        // granted, 14 refused: no decision lost, none counted twice.
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.try_acquire(one_on("")).await.map(drop) })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => granted += 1,
                Err(ratelimit_limiter::AcquireError::RateLimited { .. }) => {}
                Err(e) => panic!("{client:?}: {e}"),
            }
        }
        assert_eq!(granted, 50, "{client:?}");
        assert_eq!(l.status("").await.unwrap().limits()[0].status.remaining, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_on_a_callers_connection_loads_the_library_on_first_use() {
    let server = PrivateServer::start();
    let name = common::unique_name("callers");
    let manager = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let l =
        RedisLimiter::from_connection_manager(manager, rpm(100), RedisConfig::new(&name)).unwrap();
    // Built without a call: nothing loaded yet.
    assert!(our_libraries(&server.url()).await.is_empty());
    drop(l.try_acquire(one_on("")).await.unwrap());
    assert_eq!(our_libraries(&server.url()).await.len(), 1);
    #[cfg(feature = "fred")]
    {
        use fred::prelude::{Builder, ClientLike, Config};
        flush_functions(&server.url()).await;
        let client = Builder::from_config(Config::from_url(&server.url()).unwrap())
            .build()
            .unwrap();
        client.init().await.unwrap();
        let f = RedisLimiter::from_fred_client(client, rpm(100), RedisConfig::new(&name)).unwrap();
        drop(f.try_acquire(one_on("")).await.unwrap());
        assert_eq!(our_libraries(&server.url()).await.len(), 1);
    }
    let expected = if cfg!(feature = "fred") { 98 } else { 99 };
    assert_eq!(
        l.status("").await.unwrap().limits()[0].status.remaining,
        expected
    );
}

/// For each Cluster node, a budget key whose slot that node serves.
async fn a_key_per_node(urls: &[String], name: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for url in urls {
        let mut node = admin(url).await;
        for i in 0..10_000 {
            let key = format!("k{i}");
            // A node answers a key it does not serve with MOVED.
            let served: redis::RedisResult<i64> = redis::cmd("EXISTS")
                .arg(format!("{{llmrl:{name}:{key}}}:state"))
                .query_async(&mut node)
                .await;
            if served.is_ok() {
                keys.push(key);
                break;
            }
        }
    }
    assert_eq!(keys.len(), urls.len(), "a key on every node");
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_master_gets_the_library_again_when_it_lost_it() {
    let urls = common::cluster_urls().expect(
        "RATELIMIT_REDIS_CLUSTER_URLS is not set: run the suite with `cargo xtask test`, which starts a cluster",
    );
    for client in clients() {
        // Libraries of other versions may be there: start from none (a limiter that was using
        // them loads them again).
        for url in &urls {
            flush_functions(url).await;
        }
        let c = config("cluster-load", client);
        let name = c.name.clone();
        let l = RedisLimiter::connect(Target::Cluster(urls.clone()), rpm(100), c)
            .await
            .unwrap();
        for url in &urls {
            assert_eq!(our_libraries(url).await.len(), 1, "{client:?}: {url}");
        }
        let keys = a_key_per_node(&urls, &name).await;
        for key in &keys {
            drop(l.try_acquire(one_on(key)).await.unwrap());
        }
        // As if each node in turn were a new master (added, or a failover to a fresh node):
        // the first call there finds no function, loads the library and is answered.
        for (url, key) in urls.iter().zip(&keys) {
            flush_functions(url).await;
            drop(
                l.try_acquire(one_on(key))
                    .await
                    .unwrap_or_else(|e| panic!("{client:?} after flushing {url}: {e}")),
            );
            assert_eq!(our_libraries(url).await.len(), 1, "{client:?}: {url}");
        }
        for key in &keys {
            let remaining = l.status(key).await.unwrap().limits()[0].status.remaining;
            assert_eq!(remaining, 98, "{client:?}: {key}");
        }
    }
}
