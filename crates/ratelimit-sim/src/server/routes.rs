//! The routes and their handlers: check, estimate, admit, answer.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use ratelimit_openai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, Estimate, Model, ModelList,
    types::Extra,
};

use super::{
    Shared, answer,
    gate::{Admission, Refusal},
};
use crate::config::MAX_EMBEDDING_DIMENSIONS;

/// The largest request body accepted (larger ones get 413).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The most choices (`n`) a request may ask for, as OpenAI allows.
const MAX_CHOICES: u64 = 128;

/// The most `best_of` a legacy completion may ask for, as OpenAI allows.
const MAX_BEST_OF: u64 = 20;

/// The most inputs (prompts, or texts to embed) one request may carry, as OpenAI allows.
const MAX_INPUTS: u64 = 2_048;

/// The most numbers one embeddings answer may hold (inputs × dimensions).
const MAX_EMBEDDING_VALUES: u64 = 4 * 1024 * 1024;

type SharedState = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/sim/stats", get(stats))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// A 400 naming `param` if `value` is outside `1..=max`.
fn check_range(shared: &Shared, param: &str, value: Option<u64>, max: u64) -> Result<(), Refusal> {
    match value {
        Some(value) if value == 0 || value > max => Err(Refusal::from(shared.invalid(
            StatusCode::BAD_REQUEST,
            format!("Invalid '{param}': {value} is not within 1..={max}."),
            Some(param),
        ))),
        _ => Ok(()),
    }
}

async fn chat(
    State(shared): SharedState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match admit_chat(&shared, &headers, body) {
        Ok((request, estimate, admission)) => {
            answer::chat(&shared, request, estimate, admission).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks, estimates and admits a chat completion request.
fn admit_chat(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(ChatCompletionRequest, Estimate, Admission), Refusal> {
    shared.check_auth(headers)?;
    let request: ChatCompletionRequest = shared.parse(body)?;
    let fault = shared.forced_fault(headers)?;
    check_range(shared, "n", request.n, MAX_CHOICES)?;
    if request.messages.is_empty() {
        return Err(Refusal::from(shared.invalid(
            StatusCode::BAD_REQUEST,
            "Invalid 'messages': empty array. Expected an array with minimum length 1.".into(),
            Some("messages"),
        )));
    }
    let estimate = shared.config.estimator.chat(&request);
    let admission = shared.admit(&request.model, estimate.total(), fault)?;
    Ok((request, estimate, admission))
}

async fn completions(
    State(shared): SharedState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match admit_completion(&shared, &headers, body) {
        Ok((request, estimate, admission)) => {
            answer::completion(&shared, request, estimate, admission).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks, estimates and admits a legacy completion request.
fn admit_completion(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(CompletionRequest, Estimate, Admission), Refusal> {
    shared.check_auth(headers)?;
    let request: CompletionRequest = shared.parse(body)?;
    let fault = shared.forced_fault(headers)?;
    check_range(shared, "n", request.n, MAX_CHOICES)?;
    check_range(shared, "best_of", request.best_of, MAX_BEST_OF)?;
    check_range(shared, "prompt", Some(request.prompt.count()), MAX_INPUTS)?;
    if request
        .best_of
        .is_some_and(|best_of| request.n.unwrap_or(1) > best_of)
    {
        return Err(Refusal::from(shared.invalid(
            StatusCode::BAD_REQUEST,
            "best_of must be greater than or equal to n.".into(),
            Some("best_of"),
        )));
    }
    let estimate = shared.config.estimator.completion(&request);
    let admission = shared.admit(&request.model, estimate.total(), fault)?;
    Ok((request, estimate, admission))
}

async fn embeddings(
    State(shared): SharedState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match admit_embeddings(&shared, &headers, body) {
        Ok((request, dimensions, estimate, admission)) => {
            answer::embeddings(&shared, request, dimensions, estimate, admission).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks, estimates and admits an embeddings request; also returns the vector length.
fn admit_embeddings(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(EmbeddingsRequest, u32, Estimate, Admission), Refusal> {
    shared.check_auth(headers)?;
    let request: EmbeddingsRequest = shared.parse(body)?;
    let fault = shared.forced_fault(headers)?;
    let inputs = request.input.count();
    check_range(shared, "input", Some(inputs), MAX_INPUTS)?;
    let dimensions = request
        .dimensions
        .unwrap_or(shared.config.embedding_dimensions);
    check_range(
        shared,
        "dimensions",
        Some(u64::from(dimensions)),
        u64::from(MAX_EMBEDDING_DIMENSIONS),
    )?;
    if inputs * u64::from(dimensions) > MAX_EMBEDDING_VALUES {
        return Err(Refusal::from(shared.invalid(
            StatusCode::BAD_REQUEST,
            format!(
                "The simulator answers at most {MAX_EMBEDDING_VALUES} numbers per request \
                 (inputs × dimensions)."
            ),
            Some("input"),
        )));
    }
    let estimate = shared.config.estimator.embeddings(&request);
    let admission = shared.admit(&request.model, estimate.total(), fault)?;
    Ok((request, dimensions, estimate, admission))
}

async fn models(State(shared): SharedState, headers: HeaderMap) -> Response {
    if let Err(refusal) = shared.check_auth(&headers) {
        return refusal.into_response();
    }
    let list = ModelList {
        object: "list".into(),
        data: shared
            .config
            .models
            .iter()
            .map(|id| Model {
                id: id.clone(),
                object: "model".into(),
                created: 1_700_000_000,
                owned_by: "ratelimit-sim".into(),
                extra: Extra::new(),
            })
            .collect(),
        extra: Extra::new(),
    };
    Json(list).into_response()
}

async fn stats(State(shared): SharedState) -> Response {
    Json(shared.stats()).into_response()
}

async fn not_found(State(shared): SharedState, method: Method, uri: Uri) -> Response {
    shared.invalid(
        StatusCode::NOT_FOUND,
        format!("Invalid URL ({method} {})", uri.path()),
        None,
    )
}

async fn not_allowed(State(shared): SharedState, method: Method, uri: Uri) -> Response {
    shared.invalid(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method not allowed ({method} {})", uri.path()),
        None,
    )
}
