//! Test support: the Redis servers to test against, and fresh budget names.
//!
//! `cargo xtask test` starts a standalone server and a 3-node Cluster and exports their URLs
//! (`RATELIMIT_REDIS_URL`, `RATELIMIT_REDIS_CLUSTER_URLS`). Run alone (`cargo test`), the tests start
//! a private standalone server with `redis-server` from the PATH, watched so that it stops when the
//! test process ends.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A limiter enforcing `policy` on the standalone server, under a budget name of its own.
pub async fn limiter(test: &str, policy: ratelimit_core::Policy) -> ratelimit_redis::RedisLimiter {
    let config = ratelimit_redis::RedisConfig::new(unique_name(test));
    ratelimit_redis::RedisLimiter::connect(redis_url(), policy, config)
        .await
        .expect("connect to redis")
}

/// A budget name no other test uses.
pub fn unique_name(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `redis-server` binary.
pub fn server_bin() -> String {
    std::env::var("RATELIMIT_REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until a server answers on `port`.
pub fn wait_ready(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server on port {port} did not start");
}

/// Starts a private standalone server that stops when this test process ends; returns its port.
pub fn start_private_server() -> u16 {
    let port = free_port();
    let bin = server_bin();
    // A watchdog shell: runs the server, and kills it once the test process is gone.
    let script = format!(
        "{bin} --port {port} --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null 2>&1 & R=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $R 2>/dev/null; do sleep 0.2; done; kill $R 2>/dev/null",
        pid = std::process::id()
    );
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("sh to start redis-server (install redis-server, or run `cargo xtask test`)");
    // The watchdog outlives this function on purpose: it ends with the test process.
    std::mem::forget(watchdog);
    wait_ready(port);
    port
}

/// The standalone server's URL.
pub fn redis_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("RATELIMIT_REDIS_URL")
            .unwrap_or_else(|_| format!("redis://127.0.0.1:{}", start_private_server()))
    })
    .clone()
}

/// The Cluster's node URLs, when `cargo xtask test` started one.
pub fn cluster_urls() -> Option<Vec<String>> {
    std::env::var("RATELIMIT_REDIS_CLUSTER_URLS")
        .ok()
        .map(|v| v.split(',').map(str::to_owned).collect())
}

/// A `redis-server` of one test's own, stopped when dropped; it can be stopped and restarted on
/// the same port to simulate an outage.
pub struct PrivateServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateServer {
    /// Starts a server on a free port.
    pub fn start() -> Self {
        let mut s = Self {
            port: free_port(),
            child: None,
        };
        s.restart();
        s
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(server_bin())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it, or run `cargo xtask test`)");
        self.child = Some(child);
        wait_ready(self.port);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
    }
}
