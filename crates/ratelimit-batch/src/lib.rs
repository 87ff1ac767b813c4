//! The batch runner: push thousands of LLM requests from a JSONL file through an
//! OpenAI-compatible API at the highest rate the limits allow, with nothing lost.
//!
//! - **Input** is streamed line by line (never the whole file in memory) and read no further ahead
//!   than [`BatchConfig::read_ahead`]: the OpenAI Batch API's lines (`custom_id`, `url`, `body`) or
//!   bare request bodies. A line that cannot be read is reported with its line number and the rest
//!   goes on.
//! - **Pace**: each request waits for its grant on the client's limiter (memory or Redis, adaptive
//!   or not), in order, then is sent under it; retries, 429 pauses and settlement to the actual
//!   usage are the [client's](ratelimit_client::Client).
//! - **Output**: one JSONL result per request, keyed by its id, written whole and flushed line by
//!   line. A rerun skips the ids already in the output (and, with
//!   [`retry_errors`](BatchConfig::retry_errors), sends failed ones again); a torn last line from a
//!   killed run is cut off first.
//! - **Stopping**: [`Stopper`] drains (send nothing new, finish and write what is in flight) or
//!   aborts (drop what is in flight: a rerun sends it); the file stays valid either way.
//! - **Progress**: live counters ([`Progress`]) for a progress bar and a summary, and the same
//!   figures through the `metrics` facade for Prometheus.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ratelimit_batch::{Batch, BatchConfig, Stopper};
//! use ratelimit_client::Client;
//! use ratelimit_core::Policy;
//! use ratelimit_memory::MemoryLimiter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::builder().requests_per_minute(500).tokens_per_minute(200_000).build()?;
//! let client = Client::builder().limiter(Arc::new(MemoryLimiter::new(policy))).build()?;
//! let stopper = Stopper::new();
//! let summary = Batch::new(client, BatchConfig::new("requests.jsonl", "results.jsonl"))
//!     .run(&stopper)
//!     .await?;
//! println!("{} succeeded, {} failed", summary.progress.succeeded, summary.progress.failed);
//! # Ok(()) }
//! ```

mod error;
mod limits;
mod output;
mod progress;
mod record;
mod runner;

pub use error::BatchError;
pub use limits::{GUESS_RPM, GUESS_TPM, JobLimiter, JobLimits};
pub use progress::{Progress, Snapshot};
pub use record::{Failure, Item, LineError, Outcome, Response, parse_line};
pub use runner::{Batch, BatchConfig, Stop, Stopper, Summary};
