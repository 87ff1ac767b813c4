//! What can go wrong with a call, and whether trying again can help.

use std::time::Duration;

use ratelimit_core::TooLarge;
use ratelimit_limiter::{AcquireError, BackendError};
use ratelimit_openai::ApiError;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request can never fit the limiter's limits (for example more tokens than a minute's
    /// budget): refused before sending.
    #[error("request refused before sending: {0}")]
    TooLarge(#[from] TooLarge),
    /// The limiter could not be reached or refused for another reason.
    #[error("rate limiter: {0}")]
    Limiter(AcquireError),
    /// The provider answered with an error that retrying cannot fix (bad request, bad key,
    /// exhausted quota, request too large), or a retryable one after the last attempt.
    #[error("{status}: {message}{}", if *.permanent { " (not retried: permanent)" } else { "" })]
    Api {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
        /// The provider's error object, when the body was one.
        error: Option<Box<ApiError>>,
        /// Whether this error is permanent (never worth retrying).
        permanent: bool,
        /// Attempts made.
        attempts: u32,
    },
    /// No answer (connection refused, reset, timed out) after the last attempt.
    #[error("transport error after {attempts} attempt(s): {source}")]
    Transport {
        /// The last error.
        #[source]
        source: reqwest::Error,
        /// Attempts made.
        attempts: u32,
    },
    /// The answer was not what the API promises (bad JSON, a broken stream).
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The client is misconfigured (bad base URL, invalid key characters).
    #[error("configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Whether trying the same request again later could succeed.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::TooLarge(_) | Self::Config(_) | Self::Malformed(_) => true,
            Self::Api { permanent, .. } => *permanent,
            Self::Limiter(e) => e.is_permanent(),
            Self::Transport { .. } => false,
        }
    }

    /// The HTTP status, for API errors.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<AcquireError> for ClientError {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::TooLarge(t) => Self::TooLarge(t),
            other => Self::Limiter(other),
        }
    }
}

impl From<BackendError> for ClientError {
    fn from(e: BackendError) -> Self {
        Self::Limiter(AcquireError::Backend(e))
    }
}

/// How a response status is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx.
    Success,
    /// Worth another attempt (408, 409, 429, 5xx), unless the provider says otherwise.
    Retry,
    /// Never worth another attempt.
    Permanent,
}

/// Classifies a failed response as the official SDKs do, then applies what the body and
/// `x-should-retry` say: an exhausted quota or a request too large is permanent even as a 429.
pub(crate) fn verdict(
    status: u16,
    error: Option<&ApiError>,
    should_retry: Option<bool>,
) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Success;
    }
    if let Some(e) = error {
        if is_permanent_error(e) {
            return Verdict::Permanent;
        }
    }
    match should_retry {
        Some(true) => return Verdict::Retry,
        Some(false) => return Verdict::Permanent,
        None => {}
    }
    match status {
        408 | 409 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

/// `insufficient_quota` (billing), and "request too large" (more tokens than the limit allows at
/// once): waiting does not fix either.
fn is_permanent_error(e: &ApiError) -> bool {
    let is = |s: &Option<String>, what: &str| s.as_deref() == Some(what);
    is(&e.kind, "insufficient_quota")
        || is(&e.code, "insufficient_quota")
        || e.message.to_ascii_lowercase().contains("request too large")
}

/// The wait before attempt `attempt + 1` (0-based `attempt`): the provider's hint when it gives
/// one in (0, 60] s, as the official SDKs do; else exponential with full jitter.
pub(crate) fn backoff(
    attempt: u32,
    hint: Option<Duration>,
    base: Duration,
    max: Duration,
) -> Duration {
    if let Some(h) = hint.filter(|h| !h.is_zero() && *h <= Duration::from_secs(60)) {
        return h;
    }
    let ceiling = base
        .saturating_mul(2_u32.saturating_pow(attempt.min(30)))
        .min(max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(kind: &str, code: &str, message: &str) -> ApiError {
        serde_json::from_value(serde_json::json!({
            "message": message, "type": kind, "param": null, "code": code
        }))
        .unwrap()
    }

    #[test]
    fn statuses_are_classified_as_the_sdks_do() {
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert_eq!(verdict(s, None, None), Verdict::Retry, "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert_eq!(verdict(s, None, None), Verdict::Permanent, "{s}");
        }
        assert_eq!(verdict(200, None, None), Verdict::Success);
    }

    #[test]
    fn should_retry_overrides_the_status() {
        assert_eq!(verdict(400, None, Some(true)), Verdict::Retry);
        assert_eq!(verdict(503, None, Some(false)), Verdict::Permanent);
    }

    #[test]
    fn exhausted_quota_and_too_large_requests_are_permanent_even_as_429() {
        let quota = api(
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your quota",
        );
        assert_eq!(verdict(429, Some(&quota), None), Verdict::Permanent);
        let large = api(
            "tokens",
            "rate_limit_exceeded",
            "Request too large for gpt-4o on tokens per min",
        );
        assert_eq!(verdict(429, Some(&large), Some(true)), Verdict::Permanent);
        let limited = api(
            "tokens",
            "rate_limit_exceeded",
            "Rate limit reached. Please try again in 1s.",
        );
        assert_eq!(verdict(429, Some(&limited), None), Verdict::Retry);
    }

    #[test]
    fn backoff_honours_a_sane_hint_and_jitters_otherwise() {
        let (base, max) = (Duration::from_millis(500), Duration::from_secs(8));
        assert_eq!(
            backoff(3, Some(Duration::from_millis(1_306)), base, max),
            Duration::from_millis(1_306)
        );
        for attempt in 0..10 {
            let d = backoff(attempt, Some(Duration::from_secs(3_600)), base, max);
            let ceiling = base.saturating_mul(1 << attempt).min(max);
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        }
        let draws: Vec<_> = (0..50).map(|_| backoff(4, None, base, max)).collect();
        assert!(draws.iter().any(|d| *d != draws[0]), "full jitter varies");
    }
}
