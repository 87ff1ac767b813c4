//! The same limiting for other clients: [`RateLimit`], a `reqwest_middleware::Middleware`
//! (feature `middleware`, on by default) and a `tower::Layer` (feature `tower`).
//!
//! Both do what [`Client`](crate::Client) does on each attempt, through the same code
//! (`flow.rs`), and leave retrying to the client they sit in:
//!
//! 1. only `POST`s to `.../chat/completions`, `.../completions` and `.../embeddings` are limited;
//!    every other request passes through untouched;
//! 2. the request's JSON body is costed with the [`Estimator`] (1 request + prompt tokens +
//!    output limit); a body that is not such a request is costed as one request without tokens
//!    and sent as it is, so the provider's own 400 reaches the caller;
//! 3. the grant is awaited on the limiter, then the request goes on;
//! 4. the answer's headers (and error bodies) feed the adaptive layer; a 429 pauses everyone
//!    sharing the budget for the provider's retry-after and gives its grant back;
//! 5. the grant is settled to the answer's `usage` (see [`Settle`]): a JSON answer is read whole
//!    and handed on with the same bytes and headers; an event stream is handed on at once, each
//!    chunk as it arrives, and settled when it ends.

mod body;
#[cfg(feature = "middleware")]
mod chain;
#[cfg(feature = "tower")]
mod layer;

use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use ratelimit_adaptive::AdaptiveLimiter;
use ratelimit_limiter::{Limiter, Permit, Priority};
use ratelimit_openai::{Estimate, Estimator};

#[cfg(not(feature = "tower"))]
use body::LimitedBody;
#[cfg(feature = "tower")]
pub use body::LimitedBody;
#[cfg(feature = "tower")]
pub use layer::RateLimitService;

use crate::config::Settle;
use crate::error::ClientError;
use crate::flow::{Endpoint, Flow, deployment, usage_of};

/// Rate limiting for the LLM calls of another HTTP client: a `reqwest_middleware` middleware
/// (feature `middleware`) and a `tower` layer (feature `tower`, see `RateLimitService`).
///
/// Each limited call (a `POST` to `.../chat/completions`, `.../completions` or `.../embeddings`)
/// is costed from its JSON body, waits for its grant of `1 request + input + output tokens`, and
/// is settled to the answer's `usage`; its answer's rate-limit headers feed an
/// [`AdaptiveLimiter`], and a 429 pauses every user of the budget for the provider's wait and
/// gives the refused call's grant back. Other requests pass through untouched.
///
/// **Retries are the client's**: this middleware sends each attempt once and hands back what
/// the provider answered, 429s included. Every attempt that passes through it is limited anew,
/// so a retrying layer must sit *outside* it: added before it with
/// `reqwest_middleware::ClientBuilder::with` (reqwest-retry 0.7's `RetryTransientMiddleware`,
/// the line on reqwest-middleware 0.4), or the retrying client itself. Its retry of a 429 then
/// waits out the pause the 429 set, whatever backoff it chose. A retrying layer added *after*
/// it would resend unlimited.
///
/// **Bodies.** A request body that is not a valid request (not JSON, a field of the wrong type)
/// is costed as one request without tokens and sent unchanged, so the provider's 400 reaches the
/// caller as usual. A JSON answer is read whole before it is handed on (with the same bytes and
/// headers); an event stream (`text/event-stream`) is handed on at once, chunk by chunk, and
/// settled when it ends to the usage of its final chunk, which the API sends only when the
/// request sets `stream_options.include_usage` (without it the estimate stays counted). A
/// stream dropped before its end keeps its estimate counted, as the provider does. A body
/// without `model` (Azure OpenAI names the deployment in the path) is costed with the
/// tokenizer of the deployment's name. A streamed request body is read whole to be costed, then
/// sent as those bytes.
///
/// The wait for a grant comes before the request is handed on, so it does not count against
/// reqwest's request timeout; a transport error keeps the grant counted (the request may have
/// reached the provider).
///
/// With reqwest-middleware (0.4, the line on reqwest 0.12):
///
#[cfg_attr(feature = "middleware", doc = "```no_run")]
#[cfg_attr(not(feature = "middleware"), doc = "```ignore")]
/// use std::sync::Arc;
/// use ratelimit_client::RateLimit;
/// use ratelimit_core::Policy;
/// use ratelimit_memory::MemoryLimiter;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = Arc::new(MemoryLimiter::new(
///     Policy::builder().requests_per_minute(500).tokens_per_minute(200_000).build()?,
/// ));
/// let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     // A retry middleware goes here, before (outside) the limiter.
///     .with(RateLimit::new(limiter))
///     .build();
/// // Give `http` to any client that takes a `ClientWithMiddleware`, or use it directly:
/// let answer = http
///     .post("https://api.openai.com/v1/chat/completions")
///     .bearer_auth(std::env::var("OPENAI_API_KEY")?)
///     .header("content-type", "application/json")
///     .body(r#"{"model":"gpt-4o-mini","max_completion_tokens":50,
///              "messages":[{"role":"user","content":"Hi!"}]}"#)
///     .send()
///     .await?;
/// println!("{}", answer.text().await?);
/// # Ok(()) }
/// ```
///
/// Clients that only take a plain `reqwest::Client` (async-openai's `with_http_client`, for
/// one) have no place for a middleware: use [`Client`](crate::Client), or send them through a
/// gateway that limits.
#[derive(Clone)]
pub struct RateLimit {
    flow: Arc<Flow>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("key", &self.flow.key)
            .field("priority", &self.flow.priority)
            .field("settle", &self.flow.settle)
            .field("adaptive", &self.flow.adaptive.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// Limits calls through `limiter` (memory or Redis), on the empty key, interactive, settled
    /// as [`Settle::Admission`], costed with the default [`Estimator`].
    #[must_use]
    pub fn new(limiter: Arc<dyn Limiter>) -> Self {
        Self::with(limiter, None)
    }

    /// Limits calls through an adaptive limiter and feeds it every answer, so the limits follow
    /// the provider's headers and 429s.
    #[must_use]
    pub fn adaptive(limiter: Arc<AdaptiveLimiter>) -> Self {
        Self::with(Arc::clone(&limiter) as Arc<dyn Limiter>, Some(limiter))
    }

    fn with(limiter: Arc<dyn Limiter>, adaptive: Option<Arc<AdaptiveLimiter>>) -> Self {
        Self {
            flow: Arc::new(Flow {
                limiter: Some(limiter),
                adaptive,
                ..Flow::default()
            }),
        }
    }

    /// The budget key calls are limited under (a tenant, a model; default: the empty key).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.flow_mut().key = key.into();
        self
    }

    /// The priority class of the calls (default interactive).
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.flow_mut().priority = priority;
        self
    }

    /// How grants are settled to the actual usage (default [`Settle::Admission`]).
    #[must_use]
    pub fn settle(mut self, settle: Settle) -> Self {
        self.flow_mut().settle = settle;
        self
    }

    /// The token estimator (default: tiktoken by model, 1,024 output tokens when a request sets
    /// no limit).
    #[must_use]
    pub fn estimator(mut self, estimator: Estimator) -> Self {
        self.flow_mut().estimator = estimator;
        self
    }

    fn flow_mut(&mut self) -> &mut Flow {
        Arc::make_mut(&mut self.flow)
    }

    /// The endpoint of a request this middleware limits, if it is one.
    fn limited(method: &http::Method, path: &str) -> Option<Endpoint> {
        (method == http::Method::POST)
            .then(|| Endpoint::from_path(path))
            .flatten()
    }

    /// What a request costs: its estimate, or one request without tokens when its body is not a
    /// request of this endpoint (it is sent as it is, and the provider refuses it).
    fn estimate(&self, endpoint: Endpoint, path: &str, body: &[u8]) -> Estimate {
        endpoint
            .estimate(&self.flow.estimator, body, deployment(path))
            .unwrap_or_else(|| {
                tracing::debug!(
                    ?endpoint,
                    "request body is not a valid request: costed as one request"
                );
                Estimate::default()
            })
    }

    /// Waits for the grant.
    async fn admit(&self, estimate: Estimate) -> Result<Option<Permit>, ClientError> {
        Ok(self.flow.acquire(estimate).await?)
    }

    /// Feeds the answer to the limiter and settles the grant: a success's headers go to the
    /// adaptive layer, a JSON body is read to settle to its usage, an event stream is wrapped to
    /// settle when it ends; a failure's body is read for the adaptive layer and the 429 pause.
    async fn respond<B>(
        &self,
        permit: Option<Permit>,
        estimate: Estimate,
        response: http::Response<B>,
    ) -> Result<http::Response<LimitedBody<B>>, B::Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        let (parts, body) = response.into_parts();
        let status = parts.status.as_u16();
        if !parts.status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            self.flow
                .refused(permit, status, &parts.headers, &bytes, 1)
                .await;
            return Ok(http::Response::from_parts(parts, LimitedBody::full(bytes)));
        }
        self.flow
            .accepted(permit.as_ref(), status, &parts.headers)
            .await;
        if is_event_stream(&parts.headers) {
            let body = LimitedBody::settling(body, Arc::clone(&self.flow), permit, estimate);
            return Ok(http::Response::from_parts(parts, body));
        }
        let bytes: Bytes = body.collect().await?.to_bytes();
        self.flow.settle(permit, usage_of(&bytes), estimate).await;
        Ok(http::Response::from_parts(parts, LimitedBody::full(bytes)))
    }
}

/// Whether a response is a server-sent event stream.
fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_posts_to_the_token_spending_endpoints_are_limited() {
        assert_eq!(
            RateLimit::limited(&http::Method::POST, "/v1/chat/completions"),
            Some(Endpoint::Chat)
        );
        assert_eq!(
            RateLimit::limited(&http::Method::GET, "/v1/chat/completions"),
            None
        );
        assert_eq!(RateLimit::limited(&http::Method::POST, "/v1/files"), None);
    }

    #[test]
    fn event_streams_are_recognised_by_their_media_type() {
        let with = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(v),
            );
            h
        };
        assert!(is_event_stream(&with("text/event-stream")));
        assert!(is_event_stream(&with("text/event-stream; charset=utf-8")));
        assert!(is_event_stream(&with("Text/Event-Stream")));
        assert!(!is_event_stream(&with("application/json")));
        assert!(!is_event_stream(&http::HeaderMap::new()));
    }
}
