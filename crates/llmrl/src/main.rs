//! `llmrl`: the llm-ratelimit command line (`demo`, `run`, `mock`, `gateway`).

// A command-line tool: stdout is where its results go.
#![allow(clippy::print_stdout)]

mod demo;
mod exec;
mod gateway;
mod limits;
mod mock;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::PrometheusBuilder;

/// Use LLM APIs at full speed without getting throttled.
#[derive(Debug, Parser)]
#[command(name = "llmrl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job against a simulated provider, in-process: no API key needed.
    Demo(demo::DemoArgs),
    /// Send a JSONL batch to an OpenAI-compatible API as fast as its limits allow.
    Run(run::RunArgs),
    /// Serve the simulated provider, to rehearse a job offline.
    Mock(mock::MockArgs),
    /// Serve the rate-limiting gateway: an OpenAI-compatible proxy shared by many tenants.
    Gateway(gateway::GatewayArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Every layer reports through the `metrics` facade; this recorder renders them for Prometheus.
    let metrics = PrometheusBuilder::new().install_recorder().ok();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("llmrl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::demo(args, metrics.as_ref()).await,
            Command::Run(args) => run::run(args, metrics.as_ref()).await.map(|summary| {
                if summary.progress.failed > 0 {
                    eprintln!("some requests failed: their errors are in the output");
                }
            }),
            Command::Mock(args) => mock::serve(args).await,
            Command::Gateway(args) => gateway::serve(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llmrl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
