//! The endpoints: chat (plain and streamed over time), legacy completions, embeddings, models,
//! stats, and the errors for bad JSON, missing keys and unknown URLs.

use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use ratelimit_openai::{
    Completion, CompletionRequest, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse,
    Estimator, FinishReason, ModelList,
    sse::{ChatStreamDecoder, ChatStreamEvent},
};
use ratelimit_sim::{Latency, OutputTokens, SimConfig, SimStats};
use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::{Harness, chat_body, expect_error, expect_ok, header};

/// Reads a streamed chat answer, chunk by chunk as it arrives.
async fn read_stream(response: Response) -> (Vec<ChatStreamEvent>, ChatStreamDecoder) {
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/event-stream"));
    let mut decoder = ChatStreamDecoder::new();
    let mut events = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(bytes) = body.next().await {
        decoder
            .feed(&bytes.expect("the stream is whole"), &mut events)
            .expect("valid events");
    }
    (events, decoder)
}

#[tokio::test(start_paused = true)]
async fn a_chat_answer_is_deterministic_with_exact_usage() {
    let h = Harness::start(SimConfig {
        output: OutputTokens::Fixed(4),
        ..SimConfig::default()
    })
    .await;
    let answer = expect_ok(h.chat(&chat_body(10)).await).await;
    assert_eq!(answer.object, "chat.completion");
    assert_eq!(answer.model, "gpt-4o");
    assert!(answer.id.starts_with("chatcmpl-"));
    let choice = &answer.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        choice.message.content,
        Some(ratelimit_openai::MessageContent::Text(
            "lorem ipsum dolor sit".into()
        ))
    );
    assert_eq!(answer.usage.expect("usage").completion_tokens, 4);
    // Produced tokens never exceed the limit: the answer is cut at `length`.
    let capped = expect_ok(h.chat(&chat_body(2)).await).await;
    assert_eq!(capped.choices[0].finish_reason, Some(FinishReason::Length));
    assert_eq!(capped.usage.expect("usage").completion_tokens, 2);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_chat_delivers_usage_in_the_final_chunk_over_time() {
    let h = Harness::start(SimConfig {
        latency: Latency {
            base: Duration::from_millis(300),
            per_output_token: Duration::from_millis(20),
        },
        ..SimConfig::default()
    })
    .await;
    let mut body = chat_body(10);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["n"] = json!(2);
    let started = tokio::time::Instant::now();
    let (events, mut decoder) = read_stream(h.chat(&body).await).await;
    // 300 ms to the first byte, then 5 tokens (half of 10) at 20 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let usage = decoder.finish().expect("[DONE] was sent").expect("usage");
    let request = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(
        usage.prompt_tokens,
        Estimator::default().chat(&request).input
    );
    assert_eq!(usage.completion_tokens, 5 * 2);
    let chunks: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            ChatStreamEvent::Chunk(chunk) => Some(chunk),
            _ => None,
        })
        .collect();
    // Per choice: the role, 5 words, the finish; then the usage chunk.
    assert_eq!(chunks.len(), 2 * (1 + 5 + 1) + 1);
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|chunk| chunk.usage.is_none())
    );
    let text: String = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter(|choice| choice.index == 1)
        .filter_map(|choice| choice.delta.content.clone())
        .collect();
    assert_eq!(text, "lorem ipsum dolor sit amet");
    assert_eq!(events.last(), Some(&ChatStreamEvent::Done));
}

#[tokio::test(start_paused = true)]
async fn a_streamed_chat_without_include_usage_has_no_usage_chunk() {
    let h = Harness::start(SimConfig::default()).await;
    let mut body = chat_body(4);
    body["stream"] = json!(true);
    let (_, mut decoder) = read_stream(h.chat(&body).await).await;
    assert_eq!(decoder.finish().expect("[DONE] was sent"), None);
    assert_eq!(h.sim.stats().completion_tokens, 2);
}

#[tokio::test(start_paused = true)]
async fn legacy_completions_bill_every_generated_choice() {
    let h = Harness::start(SimConfig::default()).await;
    let body = json!({
        "model": "gpt-3.5-turbo-instruct",
        "prompt": ["Say this is a test", "Say that"],
        "max_tokens": 10,
        "n": 2,
        "best_of": 3,
    });
    let response = h.post("/v1/completions", &body, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Completion = response.json().await.unwrap();
    let request: CompletionRequest = serde_json::from_value(body).unwrap();
    let estimate = Estimator::default().completion(&request);
    let usage = answer.usage.expect("usage");
    assert_eq!(usage.prompt_tokens, estimate.input);
    assert_eq!(usage.completion_tokens, 5 * 3 * 2);
    assert_eq!(answer.choices.len(), 4);
    assert_eq!(answer.object, "text_completion");
    assert_eq!(h.sim.stats().tokens_admitted, estimate.total());

    let mut streamed =
        json!({"model": "davinci-002", "prompt": "Hi", "max_tokens": 4, "stream": true});
    streamed["stream_options"] = json!({"include_usage": true});
    let response = h.post("/v1/completions", &streamed, &[]).await;
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(text.contains("\"completion_tokens\":2"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_deterministic_in_both_encodings() {
    let h = Harness::start(SimConfig {
        embedding_dimensions: 8,
        ..SimConfig::default()
    })
    .await;
    let body = json!({"model": "text-embedding-3-small", "input": ["same", "other", "same"]});
    let response = h.post("/v1/embeddings", &body, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: EmbeddingsResponse = response.json().await.unwrap();
    let request: EmbeddingsRequest = serde_json::from_value(body).unwrap();
    assert_eq!(
        answer.usage.prompt_tokens,
        Estimator::default().embeddings(&request).input
    );
    assert_eq!(answer.data.len(), 3);
    let EmbeddingVector::Float(first) = &answer.data[0].embedding else {
        panic!("floats by default");
    };
    assert_eq!(first.len(), 8);
    assert!(first.iter().all(|value| (-1.0..1.0).contains(value)));
    assert_eq!(answer.data[0].embedding, answer.data[2].embedding);
    assert_ne!(answer.data[0].embedding, answer.data[1].embedding);

    let body = json!({"model": "text-embedding-3-small", "input": "same", "encoding_format": "base64", "dimensions": 4});
    let answer: EmbeddingsResponse = h
        .post("/v1/embeddings", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    let EmbeddingVector::Base64(encoded) = &answer.data[0].embedding else {
        panic!("base64 asked for");
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let values: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    // The same input gives the same numbers, whatever the encoding or the length asked for.
    assert_eq!(values, first[..4]);

    let too_many = json!({"model": "m", "input": "x", "dimensions": 0});
    let error = expect_error(
        h.post("/v1/embeddings", &too_many, &[]).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(error.error.param.as_deref(), Some("dimensions"));
}

#[tokio::test(start_paused = true)]
async fn models_and_stats_are_served() {
    let h = Harness::start(SimConfig {
        models: vec!["gpt-4o".into(), "o3".into()],
        ..SimConfig::default()
    })
    .await;
    let list: ModelList = h
        .client
        .get(h.url("/v1/models"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = list.data.iter().map(|model| model.id.as_str()).collect();
    assert_eq!(ids, ["gpt-4o", "o3"]);

    expect_ok(h.chat(&chat_body(3)).await).await;
    let served: SimStats = h
        .client
        .get(h.url("/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, h.sim.stats());
    assert_eq!(served.accepted, 1);
    assert_eq!(served.first_admission(), Some(Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn bad_json_and_bad_fields_get_400_with_an_openai_body() {
    let h = Harness::start(SimConfig::default()).await;
    let response = h
        .client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth("k")
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    let error = expect_error(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error.error.kind.as_deref(), Some("invalid_request_error"));
    assert!(
        error
            .error
            .message
            .starts_with("We could not parse the JSON body")
    );

    let missing = h.chat(&json!({"messages": []})).await;
    let error = expect_error(missing, StatusCode::BAD_REQUEST).await;
    assert!(
        error.error.message.contains("model"),
        "{}",
        error.error.message
    );

    let empty = h.chat(&json!({"model": "gpt-4o", "messages": []})).await;
    let error = expect_error(empty, StatusCode::BAD_REQUEST).await;
    assert_eq!(error.error.param.as_deref(), Some("messages"));

    let mut too_many = chat_body(1);
    too_many["n"] = json!(129);
    let error = expect_error(h.chat(&too_many).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error.error.param.as_deref(), Some("n"));
    assert_eq!(h.sim.stats().invalid, 4);
    assert_eq!(h.sim.stats().accepted, 0);
}

#[tokio::test(start_paused = true)]
async fn a_missing_key_gets_401_unless_auth_is_off() {
    let h = Harness::start(SimConfig::default()).await;
    let no_key = h
        .client
        .post(h.url("/v1/chat/completions"))
        .json(&chat_body(1))
        .send()
        .await
        .unwrap();
    let error = expect_error(no_key, StatusCode::UNAUTHORIZED).await;
    assert!(error.error.message.contains("API key"));
    let basic = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("authorization", "Basic abc")
        .json(&chat_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let empty = h
        .client
        .get(h.url("/v1/models"))
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.sim.stats().unauthorized, 3);

    let open = Harness::start(SimConfig {
        require_auth: false,
        ..SimConfig::default()
    })
    .await;
    let response = open
        .client
        .post(open.url("/v1/chat/completions"))
        .json(&chat_body(1))
        .send()
        .await
        .unwrap();
    expect_ok(response).await;
}

#[tokio::test(start_paused = true)]
async fn unknown_urls_and_methods_get_openai_errors() {
    let h = Harness::start(SimConfig::default()).await;
    let response = h.post("/v1/nothing", &json!({}), &[]).await;
    let error = expect_error(response, StatusCode::NOT_FOUND).await;
    assert_eq!(error.error.message, "Invalid URL (POST /v1/nothing)");
    let response = h
        .client
        .get(h.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_server() {
    let h = Harness::start(SimConfig::default()).await;
    let url = h.url("/sim/stats");
    assert!(h.client.get(&url).send().await.is_ok());
    h.sim.shutdown().await.expect("a clean stop");
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(fresh.get(&url).send().await.is_err());
}
