//! An OpenAI-compatible HTTP client with llm-ratelimit's limiting built in.
//!
//! [`Client`] speaks to any OpenAI-compatible server (OpenAI, Azure OpenAI's v1 API, vLLM, local
//! gateways): chat completions, streamed chat completions ([`ChatStream`]), legacy completions and
//! embeddings, typed with [`ratelimit_openai`]'s models. Each call reserves what the provider will
//! count (1 request, the prompt's tokens by tiktoken, the output limit) on an
//! `Arc<dyn Limiter>` (in memory or Redis), optionally adaptive, sends, and settles the grant to
//! the response's usage; failures are retried as the official SDKs retry them, with the
//! provider's waits honoured and a 429 pausing every user of the budget.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ratelimit_adaptive::{AdaptiveConfig, AdaptiveLimiter};
//! use ratelimit_client::Client;
//! use ratelimit_core::Policy;
//! use ratelimit_memory::MemoryLimiter;
//! use ratelimit_openai::{ChatCompletionRequest, ChatMessage};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // A first guess; the provider's headers correct it as responses come in.
//! let policy = Policy::builder().requests_per_minute(500).tokens_per_minute(200_000).build()?;
//! let limiter = AdaptiveLimiter::new(
//!     Arc::new(MemoryLimiter::new(policy.clone())),
//!     &policy,
//!     AdaptiveConfig::default(),
//! )?;
//! let client = Client::builder().adaptive(Arc::new(limiter)).build()?;
//! let request = ChatCompletionRequest::new("gpt-4o-mini", vec![ChatMessage::user("Hi!")]);
//! let answer = client.chat(&request).await?;
//! # Ok(()) }
//! ```

mod call;
mod client;
mod config;
mod error;
mod stream;

pub use call::{Call, CallResult};
pub use client::{Client, ClientStats};
pub use config::{ClientBuilder, DEFAULT_BASE_URL, RetryPolicy, Settle};
pub use error::ClientError;
pub use stream::ChatStream;
