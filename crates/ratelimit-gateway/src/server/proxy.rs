//! `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`: authenticate, read and cost
//! the body, admit it on every budget, forward it with the upstream key, and settle the grants to
//! the usage the answer reports (streamed answers when their stream ends).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use ratelimit_client::proxy::{Counted, Endpoint, settled_cost, usage_of};
use ratelimit_core::Cost;
use ratelimit_limiter::{AcquireError, Permit};
use ratelimit_openai::Estimate;
use tokio::time::Instant;

use super::stream::{SettlingStream, request_usage};
use super::{Inner, Tenant, backend_unavailable};
use crate::budgets::{Budgets, Level, Refusal, give_back};
use crate::error::error_response;
use crate::headers::{rate_limit_headers, retry_headers};

/// Response headers never passed on from the upstream: hop-by-hop and length fields (the
/// gateway's server sets its own) and the upstream's rate-limit figures (which describe the
/// whole account, not the caller's share: the gateway sends the caller's own).
fn passed_on(name: &str) -> bool {
    !matches!(
        name,
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "upgrade"
            | "proxy-authenticate"
            | "trailer"
            | "te"
            | "set-cookie"
    ) && !name.starts_with("x-ratelimit-")
        && !name.starts_with("ratelimit")
}

fn bad_request(message: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_request",
        message,
    )
}

/// The whole handler.
pub(super) async fn forward(
    State(gw): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let Some(tenant) = gw.authenticate(&headers) else {
        return gw.unauthorized();
    };
    let response = handle(&gw, tenant, started, &uri, &headers, body).await;
    tenant
        .metrics
        .latency
        .record(started.elapsed().as_secs_f64());
    let status = response.status().as_u16().to_string();
    gw.metrics
        .counter(
            "gateway_requests_total",
            &[("tenant", &tenant.name), ("status", &status)],
        )
        .increment(1);
    response
}

async fn handle(
    gw: &Arc<Inner>,
    tenant: &Tenant,
    started: Instant,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let Some(endpoint) = Endpoint::from_path(uri.path()) else {
        return bad_request("Not a limited endpoint.");
    };
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            &format!(
                "The request body is larger than this gateway's limit of {} bytes.",
                gw.max_body_bytes
            ),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gw.max_body_bytes as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, gw.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let exceeded = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if exceeded {
                return too_large();
            }
            return bad_request(&format!("Could not read the request body: {e}"));
        }
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return bad_request(&format!(
                "The request body is not valid JSON: {e}. Send a JSON object with `model` and the request's fields."
            ));
        }
    };
    let Some(object) = value.as_object_mut() else {
        return bad_request("The request body must be a JSON object.");
    };
    let Some(model) = object
        .get("model")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
    else {
        return bad_request("`model` is required and must be a string.");
    };
    let Some(estimate) = endpoint.estimate(&gw.estimator, &bytes, None) else {
        return bad_request(&format!(
            "The body is not a valid request for /v1/{}: check the fields' names and types.",
            endpoint.path()
        ));
    };
    let streaming = object.get("stream").and_then(serde_json::Value::as_bool) == Some(true);
    // A stream settles to the usage its final chunk reports, which only comes when the request
    // asks for it: ask for it, and take it out of the stream the client gets.
    let usage_added = streaming && endpoint != Endpoint::Embeddings && request_usage(object);
    let bytes = if usage_added {
        Bytes::from(value.to_string())
    } else {
        bytes
    };

    let levels = gw.budgets.levels(tenant.index, Some(&model));
    let cost = Cost::request(estimate.input, estimate.output);
    tenant.metrics.queue.increment(1.0);
    let admitted = Budgets::admit(&levels, cost, tenant.priority, tenant.max_queue_time).await;
    tenant.metrics.queue.decrement(1.0);
    tenant.metrics.wait.record(started.elapsed().as_secs_f64());
    let permits = match admitted {
        Ok(p) => p,
        Err(refusal) => return refused(gw, tenant, &levels, refusal).await,
    };
    let decisions = Budgets::status(&levels).await.unwrap_or_default();

    let upstream = gw
        .http
        .post(gw.upstream_url(endpoint))
        .header(http::header::AUTHORIZATION, gw.upstream_auth.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::ACCEPT,
            headers
                .get(http::header::ACCEPT)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("*/*")),
        )
        .body(bytes)
        .send()
        .await;
    let answer = match upstream {
        Ok(a) => a,
        Err(e) => {
            // The request may have reached the provider: its grants stay counted.
            tracing::warn!(error = %e.without_url(), "upstream request failed");
            return error_response(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_unreachable",
                "The gateway could not get an answer from the upstream provider.",
            );
        }
    };
    let mut answer = answer;
    let status = answer.status();
    let upstream_headers = std::mem::take(answer.headers_mut());
    let mut builder = Response::builder().status(status);
    if let Some(h) = builder.headers_mut() {
        for (name, value) in &upstream_headers {
            if passed_on(name.as_str()) {
                h.append(name, value.clone());
            }
        }
        rate_limit_headers(&decisions, h);
    }
    // The answer teaches the budget it describes (the model's own, or the global one) through
    // that level's grant.
    let mut permits = permits;
    let (at, feedback) = gw.budgets.feedback(&model, &levels);
    let fed = (at < permits.len()).then(|| permits.remove(at));

    if !status.is_success() {
        let body = answer.bytes().await.unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS {
            tenant.metrics.upstream_429.increment(1);
            // The provider refused: nothing was admitted, every level gets its grant back.
            give_back(permits).await;
        }
        feedback
            .refused(fed, status.as_u16(), &upstream_headers, &body)
            .await;
        return builder
            .body(Body::from(body))
            .unwrap_or_else(|_| Response::new(Body::empty()));
    }
    feedback
        .accepted(fed.as_ref(), status.as_u16(), &upstream_headers)
        .await;
    if let Some(fed) = fed {
        permits.insert(at.min(permits.len()), fed);
    }
    let settle = Settlement {
        gw: Arc::clone(gw),
        tenant: tenant.index,
        estimate,
    };
    let is_stream = streaming
        || upstream_headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream {
        let stream = SettlingStream::new(answer, usage_added, settle, permits);
        return builder
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| Response::new(Body::empty()));
    }
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "upstream body broke off");
            return error_response(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_broken",
                "The upstream provider's answer broke off.",
            );
        }
    };
    settle.run(permits, usage_of(&body)).await;
    builder
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The gateway's own 429 (or 503 when the backend failed).
async fn refused(gw: &Inner, tenant: &Tenant, levels: &[Level], refusal: Refusal) -> Response {
    let level = refusal.kind.name();
    let (message, wait, retry) = match &refusal.error {
        AcquireError::RateLimited { retry_after } => (
            format!(
                "Rate limit reached for tenant `{}` at the {level} level: please try again in {}.",
                tenant.name,
                ratelimit_openai::duration::format_go_duration(*retry_after)
            ),
            Some(*retry_after),
            true,
        ),
        AcquireError::ConcurrencyFull => (
            format!(
                "Too many requests in flight for tenant `{}` at the {level} level: retry when one finishes.",
                tenant.name
            ),
            Some(std::time::Duration::from_secs(1)),
            true,
        ),
        AcquireError::TooLarge(e) => (
            format!(
                "Request too large for the {level} level's limits: {e}. Reduce the prompt or max_tokens."
            ),
            None,
            false,
        ),
        AcquireError::TooManyKeys { .. } => (
            format!("Too many distinct budgets at the {level} level; retry shortly."),
            Some(std::time::Duration::from_secs(1)),
            true,
        ),
        other => return backend_unavailable(other),
    };
    gw.metrics
        .counter(
            "gateway_rejected_total",
            &[("tenant", &tenant.name), ("level", level)],
        )
        .increment(1);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "requests",
        "rate_limit_exceeded",
        &message,
    );
    let headers = response.headers_mut();
    if let Ok(decisions) = Budgets::status(levels).await {
        rate_limit_headers(&decisions, headers);
    }
    if let Some(wait) = wait {
        retry_headers(wait, headers);
    }
    headers.insert(
        "x-should-retry",
        HeaderValue::from_static(if retry { "true" } else { "false" }),
    );
    response
}

/// What settling a request's grants needs.
pub(super) struct Settlement {
    gw: Arc<Inner>,
    tenant: usize,
    estimate: Estimate,
}

impl Settlement {
    /// Settles every grant to `usage` (without usage the estimates stay counted) and counts the
    /// tokens.
    pub(super) async fn run(self, permits: Vec<Permit>, usage: Option<Counted>) {
        let cost = match usage {
            Some(u) => settled_cost(self.gw.settle, u, self.estimate),
            None => Cost::request(self.estimate.input, self.estimate.output),
        };
        if let Some(t) = self.gw.tenants.get(self.tenant) {
            t.metrics.input.increment(cost.input_tokens);
            t.metrics
                .output
                .increment(usage.map_or(cost.output_tokens, |u| u.completion));
        }
        if usage.is_none() {
            return;
        }
        for mut permit in permits {
            if let Err(e) = permit.adjust(cost).await {
                tracing::warn!(error = %e, "could not settle a grant; the estimate stays counted");
            }
        }
    }
}
