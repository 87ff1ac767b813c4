//! `llmrl run`: a JSONL batch against any OpenAI-compatible API.

use std::path::PathBuf;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::PrometheusHandle;
use ratelimit_batch::{BatchConfig, Summary};
use ratelimit_client::{Client, DEFAULT_BASE_URL, RetryPolicy, Settle};

use crate::exec::{Show, execute};
use crate::limits::LimitArgs;

/// Sends every request of a JSONL file, as fast as the limits allow, and writes the results.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// The requests: OpenAI Batch API lines (`custom_id`, `url`, `body`) or bare request bodies.
    #[arg(long, short)]
    pub(crate) input: PathBuf,
    /// The results (JSONL, one line per request); a rerun skips what it already holds.
    #[arg(long, short)]
    pub(crate) output: PathBuf,
    /// The API's base URL, up to `/v1`.
    #[arg(long, env = "OPENAI_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub(crate) base_url: String,
    /// The API key.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    /// Where bare request bodies go.
    #[arg(long, default_value = "/v1/chat/completions")]
    pub(crate) endpoint: String,
    /// Send again the requests whose earlier result was an error.
    #[arg(long)]
    pub(crate) retry_errors: bool,
    /// Attempts per request (the first included).
    #[arg(long, default_value_t = 6)]
    pub(crate) max_attempts: u32,
    /// Return unused output tokens to the budget once the answer is known (Anthropic, Bedrock);
    /// by default they stay counted, as OpenAI counts them at admission.
    #[arg(long)]
    pub(crate) refund_unused_output: bool,
    /// Write the Prometheus metrics (text format) to this file at the end.
    #[arg(long)]
    pub(crate) metrics_file: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

pub(crate) async fn run(args: RunArgs, metrics: Option<&PrometheusHandle>) -> Result<Summary> {
    let limiter = args.limits.limiter()?;
    let mut builder = Client::builder()
        .base_url(&args.base_url)
        .retry(RetryPolicy {
            max_attempts: args.max_attempts,
            ..RetryPolicy::default()
        })
        .settle(if args.refund_unused_output {
            Settle::Usage
        } else {
            Settle::Admission
        });
    if let Some(key) = &args.api_key {
        builder = builder.api_key(key);
    }
    let client = limiter.apply(builder).build().context("client")?;
    let mut config = BatchConfig::new(&args.input, &args.output);
    config.default_endpoint = args.endpoint.clone();
    config.retry_errors = args.retry_errors;
    let show = Show {
        progress: !args.quiet,
        metrics_file: args.metrics_file.clone(),
    };
    execute(client, config, &show, metrics).await
}
