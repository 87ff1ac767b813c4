//! The error body every OpenAI endpoint answers with: `{"error": {"message", "type", "param", "code"}}`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::Extra;

/// The body of an error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ApiError,
}

/// The `error` object. `type`, `param` and `code` are written as `null` when absent, as OpenAI
/// does; a numeric `code` (some compatible servers send one) is read as its decimal text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for people (for a 429: "... Please try again in 1.306s. ...").
    pub message: String,
    /// The category: `invalid_request_error`, `requests`, `tokens`, `insufficient_quota`,
    /// `server_error`, ...
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The request field at fault, if one is.
    #[serde(default)]
    pub param: Option<String>,
    /// A machine-readable code: `rate_limit_exceeded`, `invalid_api_key`, ...
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ApiError {
    /// An error with this message and type, and no param or code.
    pub fn new(message: impl Into<String>, kind: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            kind: Some(kind.into()),
            param: None,
            code: None,
            extra: Extra::new(),
        }
    }

    /// The same error with `code` set.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The same error with `param` set.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Wraps the error in the response body.
    pub fn into_response(self) -> ErrorResponse {
        ErrorResponse { error: self }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(code)) => Ok(Some(code)),
        Some(Value::Number(code)) => Ok(Some(code.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "error code must be a string or a number, found {other}"
        ))),
    }
}
