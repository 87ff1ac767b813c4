//! The gateway's overhead (issue 7): the simulated provider (no latency, no limits) called
//! directly and through `ratelimit-gateway` (memory backend, one tenant, limits far above the
//! load), by the same load generator; written as `gateway.json` beside criterion's results.
//!
//! The load generator: `TASKS` tasks on one reqwest client (keep-alive connections), each sending
//! a small chat completion (`max_tokens` 16, the prompt a short sentence).
//! - **Open loop**: a fixed rate (`RATE` requests/s, `RATELIMIT_GATEWAY_RATE` overrides), the
//!   requests' send times fixed in advance and spread over the tasks; a request sent late because
//!   its task was still waiting for the previous answer counts its latency from its scheduled time,
//!   so a stall delays every request behind it (no coordinated omission); one sent on time counts
//!   from when the timer woke its task (tokio's timer fires up to a millisecond late, which is the
//!   load generator's, not the server's). p50/p99 direct and through the gateway, and the added latency at each
//!   (through − direct).
//! - **Closed loop**: every task sends its next request when its answer arrives, as fast as the
//!   machine goes: requests/s direct and through the gateway.
//!
//! Direct and gateway runs alternate in `ROUNDS` rounds and each one's histograms merge over the
//! rounds, so a slow patch of a shared machine falls on both. The servers run on a tokio runtime
//! of 2 workers, the load generator on its own current-thread runtime; all share the machine's
//! cores. About 35 s in all.
//!
//! Run: `cargo bench -p ratelimit-benches --bench gateway`. `cargo test -p ratelimit-benches
//! --bench gateway` runs a short pass of everything as a test (no JSON written).
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use ratelimit_gateway::{Config, Gateway};
use ratelimit_sim::{Latency, Sim, SimConfig, SimHandle};
use tokio::time::Instant;

/// Concurrent tasks of the load generator.
const TASKS: usize = 32;
/// The open loop's rate, requests per second: far below what the gateway sustains on 2 cores.
const RATE: u64 = 500;
/// Alternations of direct and gateway runs.
const ROUNDS: u32 = 3;

/// How long each part of a round lasts.
struct Durations {
    warmup: Duration,
    open: Duration,
    closed: Duration,
}

const FULL: Durations = Durations {
    warmup: Duration::from_millis(500),
    open: Duration::from_secs(4),
    closed: Duration::from_secs(2),
};

const SHORT: Durations = Durations {
    warmup: Duration::from_millis(50),
    open: Duration::from_millis(300),
    closed: Duration::from_millis(200),
};

const TENANT_KEY: &str = "bench-tenant-key";

fn gateway_config(upstream: &SimHandle) -> Config {
    Config::from_toml(&format!(
        r#"
        listen = "127.0.0.1:0"
        max_queue_time = "1s"
        [upstream]
        base_url = "{}/v1"
        api_key_env = "UPSTREAM_KEY"
        [global]
        rpm = 1000000
        tpm = 1000000000
        [[tenants]]
        name = "bench"
        key_env = "TENANT_KEY"
        limits = {{ rpm = 1000000, tpm = 1000000000 }}
        "#,
        upstream.base_url()
    ))
    .expect("valid gateway configuration")
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to a minute, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Where the load goes.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: String,
    key: &'static str,
    body: bytes::Bytes,
}

impl Target {
    /// One request; panics on anything but a 200, which would make the numbers meaningless.
    async fn call(&self) {
        let answer = self
            .http
            .post(&self.url)
            .bearer_auth(self.key)
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await
            .expect("the request is answered");
        let status = answer.status();
        let body = answer.bytes().await.expect("the answer's body arrives");
        assert_eq!(
            status,
            200,
            "unexpected answer: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// The open loop: `rate` requests/s for `duration`, spread over `TASKS` tasks; latency from each
/// request's scheduled time, in microseconds.
async fn open_loop(target: &Target, rate: u64, duration: Duration) -> Histogram<u64> {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = (duration.as_secs_f64() * rate as f64) as u64;
    let start = Instant::now() + Duration::from_millis(5);
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS as u64 {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut k = task;
            while k < total {
                let due = start + interval * u32::try_from(k).expect("fewer than 2^32 requests");
                // Behind schedule (the previous answer came after this request was due): the
                // latency counts from `due`, so a stall delays every request behind it. On time:
                // from the moment the timer woke the task, so the timer's own lateness (tokio's
                // is up to a millisecond) is not put on the server.
                let from = if Instant::now() >= due {
                    due
                } else {
                    tokio::time::sleep_until(due).await;
                    Instant::now()
                };
                target.call().await;
                let micros = u64::try_from(from.elapsed().as_micros()).unwrap_or(u64::MAX);
                hist.record(micros.max(1)).expect("latency within bounds");
                k += TASKS as u64;
            }
            hist
        }));
    }
    let mut all = histogram();
    for task in tasks {
        all.add(task.await.expect("load task"))
            .expect("same bounds");
    }
    all
}

/// The closed loop: every task back to back for `duration`; the requests answered.
async fn closed_loop(target: &Target, duration: Duration) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let target = target.clone();
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                target.call().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("load task");
    }
    done.load(Ordering::Relaxed)
}

/// What one target's runs add up to.
struct Measured {
    open: Histogram<u64>,
    closed_requests: u64,
    closed_time: Duration,
}

impl Measured {
    fn new() -> Self {
        Self {
            open: histogram(),
            closed_requests: 0,
            closed_time: Duration::ZERO,
        }
    }

    fn per_second(&self) -> f64 {
        self.closed_requests as f64 / self.closed_time.as_secs_f64()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test`) a short pass checks that it runs.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filter.is_empty()
        && !filter
            .iter()
            .any(|f| "gateway_overhead".contains(f.as_str()))
    {
        return;
    }
    let durations = if bench { &FULL } else { &SHORT };
    let rate = std::env::var("RATELIMIT_GATEWAY_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(RATE);

    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let (sim, gateway_addr, stop) = servers.block_on(async {
        let sim = Sim::start(SimConfig {
            latency: Latency::default(),
            ..SimConfig::default()
        })
        .await
        .expect("the simulator starts");
        let config = gateway_config(&sim);
        let gateway = Gateway::with_env(&config, &|var| match var {
            "UPSTREAM_KEY" => Some("sk-bench-upstream".into()),
            "TENANT_KEY" => Some(TENANT_KEY.into()),
            _ => None,
        })
        .await
        .expect("the gateway starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(gateway.serve(listener, async {
            let _ = stopped.await;
        }));
        (sim, addr, stop)
    });

    let load = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("load runtime");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(TASKS)
        .build()
        .expect("client");
    let body = bytes::Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "model": "gpt-4o-mini",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "Say hello to the gateway benchmark."}],
        }))
        .expect("body"),
    );
    let direct = Target {
        http: http.clone(),
        url: format!("{}/v1/chat/completions", sim.base_url()),
        key: "sk-bench-upstream",
        body: body.clone(),
    };
    let through = Target {
        http,
        url: format!("http://{gateway_addr}/v1/chat/completions"),
        key: TENANT_KEY,
        body,
    };

    let mut results = [Measured::new(), Measured::new()];
    let mut warmup_requests = 0;
    load.block_on(async {
        for target in [&direct, &through] {
            warmup_requests += closed_loop(target, durations.warmup).await;
        }
        for _ in 0..ROUNDS {
            for (target, measured) in [&direct, &through].into_iter().zip(results.iter_mut()) {
                let hist = open_loop(target, rate, durations.open).await;
                measured.open.add(hist).expect("same bounds");
                let started = Instant::now();
                measured.closed_requests += closed_loop(target, durations.closed).await;
                measured.closed_time += started.elapsed();
            }
        }
    });
    let limits = load.block_on(async {
        through
            .http
            .get(format!("http://{gateway_addr}/v1/limits?model=gpt-4o-mini"))
            .bearer_auth(TENANT_KEY)
            .send()
            .await
            .expect("limits")
            .text()
            .await
            .expect("limits body")
    });
    eprintln!("the gateway's budgets after the run: {limits}");
    let _ = stop.send(());
    let upstream = sim.stats();
    servers.block_on(async {
        sim.shutdown().await.expect("the simulator stops");
    });

    let [direct, through] = results;
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    let entries = [
        ("open_rate_per_s", rate as f64),
        ("tasks", TASKS as f64),
        ("open_requests_each", direct.open.len() as f64),
        ("direct_p50_us", q(&direct.open, 0.50)),
        ("direct_p99_us", q(&direct.open, 0.99)),
        ("gateway_p50_us", q(&through.open, 0.50)),
        ("gateway_p99_us", q(&through.open, 0.99)),
        (
            "added_p50_us",
            q(&through.open, 0.50) - q(&direct.open, 0.50),
        ),
        (
            "added_p99_us",
            q(&through.open, 0.99) - q(&direct.open, 0.99),
        ),
        ("direct_max_per_s", direct.per_second()),
        ("gateway_max_per_s", through.per_second()),
        (
            "gateway_over_direct_throughput",
            through.per_second() / direct.per_second(),
        ),
        ("upstream_accepted", upstream.accepted as f64),
    ];
    for (k, v) in &entries {
        eprintln!("gateway_overhead.{k} = {v:.1}");
    }
    // Every request reached the provider: the gateway's in front of it and the direct ones.
    assert_eq!(
        upstream.accepted,
        direct.open.len()
            + through.open.len()
            + direct.closed_requests
            + through.closed_requests
            + warmup_requests,
        "the provider saw another number of requests than were sent"
    );
    if !bench {
        return;
    }
    let metrics: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    let dir = ratelimit_benches::criterion_dir();
    std::fs::create_dir_all(&dir).expect("criterion dir");
    std::fs::write(
        dir.join("gateway.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(metrics)).expect("json"),
    )
    .expect("write gateway.json");
}
