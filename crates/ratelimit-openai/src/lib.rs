//! The OpenAI wire format as llm-ratelimit needs it: typed requests and responses, token estimates
//! counted the way providers count them, server-sent events, and Go-style durations.
//!
//! This crate is pure (no I/O): the HTTP client, the simulated provider and the gateway share it,
//! so all three agree on what a request costs.
//!
//! - [`types`]: serde models of chat completions (plain and streamed), legacy completions,
//!   embeddings, models, usage and the error body. Every object keeps the fields it does not name
//!   in an `extra` map, so a proxy that parses and re-serializes a request loses nothing.
//! - [`Estimator`]: what a request will cost before it is sent: prompt tokens counted with the
//!   model's tiktoken encoding ([`Encoding`]) plus the output it may produce.
//! - [`sse`]: an incremental server-sent-events decoder (any chunking of the bytes gives the same
//!   events), the matching encoder, and [`ChatStreamDecoder`](sse::ChatStreamDecoder), which reads a
//!   streamed chat completion and keeps its final usage.
//! - [`duration`]: Go's duration format (`6m0s`, `4m12.172s`, `120ms`), which OpenAI uses in its
//!   `x-ratelimit-reset-*` headers, both ways.
//!
//! ```
//! use ratelimit_openai::{ChatCompletionRequest, ChatMessage, Estimator};
//!
//! let mut request = ChatCompletionRequest::new(
//!     "gpt-4o",
//!     vec![ChatMessage::system("You are terse."), ChatMessage::user("Hello!")],
//! );
//! request.max_completion_tokens = Some(100);
//! request.n = Some(2);
//!
//! let estimate = Estimator::default().chat(&request);
//! assert_eq!(estimate.output, 200); // 100 tokens for each of the 2 choices
//! assert!(estimate.input > 0);
//! assert_eq!(estimate.total(), estimate.input + 200);
//! ```

pub mod duration;
pub mod sse;
mod tokens;
pub mod types;

pub use tokens::{
    DEFAULT_MAX_OUTPUT_TOKENS, Encoding, Estimate, Estimator, IMAGE_TOKENS_HIGH, IMAGE_TOKENS_LOW,
    LEGACY_DEFAULT_MAX_TOKENS,
};
pub use types::{
    ApiError, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatDelta,
    ChatMessage, ChunkChoice, Completion, CompletionChoice, CompletionRequest,
    CompletionTokensDetails, ContentPart, Embedding, EmbeddingUsage, EmbeddingVector,
    EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, ErrorResponse, FinishReason,
    ImageDetail, ImageUrl, ImageUrlPart, Input, MessageContent, Model, ModelList,
    PromptTokensDetails, Role, StreamOptions, TextPart, Usage,
};
