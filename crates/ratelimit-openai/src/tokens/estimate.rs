//! What a request will cost, in tokens, before it is sent.

use serde_json::Value;

use super::Encoding;
use crate::types::{
    ChatCompletionRequest, ChatMessage, CompletionRequest, ContentPart, EmbeddingsRequest,
    ImageDetail, Input, MessageContent,
};

/// The output limit assumed for a chat request that sets neither `max_completion_tokens` nor
/// `max_tokens`. The model may then write up to its own output maximum, so any default is a
/// guess; set [`Estimator::default_max_output_tokens`] for your workload, and settle with the
/// usage the response reports.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 1_024;

/// The output limit of a legacy completion that sets no `max_tokens`: the API's documented
/// default.
pub const LEGACY_DEFAULT_MAX_TOKENS: u64 = 16;

/// Tokens of an image read at `detail: "low"`: a fixed 85 on the gpt-4o family.
pub const IMAGE_TOKENS_LOW: u64 = 85;

/// Tokens of an image read at `high` or `auto` detail (or no detail given), whose size is not
/// known without fetching it: the most the gpt-4o family's tiling rule can charge.
///
/// That rule scales the image to fit in 2048×2048, then its shorter side down to 768, and
/// charges 85 + 170 per 512-pixel tile; the worst case is 768×2048, 2×4 tiles: 85 + 170 × 8.
pub const IMAGE_TOKENS_HIGH: u64 = 85 + 170 * 8;

/// Framing tokens of every chat message (`<|start|>{role}<|message|>` ... `<|end|>`).
const TOKENS_PER_MESSAGE: u64 = 3;
/// Extra token of a message that has a `name`.
const TOKENS_PER_NAME: u64 = 1;
/// Tokens that prime the reply (`<|start|>assistant<|message|>`), once per request.
const REPLY_PRIMING: u64 = 3;
/// Extra token per tool or function call in an assistant message.
const TOKENS_PER_CALL: u64 = 1;

/// The tokens a request costs: what it sends and the most it can make the model write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Estimate {
    /// Prompt tokens.
    pub input: u64,
    /// Output tokens it may produce: the output limit per choice times the number of choices.
    pub output: u64,
}

impl Estimate {
    /// `input + output` (saturating): what providers count against a tokens-per-minute limit
    /// when they admit the request.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// Estimates requests' token costs the way OpenAI counts them at admission.
///
/// - **Chat**: 3 tokens per message, plus its role and content, plus 1 and the name's tokens
///   when it has a `name`, plus 3 to prime the reply (the OpenAI cookbook's rule). Text parts
///   are counted as text; image parts as [`image_tokens_low`](Self::image_tokens_low) or
///   [`image_tokens_high`](Self::image_tokens_high) by their `detail`. Tool calls count their
///   function name and arguments plus 1 each; every other message field, other content parts
///   and the request's `tools`, `functions` and `response_format` count as their text (a string)
///   or JSON text, an approximation of how the API renders them into the prompt. Output is the
///   output limit (`max_completion_tokens`, else `max_tokens`, else
///   [`default_max_output_tokens`](Self::default_max_output_tokens)) times `n`.
/// - **Legacy completions**: the prompt tokens (token arrays count their length); output is
///   `max_tokens` (default [`LEGACY_DEFAULT_MAX_TOKENS`]) times the larger of `n` and `best_of`,
///   for each prompt.
/// - **Embeddings**: the tokens of every input; no output.
///
/// The encoding is chosen from the request's model by [`Encoding::for_model`]. All arithmetic
/// saturates, so no input can overflow or panic.
///
/// ```
/// use ratelimit_openai::{EmbeddingsRequest, Estimator, Input};
///
/// let estimator = Estimator { default_max_output_tokens: 256, ..Estimator::default() };
/// let request = EmbeddingsRequest::new("text-embedding-3-small", Input::TokenBatches(vec![vec![1, 2, 3], vec![4]]));
/// let estimate = estimator.embeddings(&request);
/// assert_eq!((estimate.input, estimate.output), (4, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Estimator {
    /// Output limit per choice of a chat request that sets none (default
    /// [`DEFAULT_MAX_OUTPUT_TOKENS`]).
    pub default_max_output_tokens: u64,
    /// Tokens of an image part at `detail: "low"` (default [`IMAGE_TOKENS_LOW`]).
    pub image_tokens_low: u64,
    /// Tokens of any other image part (default [`IMAGE_TOKENS_HIGH`], an upper bound).
    pub image_tokens_high: u64,
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator {
            default_max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
            image_tokens_low: IMAGE_TOKENS_LOW,
            image_tokens_high: IMAGE_TOKENS_HIGH,
        }
    }
}

impl Estimator {
    /// The cost of a chat completion request.
    pub fn chat(&self, request: &ChatCompletionRequest) -> Estimate {
        let per_choice = request
            .max_output_tokens()
            .unwrap_or(self.default_max_output_tokens);
        Estimate {
            input: self.chat_prompt_tokens(request),
            output: per_choice.saturating_mul(request.choices()),
        }
    }

    /// The prompt tokens of a chat completion request (the `input` of [`Estimator::chat`]).
    pub fn chat_prompt_tokens(&self, request: &ChatCompletionRequest) -> u64 {
        let encoding = Encoding::for_model(&request.model);
        let messages = request.messages.iter().fold(0u64, |sum, message| {
            sum.saturating_add(self.message_tokens(encoding, message))
        });
        let definitions = ["tools", "functions", "response_format"]
            .iter()
            .filter_map(|field| request.extra.get(*field))
            .fold(0u64, |sum, value| {
                sum.saturating_add(value_tokens(encoding, value))
            });
        messages
            .saturating_add(definitions)
            .saturating_add(REPLY_PRIMING)
    }

    fn message_tokens(&self, encoding: Encoding, message: &ChatMessage) -> u64 {
        let mut tokens = TOKENS_PER_MESSAGE.saturating_add(encoding.count(message.role.as_str()));
        match &message.content {
            None => {}
            Some(MessageContent::Text(text)) => {
                tokens = tokens.saturating_add(encoding.count(text));
            }
            Some(MessageContent::Parts(parts)) => {
                for part in parts {
                    tokens = tokens.saturating_add(self.part_tokens(encoding, part));
                }
            }
        }
        if let Some(name) = &message.name {
            tokens = tokens
                .saturating_add(encoding.count(name))
                .saturating_add(TOKENS_PER_NAME);
        }
        for call in message.tool_calls.iter().flatten() {
            let function = call.get("function").unwrap_or(call);
            tokens = tokens.saturating_add(call_tokens(encoding, function));
        }
        if let Some(id) = &message.tool_call_id {
            tokens = tokens.saturating_add(encoding.count(id));
        }
        for (field, value) in &message.extra {
            let cost = if field == "function_call" {
                call_tokens(encoding, value)
            } else {
                value_tokens(encoding, value)
            };
            tokens = tokens.saturating_add(cost);
        }
        tokens
    }

    fn part_tokens(&self, encoding: Encoding, part: &ContentPart) -> u64 {
        match part {
            ContentPart::Text(part) => encoding.count(&part.text),
            ContentPart::ImageUrl(part) => match part.image_url.detail {
                Some(ImageDetail::Low) => self.image_tokens_low,
                _ => self.image_tokens_high,
            },
            ContentPart::Other(value) => value_tokens(encoding, value),
        }
    }

    /// The cost of a legacy completion request.
    pub fn completion(&self, request: &CompletionRequest) -> Estimate {
        let encoding = Encoding::for_model(&request.model);
        let per_choice = request.max_tokens.unwrap_or(LEGACY_DEFAULT_MAX_TOKENS);
        Estimate {
            input: input_tokens(encoding, &request.prompt),
            output: per_choice
                .saturating_mul(request.generated_choices())
                .saturating_mul(request.prompt.count()),
        }
    }

    /// The cost of an embeddings request (its `output` is always 0).
    pub fn embeddings(&self, request: &EmbeddingsRequest) -> Estimate {
        let encoding = Encoding::for_model(&request.model);
        Estimate {
            input: input_tokens(encoding, &request.input),
            output: 0,
        }
    }
}

/// Tokens of a `prompt`/`input`: texts are encoded, token arrays count their length.
fn input_tokens(encoding: Encoding, input: &Input) -> u64 {
    match input {
        Input::Text(text) => encoding.count(text),
        Input::Texts(texts) => texts
            .iter()
            .fold(0u64, |sum, text| sum.saturating_add(encoding.count(text))),
        Input::Tokens(tokens) => tokens.len() as u64,
        Input::TokenBatches(batches) => batches
            .iter()
            .fold(0u64, |sum, tokens| sum.saturating_add(tokens.len() as u64)),
    }
}

/// Tokens of a function call `{"name", "arguments"}`: both strings plus one; anything else is
/// counted as its JSON text.
fn call_tokens(encoding: Encoding, function: &Value) -> u64 {
    let name = function.get("name").and_then(Value::as_str);
    let arguments = function.get("arguments").and_then(Value::as_str);
    match (name, arguments) {
        (Some(name), Some(arguments)) => encoding
            .count(name)
            .saturating_add(encoding.count(arguments))
            .saturating_add(TOKENS_PER_CALL),
        _ => value_tokens(encoding, function),
    }
}

/// Tokens of a JSON value: a string is counted as its text, anything else as its JSON text.
fn value_tokens(encoding: Encoding, value: &Value) -> u64 {
    match value {
        Value::String(text) => encoding.count(text),
        Value::Null => 0,
        other => encoding.count(&other.to_string()),
    }
}
