//! A simulated OpenAI-compatible provider that rate-limits like a real one: for tests,
//! benchmarks, demos, and rehearsing a job offline.
//!
//! [`Sim::start`] serves `POST /v1/chat/completions` (plain and streamed), `POST
//! /v1/completions`, `POST /v1/embeddings`, `GET /v1/models` and `GET /sim/stats` on
//! `127.0.0.1` (a free port by default). Each request costs 1 request and its prompt tokens
//! (estimated by [`ratelimit_openai::Estimator`], as the client estimates them) plus its maximum
//! output tokens, counted at admission in an exact sliding window:
//!
//! - it is admitted if the window still has room for it under both limits (RPM and TPM; either
//!   may be off), and its answer carries the rate-limit headers of the configured
//!   [`HeaderStyle`] and an exact `usage`;
//! - else it gets 429 with `retry-after` (seconds, rounded up), `retry-after-ms`, the rate-limit
//!   headers, and an OpenAI error body "... Please try again in 1.306s.", which is enough: waiting
//!   that long is always enough if nothing else is admitted meanwhile;
//! - a request whose tokens alone exceed the TPM gets OpenAI's permanent 429 "Request too large"
//!   with `x-should-retry: false` and no `retry-after`.
//!
//! The referee that decides is independent of `ratelimit-core` (it judges it): a plain log of
//! admissions, checked against a brute-force sweep over every window. [`SimStats`] reports the
//! peak requests and tokens admitted in any window of the run, so a test can run the simulator
//! without limits and check that a client's own limiter never sent more than it should.
//!
//! Time is tokio's (`tokio::time::Instant`, `tokio::time::sleep`): under paused time
//! (`#[tokio::test(start_paused = true)]`) windows, latencies and retry waits take no real time
//! and are exact. See `docs/simulator.md` for the configuration, the headers and the faults.
//!
//! ```
//! use ratelimit_sim::{HeaderStyle, Sim, SimConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ratelimit_sim::SimError> {
//! let sim = Sim::start(SimConfig {
//!     rpm: Some(500),
//!     tpm: Some(30_000),
//!     headers: HeaderStyle::OpenAi,
//!     ..SimConfig::default()
//! })
//! .await?;
//! // Point any OpenAI client at `{base_url}/v1` with any bearer key.
//! let base = format!("{}/v1", sim.base_url());
//! # let _ = base;
//! let stats = sim.stats();
//! assert_eq!((stats.accepted, stats.peak_requests), (0, 0));
//! sim.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod config;
mod headers;
mod referee;
mod server;
mod stats;

pub use config::{
    ConfigError, FAULT_HEADER, Faults, HeaderStyle, Latency, MAX_EMBEDDING_DIMENSIONS,
    OutputTokens, SimConfig,
};
pub use server::{Sim, SimError, SimHandle};
pub use stats::SimStats;
