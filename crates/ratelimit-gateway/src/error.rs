//! The gateway's errors: at start-up ([`GatewayError`]) and the OpenAI-style error answers.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::ConfigError;

/// Why a gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A Redis budget could not be set up.
    #[error("cannot set up the `{budget}` budget on Redis: {source}")]
    Backend {
        /// The budget's name.
        budget: String,
        /// The cause.
        #[source]
        source: ratelimit_redis::RedisLimiterError,
    },
    /// The HTTP client to the upstream could not be built.
    #[error("cannot build the upstream HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// Listening or serving failed.
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

/// An OpenAI-style error answer: `{"error": {"message", "type", "param", "code"}}`.
pub(crate) fn error_response(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
) -> Response {
    let body = serde_json::json!({
        "error": {
            "message": message,
            "type": kind,
            "param": null,
            "code": code,
        }
    });
    (status, Json(body)).into_response()
}
