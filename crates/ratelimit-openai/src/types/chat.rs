//! Chat completions: the request, the response, and the chunks of a streamed response.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Extra, Usage};

/// Who wrote a chat message. Roles this crate does not know are kept as [`Role::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `system`: instructions from the application.
    System,
    /// `developer`: the newer name for system instructions (o1 and later).
    Developer,
    /// `user`: the end user's message.
    User,
    /// `assistant`: the model's message.
    Assistant,
    /// `tool`: the result of a tool call.
    Tool,
    /// `function`: the deprecated form of `tool`.
    Function,
    /// Any other role, kept as written.
    #[serde(untagged)]
    Other(String),
}

impl Role {
    /// The role as it appears on the wire (`"user"`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Function => "function",
            Role::Other(role) => role,
        }
    }
}

/// One message of a chat: a role, content, and the optional fields OpenAI defines.
///
/// Used both in requests (`messages`) and in responses (`choices[].message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote the message.
    pub role: Role,
    /// The text, or an array of text and image parts; `None` for an assistant message that only
    /// calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// An optional participant name (costs one extra token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by the assistant, passed through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// For a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Every other field (`refusal`, `audio`, `function_call`, `annotations`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatMessage {
    /// A message with the given role and text content.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: Some(MessageContent::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Extra::new(),
        }
    }

    /// A `system` message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text)
    }

    /// A `user` message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text)
    }

    /// An `assistant` message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, text)
    }
}

/// The content of a message: a plain string or an array of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// `"content": "text"`.
    Text(String),
    /// `"content": [{"type": "text", ...}, {"type": "image_url", ...}]`.
    Parts(Vec<ContentPart>),
}

/// One part of an array content. Part types other than text and image (audio, files,
/// refusals, ...) are kept as JSON in [`ContentPart::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// `{"type": "text", "text": ...}`.
    Text(TextPart),
    /// `{"type": "image_url", "image_url": {"url": ..., "detail": ...}}`.
    ImageUrl(ImageUrlPart),
    /// Any other part, with its `type` field, kept as written.
    Other(Value),
}

/// A text part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPart {
    /// The text.
    pub text: String,
    /// Every other field of the part (its `type` excepted).
    #[serde(flatten)]
    pub extra: Extra,
}

/// An image part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrlPart {
    /// Where the image is and at which detail to read it.
    pub image_url: ImageUrl,
    /// Every other field of the part (its `type` excepted).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `image_url` object of an image part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An `https:` URL or a `data:` URL with the base64 image.
    pub url: String,
    /// `low`, `high` or `auto` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<ImageDetail>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The detail level of an image input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    /// A fixed low-resolution read (85 tokens on the gpt-4o family).
    Low,
    /// A tiled high-resolution read.
    High,
    /// The model chooses.
    Auto,
    /// Any other value, kept as written.
    #[serde(untagged)]
    Other(String),
}

/// The part types this crate reads, for (de)serializing [`ContentPart`] with its `type` tag.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KnownPart {
    Text(TextPart),
    ImageUrl(ImageUrlPart),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KnownPartRef<'a> {
    Text(&'a TextPart),
    ImageUrl(&'a ImageUrlPart),
}

impl Serialize for ContentPart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentPart::Text(part) => KnownPartRef::Text(part).serialize(serializer),
            ContentPart::ImageUrl(part) => KnownPartRef::ImageUrl(part).serialize(serializer),
            ContentPart::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let known = matches!(
            value.get("type").and_then(Value::as_str),
            Some("text" | "image_url")
        );
        if !known {
            return Ok(ContentPart::Other(value));
        }
        // A part that says it is text or an image must have that shape.
        match KnownPart::deserialize(value).map_err(serde::de::Error::custom)? {
            KnownPart::Text(part) => Ok(ContentPart::Text(part)),
            KnownPart::ImageUrl(part) => Ok(ContentPart::ImageUrl(part)),
        }
    }
}

/// `stream_options` of a streamed request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a last chunk, before `[DONE]`, that carries the usage of the whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Every other option.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model name.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// The legacy output limit (per choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// The output limit (per choice), reasoning tokens included; preferred over `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// How many choices to generate (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Options of a streamed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Every other field (`temperature`, `tools`, `response_format`, `user`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletionRequest {
    /// A request for `model` with these messages and no other field set.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatCompletionRequest {
            model: model.into(),
            messages,
            max_tokens: None,
            max_completion_tokens: None,
            n: None,
            stream: None,
            stream_options: None,
            extra: Extra::new(),
        }
    }

    /// The output limit per choice: `max_completion_tokens`, else `max_tokens`, if either is set.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// How many choices the request asks for (`n`, default 1).
    pub fn choices(&self) -> u64 {
        self.n.unwrap_or(1)
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

/// Why a choice stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural stop or a stop sequence.
    Stop,
    /// The output limit was reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Content was filtered.
    ContentFilter,
    /// The deprecated function-call form.
    FunctionCall,
    /// Any other value, kept as written.
    #[serde(untagged)]
    Other(String),
}

/// A chat completion (the non-streamed response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// The completion id (`chatcmpl-...`).
    pub id: String,
    /// `"chat.completion"`.
    pub object: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// The generated choices.
    pub choices: Vec<ChatChoice>,
    /// What the request used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Every other field (`system_fingerprint`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// The choice's index.
    pub index: u64,
    /// The generated message.
    pub message: ChatMessage,
    /// Why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked for, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One chunk of a streamed chat completion (one `data:` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// The completion id, the same in every chunk.
    pub id: String,
    /// `"chat.completion.chunk"`.
    pub object: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The model that answers.
    pub model: String,
    /// The choices this chunk extends; empty in the final usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Set only in the final chunk, when the request asked for `include_usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One choice's piece of a [`ChatCompletionChunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// The choice's index.
    pub index: u64,
    /// What this chunk adds to the choice.
    pub delta: ChatDelta,
    /// Set in the choice's last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked for, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The increment of a message carried by a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatDelta {
    /// Set in the first chunk of a choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The next piece of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Pieces of tool calls, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// Every other field (`refusal`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}
