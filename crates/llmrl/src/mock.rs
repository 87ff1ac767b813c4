//! `llmrl mock`: the simulated provider as a server, to rehearse a job offline.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use ratelimit_sim::{HeaderStyle, Latency, OutputTokens, Sim, SimConfig, SimHandle};

/// Serves an OpenAI-compatible API that rate-limits like a real provider.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MockArgs {
    /// Requests per window (none: unlimited).
    #[arg(long)]
    pub(crate) rpm: Option<u64>,
    /// Tokens per window: prompt estimate + max output, counted at admission (none: unlimited).
    #[arg(long)]
    pub(crate) tpm: Option<u64>,
    /// The sliding window, in seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) window_secs: u64,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub(crate) listen: SocketAddr,
    /// Rate-limit headers: openai, anthropic or none.
    #[arg(long, default_value = "openai")]
    pub(crate) headers: String,
    /// Time to the first byte, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub(crate) latency_ms: u64,
    /// Time per output token, in microseconds.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) per_token_us: u64,
    /// Output tokens produced, as a fraction of each request's maximum.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) output_fraction: f64,
}

impl MockArgs {
    pub(crate) fn config(&self) -> Result<SimConfig> {
        let headers = match self.headers.as_str() {
            "openai" => HeaderStyle::OpenAi,
            "anthropic" => HeaderStyle::Anthropic,
            "none" => HeaderStyle::None,
            other => anyhow::bail!("--headers {other:?}: expected openai, anthropic or none"),
        };
        Ok(SimConfig {
            rpm: self.rpm,
            tpm: self.tpm,
            window: Duration::from_secs(self.window_secs),
            headers,
            latency: Latency {
                base: Duration::from_millis(self.latency_ms),
                per_output_token: Duration::from_micros(self.per_token_us),
            },
            output: OutputTokens::Fraction(self.output_fraction),
            bind: self.listen,
            ..SimConfig::default()
        })
    }
}

pub(crate) async fn start(config: SimConfig) -> Result<SimHandle> {
    Sim::start(config)
        .await
        .context("starting the simulated provider")
}

pub(crate) async fn serve(args: MockArgs) -> Result<()> {
    let sim = start(args.config()?).await?;
    println!(
        "simulated provider on {}/v1 (any bearer key); Ctrl-C to stop",
        sim.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    let s = sim.stats();
    println!(
        "accepted {}, answered 429 {}, peak {} requests and {} tokens in one window",
        s.accepted, s.rejected_429, s.peak_requests, s.peak_tokens
    );
    sim.shutdown().await.context("stopping")?;
    Ok(())
}
