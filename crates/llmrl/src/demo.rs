//! `llmrl demo`: the main job on embedded defaults. Starts the simulated provider in-process,
//! writes a sample batch, runs it through the same path as `llmrl run`, and shows what the
//! provider saw: every request answered, no 429, its limit used to the full.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::PrometheusHandle;
use ratelimit_sim::SimStats;

use crate::limits::LimitArgs;
use crate::mock::{MockArgs, start};
use crate::run::{RunArgs, run};

/// Shows the main job against a simulated provider: no API key, nothing to set up.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Requests in the sample batch.
    #[arg(long, default_value_t = 400)]
    pub(crate) requests: u64,
    /// The provider's requests per window.
    #[arg(long, default_value_t = 200)]
    pub(crate) rpm: u64,
    /// The provider's tokens per window.
    #[arg(long, default_value_t = 40_000)]
    pub(crate) tpm: u64,
    /// The provider's window, in seconds: a "minute" shortened so the demo takes seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) window_secs: u64,
    /// Do not tell the limiter the provider's limits: learn them from its headers.
    #[arg(long)]
    pub(crate) learn: bool,
    /// Keep the sample input and the results here (default: a temporary folder).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Added to the limiter's windows (see `llmrl run --help`).
    #[arg(long, default_value_t = 250)]
    pub(crate) window_margin_ms: u64,
}

pub(crate) async fn demo(args: DemoArgs, metrics: Option<&PrometheusHandle>) -> Result<()> {
    let mock = MockArgs {
        rpm: Some(args.rpm),
        tpm: Some(args.tpm),
        window_secs: args.window_secs,
        listen: "127.0.0.1:0".parse().expect("valid address"),
        headers: "openai".into(),
        latency_ms: 150,
        per_token_us: 1_000,
        output_fraction: 0.5,
    };
    let sim = start(mock.config()?).await?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("llmrl-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (input, output) = (dir.join("requests.jsonl"), dir.join("results.jsonl"));
    write_sample(&input, args.requests)?;
    let _ = std::fs::remove_file(&output);
    println!(
        "simulated provider on {}: {} requests and {} tokens per {} s window (exact sliding window, 429 beyond)",
        sim.base_url(),
        args.rpm,
        args.tpm,
        args.window_secs
    );
    println!(
        "sending {} chat requests from {} ({})",
        args.requests,
        input.display(),
        if args.learn {
            "limits learned from the provider's headers"
        } else {
            "limits given to the limiter"
        }
    );
    let limits = LimitArgs {
        rpm: (!args.learn).then_some(args.rpm),
        tpm: (!args.learn).then_some(args.tpm),
        rpd: None,
        tpd: None,
        concurrency: None,
        learn: args.learn,
        window_margin_ms: args.window_margin_ms,
        minute_secs: args.window_secs,
    };
    let run_args = RunArgs {
        input,
        output: output.clone(),
        base_url: format!("{}/v1", sim.base_url()),
        api_key: Some("sk-demo".into()),
        limits,
        endpoint: "/v1/chat/completions".into(),
        retry_errors: false,
        max_attempts: 6,
        refund_unused_output: false,
        metrics_file: None,
        quiet: args.quiet,
    };
    let summary = run(run_args, metrics).await?;
    report(&sim.stats(), summary.progress.elapsed.as_secs_f64())?;
    println!("results: {}", output.display());
    sim.shutdown()
        .await
        .context("stopping the simulated provider")?;
    Ok(())
}

/// What the provider saw, and how much of its limit the run used.
fn report(s: &SimStats, elapsed: f64) -> Result<()> {
    let window = s.window_ns as f64 / 1e9;
    let span = match (s.first_admission_ns, s.last_admission_ns) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    // Over the run, a limit of L per window admits at most L for the first window plus L per
    // window after it (a sliding window lets the first L in at once).
    let allowed = |limit: u64| limit as f64 * (1.0 + span / window);
    let use_of = |n: u64, limit: Option<u64>| limit.map(|l| 100.0 * n as f64 / allowed(l));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "provider: {} accepted, {} answered 429; peak in any window {} requests (limit {}), {} tokens (limit {})",
        s.accepted,
        s.rejected_429,
        s.peak_requests,
        s.rpm.map_or("none".into(), |l| l.to_string()),
        s.peak_tokens,
        s.tpm.map_or("none".into(), |l| l.to_string()),
    )?;
    let r = use_of(s.accepted, s.rpm).unwrap_or(0.0);
    let t = use_of(s.tokens_admitted, s.tpm).unwrap_or(0.0);
    writeln!(
        out,
        "use of the binding limit over the run: {:.1}% ({} of the limit's capacity; run took {elapsed:.1} s)",
        r.max(t),
        if t >= r { "tokens" } else { "requests" }
    )?;
    Ok(())
}

/// A sample batch: chat requests of varied lengths, in the OpenAI Batch API's format.
fn write_sample(path: &std::path::Path, n: u64) -> Result<()> {
    const WORDS: [&str; 12] = [
        "rate", "limits", "tokens", "window", "latency", "budget", "provider", "request", "answer",
        "queue", "fair", "exact",
    ];
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for i in 0..n {
        let words: Vec<&str> = (0..(10 + i % 40))
            .map(|k| WORDS[((i * 7 + k * 3) % 12) as usize])
            .collect();
        let line = serde_json::json!({
            "custom_id": format!("request-{i}"),
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You answer in one short paragraph."},
                    {"role": "user", "content": format!("Explain item {i}: {}", words.join(" "))}
                ],
                "max_tokens": 50 + (i % 5) * 25
            }
        });
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(())
}
