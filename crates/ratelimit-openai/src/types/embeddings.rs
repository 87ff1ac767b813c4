//! Embeddings (`POST /v1/embeddings`): the request and the response.

use serde::{Deserialize, Serialize};

use super::{Extra, Input};

/// A `POST /v1/embeddings` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// The model name.
    pub model: String,
    /// What to embed: one or several texts or token arrays.
    pub input: Input,
    /// `float` (the default) or `base64` (little-endian `f32`s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// How many dimensions the vectors should have (text-embedding-3 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Every other field (`user`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl EmbeddingsRequest {
    /// A request for `model` with this input and no other field set.
    pub fn new(model: impl Into<String>, input: impl Into<Input>) -> Self {
        EmbeddingsRequest {
            model: model.into(),
            input: input.into(),
            encoding_format: None,
            dimensions: None,
            extra: Extra::new(),
        }
    }
}

/// How the vectors of an embeddings response are encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON arrays of numbers.
    Float,
    /// Base64 of the little-endian `f32` bytes.
    Base64,
    /// Any other value, kept as written.
    #[serde(untagged)]
    Other(String),
}

/// The response to an embeddings request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// `"list"`.
    pub object: String,
    /// One embedding per input, in input order.
    pub data: Vec<Embedding>,
    /// The model that answered.
    pub model: String,
    /// What the request used.
    pub usage: EmbeddingUsage,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One vector of an [`EmbeddingsResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// `"embedding"`.
    pub object: String,
    /// The index of the input it embeds.
    pub index: u64,
    /// The vector.
    pub embedding: EmbeddingVector,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An embedding vector, in the requested encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// `encoding_format: "float"`.
    Float(Vec<f64>),
    /// `encoding_format: "base64"`.
    Base64(String),
}

/// The usage of an embeddings request: input tokens only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// The tokens of every input.
    pub prompt_tokens: u64,
    /// The same number: embeddings produce no tokens.
    pub total_tokens: u64,
}
