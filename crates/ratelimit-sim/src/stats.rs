//! The counters a simulator run keeps, served at `GET /sim/stats` and by
//! [`SimHandle::stats`](crate::SimHandle::stats).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happened so far. Instants are nanoseconds since the simulator started, on its clock
/// (tokio's, so paused time in tests gives exact values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Requests admitted into the window (counted against the limits), faulted ones included.
    pub accepted: u64,
    /// Requests refused with a retryable 429 because the window was full.
    pub rejected_429: u64,
    /// Requests refused for good because their tokens alone exceed the tokens limit (429
    /// "Request too large", as OpenAI answers).
    pub rejected_too_large: u64,
    /// Requests refused with 400 or 404 (bad JSON, bad fields, unknown fault, unknown URL).
    pub invalid: u64,
    /// Requests refused with 401 (no bearer key).
    pub unauthorized: u64,
    /// Admitted requests answered with an injected 500, 503 or cut connection.
    pub errors_injected: u64,
    /// Admitted requests slowed down by a `slow` fault.
    pub slowed: u64,
    /// Tokens admitted (prompt estimate + maximum output of every admitted request).
    pub tokens_admitted: u64,
    /// Output tokens produced (the `completion_tokens` of every answer).
    pub completion_tokens: u64,
    /// The most requests admitted within any one window of the run.
    pub peak_requests: u64,
    /// The most tokens admitted within any one window of the run.
    pub peak_tokens: u64,
    /// When the first request was admitted.
    pub first_admission_ns: Option<u64>,
    /// When the last request was admitted.
    pub last_admission_ns: Option<u64>,
    /// The window length.
    pub window_ns: u64,
    /// The requests limit in force (`None`: unlimited).
    pub rpm: Option<u64>,
    /// The tokens limit in force (`None`: unlimited).
    pub tpm: Option<u64>,
}

impl SimStats {
    /// When the first request was admitted, since the start.
    pub fn first_admission(&self) -> Option<Duration> {
        self.first_admission_ns.map(Duration::from_nanos)
    }

    /// When the last request was admitted, since the start.
    pub fn last_admission(&self) -> Option<Duration> {
        self.last_admission_ns.map(Duration::from_nanos)
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_ns)
    }

    /// The time from the first admission to the last (zero with fewer than two).
    pub fn admission_span(&self) -> Duration {
        match (self.first_admission(), self.last_admission()) {
            (Some(first), Some(last)) => last.saturating_sub(first),
            _ => Duration::ZERO,
        }
    }
}

/// Nanoseconds of `duration`, saturating at `u64::MAX` (584 years).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
