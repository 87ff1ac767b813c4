//! The main job's measured goal: a batch through the simulated provider, with its limits known
//! and with them learned from its headers: share of the limit used, 429s, wall time against the
//! ideal (total tokens / TPM). Written as `utilization.json` beside criterion's results.

use std::path::Path;
use std::time::Duration;

use ratelimit_batch::{Batch, BatchConfig, JobLimits, Stopper};
use ratelimit_client::{Client, RetryPolicy};
use ratelimit_sim::{HeaderStyle, Latency, OutputTokens, Sim, SimConfig, SimStats};

/// The provider's window: a "minute" shortened so the run takes about a minute per scenario.
const WINDOW: Duration = Duration::from_secs(10);
/// The limiter's windows are this much longer than the provider's: a request reaches the provider
/// some milliseconds after its grant, most in the bursts a sliding window releases at its edges
/// (on a 60 s window the default 250 ms costs 0.4%; on this shortened one 200 ms costs 2%).
const MARGIN: Duration = Duration::from_millis(200);
const RPM: u64 = 1_000;
const TPM: u64 = 40_000;
/// Requests per scenario: about 8 windows of tokens (`RATELIMIT_UTILIZATION_REQUESTS` overrides,
/// for a quicker look).
fn requests() -> u64 {
    std::env::var("RATELIMIT_UTILIZATION_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_400)
}

struct Run {
    stats: SimStats,
    wall: Duration,
    requests_429: u64,
    succeeded: u64,
}

fn write_input(path: &Path) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..requests() {
        let words = "tokens are counted at admission ".repeat(1 + (i % 9) as usize);
        let line = serde_json::json!({
            "custom_id": format!("r{i}"),
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": format!("{i}: {words}")}],
                "max_tokens": 40 + (i % 7) * 20
            }
        });
        writeln!(file, "{line}").unwrap();
    }
}

async fn scenario(learn: bool) -> Run {
    let sim = Sim::start(SimConfig {
        rpm: Some(RPM),
        tpm: Some(TPM),
        window: WINDOW,
        headers: HeaderStyle::OpenAi,
        latency: Latency {
            base: Duration::from_millis(100),
            per_output_token: Duration::from_micros(500),
        },
        output: OutputTokens::Fraction(0.5),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "ratelimit-utilization-{}-{learn}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    write_input(&input);
    let limits = JobLimits {
        rpm: (!learn).then_some(RPM),
        tpm: (!learn).then_some(TPM),
        learn,
        window_margin: MARGIN,
        minute: WINDOW,
        ..JobLimits::default()
    };
    let limiter = limits.limiter().unwrap();
    let client = limiter
        .apply(
            Client::builder()
                .base_url(format!("{}/v1", sim.base_url()))
                .api_key("sk-bench")
                .retry(RetryPolicy::default()),
        )
        .build()
        .unwrap();
    let summary = Batch::new(client.clone(), BatchConfig::new(&input, &output))
        .run(&Stopper::new())
        .await
        .unwrap();
    let stats = sim.stats();
    sim.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        stats,
        wall: summary.progress.elapsed,
        requests_429: client.stats().rate_limited,
        succeeded: summary.progress.succeeded,
    }
}

fn record(metrics: &mut serde_json::Map<String, serde_json::Value>, prefix: &str, run: &Run) {
    let s = &run.stats;
    let window = WINDOW.as_secs_f64();
    let span = match (s.first_admission_ns, s.last_admission_ns) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    // What the provider could have admitted from the first admission to the last: a sliding
    // window lets a whole window in at once, then one window's worth per window.
    let capacity = TPM as f64 * (1.0 + span / window);
    let utilization = s.tokens_admitted as f64 / capacity;
    // The ideal: total tokens at the TPM rate.
    let ideal = s.tokens_admitted as f64 / TPM as f64 * window;
    let wall = run.wall.as_secs_f64();
    let attempts = s.accepted + s.rejected_429;
    let entries = [
        // The measure: tokens admitted over what the TPM allows in the run's wall time.
        ("tpm_used_over_run", ideal / wall),
        // Stricter: over what a sliding window could admit between the first and last admission
        // (it lets a whole window in at once at the start).
        ("share_of_window_capacity", utilization),
        ("wall_time_s", wall),
        ("ideal_time_s", ideal),
        ("wall_over_ideal", wall / ideal),
        ("provider_429s", s.rejected_429 as f64),
        ("share_429", s.rejected_429 as f64 / attempts.max(1) as f64),
        ("client_429s", run.requests_429 as f64),
        ("requests_succeeded", run.succeeded as f64),
        ("peak_tokens_in_a_window", s.peak_tokens as f64),
        ("tpm_limit", TPM as f64),
    ];
    for (k, v) in entries {
        eprintln!("{prefix}.{k} = {v:.4}");
        metrics.insert(format!("{prefix}.{k}"), v.into());
    }
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments filter the scenarios, as criterion's do.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| {
        let id = format!("utilization/{name}");
        filter.is_empty() || filter.iter().any(|f| id.contains(f.as_str()))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut metrics = serde_json::Map::new();
    for (name, learn) in [("known_limits", false), ("learned_limits", true)] {
        if wanted(name) {
            let run = runtime.block_on(scenario(learn));
            record(&mut metrics, name, &run);
        }
    }
    if metrics.is_empty() {
        return;
    }
    let dir = ratelimit_benches::criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("utilization.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(metrics)).unwrap(),
    )
    .unwrap();
}
