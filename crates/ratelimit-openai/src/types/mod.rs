//! Serde models of the OpenAI HTTP API objects that rate limiting reads or a proxy forwards.
//!
//! The models name the fields that matter for counting and routing (model, messages, output
//! limits, `n`, streaming, usage) and keep every other field in a flattened `extra` map, so
//! parsing a body and serializing it again preserves it. Optional fields that are absent (or
//! `null`) deserialize to `None` and are left out when serialized.

mod chat;
mod completions;
mod embeddings;
mod error;
mod input;
mod models;
mod usage;

pub use chat::{
    ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatDelta, ChatMessage,
    ChunkChoice, ContentPart, FinishReason, ImageDetail, ImageUrl, ImageUrlPart, MessageContent,
    Role, StreamOptions, TextPart,
};
pub use completions::{Completion, CompletionChoice, CompletionRequest};
pub use embeddings::{
    Embedding, EmbeddingUsage, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse,
    EncodingFormat,
};
pub use error::{ApiError, ErrorResponse};
pub use input::Input;
pub use models::{Model, ModelList};
pub use usage::{CompletionTokensDetails, PromptTokensDetails, Usage};

/// The JSON object type every model keeps its unnamed fields in.
pub type Extra = serde_json::Map<String, serde_json::Value>;
