//! `llmrl gateway`: serves the rate-limiting gateway from a TOML configuration file (secrets from
//! the environment) until Ctrl-C, then finishes the requests in flight.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ratelimit_gateway::{Config, Gateway};

/// Arguments of `llmrl gateway`.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The configuration file (TOML; see docs/gateway.md).
    #[arg(long, short, env = "LLMRL_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Listen here instead of the file's `listen` (e.g. `127.0.0.1:0` for a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

pub(crate) async fn serve(args: GatewayArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let gateway = Gateway::new(&config).await?;
    let addr = args.listen.unwrap_or(config.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    // The first line says where to connect (tests and scripts read it).
    println!("gateway listening on http://{bound}/v1; Ctrl-C to stop");
    gateway
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
