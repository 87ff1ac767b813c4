//! A client no one here wrote: the official `openai` Python SDK, installed with pip into a
//! virtual environment, completes a chat and a streamed chat through the gateway, and its
//! built-in retry honours the gateway's 429 (`retry-after-ms`/`Retry-After`) to succeed.
//!
//! `cargo xtask test` sets `RATELIMIT_PYTHON` (installing Python when missing); run alone
//! without it, the test says why and does nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{gateway, sim};
use ratelimit_sim::{Latency, SimConfig};

const SCRIPT: &str = r#"
import sys, threading, time
import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="tenant-a-key", max_retries=3)

chat = client.chat.completions.create(
    model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
assert chat.choices[0].message.content, chat
assert chat.usage.prompt_tokens > 0, chat

stream = client.chat.completions.create(
    model="gpt-4o-mini", max_tokens=10, stream=True, stream_options={"include_usage": True},
    messages=[{"role": "user", "content": "Hi"}])
chunks = list(stream)
assert chunks[-1].usage is not None, chunks[-1]

# Hold the tenant's only concurrency slot with an open stream, released after 0.5 s: the next
# call gets the gateway's 429 and the SDK's retry waits as told, then succeeds.
held = client.chat.completions.create(
    model="gpt-4o-mini", max_tokens=10, stream=True, messages=[{"role": "user", "content": "Hi"}])
threading.Timer(0.5, lambda: (list(held), held.close())).start()
t0 = time.monotonic()
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
elapsed = time.monotonic() - t0
assert raw.retries_taken >= 1, raw.retries_taken
assert elapsed >= 0.9, elapsed
assert raw.parse().choices, raw
assert raw.headers.get("x-ratelimit-limit-requests"), dict(raw.headers)

# Without retries, the gateway's 429 reaches the caller as the SDK's RateLimitError.
held = client.chat.completions.create(
    model="gpt-4o-mini", max_tokens=10, stream=True, messages=[{"role": "user", "content": "Hi"}])
try:
    client.with_options(max_retries=0).chat.completions.create(
        model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    raise SystemExit("expected a RateLimitError")
except openai.RateLimitError as e:
    assert e.response.headers["retry-after"] == "1", dict(e.response.headers)
    assert e.body["code"] == "rate_limit_exceeded", e.body
list(held)
print("OK", raw.retries_taken, round(elapsed, 2))
"#;

/// A virtual environment with `openai`, made once per target directory.
fn venv(python: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let bin = dir.join("bin").join("python");
    let marker = dir.join("openai-installed");
    if !marker.exists() {
        let made = Command::new(python)
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("run python -m venv");
        assert!(made.success(), "python -m venv failed");
        let pip = Command::new(&bin)
            .args(["-m", "pip", "install", "--quiet", "openai"])
            .status()
            .expect("run pip");
        assert!(pip.success(), "pip install openai failed");
        std::fs::write(&marker, b"").expect("mark the venv");
    }
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_chats_streams_and_retries_through_the_gateway() {
    let Ok(python) = std::env::var("RATELIMIT_PYTHON") else {
        eprintln!("skipped: RATELIMIT_PYTHON is not set (cargo xtask test sets it)");
        return;
    };
    let bin = tokio::task::spawn_blocking(move || venv(&python))
        .await
        .expect("venv");
    // Answers stream for about a second (5 output tokens, 200 ms each), so the stream that holds
    // the tenant's one concurrency slot still holds it when the next call arrives, however slow
    // the machine is.
    let upstream = sim(SimConfig {
        latency: Latency {
            base: std::time::Duration::from_millis(20),
            per_output_token: std::time::Duration::from_millis(200),
        },
        ..SimConfig::default()
    })
    .await;
    let config = r#"
        [upstream]
        base_url = "{upstream}"
        api_key_env = "UPSTREAM_KEY"
        [global]
        rpm = 1000
        [[tenants]]
        name = "a"
        key_env = "KEY_A"
        max_queue_time = "0s"
        limits = { concurrency = 1 }
    "#;
    let gw = gateway(config, &upstream).await;
    let base = gw.url("/v1");
    let output = tokio::process::Command::new(&bin)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&base)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.starts_with("OK"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    gw.stop().await;
}
