//! The pieces of the limited-call flow that a proxy needs, shared with [`Client`](crate::Client)
//! and the middleware so that a gateway limits exactly as they do: which endpoints spend tokens
//! ([`Endpoint`]), what a request body costs ([`Endpoint::estimate`]), the usage an answer
//! reports, whole ([`usage_of`]) or streamed ([`UsageWatch`]), and the provider's feedback to an
//! adaptive limiter ([`Feedback`]).
//!
//! ```
//! use ratelimit_client::proxy::{Endpoint, UsageWatch, usage_of};
//! use ratelimit_openai::Estimator;
//!
//! let endpoint = Endpoint::from_path("/v1/chat/completions").unwrap();
//! let body = br#"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"Hi"}]}"#;
//! let estimate = endpoint.estimate(&Estimator::default(), body, None).unwrap();
//! assert_eq!(estimate.output, 20);
//!
//! let answer = br#"{"usage":{"prompt_tokens":8,"completion_tokens":5,"total_tokens":13}}"#;
//! assert_eq!(usage_of(answer).map(|u| u.completion), Some(5));
//!
//! let mut watch = UsageWatch::new();
//! watch.feed(b"data: {\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":");
//! watch.feed(b"{\"prompt_tokens\":8,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
//! assert_eq!(watch.usage().map(|u| u.completion), Some(2));
//! ```

use std::sync::Arc;

use ratelimit_adaptive::{AdaptiveLimiter, RetryHint};
use ratelimit_limiter::{Limiter, Permit, Priority};
use ratelimit_openai::Estimator;
use ratelimit_openai::sse::{SseDecoder, SseEvent};

use crate::config::{RetryPolicy, Settle};
use crate::flow::Flow;
pub use crate::flow::{Counted, Endpoint, deployment, settled_cost, usage_of};

/// Reads a server-sent event stream as it passes and keeps the last `usage` it reports (the
/// final chunk's, when the request set `stream_options.include_usage`).
///
/// The bytes are only looked at: broken events are the stream's reader's to report.
#[derive(Debug, Default)]
pub struct UsageWatch {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    usage: Option<Counted>,
}

impl UsageWatch {
    /// A watch that has seen nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the events these bytes complete.
    pub fn feed(&mut self, bytes: &[u8]) {
        let _broken = self.decoder.feed(bytes, &mut self.events);
        for event in self.events.drain(..) {
            if event.is_done() || !event.data.contains("\"usage\"") {
                continue;
            }
            if let Some(usage) = usage_of(event.data.as_bytes()) {
                self.usage = Some(usage);
            }
        }
    }

    /// The last usage reported so far.
    #[must_use]
    pub fn usage(&self) -> Option<Counted> {
        self.usage
    }
}

/// Feeds a provider's answers to an [`AdaptiveLimiter`], as the client does: a success's
/// rate-limit headers keep the limits in step; a 429 pauses everyone sharing the budget for the
/// provider's wait (or, when it names none, a jittered backoff) and its grant is given back.
#[derive(Clone)]
pub struct Feedback {
    flow: Arc<Flow>,
}

impl std::fmt::Debug for Feedback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feedback")
            .field("key", &self.flow.key)
            .finish_non_exhaustive()
    }
}

impl Feedback {
    /// Feedback to `limiter`, under budget `key`.
    #[must_use]
    pub fn new(limiter: Arc<AdaptiveLimiter>, key: impl Into<String>) -> Self {
        Self {
            flow: Arc::new(Flow {
                limiter: Some(Arc::clone(&limiter) as Arc<dyn Limiter>),
                adaptive: Some(limiter),
                key: key.into(),
                priority: Priority::Interactive,
                settle: Settle::default(),
                retry: RetryPolicy::default(),
                estimator: Estimator::default(),
            }),
        }
    }

    /// A successful answer: its headers go to the adaptive layer. `permit` is the grant the
    /// request was sent under on that limiter.
    pub async fn accepted(&self, permit: Option<&Permit>, status: u16, headers: &http::HeaderMap) {
        self.flow.accepted(permit, status, headers).await;
    }

    /// A failed answer: its headers and body go to the adaptive layer (a 429 pauses everyone);
    /// a 429's grant is given back (the provider refused the request); any other failure keeps
    /// it counted. Returns the provider's retry hint.
    pub async fn refused(
        &self,
        permit: Option<Permit>,
        status: u16,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> RetryHint {
        self.flow.refused(permit, status, headers, body, 1).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratelimit_adaptive::AdaptiveConfig;
    use ratelimit_core::{Cost, Policy};
    use ratelimit_limiter::Request;
    use ratelimit_memory::MemoryLimiter;

    #[test]
    fn a_stream_split_anywhere_gives_its_last_usage() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n\
            data: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut watch = UsageWatch::new();
            watch.feed(&stream[..split]);
            watch.feed(&stream[split..]);
            assert_eq!(
                watch.usage(),
                Some(Counted {
                    prompt: 7,
                    completion: 3
                }),
                "{split}"
            );
        }
        let mut watch = UsageWatch::new();
        watch.feed(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
        assert_eq!(watch.usage(), None);
    }

    #[tokio::test]
    async fn a_429_pauses_the_whole_budget_and_gives_its_grant_back() {
        let policy = Policy::builder().requests_per_minute(60).build().unwrap();
        let limiter = Arc::new(
            AdaptiveLimiter::new(
                Arc::new(MemoryLimiter::new(policy.clone())),
                &policy,
                AdaptiveConfig::default(),
            )
            .unwrap(),
        );
        let feedback = Feedback::new(Arc::clone(&limiter), "");
        let permit = limiter
            .acquire(Request::new(Cost::ONE_REQUEST))
            .await
            .unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("retry-after", http::HeaderValue::from_static("3"));
        let hint = feedback.refused(Some(permit), 429, &headers, b"{}").await;
        assert_eq!(hint.after, Some(std::time::Duration::from_secs(3)));
        let err = limiter
            .try_acquire(Request::new(Cost::ONE_REQUEST))
            .await
            .unwrap_err();
        let wait = err.retry_after().unwrap();
        assert!(wait > std::time::Duration::from_secs(2), "{wait:?}");
        assert!(wait <= std::time::Duration::from_secs(3), "{wait:?}");
    }
}
