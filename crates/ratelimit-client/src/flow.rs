//! What every limited call goes through, shared by [`Client`](crate::Client) and the middleware:
//! which endpoints are limited and what a request to them costs, the grant, the provider's
//! feedback (adaptive headers; a 429's pause and refund) and the settlement to the actual usage.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ratelimit_adaptive::{AdaptiveLimiter, RetryHint, Snapshot};
use ratelimit_core::Cost;
use ratelimit_limiter::{AcquireError, Limiter, Permit, Priority, Request};
use ratelimit_openai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, Estimate, Estimator, Usage,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{RetryPolicy, Settle};
use crate::error::backoff;

/// An endpoint whose calls are limited: one that spends tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST .../chat/completions`.
    Chat,
    /// `POST .../completions` (legacy).
    Completions,
    /// `POST .../embeddings`.
    Embeddings,
}

impl Endpoint {
    /// The path under the API's base URL.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }

    /// The endpoint a URL path ends with, if it is one of these. Judged on the last segments only,
    /// so any base path works (`/v1/...`, Azure's `/openai/deployments/{name}/...`, a gateway's
    /// prefix); `/chat/completions/{id}` (stored completions) is not a limited call.
    #[must_use]
    pub fn from_path(path: &str) -> Option<Self> {
        let mut segments = path.trim_end_matches('/').rsplit('/');
        match segments.next()? {
            "embeddings" => Some(Self::Embeddings),
            "completions" if segments.next() == Some("chat") => Some(Self::Chat),
            "completions" => Some(Self::Completions),
            _ => None,
        }
    }

    /// What a request to this endpoint costs, from its JSON body; `None` when the body is not
    /// such a request. A body without `model` (Azure names the deployment in the path instead)
    /// is costed with `model_hint`'s encoding.
    #[must_use]
    pub fn estimate(
        self,
        estimator: &Estimator,
        body: &[u8],
        model_hint: Option<&str>,
    ) -> Option<Estimate> {
        let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let object = value.as_object_mut()?;
        if !object.contains_key("model") {
            object.insert("model".into(), model_hint.unwrap_or_default().into());
        }
        fn parse<T: DeserializeOwned>(value: serde_json::Value) -> Option<T> {
            serde_json::from_value(value).ok()
        }
        Some(match self {
            Self::Chat => estimator.chat(&parse::<ChatCompletionRequest>(value)?),
            Self::Completions => estimator.completion(&parse::<CompletionRequest>(value)?),
            Self::Embeddings => estimator.embeddings(&parse::<EmbeddingsRequest>(value)?),
        })
    }
}

/// The deployment named in an Azure OpenAI path (`.../deployments/{name}/...`).
#[must_use]
pub fn deployment(path: &str) -> Option<&str> {
    let mut segments = path.split('/');
    segments.find(|s| *s == "deployments")?;
    segments.next().filter(|s| !s.is_empty())
}

/// The token counts a response reports in its `usage` (chat and legacy completions report both;
/// embeddings only the prompt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Counted {
    /// `prompt_tokens`.
    #[serde(rename = "prompt_tokens")]
    pub prompt: u64,
    /// `completion_tokens` (0 when absent).
    #[serde(default, rename = "completion_tokens")]
    pub completion: u64,
}

impl From<&Usage> for Counted {
    fn from(usage: &Usage) -> Self {
        Self {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
        }
    }
}

/// The `usage` of a JSON response body or of one streamed chunk, if it reports one.
#[must_use]
pub fn usage_of(json: &[u8]) -> Option<Counted> {
    #[derive(Deserialize)]
    struct WithUsage {
        #[serde(default)]
        usage: Option<Counted>,
    }
    serde_json::from_slice::<WithUsage>(json).ok()?.usage
}

/// What a grant is settled to, once the answer reports `usage`: the actual prompt, and the
/// output as `settle` says (the estimate under [`Settle::Admission`], the actual under
/// [`Settle::Usage`]).
#[must_use]
pub fn settled_cost(settle: Settle, usage: Counted, estimate: Estimate) -> Cost {
    let output = match settle {
        Settle::Admission => estimate.output,
        Settle::Usage => usage.completion,
    };
    Cost::request(usage.prompt, output)
}

/// How calls are limited: the limiter, the budget they are counted under, and how grants are
/// settled. One per [`Client`](crate::Client) or middleware. The default limits nothing.
#[derive(Clone, Default)]
pub(crate) struct Flow {
    pub(crate) limiter: Option<Arc<dyn Limiter>>,
    pub(crate) adaptive: Option<Arc<AdaptiveLimiter>>,
    pub(crate) key: String,
    pub(crate) priority: Priority,
    pub(crate) settle: Settle,
    /// For the pause after a 429 that says no wait: the jittered backoff of this policy.
    pub(crate) retry: RetryPolicy,
    pub(crate) estimator: Estimator,
}

impl Flow {
    /// Waits for the grant of `1 request + estimate` (none without a limiter).
    pub(crate) async fn acquire(&self, estimate: Estimate) -> Result<Option<Permit>, AcquireError> {
        let Some(limiter) = &self.limiter else {
            return Ok(None);
        };
        let cost = Cost::request(estimate.input, estimate.output);
        let request = Request::new(cost).key(&self.key).priority(self.priority);
        limiter.acquire(request).await.map(Some)
    }

    /// Feeds a successful response's headers to the adaptive layer, if there is one.
    pub(crate) async fn accepted(
        &self,
        permit: Option<&Permit>,
        status: u16,
        headers: &http::HeaderMap,
    ) {
        if let Some(adaptive) = &self.adaptive {
            if let Err(e) = adaptive
                .observe(&self.key, permit, status, headers, None)
                .await
            {
                tracing::warn!(error = %e, "could not apply the provider's rate-limit headers");
            }
        }
    }

    /// Handles a failed response: feeds it to the adaptive layer (or, without one, pauses the
    /// limiter on a 429 by itself: everyone sharing the budget waits out the provider's
    /// retry-after), gives a 429's grant back (the provider refused, it did not admit), and
    /// returns the retry hint. Any other failure keeps its grant counted: the provider may have
    /// counted it too. `attempt` (1-based) sizes the pause when the 429 names no wait.
    pub(crate) async fn refused(
        &self,
        permit: Option<Permit>,
        status: u16,
        headers: &http::HeaderMap,
        body: &[u8],
        attempt: u32,
    ) -> RetryHint {
        let retry = self
            .feedback(permit.as_ref(), status, headers, body, attempt)
            .await;
        if status == 429 {
            if let Some(p) = permit {
                if let Err(e) = p.cancel().await {
                    tracing::debug!(error = %e, "could not give back a refused request's grant");
                }
            }
        }
        retry
    }

    async fn feedback(
        &self,
        permit: Option<&Permit>,
        status: u16,
        headers: &http::HeaderMap,
        body: &[u8],
        attempt: u32,
    ) -> RetryHint {
        if let Some(adaptive) = &self.adaptive {
            match adaptive
                .observe(&self.key, permit, status, headers, Some(body))
                .await
            {
                Ok(seen) => return seen.retry,
                Err(e) => tracing::warn!(error = %e, "could not apply the provider's feedback"),
            }
        }
        let retry = Snapshot::from_headers(headers, SystemTime::now())
            .with_body(body)
            .retry();
        if status == 429 && self.adaptive.is_none() {
            if let Some(limiter) = &self.limiter {
                let pause = retry
                    .after
                    .unwrap_or_else(|| {
                        backoff(
                            attempt.saturating_sub(1),
                            None,
                            self.retry.base,
                            self.retry.max,
                        )
                    })
                    .max(Duration::from_millis(1));
                if let Err(e) = limiter.pause(&self.key, pause).await {
                    tracing::warn!(error = %e, "could not pause the limiter after a 429");
                }
            }
        }
        retry
    }

    /// Settles a grant to the response's usage (see [`Settle`]); without usage the estimate
    /// stays counted.
    pub(crate) async fn settle(
        &self,
        permit: Option<Permit>,
        usage: Option<Counted>,
        estimate: Estimate,
    ) {
        let (Some(mut permit), Some(usage)) = (permit, usage) else {
            return;
        };
        if let Err(e) = permit
            .adjust(settled_cost(self.settle, usage, estimate))
            .await
        {
            tracing::warn!(error = %e, "could not settle the grant; the estimate stays counted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_spending_endpoints_are_limited() {
        for (path, endpoint) in [
            ("/v1/chat/completions", Some(Endpoint::Chat)),
            ("/v1/chat/completions/", Some(Endpoint::Chat)),
            ("/v1/completions", Some(Endpoint::Completions)),
            ("/v1/embeddings", Some(Endpoint::Embeddings)),
            (
                "/openai/deployments/gpt-4o/chat/completions",
                Some(Endpoint::Chat),
            ),
            ("/gateway/openai/v1/embeddings", Some(Endpoint::Embeddings)),
            ("chat/completions", Some(Endpoint::Chat)),
            ("/v1/chat/completions/chatcmpl-123", None),
            ("/v1/chat/completions/chatcmpl-123/messages", None),
            ("/v1/models", None),
            ("/v1/files", None),
            ("/v1/responses", None),
            ("", None),
            ("/", None),
        ] {
            assert_eq!(Endpoint::from_path(path), endpoint, "{path}");
        }
        for e in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
            assert_eq!(Endpoint::from_path(e.path()), Some(e));
        }
    }

    #[test]
    fn azure_deployments_are_read_from_the_path() {
        assert_eq!(
            deployment("/openai/deployments/my-gpt4o/chat/completions"),
            Some("my-gpt4o")
        );
        assert_eq!(deployment("/v1/chat/completions"), None);
        assert_eq!(deployment("/openai/deployments/"), None);
    }

    #[test]
    fn bodies_are_costed_as_the_typed_requests_are() {
        let estimator = Estimator::default();
        let mut chat = ChatCompletionRequest::new(
            "gpt-4o-mini",
            vec![ratelimit_openai::ChatMessage::user("Say hi.")],
        );
        chat.max_completion_tokens = Some(40);
        chat.n = Some(2);
        let body = serde_json::to_vec(&chat).unwrap();
        assert_eq!(
            Endpoint::Chat.estimate(&estimator, &body, None),
            Some(estimator.chat(&chat))
        );
        assert_eq!(estimator.chat(&chat).output, 80);

        let completion = CompletionRequest::new("gpt-3.5-turbo-instruct", "Once upon");
        let body = serde_json::to_vec(&completion).unwrap();
        assert_eq!(
            Endpoint::Completions.estimate(&estimator, &body, None),
            Some(estimator.completion(&completion))
        );

        let embeddings = EmbeddingsRequest::new(
            "text-embedding-3-small",
            ratelimit_openai::Input::Tokens(vec![1, 2, 3]),
        );
        let body = serde_json::to_vec(&embeddings).unwrap();
        assert_eq!(
            Endpoint::Embeddings.estimate(&estimator, &body, None),
            Some(ratelimit_openai::Estimate {
                input: 3,
                output: 0
            })
        );
    }

    #[test]
    fn a_body_without_model_takes_the_hint_and_bad_bodies_have_no_estimate() {
        let estimator = Estimator::default();
        let azure = br#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":7}"#;
        let estimate = Endpoint::Chat
            .estimate(&estimator, azure, Some("gpt-4o"))
            .unwrap();
        assert_eq!(estimate.output, 7);
        assert!(estimate.input > 0);
        assert!(Endpoint::Chat.estimate(&estimator, azure, None).is_some());
        for bad in [
            &b"not json"[..],
            b"[1, 2]",
            b"{\"model\": \"gpt-4o\"}",
            b"{\"model\": 5, \"messages\": []}",
            b"",
        ] {
            assert_eq!(Endpoint::Chat.estimate(&estimator, bad, None), None);
        }
        assert_eq!(
            Endpoint::Embeddings.estimate(&estimator, b"{\"model\":\"m\"}", None),
            None
        );
    }

    #[test]
    fn usage_is_read_from_plain_bodies_and_chunks() {
        assert_eq!(
            usage_of(br#"{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#),
            Some(Counted {
                prompt: 12,
                completion: 3
            })
        );
        assert_eq!(
            usage_of(br#"{"data":[],"usage":{"prompt_tokens":9,"total_tokens":9}}"#),
            Some(Counted {
                prompt: 9,
                completion: 0
            })
        );
        assert_eq!(usage_of(br#"{"choices":[],"usage":null}"#), None);
        assert_eq!(usage_of(br#"{"choices":[]}"#), None);
        assert_eq!(usage_of(br#"{"usage":{"total_tokens":9}}"#), None);
        assert_eq!(usage_of(b"[DONE]"), None);
    }
}
