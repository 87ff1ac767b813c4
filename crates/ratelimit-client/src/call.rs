//! `Call`: one request to any of the limited endpoints, for callers that handle requests
//! generically (the batch runner, the command line) and may pace their own dispatch.

use ratelimit_core::Cost;
use ratelimit_limiter::Permit;
use ratelimit_openai::{
    ChatCompletion, ChatCompletionRequest, Completion, CompletionRequest, EmbeddingsRequest,
    EmbeddingsResponse, Estimate, Estimator,
};

use crate::client::{Client, Reply};
use crate::error::ClientError;
use crate::flow::Endpoint;

/// A request to one of the endpoints the client limits.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `POST /chat/completions` (not streamed).
    Chat(ChatCompletionRequest),
    /// `POST /completions`.
    Completion(CompletionRequest),
    /// `POST /embeddings`.
    Embeddings(EmbeddingsRequest),
}

impl Call {
    /// Reads a request body for an endpoint given as its URL path (`/v1/chat/completions`,
    /// `chat/completions`, `/v1/embeddings`, ...).
    ///
    /// # Errors
    /// [`ClientError::Malformed`] naming the endpoint when it is not one of the three, or the
    /// serde error when the body does not fit it.
    pub fn from_json(endpoint: &str, body: serde_json::Value) -> Result<Self, ClientError> {
        let bad = |e: serde_json::Error| ClientError::Malformed(format!("{endpoint} body: {e}"));
        match Endpoint::from_path(endpoint) {
            Some(Endpoint::Chat) => serde_json::from_value(body).map(Self::Chat).map_err(bad),
            Some(Endpoint::Completions) => serde_json::from_value(body)
                .map(Self::Completion)
                .map_err(bad),
            Some(Endpoint::Embeddings) => serde_json::from_value(body)
                .map(Self::Embeddings)
                .map_err(bad),
            None => Err(ClientError::Malformed(format!(
                "unsupported endpoint {endpoint:?}: expected /v1/chat/completions, /v1/completions or /v1/embeddings"
            ))),
        }
    }

    /// What the provider will count for it.
    #[must_use]
    pub fn estimate(&self, estimator: &Estimator) -> Estimate {
        match self {
            Self::Chat(r) => estimator.chat(r),
            Self::Completion(r) => estimator.completion(r),
            Self::Embeddings(r) => estimator.embeddings(r),
        }
    }

    /// The limiter cost of [`estimate`](Self::estimate).
    #[must_use]
    pub fn cost(&self, estimator: &Estimator) -> Cost {
        let e = self.estimate(estimator);
        Cost::request(e.input, e.output)
    }
}

/// A call's answer: the response body as JSON, and the usage it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The response body.
    pub body: serde_json::Value,
    /// Prompt tokens reported by the provider.
    pub prompt_tokens: u64,
    /// Completion tokens reported by the provider (0 for embeddings).
    pub completion_tokens: u64,
}

impl Client {
    /// Sends `call`; `granted` is a grant the caller already took for it (a batch runner paces
    /// its dispatch on the limiter), else the client acquires one. Retries acquire again.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn call(
        &self,
        call: &Call,
        granted: Option<Permit>,
    ) -> Result<CallResult, ClientError> {
        let estimate = call.estimate(self.estimator());
        let (body, usage) = match call {
            Call::Chat(r) => {
                let mut r = r.clone();
                r.stream = None;
                r.stream_options = None;
                let c: ChatCompletion =
                    self.exchange(Endpoint::Chat, &r, estimate, granted).await?;
                (to_value(&c)?, c.counted())
            }
            Call::Completion(r) => {
                let mut r = r.clone();
                r.stream = None;
                r.stream_options = None;
                let c: Completion = self
                    .exchange(Endpoint::Completions, &r, estimate, granted)
                    .await?;
                (to_value(&c)?, c.counted())
            }
            Call::Embeddings(r) => {
                let e: EmbeddingsResponse = self
                    .exchange(Endpoint::Embeddings, r, estimate, granted)
                    .await?;
                (to_value(&e)?, e.counted())
            }
        };
        let (prompt_tokens, completion_tokens) = usage.map_or((0, 0), |u| (u.prompt, u.completion));
        Ok(CallResult {
            body,
            prompt_tokens,
            completion_tokens,
        })
    }
}

fn to_value(v: &impl serde::Serialize) -> Result<serde_json::Value, ClientError> {
    serde_json::to_value(v).map_err(|e| ClientError::Malformed(e.to_string()))
}
