//! The text-or-tokens input of legacy completions (`prompt`) and embeddings (`input`).

use serde::{Deserialize, Serialize};

/// A `prompt` or `input`: one string, several strings, one token array, or several token arrays.
///
/// Each string or token array is one input: a completion request produces its choices for each
/// prompt, an embeddings request one vector for each input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// `"text"`.
    Text(String),
    /// `["text", "text"]`.
    Texts(Vec<String>),
    /// `[1, 2, 3]`: one input given as token ids.
    Tokens(Vec<u32>),
    /// `[[1, 2], [3]]`: several inputs given as token ids.
    TokenBatches(Vec<Vec<u32>>),
}

impl Input {
    /// How many separate inputs this is (a string or a token array counts one).
    pub fn count(&self) -> u64 {
        match self {
            Input::Text(_) | Input::Tokens(_) => 1,
            Input::Texts(texts) => texts.len() as u64,
            Input::TokenBatches(batches) => batches.len() as u64,
        }
    }
}

impl From<&str> for Input {
    fn from(text: &str) -> Self {
        Input::Text(text.to_owned())
    }
}

impl From<String> for Input {
    fn from(text: String) -> Self {
        Input::Text(text)
    }
}
