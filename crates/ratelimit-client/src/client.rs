//! `Client`: every call estimates its cost, waits for the limiter, sends, feeds the response to
//! the adaptive layer, retries what is worth retrying, and settles the grant to the actual usage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use ratelimit_limiter::Permit;
use ratelimit_openai::{
    ChatCompletion, ChatCompletionRequest, Completion, CompletionRequest, EmbeddingsRequest,
    EmbeddingsResponse, ErrorResponse, Estimate, Estimator, StreamOptions, Usage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ClientBuilder;
use crate::error::{ClientError, Verdict, backoff, verdict};
use crate::flow::{Counted, Endpoint, Flow};
use crate::stream::ChatStream;

/// An OpenAI-compatible client with rate limiting built in. Cheap to clone.
///
/// Every call: estimates its tokens (tiktoken, by model), waits for the limiter's grant of
/// `1 request + input + output tokens`, sends, and on the answer
/// - feeds the headers (and error bodies) to the
///   [`AdaptiveLimiter`](ratelimit_adaptive::AdaptiveLimiter), if the client has one;
/// - on 429, pauses every user of the limiter for the provider's retry-after and gives the
///   refused request's grant back (the provider did not admit it), then tries again;
/// - retries 408, 409, 429 and 5xx with exponential backoff and full jitter (or the provider's
///   wait), honouring `x-should-retry`; never retries permanent errors (400s, an exhausted quota,
///   a request too large) and says why;
/// - settles the grant to the response's `usage` (see [`Settle`](crate::Settle)).
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
    flow: Flow,
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
    /// Counts one event here and through the `metrics` facade.
    fn bump(counter: &AtomicU64, name: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name).increment(1);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("limited", &self.inner.flow.limiter.is_some())
            .field("adaptive", &self.inner.flow.adaptive.is_some())
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
                flow: b.flow,
                counters: Counters::default(),
            }),
        })
    }

    /// The limiter calls are limited on, if any (an adaptive one included).
    #[must_use]
    pub fn limiter(&self) -> Option<&Arc<dyn ratelimit_limiter::Limiter>> {
        self.inner.flow.limiter.as_ref()
    }

    /// The priority class of this client's calls.
    #[must_use]
    pub fn priority(&self) -> ratelimit_limiter::Priority {
        self.inner.flow.priority
    }

    /// The budget key calls are limited under.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.inner.flow.key
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
        &self.inner.flow.estimator
    }

    /// A chat completion (not streamed: `stream` is set to false).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn chat(
        &self,
        request: &ChatCompletionRequest,
    ) -> Result<ChatCompletion, ClientError> {
        let estimate = self.inner.flow.estimator.chat(request);
        let mut request = request.clone();
        request.stream = None;
        request.stream_options = None;
        self.exchange(Endpoint::Chat, &request, estimate, None)
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
        let estimate = self.inner.flow.estimator.chat(request);
        let mut request = request.clone();
        request.stream = Some(true);
        let mut options = request.stream_options.take().unwrap_or(StreamOptions {
            include_usage: None,
            extra: Default::default(),
        });
        options.include_usage = Some(true);
        request.stream_options = Some(options);
        let answer = self.send(Endpoint::Chat, &request, estimate, None).await?;
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
        let estimate = self.inner.flow.estimator.completion(request);
        let mut request = request.clone();
        request.stream = None;
        request.stream_options = None;
        self.exchange(Endpoint::Completions, &request, estimate, None)
            .await
    }

    /// Embeddings.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ClientError> {
        let estimate = self.inner.flow.estimator.embeddings(request);
        self.exchange(Endpoint::Embeddings, request, estimate, None)
            .await
    }

    /// Settles a grant to the response's usage (see [`Settle`]); without usage the estimate stays.
    /// Sends, reads the JSON answer, settles the grant to its usage.
    pub(crate) async fn exchange<R: Reply>(
        &self,
        endpoint: Endpoint,
        body: &impl Serialize,
        estimate: Estimate,
        granted: Option<Permit>,
    ) -> Result<R, ClientError> {
        let answer = self.send(endpoint, body, estimate, granted).await?;
        let (body, permit): (R, _) = json(answer).await?;
        self.inner
            .flow
            .settle(permit, body.counted(), estimate)
            .await;
        Ok(body)
    }

    pub(crate) async fn settle(
        &self,
        permit: Option<Permit>,
        usage: Option<&Usage>,
        estimate: Estimate,
    ) {
        self.inner
            .flow
            .settle(permit, usage.map(Counted::from), estimate)
            .await;
    }

    /// Sends `body` to `endpoint` under the limiter, retrying as documented on [`Client`].
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        body: &impl Serialize,
        estimate: Estimate,
        mut granted: Option<Permit>,
    ) -> Result<Answer, ClientError> {
        let inner = &*self.inner;
        let flow = &inner.flow;
        let bytes = Bytes::from(
            serde_json::to_vec(body)
                .map_err(|e| ClientError::Config(format!("request body: {e}")))?,
        );
        let url = format!("{}/{}", inner.base_url, endpoint.path());
        let max = flow.retry.max_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The caller's grant serves the first attempt; retries acquire again.
            let permit = match granted.take() {
                Some(p) => Some(p),
                None => flow.acquire(estimate).await?,
            };
            let counters = &inner.counters;
            Counters::bump(&counters.attempts, "llm_client_attempts_total");
            if attempt > 1 {
                Counters::bump(&counters.retries, "llm_client_retries_total");
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
                    tokio::time::sleep(backoff(attempt - 1, None, flow.retry.base, flow.retry.max))
                        .await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            if response.status().is_success() {
                flow.accepted(permit.as_ref(), status, response.headers())
                    .await;
                return Ok(Answer { response, permit });
            }
            if status == 429 {
                Counters::bump(
                    &inner.counters.rate_limited,
                    "llm_client_rate_limited_total",
                );
            }
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let error = serde_json::from_slice::<ErrorResponse>(&body)
                .ok()
                .map(|e| e.error);
            // A 429's grant is given back (the pause holds everyone meanwhile); any other failure's
            // stays counted.
            let retry = flow.refused(permit, status, &headers, &body, attempt).await;
            let verdict = verdict(status, error.as_ref(), retry.should_retry);
            let message = error.as_ref().map_or_else(
                || String::from_utf8_lossy(&body).chars().take(500).collect(),
                |e| e.message.clone(),
            );
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
            if !(status == 429 && flow.limiter.is_some()) {
                tokio::time::sleep(backoff(
                    attempt - 1,
                    retry.after,
                    flow.retry.base,
                    flow.retry.max,
                ))
                .await;
            }
        }
    }
}

/// Reads a successful answer's JSON body.
/// A successful answer's body, with the usage it reports.
pub(crate) trait Reply: DeserializeOwned {
    /// The tokens it reports (embeddings: the prompt alone).
    fn counted(&self) -> Option<Counted>;
}

impl Reply for ChatCompletion {
    fn counted(&self) -> Option<Counted> {
        self.usage.as_ref().map(Counted::from)
    }
}

impl Reply for Completion {
    fn counted(&self) -> Option<Counted> {
        self.usage.as_ref().map(Counted::from)
    }
}

impl Reply for EmbeddingsResponse {
    fn counted(&self) -> Option<Counted> {
        // An embedding's estimate has no output: both settle modes count the prompt alone.
        Some(Counted {
            prompt: self.usage.prompt_tokens,
            completion: 0,
        })
    }
}

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
