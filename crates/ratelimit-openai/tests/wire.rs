//! Round trips of the wire models against JSON shaped like the OpenAI API reference's examples:
//! every sample parses, its named fields read right, and serializing it gives the same JSON back
//! (absent and `null` optional fields are the same thing, so nulls are dropped before comparing).

use ratelimit_openai::{
    ApiError, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Completion,
    CompletionRequest, ContentPart, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse,
    EncodingFormat, ErrorResponse, FinishReason, ImageDetail, Input, MessageContent, ModelList,
    Role,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// `value` without any object member whose value is `null`, recursively.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key, strip_nulls(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Parses `sample` as `T`, checks that serializing it gives the sample back, returns it.
fn round_trip<T: Serialize + DeserializeOwned>(sample: &str) -> T {
    let parsed: T = serde_json::from_str(sample).expect("sample parses");
    let original: Value = serde_json::from_str(sample).expect("sample is JSON");
    let written = serde_json::to_value(&parsed).expect("serializes");
    assert_eq!(strip_nulls(written), strip_nulls(original));
    parsed
}

const CHAT_REQUEST: &str = r#"{
  "model": "gpt-4.1",
  "messages": [
    {"role": "developer", "content": "You are a helpful assistant."},
    {"role": "user", "name": "ada", "content": [
      {"type": "text", "text": "What is in this image?"},
      {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/boardwalk.jpg", "detail": "low"}},
      {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    ]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston, MA\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temperature\": 22}"}
  ],
  "tools": [{"type": "function", "function": {"name": "get_current_weather", "description": "Get the current weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}],
  "tool_choice": "auto",
  "temperature": 0.7,
  "max_completion_tokens": 300,
  "n": 2,
  "stream": true,
  "stream_options": {"include_usage": true},
  "logit_bias": {"50256": -100},
  "user": "user-1234"
}"#;

#[test]
fn chat_request_round_trips_and_reads_its_fields() {
    let request: ChatCompletionRequest = round_trip(CHAT_REQUEST);
    assert_eq!(request.model, "gpt-4.1");
    assert_eq!(request.messages.len(), 4);
    assert_eq!(request.messages[0].role, Role::Developer);
    assert_eq!(request.messages[1].name.as_deref(), Some("ada"));
    let Some(MessageContent::Parts(parts)) = &request.messages[1].content else {
        panic!("the user message has parts");
    };
    assert!(matches!(&parts[0], ContentPart::Text(text) if text.text == "What is in this image?"));
    assert!(
        matches!(&parts[1], ContentPart::ImageUrl(image) if image.image_url.detail == Some(ImageDetail::Low))
    );
    assert!(matches!(&parts[2], ContentPart::Other(value) if value["type"] == "input_audio"));
    assert_eq!(request.messages[2].content, None);
    assert_eq!(
        request.messages[2].tool_calls.as_ref().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        request.messages[3].tool_call_id.as_deref(),
        Some("call_abc123")
    );
    assert_eq!(request.max_output_tokens(), Some(300));
    assert_eq!(request.choices(), 2);
    assert!(request.is_stream());
    assert!(request.include_usage());
    // Unnamed fields are kept for a proxy to forward.
    for field in ["tools", "tool_choice", "temperature", "logit_bias", "user"] {
        assert!(request.extra.contains_key(field), "{field} kept");
    }
}

#[test]
fn unknown_roles_and_legacy_max_tokens_are_kept() {
    let request: ChatCompletionRequest = round_trip(
        r#"{"model": "gpt-3.5-turbo", "messages": [{"role": "critic", "content": "hm"}], "max_tokens": 12}"#,
    );
    assert_eq!(request.messages[0].role, Role::Other("critic".into()));
    assert_eq!(request.max_output_tokens(), Some(12));
    assert_eq!(request.choices(), 1);
    assert!(!request.is_stream());
    assert!(!request.include_usage());
}

#[test]
fn max_completion_tokens_wins_over_max_tokens() {
    let request: ChatCompletionRequest = round_trip(
        r#"{"model": "o3", "messages": [], "max_tokens": 10, "max_completion_tokens": 20}"#,
    );
    assert_eq!(request.max_output_tokens(), Some(20));
}

#[test]
fn a_malformed_known_part_is_an_error() {
    let result = serde_json::from_str::<ChatCompletionRequest>(
        r#"{"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text"}]}]}"#,
    );
    assert!(result.is_err());
    let missing_model =
        serde_json::from_str::<ChatCompletionRequest>(r#"{"messages": []}"#).unwrap_err();
    assert!(
        missing_model.to_string().contains("model"),
        "{missing_model}"
    );
}

const CHAT_RESPONSE: &str = r#"{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "The image shows a wooden boardwalk path running through a lush green field.",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    },
    {
      "index": 1,
      "message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{}"}}
      ]},
      "logprobs": null,
      "finish_reason": "tool_calls"
    }
  ],
  "usage": {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035"
}"#;

#[test]
fn chat_response_round_trips_with_usage_details() {
    let response: ChatCompletion = round_trip(CHAT_RESPONSE);
    assert_eq!(response.object, "chat.completion");
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        response.choices[1].finish_reason,
        Some(FinishReason::ToolCalls)
    );
    assert_eq!(response.choices[0].message.role, Role::Assistant);
    let usage = response.usage.expect("usage");
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (1117, 46, 1163)
    );
    assert_eq!(
        usage.prompt_tokens_details.and_then(|d| d.cached_tokens),
        Some(1024)
    );
    assert_eq!(
        usage
            .completion_tokens_details
            .and_then(|d| d.reasoning_tokens),
        Some(0)
    );
    assert!(response.extra.contains_key("system_fingerprint"));
}

#[test]
fn usage_without_details_and_with_unknown_details_is_tolerated() {
    let response: ChatCompletion = round_trip(
        r#"{"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6,
                      "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": 3},
                      "cost": 0.25}}"#,
    );
    let usage = response.usage.expect("usage");
    assert_eq!(
        usage.prompt_tokens_details.expect("details").extra["image_tokens"],
        3
    );
    assert_eq!(usage.extra["cost"], 0.25);
    assert_eq!(
        response.choices[0].finish_reason,
        Some(FinishReason::Length)
    );
}

const CHAT_CHUNKS: [&str; 4] = [
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
];

#[test]
fn chat_chunks_round_trip() {
    let chunks: Vec<ChatCompletionChunk> = CHAT_CHUNKS.iter().map(|c| round_trip(c)).collect();
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hello"));
    assert_eq!(chunks[2].choices[0].finish_reason, Some(FinishReason::Stop));
    assert!(chunks[..3].iter().all(|chunk| chunk.usage.is_none()));
    assert!(chunks[3].choices.is_empty());
    assert_eq!(chunks[3].usage.as_ref().map(|u| u.total_tokens), Some(10));
}

#[test]
fn legacy_completion_request_and_response_round_trip() {
    let request: CompletionRequest = round_trip(
        r#"{"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 7, "temperature": 0, "best_of": 3, "n": 2, "echo": false}"#,
    );
    assert_eq!(request.prompt, Input::Text("Say this is a test".into()));
    assert_eq!(request.generated_choices(), 3);
    assert!(request.extra.contains_key("echo"));

    for (prompt, expected) in [
        (r#"["a", "b"]"#, Input::Texts(vec!["a".into(), "b".into()])),
        (r#"[1212, 318]"#, Input::Tokens(vec![1212, 318])),
        (
            r#"[[1212], [318, 257]]"#,
            Input::TokenBatches(vec![vec![1212], vec![318, 257]]),
        ),
    ] {
        let text = format!(r#"{{"model": "davinci-002", "prompt": {prompt}}}"#);
        let request: CompletionRequest = round_trip(&text);
        assert_eq!(request.prompt, expected);
    }

    let response: Completion = round_trip(
        r#"{
          "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
          "object": "text_completion",
          "created": 1589478378,
          "model": "gpt-3.5-turbo-instruct",
          "system_fingerprint": "fp_44709d6fcb",
          "choices": [{"text": "\n\nThis is indeed a test", "index": 0, "logprobs": null, "finish_reason": "length"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        }"#,
    );
    assert_eq!(response.choices[0].text, "\n\nThis is indeed a test");
    assert_eq!(response.usage.map(|u| u.completion_tokens), Some(7));
}

#[test]
fn embeddings_request_and_response_round_trip() {
    let request: EmbeddingsRequest = round_trip(
        r#"{"input": "The food was delicious and the waiter...", "model": "text-embedding-3-small", "encoding_format": "float", "dimensions": 256, "user": "u"}"#,
    );
    assert_eq!(request.encoding_format, Some(EncodingFormat::Float));
    assert_eq!(request.dimensions, Some(256));
    let base64: EmbeddingsRequest = round_trip(
        r#"{"input": [[1, 2], [3]], "model": "text-embedding-ada-002", "encoding_format": "base64"}"#,
    );
    assert_eq!(base64.input.count(), 2);
    assert_eq!(base64.encoding_format, Some(EncodingFormat::Base64));

    let response: EmbeddingsResponse = round_trip(
        r#"{
          "object": "list",
          "data": [
            {"object": "embedding", "embedding": [0.0023064255, -0.009327292, -0.0028842222], "index": 0},
            {"object": "embedding", "embedding": "AAAAAAAAgD8=", "index": 1}
          ],
          "model": "text-embedding-3-small",
          "usage": {"prompt_tokens": 8, "total_tokens": 8}
        }"#,
    );
    assert_eq!(
        response.data[0].embedding,
        EmbeddingVector::Float(vec![0.0023064255, -0.009327292, -0.0028842222])
    );
    assert_eq!(
        response.data[1].embedding,
        EmbeddingVector::Base64("AAAAAAAAgD8=".into())
    );
    assert_eq!(response.usage.prompt_tokens, 8);
}

#[test]
fn error_body_round_trips_with_nulls_written() {
    let sample = r#"{"error": {"message": "Rate limit reached for gpt-4.1 in organization org-abc on tokens per min (TPM): Limit 450000, Used 368526, Requested 91276. Please try again in 1.306s.", "type": "tokens", "param": null, "code": "rate_limit_exceeded"}}"#;
    let body: ErrorResponse = round_trip(sample);
    assert_eq!(body.error.kind.as_deref(), Some("tokens"));
    assert_eq!(body.error.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(body.error.param, None);
    // OpenAI writes absent members as null; so do we.
    let written = serde_json::to_value(&body).unwrap();
    assert_eq!(written["error"]["param"], Value::Null);
    assert!(written["error"].as_object().unwrap().contains_key("param"));

    let built = ApiError::new("bad", "invalid_request_error")
        .with_param("messages")
        .with_code("invalid_value")
        .into_response();
    assert_eq!(
        serde_json::to_value(&built).unwrap(),
        json!({"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": "invalid_value"}})
    );
}

#[test]
fn error_codes_may_be_numbers_or_absent() {
    let numeric: ErrorResponse =
        serde_json::from_str(r#"{"error": {"message": "Requests exceeded", "code": 429}}"#)
            .unwrap();
    assert_eq!(numeric.error.code.as_deref(), Some("429"));
    assert_eq!(numeric.error.kind, None);
    let bad = serde_json::from_str::<ErrorResponse>(r#"{"error": {"message": "x", "code": [1]}}"#);
    assert!(bad.is_err());
}

#[test]
fn model_list_round_trips() {
    let list: ModelList = round_trip(
        r#"{"object": "list", "data": [
            {"id": "gpt-4o", "object": "model", "created": 1686935002, "owned_by": "openai"},
            {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"}
        ]}"#,
    );
    assert_eq!(list.data[1].id, "text-embedding-3-small");
}
