//! `llmrl gateway` end to end: two gateway processes on one Redis share one budget, so the
//! simulated upstream never sees more than the configured global limit, however the load is
//! spread between them.
//!
//! `cargo xtask test` provides the Redis server (`RATELIMIT_REDIS_URL`); run alone, the test
//! starts a private `redis-server` from the PATH, stopped when the test process ends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ratelimit_sim::{Sim, SimConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The Redis server to use.
fn redis_url() -> String {
    if let Ok(url) = std::env::var("RATELIMIT_REDIS_URL") {
        return url;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let bin = std::env::var("RATELIMIT_REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    // A watchdog shell: runs the server, and kills it once the test process is gone.
    let script = format!(
        "{bin} --port {port} --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null 2>&1 & R=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $R 2>/dev/null; do sleep 0.2; done; kill $R 2>/dev/null",
        pid = std::process::id()
    );
    let watchdog = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("sh to start redis-server (install redis-server, or run `cargo xtask test`)");
    std::mem::forget(watchdog);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    format!("redis://127.0.0.1:{port}")
}

/// Starts `llmrl gateway` and returns it with the base URL it prints.
async fn start_gateway(config: &PathBuf) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmrl"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("UPSTREAM_KEY", "sk-upstream")
        .env("KEY_A", "tenant-a-key")
        .env("KEY_B", "tenant-b-key")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("llmrl starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("the gateway's first line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches("/v1;")
        .trim_end_matches(';')
        .trim_end_matches("/v1")
        .to_owned();
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_share_one_budget() {
    let redis = redis_url();
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let prefix = format!("gw-test-{}", std::process::id());
    let config = format!(
        r#"
        [upstream]
        base_url = "{}/v1"
        api_key_env = "UPSTREAM_KEY"
        [backend]
        kind = "redis"
        url = "{redis}"
        prefix = "{prefix}"
        [global]
        rpm = 20
        [tenant_default]
        rpm = 1000
        [[tenants]]
        name = "a"
        key_env = "KEY_A"
        max_queue_time = "0s"
        [[tenants]]
        name = "b"
        key_env = "KEY_B"
        max_queue_time = "0s"
        "#,
        sim.base_url()
    );
    let path = std::env::temp_dir().join(format!("{prefix}.toml"));
    std::fs::write(&path, config).expect("write the configuration");
    let (mut one, url_one) = start_gateway(&path).await;
    let (mut two, url_two) = start_gateway(&path).await;
    assert_ne!(url_one, url_two);

    let http = reqwest::Client::new();
    let started = Instant::now();
    let sends = (0..60).map(|i| {
        let url = if i % 2 == 0 { &url_one } else { &url_two };
        let key = if i % 3 == 0 {
            "tenant-a-key"
        } else {
            "tenant-b-key"
        };
        http.post(format!("{url}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&serde_json::json!({
                "model": "gpt-4o-mini", "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]
            }))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("an answer").status().as_u16())
        .collect();
    let elapsed = started.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert_eq!(
        ok + statuses.iter().filter(|s| **s == 429).count() as u64,
        60,
        "{statuses:?}"
    );
    let stats = sim.stats();
    assert_eq!(stats.accepted, ok);
    // 20 a minute with a burst of 20: at most one more per 3 s of the test. Each gateway alone
    // would have let 20 through, 40 in all.
    let allowed = 20 + elapsed.as_secs() / 3 + 1;
    assert!(ok >= 20, "{ok} {statuses:?}");
    assert!(
        stats.peak_requests <= allowed,
        "{} > {allowed}",
        stats.peak_requests
    );
    let _ = one.kill().await;
    let _ = two.kill().await;
    let _ = std::fs::remove_file(&path);
}
