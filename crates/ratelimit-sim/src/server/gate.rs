//! What every request goes through before it is answered: the key, the body, the fault header,
//! and admission by the referee. Each refusal is an OpenAI-style error response.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    Json,
    body::Bytes,
    extract::rejection::BytesRejection,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use rand::Rng;
use ratelimit_openai::{ApiError, duration::format_go_duration};
use serde::de::DeserializeOwned;

use super::{Fault, Shared};
use crate::{
    FAULT_HEADER,
    headers::{insert, rate_limit_headers, retry_headers, round_up_to},
    referee::{Decision, Exceeded, Window},
};

/// An admitted request: what its answer carries.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Rate-limit headers and the request id, as of the admission.
    pub(crate) headers: HeaderMap,
    /// The fault to inject, if any.
    pub(crate) fault: Option<Fault>,
    /// The response id number.
    pub(crate) id: u64,
    /// The wall-clock time of the admission, Unix seconds (`created`).
    pub(crate) created: u64,
}

/// A refused request: the error response to send (boxed, it is large and refusals are rare).
#[derive(Debug)]
pub(crate) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(response: Response) -> Self {
        Refusal(Box::new(response))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// An OpenAI error body with this status.
pub(crate) fn error_response(status: StatusCode, error: ApiError) -> Response {
    (status, Json(error.into_response())).into_response()
}

/// The same response with `headers` added.
pub(crate) fn with_headers(mut response: Response, headers: HeaderMap) -> Response {
    response.headers_mut().extend(headers);
    response
}

impl Shared {
    /// Refuses (401) a request without `Authorization: Bearer <key>`, unless auth is off.
    pub(crate) fn check_auth(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if !self.config.require_auth {
            return Ok(());
        }
        let key = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty());
        if key.is_some() {
            return Ok(());
        }
        self.count(|counters| counters.unauthorized += 1);
        Err(Refusal::from(error_response(
            StatusCode::UNAUTHORIZED,
            ApiError::new(
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            ),
        )))
    }

    /// A 400 (or `status`) `invalid_request_error`, counted as invalid.
    pub(crate) fn invalid(
        &self,
        status: StatusCode,
        message: String,
        param: Option<&str>,
    ) -> Response {
        self.count(|counters| counters.invalid += 1);
        let mut error = ApiError::new(message, "invalid_request_error");
        error.param = param.map(str::to_owned);
        error_response(status, error)
    }

    /// The body as a `T`, or a 400 saying why not.
    pub(crate) fn parse<T: DeserializeOwned>(
        &self,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<T, Refusal> {
        let bytes = body
            .map_err(|rejection| self.invalid(rejection.status(), rejection.body_text(), None))?;
        serde_json::from_slice(&bytes).map_err(|error| {
            let message = if error.is_data() {
                format!("Invalid request body: {error}")
            } else {
                format!(
                    "We could not parse the JSON body of your request. (HINT: This likely means \
                     you aren't using your HTTP library correctly. The OpenAI API expects a JSON \
                     payload, but what was sent was not valid JSON.) ({error})"
                )
            };
            Refusal::from(self.invalid(StatusCode::BAD_REQUEST, message, None))
        })
    }

    /// The fault forced by the `x-sim-fault` header, if any; an unknown value is a 400.
    pub(crate) fn forced_fault(&self, headers: &HeaderMap) -> Result<Option<Fault>, Refusal> {
        let Some(value) = headers.get(FAULT_HEADER) else {
            return Ok(None);
        };
        let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
        let fault = match text.as_str() {
            "500" => Fault::Error500,
            "503" => Fault::Error503,
            "slow" => Fault::Slow,
            "reset" => Fault::Reset,
            _ => {
                return Err(Refusal::from(self.invalid(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Unknown {FAULT_HEADER} value {value:?}: expected 500, 503, slow or reset."
                    ),
                    Some(FAULT_HEADER),
                )));
            }
        };
        Ok(Some(fault))
    }

    /// Asks the referee to admit a request of `tokens` for `model`, now. Admitted: the
    /// headers and fault of its answer. Refused: the 429 to send.
    pub(crate) fn admit(
        &self,
        model: &str,
        tokens: u64,
        forced: Option<Fault>,
    ) -> Result<Admission, Refusal> {
        let id = self.next_id();
        let mut headers = HeaderMap::new();
        insert(&mut headers, "x-request-id", &format!("req_sim_{id}"));
        let mut state = self.state.lock();
        // The clock is read under the lock, so admissions reach the log in time order.
        let now = self.now();
        match state.referee.decide(now, 1, tokens) {
            Decision::Admitted(window) => {
                rate_limit_headers(self.config.headers, &window, self.start_wall, &mut headers);
                let drawn = self.draw_fault(&mut state.rng);
                let fault = forced.or(drawn);
                match fault {
                    Some(Fault::Slow) => state.counters.slowed += 1,
                    Some(_) => state.counters.errors_injected += 1,
                    None => {}
                }
                Ok(Admission {
                    headers,
                    fault,
                    id,
                    created: unix_seconds(self.start_wall, now),
                })
            }
            Decision::Limited {
                retry_after,
                exceeded,
                window,
            } => {
                state.counters.rejected_429 += 1;
                drop(state);
                rate_limit_headers(self.config.headers, &window, self.start_wall, &mut headers);
                retry_headers(retry_after, &mut headers);
                let (limit, used, requested) = amounts(exceeded, &window, tokens);
                let wait = format_go_duration(round_up_to(retry_after, Duration::from_millis(1)));
                let message = format!(
                    "Rate limit reached for {model} in organization org-sim on {}: Limit {limit}, \
                     Used {used}, Requested {requested}. Please try again in {wait}.",
                    limit_name(exceeded),
                );
                let error = ApiError::new(message, kind(exceeded)).with_code("rate_limit_exceeded");
                Err(Refusal::from(with_headers(
                    error_response(StatusCode::TOO_MANY_REQUESTS, error),
                    headers,
                )))
            }
            Decision::TooLarge {
                exceeded,
                limit,
                window,
            } => {
                state.counters.rejected_too_large += 1;
                drop(state);
                rate_limit_headers(self.config.headers, &window, self.start_wall, &mut headers);
                insert(&mut headers, "x-should-retry", "false");
                let requested = if exceeded == Exceeded::Tokens {
                    tokens
                } else {
                    1
                };
                let message = format!(
                    "Request too large for {model} in organization org-sim on {}: Limit {limit}, \
                     Requested {requested}. The input or output tokens must be reduced in order \
                     to run successfully.",
                    limit_name(exceeded),
                );
                let error = ApiError::new(message, kind(exceeded)).with_code("rate_limit_exceeded");
                Err(Refusal::from(with_headers(
                    error_response(StatusCode::TOO_MANY_REQUESTS, error),
                    headers,
                )))
            }
        }
    }

    /// A random 500 or 503 with the configured probabilities (no draw when both are zero, so
    /// the sequence only depends on the requests that can fault).
    fn draw_fault(&self, rng: &mut impl Rng) -> Option<Fault> {
        let faults = &self.config.faults;
        if faults.error_500 <= 0.0 && faults.error_503 <= 0.0 {
            return None;
        }
        let x: f64 = rng.random();
        if x < faults.error_500 {
            Some(Fault::Error500)
        } else if x < faults.error_500 + faults.error_503 {
            Some(Fault::Error503)
        } else {
            None
        }
    }
}

fn limit_name(exceeded: Exceeded) -> &'static str {
    match exceeded {
        Exceeded::Requests => "requests per min (RPM)",
        Exceeded::Tokens => "tokens per min (TPM)",
    }
}

fn kind(exceeded: Exceeded) -> &'static str {
    match exceeded {
        Exceeded::Requests => "requests",
        Exceeded::Tokens => "tokens",
    }
}

/// (limit, used, requested) of the limit that refused.
fn amounts(exceeded: Exceeded, window: &Window, tokens: u64) -> (u64, u64, u64) {
    match exceeded {
        Exceeded::Requests => (window.rpm.unwrap_or(0), window.requests, 1),
        Exceeded::Tokens => (window.tpm.unwrap_or(0), window.tokens, tokens),
    }
}

/// Unix seconds of the instant `since_start` after `start_wall`.
fn unix_seconds(start_wall: SystemTime, since_start: Duration) -> u64 {
    start_wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(since_start)
        .as_secs()
}
