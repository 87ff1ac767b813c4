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
//!
//! # Limiting another client
//!
//! An application that already uses another OpenAI client gets the same limiting from
//! `RateLimit`, through the same code: a `reqwest_middleware::Middleware` (feature
//! `middleware`, on by default; reqwest-middleware 0.4, the line on reqwest 0.12) for clients
//! built on `ClientWithMiddleware`, and a `tower::Layer` (feature `tower`, see
//! `RateLimitService`) for `tower::Service<http::Request<B>>` stacks. It limits the `POST`s to
//! `.../chat/completions`, `.../completions` and `.../embeddings`, settles them to their usage
//! (streamed answers when they end, without holding back any chunk), pauses everyone on a 429
//! and leaves retrying to the client, whose every retry is limited anew.
//!
#![cfg_attr(feature = "middleware", doc = "```no_run")]
#![cfg_attr(not(feature = "middleware"), doc = "```ignore")]
//! use std::sync::Arc;
//! use ratelimit_client::RateLimit;
//! use ratelimit_core::Policy;
//! use ratelimit_memory::MemoryLimiter;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::builder().requests_per_minute(500).tokens_per_minute(200_000).build()?;
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(RateLimit::new(Arc::new(MemoryLimiter::new(policy))).key("gpt-4o-mini"))
//!     .build();
//! // `http` is a `reqwest_middleware::ClientWithMiddleware`: hand it to the client that takes one.
//! # Ok(()) }
//! ```

mod call;
mod client;
mod config;
mod error;
// Parts of the shared flow serve only the middleware (reading bodies it did not write).
#[cfg_attr(not(any(feature = "middleware", feature = "tower")), allow(dead_code))]
mod flow;
#[cfg(any(feature = "middleware", feature = "tower"))]
mod middleware;
pub mod proxy;
mod stream;

pub use call::{Call, CallResult};
pub use client::{Client, ClientStats};
pub use config::{ClientBuilder, DEFAULT_BASE_URL, RetryPolicy, Settle};
pub use error::ClientError;
#[cfg(any(feature = "middleware", feature = "tower"))]
pub use middleware::RateLimit;
#[cfg(feature = "tower")]
pub use middleware::{LimitedBody, RateLimitService};
pub use stream::ChatStream;
