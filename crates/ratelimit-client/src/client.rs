//! `Client`: every call estimates its cost, waits for the limiter, sends, feeds the response to
//! the adaptive layer, retries what is worth retrying, and settles the grant to the actual usage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ratelimit_adaptive::{AdaptiveLimiter, RetryHint, Snapshot};
use ratelimit_core::Cost;
use ratelimit_limiter::{Limiter, Permit, Request};
use ratelimit_openai::{
    ChatCompletion, ChatCompletionRequest, Completion, CompletionRequest, EmbeddingsRequest,
    EmbeddingsResponse, ErrorResponse, Estimate, Estimator, StreamOptions, Usage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{ClientBuilder, RetryPolicy, Settle};
use crate::error::{ClientError, Verdict, backoff, verdict};
use crate::stream::ChatStream;

/// An OpenAI-compatible client with rate limiting built in. Cheap to clone.
///
/// Every call: estimates its tokens (tiktoken, by model), waits for the limiter's grant of
/// `1 request + input + output tokens`, sends, and on the answer
/// - feeds the headers (and error bodies) to the [`AdaptiveLimiter`], if the client has one;
/// - on 429, pauses every user of the limiter for the provider's retry-after and gives the
///   refused request's grant back (the provider did not admit it), then tries again;
/// - retries 408, 409, 429 and 5xx with exponential backoff and full jitter (or the provider's
///   wait), honouring `x-should-retry`; never retries permanent errors (400s, an exhausted quota,
///   a request too large) and says why;
/// - settles the grant to the response's `usage` (see [`Settle`]).
///
/// ```no_run
/// use ratelimit_client::Client;
/// use ratelimit_openai::{ChatCompletionRequest, ChatMessage};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder().build()?; // OPENAI_BASE_URL, OPENAI_API_KEY
/// let mut request = ChatCompletionRequest::new("gpt-4o-mini", vec![ChatMessage::user("Hi!")]);
/// request.max_completion_tokens = Some(50);
/// let answer = client.chat(&request).await?;
/// println!("{:?}", answer.choices[0].message);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    authorization: Option<http::HeaderValue>,
    limiter: Option<Arc<dyn Limiter>>,
    adaptive: Option<Arc<AdaptiveLimiter>>,
    key: String,
    priority: ratelimit_limiter::Priority,
    settle: Settle,
    retry: RetryPolicy,
    estimator: Estimator,
    counters: Counters,
}

/// What a client has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// Attempts sent (first tries and retries).
    pub attempts: u64,
    /// Attempts answered 429 by the provider.
    pub rate_limited: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Attempts that got no answer (connection errors, timeouts).
    pub transport_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    attempts: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    transport_errors: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, name: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name).increment(1);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("limited", &self.inner.limiter.is_some())
            .field("adaptive", &self.inner.adaptive.is_some())
            .finish_non_exhaustive()
    }
}

/// A sent request's successful answer, with the grant it was sent under.
pub(crate) struct Answer {
    pub(crate) response: reqwest::Response,
    pub(crate) permit: Option<Permit>,
}

impl Client {
    /// A builder, with the key and base URL from the environment.
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn from_builder(b: ClientBuilder) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(b.timeout)
            .connect_timeout(b.connect_timeout)
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        let authorization = b
            .api_key
            .as_ref()
            .map(|k| {
                let mut v = http::HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| ClientError::Config("invalid API key".into()))?;
                v.set_sensitive(true);
                Ok::<_, ClientError>(v)
            })
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url: b.base_url.trim_end_matches('/').to_owned(),
                authorization,
                limiter: b.limiter,
                adaptive: b.adaptive,
                key: b.key,
                priority: b.priority,
                settle: b.settle,
                retry: b.retry,
                estimator: b.estimator,
                counters: Counters::default(),
            }),
        })
    }

    /// The limiter calls are limited on, if any (an adaptive one included).
    #[must_use]
    pub fn limiter(&self) -> Option<&Arc<dyn Limiter>> {
        self.inner.limiter.as_ref()
    }

    /// The priority class of this client's calls.
    #[must_use]
    pub fn priority(&self) -> ratelimit_limiter::Priority {
        self.inner.priority
    }

    /// The budget key calls are limited under.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// Counts of what this client (and its clones) has done.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            attempts: c.attempts.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            transport_errors: c.transport_errors.load(Ordering::Relaxed),
        }
    }

    /// The estimator calls are costed with.
    #[must_use]
    pub fn estimator(&self) -> &Estimator {
        &self.inner.estimator
    }

    /// A chat completion (not streamed: `stream` is set to false).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn chat(
        &self,
        request: &ChatCompletionRequest,
    ) -> Result<ChatCompletion, ClientError> {
        let estimate = self.inner.estimator.chat(request);
        let mut request = request.clone();
        request.stream = None;
        request.stream_options = None;
        self.exchange("chat/completions", &request, estimate, None)
            .await
    }

    /// A streamed chat completion. `stream_options.include_usage` is turned on so the final
    /// chunk carries the usage the grant is settled to (that chunk has no choices).
    ///
    /// # Errors
    /// See [`ClientError`]; errors in the middle of the stream come out of the stream.
    pub async fn chat_stream(
        &self,
        request: &ChatCompletionRequest,
    ) -> Result<ChatStream, ClientError> {
        let estimate = self.inner.estimator.chat(request);
        let mut request = request.clone();
        request.stream = Some(true);
        let mut options = request.stream_options.take().unwrap_or(StreamOptions {
            include_usage: None,
            extra: Default::default(),
        });
        options.include_usage = Some(true);
        request.stream_options = Some(options);
        let answer = self
            .send("chat/completions", &request, estimate, None)
            .await?;
        Ok(ChatStream::new(
            self.clone(),
            answer.response,
            answer.permit,
            estimate,
        ))
    }

    /// A legacy completion.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn completion(&self, request: &CompletionRequest) -> Result<Completion, ClientError> {
        let estimate = self.inner.estimator.completion(request);
        let mut request = request.clone();
        request.stream = None;
        request.stream_options = None;
        self.exchange("completions", &request, estimate, None).await
    }

    /// Embeddings.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ClientError> {
        let estimate = self.inner.estimator.embeddings(request);
        self.exchange("embeddings", request, estimate, None).await
    }

    /// Sends, reads the JSON answer, settles the grant to its usage.
    pub(crate) async fn exchange<R: Reply>(
        &self,
        path: &str,
        body: &impl Serialize,
        estimate: Estimate,
        granted: Option<Permit>,
    ) -> Result<R, ClientError> {
        let answer = self.send(path, body, estimate, granted).await?;
        let (body, permit): (R, _) = json(answer).await?;
        self.settle(permit, body.usage().as_ref(), estimate).await;
        Ok(body)
    }

    /// Settles a grant to the response's usage (see [`Settle`]); without usage the estimate stays.
    pub(crate) async fn settle(
        &self,
        permit: Option<Permit>,
        usage: Option<&Usage>,
        estimate: Estimate,
    ) {
        let (Some(mut permit), Some(usage)) = (permit, usage) else {
            return;
        };
        let output = match self.inner.settle {
            Settle::Admission => estimate.output,
            Settle::Usage => usage.completion_tokens,
        };
        if let Err(e) = permit
            .adjust(Cost::request(usage.prompt_tokens, output))
            .await
        {
            tracing::warn!(error = %e, "could not settle the grant; the estimate stays counted");
        }
    }

    /// Sends `body` to `path` under the limiter, retrying as documented on [`Client`]. `granted`
    /// is a grant the caller already holds for the first attempt; retries acquire again.
    pub(crate) async fn send(
        &self,
        path: &str,
        body: &impl Serialize,
        estimate: Estimate,
        mut granted: Option<Permit>,
    ) -> Result<Answer, ClientError> {
        let inner = &*self.inner;
        let bytes = Bytes::from(
            serde_json::to_vec(body)
                .map_err(|e| ClientError::Config(format!("request body: {e}")))?,
        );
        let url = format!("{}/{path}", inner.base_url);
        let cost = Cost::request(estimate.input, estimate.output);
        let max = inner.retry.max_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = match (granted.take(), &inner.limiter) {
                (Some(p), _) => Some(p),
                (None, Some(l)) => Some(
                    l.acquire(Request::new(cost).key(&inner.key).priority(inner.priority))
                        .await?,
                ),
                (None, None) => None,
            };
            Counters::bump(&inner.counters.attempts, "llm_client_attempts_total");
            if attempt > 1 {
                Counters::bump(&inner.counters.retries, "llm_client_retries_total");
            }
            let mut req = inner
                .http
                .post(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            if let Some(auth) = &inner.authorization {
                req = req.header(http::header::AUTHORIZATION, auth.clone());
            }
            let response = match req.send().await {
                Ok(r) => r,
                Err(source) => {
                    Counters::bump(
                        &inner.counters.transport_errors,
                        "llm_client_transport_errors_total",
                    );
                    // It may have reached the provider: the grant stays counted (dropped here).
                    drop(permit);
                    tracing::debug!(error = %source, attempt, "transport error");
                    if attempt >= max {
                        return Err(ClientError::Transport {
                            source,
                            attempts: attempt,
                        });
                    }
                    tokio::time::sleep(backoff(
                        attempt - 1,
                        None,
                        inner.retry.base,
                        inner.retry.max,
                    ))
                    .await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            if response.status().is_success() {
                if let Some(adaptive) = &inner.adaptive {
                    if let Err(e) = adaptive
                        .observe(
                            &inner.key,
                            permit.as_ref(),
                            status,
                            response.headers(),
                            None,
                        )
                        .await
                    {
                        tracing::warn!(error = %e, "could not apply the provider's rate-limit headers");
                    }
                }
                return Ok(Answer { response, permit });
            }
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let error = serde_json::from_slice::<ErrorResponse>(&body)
                .ok()
                .map(|e| e.error);
            let retry = self
                .feedback(permit.as_ref(), status, &headers, &body, attempt)
                .await;
            let verdict = verdict(status, error.as_ref(), retry.should_retry);
            let message = error.as_ref().map_or_else(
                || String::from_utf8_lossy(&body).chars().take(500).collect(),
                |e| e.message.clone(),
            );
            if status == 429 {
                Counters::bump(
                    &inner.counters.rate_limited,
                    "llm_client_rate_limited_total",
                );
                // Refused, not admitted: give the grant back (the pause holds everyone meanwhile).
                if let Some(p) = permit {
                    if let Err(e) = p.cancel().await {
                        tracing::debug!(error = %e, "could not give back a refused request's grant");
                    }
                }
            }
            if verdict == Verdict::Permanent || attempt >= max {
                return Err(ClientError::Api {
                    status,
                    message,
                    error: error.map(Box::new),
                    permanent: verdict == Verdict::Permanent,
                    attempts: attempt,
                });
            }
            tracing::debug!(status, attempt, ?retry, "retrying");
            // With a limiter, a 429's wait is the pause every acquire honours; otherwise sleep.
            if !(status == 429 && inner.limiter.is_some()) {
                tokio::time::sleep(backoff(
                    attempt - 1,
                    retry.after,
                    inner.retry.base,
                    inner.retry.max,
                ))
                .await;
            }
        }
    }

    /// Feeds a failed response to the adaptive layer (or, without one, pauses the limiter on a
    /// 429 by itself) and returns the retry hint.
    async fn feedback(
        &self,
        permit: Option<&Permit>,
        status: u16,
        headers: &http::HeaderMap,
        body: &[u8],
        attempt: u32,
    ) -> RetryHint {
        let inner = &*self.inner;
        if let Some(adaptive) = &inner.adaptive {
            match adaptive
                .observe(&inner.key, permit, status, headers, Some(body))
                .await
            {
                Ok(seen) => return seen.retry,
                Err(e) => tracing::warn!(error = %e, "could not apply the provider's feedback"),
            }
        }
        let retry = Snapshot::from_headers(headers, SystemTime::now())
            .with_body(body)
            .retry();
        if status == 429 && inner.adaptive.is_none() {
            if let Some(limiter) = &inner.limiter {
                let pause = retry
                    .after
                    .unwrap_or_else(|| {
                        backoff(attempt - 1, None, inner.retry.base, inner.retry.max)
                    })
                    .max(Duration::from_millis(1));
                if let Err(e) = limiter.pause(&inner.key, pause).await {
                    tracing::warn!(error = %e, "could not pause the limiter after a 429");
                }
            }
        }
        retry
    }
}

/// A successful answer's body, with the usage it reports.
pub(crate) trait Reply: DeserializeOwned {
    /// The usage, as a chat completion's (embeddings report no completion tokens).
    fn usage(&self) -> Option<Usage>;
}

impl Reply for ChatCompletion {
    fn usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

impl Reply for Completion {
    fn usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

impl Reply for EmbeddingsResponse {
    fn usage(&self) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: self.usage.prompt_tokens,
            completion_tokens: 0,
            total_tokens: self.usage.total_tokens,
            prompt_tokens_details: None,
            completion_tokens_details: None,
            extra: Default::default(),
        })
    }
}

/// Reads a successful answer's JSON body.
async fn json<T: DeserializeOwned>(answer: Answer) -> Result<(T, Option<Permit>), ClientError> {
    let Answer { response, permit } = answer;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ClientError::Malformed(format!("reading the body: {e}")))?;
    let body = serde_json::from_slice(&bytes).map_err(|e| {
        ClientError::Malformed(format!(
            "{e}: {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    })?;
    Ok((body, permit))
}
