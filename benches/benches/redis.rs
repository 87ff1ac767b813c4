//! Benchmarks of `ratelimit-redis` (the distributed limiter) against the ceiling of the same Redis
//! server: a trivial script (`return 1`) called with EVALSHA on the same client.
//!
//! Convention read by `cargo xtask bench`: each criterion *group* compares implementations of one
//! task; the function id `ours` is this project's implementation and every other function id in
//! the group is a peer.
//!
//! Throughput (not a criterion timing: what matters is decisions per second with N tasks in
//! flight), measured first: for each client (`redis` = redis-rs, `fred`) and each concurrency (1
//! task, 64 tasks, on a multi-thread tokio runtime with 2 workers), about 3 s each, after 0.3 s of
//! warm-up:
//! - `ceiling`: EVALSHA of `return 1` in a loop, on the connection ours uses: for redis-rs a
//!   `ConnectionManager` shared by every task with `redis::Script::invoke_async`, for fred one
//!   `fred::prelude::Client` (built as ours builds it) with `evalsha` of the loaded SHA;
//! - `ours`: `RedisLimiter::try_acquire(Request::new(Cost::request(100, 50)))`, the permit dropped,
//!   on RPM + TPM GCRA limits so large that every decision is allowed (one `FCALL` each, or with
//!   64 tasks several decisions per `FCALL` when they queue behind the call in flight: each still
//!   a decision of its own on the shared state at Redis time, applied in order);
//! - `one_limit`: the same with the RPM limit alone;
//! - `reference`: [`REFERENCE_GCRA`], the tightest stateful script for one GCRA limit (the same
//!   decision as `one_limit` for that limit: Redis TIME, the state read, checked and written with
//!   its expiry, the wait when refused; none of ours' reservations, refunds, pauses, other
//!   algorithms or bookkeeping for cancellation), called like the ceiling: what one stateful
//!   decision costs at best on this server and client;
//! - `sliding_log`: the same as `ours` with the TPM limit a sliding window log (two sorted sets per
//!   limit). Its window is 1 s rather than a minute, so the log reaches its steady state (one
//!   entry in and one out per decision) within the measurement while holding one second of
//!   decisions (tens of thousands of entries at most); a minute's window costs the same work on a
//!   log 60 times longer (`O(log n)` deeper).
//!
//! Each decision is timed on its own (`Instant` before and after, into an HDR histogram): decisions
//! per second, p50, p99, and the ratio of ours to the ceiling (the issue's target: at least 0.70).
//! `one_limit_vs_reference` is `one_limit`'s decisions per second over `reference`'s: how close
//! ours comes to the best possible stateful script (a stateless `return 1` is no stateful
//! decision's bound: with 64 tasks on 2 cores the server's CPU per call decides).
//! To show where the time goes, each point also reports the server's own time per script call
//! (`INFO commandstats`, EVALSHA or FCALL), the server's CPU per decision (`INFO cpu`) and this process's
//! CPU per decision (`/proc/self/stat`; client, tokio and the connection drivers). The table goes
//! to stderr and a flat JSON object of numbers to `target/criterion/redis_throughput.json`
//! (`<client>_<n>task_ceiling_per_s`, `_ours_per_s`, `_ratio`, `_p50_us`, `_p99_us`,
//! `_sliding_log_ratio`, ...).
//!
//! Criterion group `redis_decision_latency`: one decision at a time on a current-thread runtime,
//! redis-rs; `ours` is one `try_acquire`, `evalsha_return_1` one EVALSHA of `return 1`,
//! `reference_gcra` one call of [`REFERENCE_GCRA`]: the ratios in the standard table are ours'
//! latency over a bare round trip with a script, and over the tightest stateful decision.
//!
//! The server: `RATELIMIT_REDIS_URL` if set, else a private `redis-server` (from
//! `RATELIMIT_REDIS_SERVER_BIN`, else the PATH) on a free loopback port without persistence,
//! stopped when the bench ends (also on a panic, and by a watchdog shell if the bench is killed).
//! `RATELIMIT_BENCH_REDIS=0` skips the whole bench (machines without Redis).
//!
//! Run: `cargo bench -p ratelimit-benches --bench redis` (about 50 s once built),
//! `cargo bench -p ratelimit-benches --bench redis -- redis_decision` for the criterion group
//! alone (a filter that is not a substring of `redis_throughput` skips the throughput), and
//! `cargo test -p ratelimit-benches --bench redis` for a short run of everything as a test (no
//! JSON written).
#![allow(missing_docs)]

use std::cell::OnceCell;
use std::future::Future;
use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use fred::prelude::{Builder, ClientLike, Config, LuaInterface, ReconnectPolicy};
use hdrhistogram::Histogram;
use ratelimit_core::{AlgorithmKind, Cost, Limit, Policy, Resource};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_redis::{RedisConfig, RedisLimiter};
use tokio::runtime::Runtime;

// ---------------------------------------------------------------------------------------------
// Settings.

/// What every decision costs: one request, 100 input and 50 output tokens.
const COST: Cost = Cost::request(100, 50);
/// The trivial script of the ceiling.
const TRIVIAL: &str = "return 1";
/// The reference: the tightest one-limit GCRA try-acquire (exact, on Redis time). KEYS[1] holds
/// the theoretical arrival time (us, a packed double); ARGV[1] packs the emission interval (us per
/// unit), the tolerance (us: burst x emission) and the amount. Reply: status 0 and the new
/// arrival time, or 2 and the wait in us. The key expires once the limit is replenished.
const REFERENCE_GCRA: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local emission, tolerance, n = struct.unpack('<ddd', ARGV[1])
local tat = redis.call('GET', KEYS[1])
if tat then tat = struct.unpack('<d', tat) end
if not tat or tat < now then tat = now end
local new = tat + n * emission
if new - tolerance > now then return struct.pack('<dd', 2, new - tolerance - now) end
redis.call('SET', KEYS[1], struct.pack('<d', new), 'PX', string.format('%d', math.ceil((new - now) / 1000) + 1))
return struct.pack('<dd', 0, new)
";
/// The reference's limit: `HUGE_RPM` per minute, as an emission interval and a tolerance (us).
const REFERENCE_EMISSION_US: f64 = 60e6 / HUGE_RPM as f64;
const REFERENCE_TOLERANCE_US: f64 = 60e6;
/// Concurrency levels of the throughput measurement.
const TASKS: [usize; 2] = [1, 64];
/// Worker threads of the throughput runtime.
const WORKERS: usize = 2;
/// Limits no benchmark can reach: 10^9 requests and 10^12 tokens per minute (GCRA), or 10^12
/// tokens per second (sliding log).
const HUGE_RPM: u64 = 1_000_000_000;
const HUGE_TOKENS: u64 = 1_000_000_000_000;
/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/self/stat`.
const USER_HZ: f64 = 100.0;

/// Whether criterion runs in bench mode (`cargo bench` passes `--bench`); otherwise everything runs
/// briefly, as a test.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Warm-up and measurement of one throughput point.
fn point_times() -> (Duration, Duration) {
    if bench_mode() {
        (Duration::from_millis(300), Duration::from_secs(3))
    } else {
        (Duration::from_millis(50), Duration::from_millis(200))
    }
}

/// A budget name of its own for each limiter (a shared server may hold older runs' budgets).
fn budget_name(what: &str) -> String {
    format!("bench-{}-{what}", std::process::id())
}

/// RPM and TPM, both GCRA, never reached.
fn gcra_policy() -> Policy {
    Policy::builder()
        .requests_per_minute(HUGE_RPM)
        .tokens_per_minute(HUGE_TOKENS)
        .build()
        .expect("valid policy")
}

/// RPM alone (GCRA), never reached.
fn one_limit_policy() -> Policy {
    Policy::builder()
        .requests_per_minute(HUGE_RPM)
        .build()
        .expect("valid policy")
}

/// RPM (GCRA) and tokens per second as a sliding window log, never reached.
fn sliding_log_policy() -> Policy {
    Policy::builder()
        .requests_per_minute(HUGE_RPM)
        .limit(
            Limit::new(Resource::Tokens, HUGE_TOKENS, Duration::from_secs(1))
                .algorithm(AlgorithmKind::SlidingWindowLog),
        )
        .build()
        .expect("valid policy")
}

async fn ours(
    url: &str,
    client: ratelimit_redis::Client,
    policy: Policy,
    name: &str,
) -> RedisLimiter {
    let config = RedisConfig {
        client,
        ..RedisConfig::new(budget_name(name))
    };
    RedisLimiter::connect(url, policy, config)
        .await
        .expect("ours connects")
}

async fn redis_rs_manager(url: &str) -> redis::aio::ConnectionManager {
    redis::Client::open(url)
        .expect("a valid redis URL")
        .get_connection_manager()
        .await
        .expect("redis-rs connects")
}

/// A fred client built as `ratelimit-redis` builds its own.
async fn fred_client(url: &str) -> fred::prelude::Client {
    let client = Builder::from_config(Config::from_url(url).expect("a valid fred URL"))
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .expect("a fred client");
    client.init().await.expect("fred connects");
    client
}

// ---------------------------------------------------------------------------------------------
// The server.

/// The Redis server under test; a private one is stopped when this is dropped.
struct Server {
    url: String,
    _private: Option<PrivateServer>,
}

/// A `redis-server` started by this bench, with a watchdog shell that stops it if the bench dies
/// without running destructors (killed by a signal).
struct PrivateServer {
    redis: Child,
    watchdog: Option<Child>,
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        // The watchdog first, so it cannot signal the server's pid after the server is reaped.
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.redis.kill();
        let _ = self.redis.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    fn find_or_start() -> Self {
        if let Some(url) = std::env::var("RATELIMIT_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return Self {
                url,
                _private: None,
            };
        }
        let bin = std::env::var("RATELIMIT_REDIS_SERVER_BIN")
            .unwrap_or_else(|_| "redis-server".to_owned());
        let port = free_port();
        let redis = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start `{bin}` ({e}): install redis-server, set \
                     RATELIMIT_REDIS_URL or RATELIMIT_REDIS_SERVER_BIN, or skip this bench with \
                     RATELIMIT_BENCH_REDIS=0"
                )
            });
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {server} 2>/dev/null; do sleep 0.5; \
                 done; kill {server} 2>/dev/null",
                me = std::process::id(),
                server = redis.id(),
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut private = PrivateServer { redis, watchdog };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = private.redis.try_wait() {
                panic!("`{bin}` exited at start ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "`{bin}` did not listen on port {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            url: format!("redis://127.0.0.1:{port}"),
            _private: Some(private),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput.

fn histogram() -> Histogram<u64> {
    // 1 ns to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs `op` in a loop on `tasks` tasks for `dur`; every call's latency (ns) and the wall time
/// until the last task is done.
async fn drive<F, Fut>(tasks: usize, dur: Duration, op: F) -> (Histogram<u64>, Duration)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let end = start + dur;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut h = histogram();
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    op().await;
                    h.saturating_record(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
                }
                h
            })
        })
        .collect();
    let mut all = histogram();
    for handle in handles {
        let h = handle.await.expect("a measuring task panicked");
        all.add(h).expect("histograms with the same bounds");
    }
    (all, start.elapsed())
}

/// What the server has done so far, from `INFO all`: calls of scripts and functions (EVALSHA and
/// FCALL together: a point makes only one kind), their time, the server's CPU.
#[derive(Clone, Copy)]
struct ServerCounters {
    script_calls: u64,
    script_usec: u64,
    cpu_secs: f64,
}

async fn server_counters(admin: &mut redis::aio::MultiplexedConnection) -> Option<ServerCounters> {
    let info: String = redis::cmd("INFO")
        .arg("all")
        .query_async(admin)
        .await
        .ok()?;
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    let mut calls = 0;
    let mut usec = 0;
    let mut cpu = 0.0;
    for line in info.lines() {
        if line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_fcall:") {
            calls += field(line, "calls")?;
            usec += field(line, "usec")?;
        } else if let Some(v) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            cpu += v.trim().parse::<f64>().ok()?;
        }
    }
    Some(ServerCounters {
        script_calls: calls,
        script_usec: usec,
        cpu_secs: cpu,
    })
}

/// CPU time (user + system) of this process so far, in seconds (Linux only).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15.
    Some((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}

/// One measured point.
struct Point {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server time inside EVALSHA or FCALL per call (commandstats).
    server_us_per_call: Option<f64>,
    /// Server process CPU per decision.
    server_cpu_us: Option<f64>,
    /// This process's CPU per decision.
    client_cpu_us: Option<f64>,
}

/// Warms `op` up, then measures it, with the server's and this process's counters around the
/// measurement.
async fn measure<F, Fut>(
    admin: &mut redis::aio::MultiplexedConnection,
    tasks: usize,
    op: F,
) -> Point
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (warm_up, dur) = point_times();
    drive(tasks, warm_up, op.clone()).await;
    let server0 = server_counters(admin).await;
    let cpu0 = process_cpu_secs();
    let (hist, elapsed) = drive(tasks, dur, op).await;
    let cpu1 = process_cpu_secs();
    let server1 = server_counters(admin).await;

    let n = hist.len();
    assert!(n > 0, "no call completed");
    let per_decision_us = |secs: f64| secs * 1e6 / n as f64;
    let (server_us_per_call, server_cpu_us) = match (server0, server1) {
        (Some(a), Some(b)) if b.script_calls > a.script_calls => (
            Some((b.script_usec - a.script_usec) as f64 / (b.script_calls - a.script_calls) as f64),
            Some(per_decision_us(b.cpu_secs - a.cpu_secs)),
        ),
        _ => (None, None),
    };
    Point {
        per_s: n as f64 / elapsed.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.50) as f64 / 1e3,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
        server_us_per_call,
        server_cpu_us,
        client_cpu_us: cpu0.zip(cpu1).map(|(a, b)| per_decision_us(b - a)),
    }
}

/// The redis-rs ceiling: EVALSHA of `return 1` on a shared `ConnectionManager`.
fn redis_rs_ceiling(
    conn: redis::aio::ConnectionManager,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + 'static {
    let script = Arc::new(redis::Script::new(TRIVIAL));
    move || {
        // Cloned per call, as ours clones its manager per call.
        let mut conn = conn.clone();
        let script = Arc::clone(&script);
        Box::pin(async move {
            let one: i64 = script
                .invoke_async(&mut conn)
                .await
                .expect("EVALSHA return 1");
            assert_eq!(one, 1);
        })
    }
}

/// The fred ceiling: `evalsha` of the loaded SHA of `return 1`.
async fn fred_ceiling(
    client: fred::prelude::Client,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + 'static {
    let sha: String = client.script_load(TRIVIAL).await.expect("SCRIPT LOAD");
    let shared = Arc::new((client, sha));
    move || {
        let shared = Arc::clone(&shared);
        Box::pin(async move {
            let (client, sha) = &*shared;
            let one: i64 = client
                .evalsha(sha.as_str(), (), Vec::<String>::new())
                .await
                .expect("EVALSHA return 1");
            assert_eq!(one, 1);
        })
    }
}

/// The reference's packed arguments: one request.
fn reference_args() -> Vec<u8> {
    [REFERENCE_EMISSION_US, REFERENCE_TOLERANCE_US, 1.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

/// Checks a reply of the reference: allowed.
fn reference_allowed(reply: &[u8]) {
    assert_eq!(reply.len(), 16, "the reference replies two packed numbers");
    assert_eq!(reply[..8], 0f64.to_le_bytes(), "the reference must allow");
}

/// The reference on redis-rs, like its ceiling.
fn redis_rs_reference(
    conn: redis::aio::ConnectionManager,
    key: String,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + 'static {
    let script = Arc::new(redis::Script::new(REFERENCE_GCRA));
    let shared = Arc::new((key, reference_args()));
    move || {
        let mut conn = conn.clone();
        let script = Arc::clone(&script);
        let shared = Arc::clone(&shared);
        Box::pin(async move {
            let (key, args) = &*shared;
            let reply: Vec<u8> = script
                .key(key.as_str())
                .arg(args.as_slice())
                .invoke_async(&mut conn)
                .await
                .expect("the reference script");
            reference_allowed(&reply);
        })
    }
}

/// The reference on fred, like its ceiling.
async fn fred_reference(
    client: fred::prelude::Client,
    key: String,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + 'static {
    let sha: String = client
        .script_load(REFERENCE_GCRA)
        .await
        .expect("SCRIPT LOAD");
    let args = fred::types::Value::Bytes(reference_args().into());
    let shared = Arc::new((client, sha, key, args));
    move || {
        let shared = Arc::clone(&shared);
        Box::pin(async move {
            let (client, sha, key, args) = &*shared;
            let reply: fred::types::Value = client
                .evalsha(sha.as_str(), key.as_str(), args.clone())
                .await
                .expect("the reference script");
            reference_allowed(reply.as_bytes().expect("a packed reply"));
        })
    }
}

/// Ours: one `try_acquire`, always allowed, the permit dropped.
fn ours_op(
    limiter: RedisLimiter,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + 'static {
    move || {
        let limiter = limiter.clone();
        Box::pin(async move {
            let permit = limiter
                .try_acquire(Request::new(COST))
                .await
                .expect("ours must allow");
            drop(permit);
        })
    }
}

/// One row of the results table.
struct Row {
    client: &'static str,
    tasks: usize,
    variant: &'static str,
    point: Point,
}

fn throughput_rows(url: &str) -> Vec<Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let mut admin = redis::Client::open(url)
            .expect("a valid redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("an admin connection");
        let mut rows = Vec::new();
        for (client, key) in [
            (ratelimit_redis::Client::Redis, "redis_rs"),
            (ratelimit_redis::Client::Fred, "fred"),
        ] {
            for tasks in TASKS {
                let is_redis = client == ratelimit_redis::Client::Redis;
                let ceiling = if is_redis {
                    let op = redis_rs_ceiling(redis_rs_manager(url).await);
                    measure(&mut admin, tasks, op).await
                } else {
                    let op = fred_ceiling(fred_client(url).await).await;
                    measure(&mut admin, tasks, op).await
                };
                rows.push(Row {
                    client: key,
                    tasks,
                    variant: "ceiling",
                    point: ceiling,
                });
                let state_key = format!("{{{}}}:tat", budget_name(&format!("{key}-{tasks}-ref")));
                let reference = if is_redis {
                    let op = redis_rs_reference(redis_rs_manager(url).await, state_key);
                    measure(&mut admin, tasks, op).await
                } else {
                    let op = fred_reference(fred_client(url).await, state_key).await;
                    measure(&mut admin, tasks, op).await
                };
                rows.push(Row {
                    client: key,
                    tasks,
                    variant: "reference",
                    point: reference,
                });
                for (variant, policy) in [
                    ("ours", gcra_policy()),
                    ("one_limit", one_limit_policy()),
                    ("sliding_log", sliding_log_policy()),
                ] {
                    let name = format!("{key}-{tasks}-{variant}");
                    let limiter = ours(url, client, policy, &name).await;
                    let point = measure(&mut admin, tasks, ours_op(limiter)).await;
                    rows.push(Row {
                        client: key,
                        tasks,
                        variant,
                        point,
                    });
                }
            }
        }
        rows
    })
}

fn opt(v: Option<f64>, width: usize) -> String {
    v.map_or_else(|| format!("{:>width$}", "-"), |v| format!("{v:>width$.1}"))
}

fn report(rows: &[Row], url: &str) {
    let (_, dur) = point_times();
    eprintln!(
        "\nredis throughput: {url}, {} s per point, tokio multi-thread runtime with {WORKERS} \
         workers; ratio = decisions/s over the ceiling's (EVALSHA `return 1`, same client, same run); \
         vs ref = over the reference's (the tightest one-limit GCRA script)",
        dur.as_secs_f64()
    );
    eprintln!(
        "{:<9} {:>5}  {:<12} {:>11} {:>6} {:>6} {:>8} {:>8}  {:>11} {:>11} {:>11}",
        "client",
        "tasks",
        "variant",
        "decisions/s",
        "ratio",
        "vs ref",
        "p50 us",
        "p99 us",
        "srv us/call",
        "srv cpu us",
        "cli cpu us"
    );
    let mut json: Vec<(String, f64)> = vec![("seconds_per_point".into(), dur.as_secs_f64())];
    for row in rows {
        let per_s_of = |variant: &str| {
            rows.iter()
                .find(|r| r.client == row.client && r.tasks == row.tasks && r.variant == variant)
                .map_or(f64::NAN, |r| r.point.per_s)
        };
        let ratio = row.point.per_s / per_s_of("ceiling");
        let vs_reference = row.point.per_s / per_s_of("reference");
        let p = &row.point;
        eprintln!(
            "{:<9} {:>5}  {:<12} {:>11.0} {:>6.2} {:>6.2} {:>8.1} {:>8.1}  {} {} {}",
            row.client,
            row.tasks,
            row.variant,
            p.per_s,
            ratio,
            vs_reference,
            p.p50_us,
            p.p99_us,
            opt(p.server_us_per_call, 11),
            opt(p.server_cpu_us, 11),
            opt(p.client_cpu_us, 11),
        );
        let prefix = format!("{}_{}task_", row.client, row.tasks);
        let mut put = |name: &str, v: f64| json.push((format!("{prefix}{name}"), v));
        if row.variant == "one_limit" {
            put("one_limit_vs_reference", vs_reference);
        }
        // The issue's headline names (`_ratio`, `_p50_us`, `_p99_us`) are ours with GCRA.
        let (throughput, latency) = match row.variant {
            "ours" => ("ours_per_s".to_owned(), String::new()),
            v => (format!("{v}_per_s"), format!("{v}_")),
        };
        put(&throughput, p.per_s);
        if row.variant != "ceiling" {
            put(&format!("{latency}ratio"), ratio);
        }
        put(&format!("{latency}p50_us"), p.p50_us);
        put(&format!("{latency}p99_us"), p.p99_us);
        let v = row.variant;
        for (name, value) in [
            ("server_us_per_call", p.server_us_per_call),
            ("server_cpu_us_per_decision", p.server_cpu_us),
            ("client_cpu_us_per_decision", p.client_cpu_us),
        ] {
            if let Some(value) = value {
                put(&format!("{v}_{name}"), value);
            }
        }
    }
    eprintln!(
        "srv us/call: time inside EVALSHA or FCALL (INFO commandstats); srv cpu us / cli cpu us: CPU of the \
         server / of this process per decision"
    );
    if !bench_mode() {
        return;
    }
    let body = json
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| format!("  \"{k}\": {v:.3}"))
        .collect::<Vec<_>>()
        .join(",\n");
    let dir = ratelimit_benches::criterion_dir();
    let path = dir.join("redis_throughput.json");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, format!("{{\n{body}\n}}\n")))
    {
        eprintln!("could not write {}: {e}", path.display());
    } else {
        eprintln!("wrote {}", path.display());
    }
}

/// The positional filter criterion was given, if any (the first argument that is neither a flag
/// nor a flag's value).
fn criterion_filter() -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "-b",
        "--baseline",
        "--baseline-lenient",
        "-c",
        "--color",
        "--colour",
        "--confidence-level",
        "--format",
        "--load-baseline",
        "--measurement-time",
        "--noise-threshold",
        "--nresamples",
        "--output-format",
        "--plotting-backend",
        "--profile-time",
        "-s",
        "--sample-size",
        "--save-baseline",
        "--significance-level",
        "--warm-up-time",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

fn measure_throughput(url: &str) {
    let wanted = criterion_filter().is_none_or(|f| {
        if std::env::args().any(|a| a == "--exact") {
            f == "redis_throughput"
        } else {
            "redis_throughput".contains(f.as_str())
        }
    });
    if !wanted {
        return;
    }
    let rows = throughput_rows(url);
    report(&rows, url);
}

// ---------------------------------------------------------------------------------------------
// Criterion: one decision at a time.

fn decision_latency(c: &mut Criterion, url: Option<&str>) {
    let rt: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let url = || url.expect("a server outside --list mode");
    // Connected on first use (criterion calls a function's closure once per sample), on this
    // runtime, whose driver tasks run while criterion blocks on it.
    let limiter: OnceCell<RedisLimiter> = OnceCell::new();
    let manager: OnceCell<redis::aio::ConnectionManager> = OnceCell::new();
    let script = redis::Script::new(TRIVIAL);
    let reference = redis::Script::new(REFERENCE_GCRA);
    let reference_key = format!("{{{}}}:tat", budget_name("latency-ref"));
    let reference_args = reference_args();

    let mut group = c.benchmark_group("redis_decision_latency");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("ours", |b| {
        let limiter = limiter.get_or_init(|| {
            rt.block_on(async {
                let l = ours(
                    url(),
                    ratelimit_redis::Client::Redis,
                    gcra_policy(),
                    "latency",
                )
                .await;
                for _ in 0..100 {
                    assert!(
                        l.try_acquire(Request::new(COST)).await.is_ok(),
                        "ours must allow"
                    );
                }
                l
            })
        });
        b.to_async(&rt).iter(|| async move {
            black_box(
                limiter
                    .try_acquire(black_box(Request::new(COST)))
                    .await
                    .expect("ours must allow"),
            )
        });
    });
    group.bench_function("evalsha_return_1", |b| {
        let manager = manager.get_or_init(|| rt.block_on(redis_rs_manager(url())));
        let script = &script;
        b.to_async(&rt).iter(|| async move {
            let one: i64 = script
                .invoke_async(&mut manager.clone())
                .await
                .expect("EVALSHA return 1");
            black_box(one)
        });
    });
    group.bench_function("reference_gcra", |b| {
        let manager = manager.get_or_init(|| rt.block_on(redis_rs_manager(url())));
        let (reference, key, args) = (&reference, &reference_key, &reference_args);
        b.to_async(&rt).iter(|| async move {
            let reply: Vec<u8> = reference
                .key(key.as_str())
                .arg(args.as_slice())
                .invoke_async(&mut manager.clone())
                .await
                .expect("the reference script");
            reference_allowed(&reply);
            black_box(reply)
        });
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if std::env::var_os("RATELIMIT_BENCH_REDIS").is_some_and(|v| v == "0") {
        eprintln!("redis bench skipped (RATELIMIT_BENCH_REDIS=0)");
        return;
    }
    let list = std::env::args().any(|a| a == "--list");
    // Dropped at the end of main, or while a panic unwinds: a private server stops either way.
    let server = (!list).then(Server::find_or_start);
    if let Some(server) = &server {
        measure_throughput(&server.url);
    }
    // `cargo xtask bench` reads only `estimates.json`; the HTML plots would only cost time.
    let mut c = Criterion::default().without_plots().configure_from_args();
    decision_latency(&mut c, server.as_ref().map(|s| s.url.as_str()));
    c.final_summary();
}
