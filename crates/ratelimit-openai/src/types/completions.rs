//! Legacy completions (`POST /v1/completions`): the request and the response (also the shape of
//! each streamed chunk).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Extra, FinishReason, Input, StreamOptions, Usage};

/// A `POST /v1/completions` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model name.
    pub model: String,
    /// One or several prompts, as text or token ids.
    pub prompt: Input,
    /// The output limit per choice (the API's default is 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// How many choices to return for each prompt (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// How many choices to generate server-side for each prompt, of which the best `n` are
    /// returned (default 1); every one of them is generated, so every one costs output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of: Option<u64>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Options of a streamed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Every other field (`temperature`, `echo`, `suffix`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl CompletionRequest {
    /// A request for `model` with this prompt and no other field set.
    pub fn new(model: impl Into<String>, prompt: impl Into<Input>) -> Self {
        CompletionRequest {
            model: model.into(),
            prompt: prompt.into(),
            max_tokens: None,
            n: None,
            best_of: None,
            stream: None,
            stream_options: None,
            extra: Extra::new(),
        }
    }

    /// How many choices are generated for each prompt: the larger of `n` and `best_of`
    /// (each defaults to 1).
    pub fn generated_choices(&self) -> u64 {
        self.n.unwrap_or(1).max(self.best_of.unwrap_or(1))
    }

    /// Whether the answer is streamed.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether a streamed answer ends with a usage chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            == Some(true)
    }
}

/// A legacy completion (the response, and each chunk of a streamed response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The completion id (`cmpl-...`).
    pub id: String,
    /// `"text_completion"`.
    pub object: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// The generated choices.
    pub choices: Vec<CompletionChoice>,
    /// What the request used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Every other field (`system_fingerprint`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One choice of a [`Completion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// The generated text (the next piece of it, in a streamed chunk).
    pub text: String,
    /// The choice's index.
    pub index: u64,
    /// Log probabilities, when asked for, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}
