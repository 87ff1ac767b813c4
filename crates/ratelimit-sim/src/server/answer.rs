//! Answers to admitted requests: deterministic content with exact usage, produced over time,
//! streamed or not, and the injected faults.

use std::time::Duration;

use axum::{
    Json,
    body::{Body, Bytes},
    response::{IntoResponse, Response},
};
use base64::Engine;
use http::{HeaderValue, StatusCode, header};
use rand::{Rng, SeedableRng, rngs::StdRng};
use ratelimit_openai::{
    ApiError, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatDelta,
    ChatMessage, ChunkChoice, Completion, CompletionChoice, CompletionRequest, Embedding,
    EmbeddingUsage, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat,
    Estimate, FinishReason, Input, Role, Usage, sse::SseEvent, types::Extra,
};
use serde::Serialize;

use super::{
    Fault, Shared,
    gate::{Admission, error_response, with_headers},
};

/// The most words of text one answer holds over all its choices. Usage always reports the
/// exact token numbers; past this, each word (and each streamed chunk) stands for several
/// tokens, so a huge `max_tokens` cannot make the simulator build a huge body.
const MAX_TEXT_WORDS: u64 = 65_536;

/// How long a reset answer waits after its last bytes before cutting the connection, so those
/// bytes reach the client first.
const CUT_DELAY: Duration = Duration::from_millis(10);

const WORDS: [&str; 16] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
];

/// How one answer's output is produced.
#[derive(Debug, Clone, Copy)]
struct Generation {
    /// The output limit of each choice.
    max: u64,
    /// Tokens each choice produces.
    produced: u64,
    /// Words of text each choice holds (one per streamed chunk).
    words: u64,
}

impl Generation {
    fn new(shared: &Shared, max: u64, returned_choices: u64) -> Self {
        let produced = shared.config.output.produced(max);
        let cap = (MAX_TEXT_WORDS / returned_choices.max(1)).max(1);
        Generation {
            max,
            produced,
            words: produced.min(cap),
        }
    }

    fn finish_reason(&self) -> FinishReason {
        if self.produced >= self.max {
            FinishReason::Length
        } else {
            FinishReason::Stop
        }
    }

    /// Tokens carried by word `step`: the produced tokens spread evenly over the words.
    fn tokens_of(&self, step: u64) -> u64 {
        let (each, extra) = (self.produced / self.words, self.produced % self.words);
        each + u64::from(step < extra)
    }

    fn piece(step: u64) -> String {
        let word = WORDS[(step % WORDS.len() as u64) as usize];
        if step == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        }
    }

    fn text(&self) -> String {
        (0..self.words).map(Self::piece).collect()
    }
}

/// `latency.per_output_token × tokens`, saturating.
fn output_delay(shared: &Shared, tokens: u64) -> Duration {
    let nanos = shared.config.latency.per_output_token.as_nanos() * u128::from(tokens);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Time before the first byte: the base latency, plus the slow fault's delay.
fn first_byte_delay(shared: &Shared, fault: Option<Fault>) -> Duration {
    let slow = if fault == Some(Fault::Slow) {
        shared.config.faults.slow_delay
    } else {
        Duration::ZERO
    };
    shared.config.latency.base.saturating_add(slow)
}

/// The answer to a 500 or 503 fault, if the fault is one.
async fn error_fault(shared: &Shared, admission: &Admission) -> Option<Response> {
    let (status, message) = match admission.fault? {
        Fault::Error500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
        ),
        Fault::Error503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is overloaded or not ready yet.",
        ),
        Fault::Slow | Fault::Reset => return None,
    };
    delay_for(shared.config.latency.base).await;
    let response = error_response(status, ApiError::new(message, "server_error"));
    Some(with_headers(response, admission.headers.clone()))
}

/// Waits `d`; no wait at all for zero (tokio's `sleep(0)` still waits for the timer's next
/// millisecond tick, which a latency-free simulator must not add).
async fn delay_for(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// A JSON answer after `delay`; with the reset fault, only its first half, then a cut.
async fn json_answer<T: Serialize>(admission: Admission, delay: Duration, body: &T) -> Response {
    delay_for(delay).await;
    let response = if admission.fault == Some(Fault::Reset) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        let mut response = timed_body(vec![(Duration::ZERO, half)], true).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    } else {
        Json(body).into_response()
    };
    with_headers(response, admission.headers)
}

/// A server-sent-events answer made of `pieces`, each sent after its delay; with the reset
/// fault, the connection is cut halfway.
fn sse_answer(admission: Admission, pieces: Vec<(Duration, Bytes)>) -> Response {
    let reset = admission.fault == Some(Fault::Reset);
    let pieces = if reset {
        let half = pieces.len() / 2;
        pieces.into_iter().take(half.max(1)).collect()
    } else {
        pieces
    };
    let mut response = timed_body(pieces, reset).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_headers(response, admission.headers)
}

/// A body that sends each piece after its delay, then ends, or fails (cutting the
/// connection) if `cut`.
fn timed_body(pieces: Vec<(Duration, Bytes)>, cut: bool) -> Body {
    let stream =
        futures_util::stream::unfold((pieces.into_iter(), cut), |(mut pieces, cut)| async move {
            match pieces.next() {
                Some((delay, bytes)) => {
                    delay_for(delay).await;
                    Some((Ok(bytes), (pieces, cut)))
                }
                None if cut => {
                    // Let the server flush what was sent before the connection is cut.
                    tokio::time::sleep(CUT_DELAY).await;
                    Some((
                        Err(std::io::Error::other("x-sim-fault: reset")),
                        (pieces, false),
                    ))
                }
                None => None,
            }
        });
    Body::from_stream(stream)
}

/// One SSE event carrying `value` as JSON.
fn event<T: Serialize>(value: &T) -> String {
    let data = serde_json::to_string(value).unwrap_or_default();
    SseEvent::data(data).encode().unwrap_or_default()
}

fn done() -> String {
    SseEvent::done().encode().unwrap_or_default()
}

/// Answers an admitted chat completion request.
pub(crate) async fn chat(
    shared: &Shared,
    request: ChatCompletionRequest,
    estimate: Estimate,
    admission: Admission,
) -> Response {
    if let Some(response) = error_fault(shared, &admission).await {
        return response;
    }
    let max = request
        .max_output_tokens()
        .unwrap_or(shared.config.estimator.default_max_output_tokens);
    let choices = request.choices();
    let generation = Generation::new(shared, max, choices);
    let usage = Usage::new(estimate.input, generation.produced.saturating_mul(choices));
    if admission.fault != Some(Fault::Reset) {
        shared.count(|counters| {
            counters.completion_tokens = counters
                .completion_tokens
                .saturating_add(usage.completion_tokens);
        });
    }
    let id = format!("chatcmpl-sim{}", admission.id);
    let first_byte = first_byte_delay(shared, admission.fault);
    if !request.is_stream() {
        let message = ChatMessage::assistant(generation.text());
        let completion = ChatCompletion {
            id,
            object: "chat.completion".into(),
            created: admission.created,
            model: request.model,
            choices: (0..choices)
                .map(|index| ChatChoice {
                    index,
                    message: message.clone(),
                    finish_reason: Some(generation.finish_reason()),
                    logprobs: None,
                    extra: Extra::new(),
                })
                .collect(),
            usage: Some(usage),
            extra: Extra::new(),
        };
        let delay = first_byte.saturating_add(output_delay(shared, generation.produced));
        return json_answer(admission, delay, &completion).await;
    }
    delay_for(first_byte).await;
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatCompletionChunk {
        id: id.clone(),
        object: "chat.completion.chunk".into(),
        created: admission.created,
        model: request.model.clone(),
        choices,
        usage,
        extra: Extra::new(),
    };
    let each_choice = |delta: &ChatDelta, finish: Option<FinishReason>| -> String {
        (0..choices)
            .map(|index| {
                event(&chunk(
                    vec![ChunkChoice {
                        index,
                        delta: delta.clone(),
                        finish_reason: finish.clone(),
                        logprobs: None,
                        extra: Extra::new(),
                    }],
                    None,
                ))
            })
            .collect()
    };
    let mut pieces = Vec::new();
    let opening = ChatDelta {
        role: Some(Role::Assistant),
        content: Some(String::new()),
        ..ChatDelta::default()
    };
    pieces.push((Duration::ZERO, Bytes::from(each_choice(&opening, None))));
    for step in 0..generation.words {
        let delta = ChatDelta {
            content: Some(Generation::piece(step)),
            ..ChatDelta::default()
        };
        let delay = output_delay(shared, generation.tokens_of(step));
        pieces.push((delay, Bytes::from(each_choice(&delta, None))));
    }
    let mut closing = each_choice(&ChatDelta::default(), Some(generation.finish_reason()));
    if request.include_usage() {
        closing.push_str(&event(&chunk(Vec::new(), Some(usage))));
    }
    closing.push_str(&done());
    pieces.push((Duration::ZERO, Bytes::from(closing)));
    sse_answer(admission, pieces)
}

/// Answers an admitted legacy completion request.
pub(crate) async fn completion(
    shared: &Shared,
    request: CompletionRequest,
    estimate: Estimate,
    admission: Admission,
) -> Response {
    if let Some(response) = error_fault(shared, &admission).await {
        return response;
    }
    let max = request
        .max_tokens
        .unwrap_or(ratelimit_openai::LEGACY_DEFAULT_MAX_TOKENS);
    let returned = request
        .prompt
        .count()
        .saturating_mul(request.n.unwrap_or(1));
    let generated = request
        .prompt
        .count()
        .saturating_mul(request.generated_choices());
    let generation = Generation::new(shared, max, returned);
    // Every generated choice is billed, `best_of` ones included.
    let usage = Usage::new(
        estimate.input,
        generation.produced.saturating_mul(generated),
    );
    if admission.fault != Some(Fault::Reset) {
        shared.count(|counters| {
            counters.completion_tokens = counters
                .completion_tokens
                .saturating_add(usage.completion_tokens);
        });
    }
    let id = format!("cmpl-sim{}", admission.id);
    let first_byte = first_byte_delay(shared, admission.fault);
    let completion = |choices: Vec<CompletionChoice>, usage: Option<Usage>| Completion {
        id: id.clone(),
        object: "text_completion".into(),
        created: admission.created,
        model: request.model.clone(),
        choices,
        usage,
        extra: Extra::new(),
    };
    let choice = |index: u64, text: String, finish: Option<FinishReason>| CompletionChoice {
        text,
        index,
        logprobs: None,
        finish_reason: finish,
        extra: Extra::new(),
    };
    if !request.is_stream() {
        let text = generation.text();
        let body = completion(
            (0..returned)
                .map(|index| choice(index, text.clone(), Some(generation.finish_reason())))
                .collect(),
            Some(usage),
        );
        let delay = first_byte.saturating_add(output_delay(shared, generation.produced));
        return json_answer(admission, delay, &body).await;
    }
    delay_for(first_byte).await;
    let each_choice = |text: &str, finish: Option<FinishReason>| -> String {
        (0..returned)
            .map(|index| {
                event(&completion(
                    vec![choice(index, text.to_owned(), finish.clone())],
                    None,
                ))
            })
            .collect()
    };
    let mut pieces = Vec::new();
    for step in 0..generation.words {
        let delay = output_delay(shared, generation.tokens_of(step));
        pieces.push((
            delay,
            Bytes::from(each_choice(&Generation::piece(step), None)),
        ));
    }
    let mut closing = each_choice("", Some(generation.finish_reason()));
    if request.include_usage() {
        closing.push_str(&event(&completion(Vec::new(), Some(usage))));
    }
    closing.push_str(&done());
    pieces.push((Duration::ZERO, Bytes::from(closing)));
    sse_answer(admission, pieces)
}

/// Answers an admitted embeddings request: one deterministic vector per input (the same input
/// always gets the same vector), values multiples of 1/1024 in `[-1, 1)`.
pub(crate) async fn embeddings(
    shared: &Shared,
    request: EmbeddingsRequest,
    dimensions: u32,
    estimate: Estimate,
    admission: Admission,
) -> Response {
    if let Some(response) = error_fault(shared, &admission).await {
        return response;
    }
    let base64 = request.encoding_format == Some(EncodingFormat::Base64);
    let data = input_hashes(&request.input)
        .into_iter()
        .enumerate()
        .map(|(index, hash)| {
            let mut rng = StdRng::seed_from_u64(hash);
            let values: Vec<f32> = (0..dimensions)
                .map(|_| f32::from(rng.random_range(-1024i16..1024)) / 1024.0)
                .collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingVector::Float(values.into_iter().map(f64::from).collect())
            };
            Embedding {
                object: "embedding".into(),
                index: index as u64,
                embedding,
                extra: Extra::new(),
            }
        })
        .collect();
    let response = EmbeddingsResponse {
        object: "list".into(),
        data,
        model: request.model,
        usage: EmbeddingUsage {
            prompt_tokens: estimate.input,
            total_tokens: estimate.input,
        },
        extra: Extra::new(),
    };
    let delay = first_byte_delay(shared, admission.fault);
    json_answer(admission, delay, &response).await
}

/// A 64-bit FNV-1a hash of each input (texts by their bytes, token arrays by their ids).
fn input_hashes(input: &Input) -> Vec<u64> {
    fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
    }
    let tokens = |ids: &[u32]| fnv(ids.iter().flat_map(|id| id.to_le_bytes()));
    match input {
        Input::Text(text) => vec![fnv(text.bytes())],
        Input::Texts(texts) => texts.iter().map(|text| fnv(text.bytes())).collect(),
        Input::Tokens(ids) => vec![tokens(ids)],
        Input::TokenBatches(batches) => batches.iter().map(|ids| tokens(ids)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_latency_means_no_timer_tick() {
        let t0 = tokio::time::Instant::now();
        delay_for(Duration::ZERO).await;
        assert_eq!(tokio::time::Instant::now(), t0, "nothing waited");
        let t1 = tokio::time::Instant::now();
        delay_for(Duration::from_millis(7)).await;
        assert_eq!(tokio::time::Instant::now() - t1, Duration::from_millis(7));
    }

    #[test]
    fn tokens_spread_over_words_add_up() {
        for (produced, words) in [(10, 10), (10, 3), (65_537, 65_536), (7, 1)] {
            let generation = Generation {
                max: produced,
                produced,
                words,
            };
            let total: u64 = (0..words).map(|step| generation.tokens_of(step)).sum();
            assert_eq!(total, produced);
        }
    }

    #[test]
    fn text_has_one_word_per_step() {
        let generation = Generation {
            max: 5,
            produced: 3,
            words: 3,
        };
        assert_eq!(generation.text(), "lorem ipsum dolor");
        assert_eq!(generation.finish_reason(), FinishReason::Stop);
    }

    #[test]
    fn equal_inputs_hash_equal() {
        let hashes = input_hashes(&Input::Texts(vec!["a".into(), "b".into(), "a".into()]));
        assert_eq!(hashes[0], hashes[2]);
        assert_ne!(hashes[0], hashes[1]);
        assert_eq!(input_hashes(&Input::Tokens(vec![1, 2])).len(), 1);
    }
}
