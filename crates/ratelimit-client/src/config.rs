//! How a client is set up: where it sends, with what key, how it limits, settles and retries.

use std::sync::Arc;
use std::time::Duration;

use ratelimit_adaptive::AdaptiveLimiter;
use ratelimit_limiter::{Limiter, Priority};
use ratelimit_openai::Estimator;

use crate::client::Client;
use crate::error::ClientError;
use crate::flow::Flow;

/// The default base URL: OpenAI's API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// How a grant is settled once the response's `usage` is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Settle {
    /// As OpenAI and Azure count: the output limit (`max_tokens` x `n`) stays counted whatever the
    /// model wrote, since the provider counted it at admission; the prompt is corrected to the
    /// provider's own count. The default.
    #[default]
    Admission,
    /// As Anthropic (output tokens corrected at the end) and AWS Bedrock count: both input and
    /// output are corrected to the actual usage, so unused output tokens come back.
    Usage,
}

/// Retries of failed attempts: exponential backoff with full jitter, as the official SDKs do,
/// unless the provider says how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never retry).
    pub max_attempts: u32,
    /// The first backoff ceiling; doubled each attempt.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
        }
    }
}

/// Builds a [`Client`].
///
/// ```
/// use std::sync::Arc;
/// use ratelimit_client::Client;
/// use ratelimit_core::Policy;
/// use ratelimit_memory::MemoryLimiter;
///
/// let limiter = Arc::new(MemoryLimiter::new(
///     Policy::builder().requests_per_minute(500).tokens_per_minute(200_000).build()?,
/// ));
/// let client = Client::builder()
///     .base_url("http://127.0.0.1:8000/v1")
///     .api_key("sk-local")
///     .limiter(limiter)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    pub(crate) base_url: String,
    pub(crate) api_key: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// How calls are limited and settled (shared with the middleware).
    pub(crate) flow: Flow,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("key", &self.flow.key)
            .field("settle", &self.flow.settle)
            .field("retry", &self.flow.retry)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: std::env::var("OPENAI_BASE_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            flow: Flow::default(),
        }
    }
}

impl ClientBuilder {
    /// The API's base URL, up to and including `/v1` (default: `OPENAI_BASE_URL`, else OpenAI's).
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The API key sent as a bearer token (default: `OPENAI_API_KEY`; none: no header).
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Total time allowed for one attempt, response body included (default 600 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time allowed to connect (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limits every call through `limiter` (memory or Redis). Without one, calls are not limited,
    /// only retried.
    #[must_use]
    pub fn limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.flow.limiter = Some(limiter);
        self
    }

    /// Limits every call through an adaptive limiter and feeds it every response, so the limits
    /// follow the provider's headers and 429s.
    #[must_use]
    pub fn adaptive(mut self, limiter: Arc<AdaptiveLimiter>) -> Self {
        self.flow.limiter = Some(Arc::clone(&limiter) as Arc<dyn Limiter>);
        self.flow.adaptive = Some(limiter);
        self
    }

    /// The budget key calls are limited under (a tenant, a model; default: the empty key).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.flow.key = key.into();
        self
    }

    /// The priority class of this client's calls (default interactive).
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.flow.priority = priority;
        self
    }

    /// How grants are settled to the actual usage (default [`Settle::Admission`]).
    #[must_use]
    pub fn settle(mut self, settle: Settle) -> Self {
        self.flow.settle = settle;
        self
    }

    /// The retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.flow.retry = retry;
        self
    }

    /// The token estimator (default: tiktoken by model, 1,024 output tokens when a request sets
    /// no limit).
    #[must_use]
    pub fn estimator(mut self, estimator: Estimator) -> Self {
        self.flow.estimator = estimator;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ClientError::Config`] for a base URL that is not http(s), a key that cannot be a header,
    /// zero attempts, or an HTTP client that cannot be built.
    pub fn build(self) -> Result<Client, ClientError> {
        let url = reqwest::Url::parse(&self.base_url)
            .map_err(|e| ClientError::Config(format!("base URL {:?}: {e}", self.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "base URL {:?}: only http and https are supported",
                self.base_url
            )));
        }
        if self.flow.retry.max_attempts == 0 {
            return Err(ClientError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        if let Some(key) = &self.api_key {
            http::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ClientError::Config("the API key has characters a header cannot carry".into())
            })?;
        }
        Client::from_builder(self)
    }
}
