//! The adaptive layer of `llm-ratelimit`: keeps a limiter in step with the provider's real limits,
//! learned from its rate-limit headers and its 429 responses.
//!
//! A configured limit is a guess: the organisation's tier changes, a provider counts tokens its own
//! way, other clients share the same quota. Every response says what the provider really thinks:
//! OpenAI's `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`, Azure's remaining counts, the
//! IETF `RateLimit`/`RateLimit-Policy` fields, `Retry-After`, and the wait written in 429 bodies.
//!
//! This crate now holds the pure parsers of that information ([`headers`]): they turn one
//! response's headers (and, for errors, its body) into a provider-neutral [`Snapshot`] of
//! [`Observed`] limits per [`Resource`] plus a [`RetryHint`]. They do no I/O and never read the
//! clock: the response's wall-clock time is an argument. The controller that feeds snapshots back
//! into a limiter comes next.
//!
//! ```
//! use http::HeaderMap;
//! use ratelimit_adaptive::{Resource, Snapshot};
//! use std::time::{Duration, SystemTime};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("anthropic-ratelimit-output-tokens-limit", "80000".parse()?);
//! headers.insert("anthropic-ratelimit-output-tokens-remaining", "0".parse()?);
//! headers.insert("retry-after", "7".parse()?);
//!
//! let snapshot = Snapshot::from_headers(&headers, SystemTime::now());
//! assert_eq!(snapshot.get(Resource::OutputTokens).and_then(|o| o.remaining), Some(0));
//! assert_eq!(snapshot.retry().after, Some(Duration::from_secs(7)));
//! # Ok::<(), http::header::InvalidHeaderValue>(())
//! ```

pub mod controller;
pub mod headers;
mod limiter;

pub use controller::{Action, AdaptiveConfig, Controller, Feedback};
pub use headers::{Observed, RetryHint, Snapshot, parse_go_duration, retry_after_from_body};
pub use limiter::{AdaptiveLimiter, Observation};
pub use ratelimit_core::Resource;
