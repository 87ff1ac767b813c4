//! The client against a scripted server on 127.0.0.1: retries and what is never retried, 429s
//! that pause the limiter, settlement to the actual usage, streaming usage, adaptive headers.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Reply, Server, chat_ok, error};
use futures_util::StreamExt;
use ratelimit_client::{Client, ClientError, RetryPolicy, Settle};
use ratelimit_core::{Limit, Policy, Resource};
use ratelimit_limiter::Limiter;
use ratelimit_memory::MemoryLimiter;
use ratelimit_openai::{ChatCompletionRequest, ChatMessage};

fn request(max_tokens: u64) -> ChatCompletionRequest {
    let mut r = ChatCompletionRequest::new("gpt-4o-mini", vec![ChatMessage::user("Say hi.")]);
    r.max_completion_tokens = Some(max_tokens);
    r
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(10),
        max: Duration::from_millis(40),
    }
}

/// `rpm` requests per minute and `tokens` per day: tokens barely refill during a test, so what a
/// call leaves counted can be read exactly.
fn limiter(rpm: u64, tokens: u64) -> Arc<MemoryLimiter> {
    Arc::new(MemoryLimiter::new(
        Policy::builder()
            .requests_per_minute(rpm)
            .limit(Limit::new(
                Resource::Tokens,
                tokens,
                Duration::from_secs(86_400),
            ))
            .build()
            .unwrap(),
    ))
}

fn client(server: &Server, limiter: Option<Arc<MemoryLimiter>>) -> ratelimit_client::ClientBuilder {
    let b = Client::builder()
        .base_url(server.base_url())
        .api_key("sk-test")
        .retry(fast_retries(4));
    match limiter {
        Some(l) => b.limiter(l),
        None => b,
    }
}

async fn tokens_left(l: &dyn Limiter) -> u64 {
    l.status("")
        .await
        .unwrap()
        .first_of(Resource::Tokens)
        .unwrap()
        .status
        .remaining
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_pauses_the_limiter() {
    let server = Server::start(
        vec![
            Reply::json(
                429,
                error(
                    "tokens",
                    "rate_limit_exceeded",
                    "Rate limit reached. Please try again in 300ms.",
                ),
            )
            .header("retry-after-ms", "300"),
            Reply::json(200, chat_ok(12, 3)),
        ],
        None,
    )
    .await;
    let l = limiter(600, 100_000);
    let c = client(&server, Some(Arc::clone(&l))).build().unwrap();
    // Load the tokenizer first: its first load would otherwise hide the wait being measured.
    let _ = c.estimator().chat(&request(50));
    let started = Instant::now();
    let answer = c.chat(&request(50)).await.unwrap();
    assert_eq!(answer.usage.unwrap().completion_tokens, 3);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].path, "/v1/chat/completions");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(received[0].body["stream"], serde_json::Value::Null);
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_say_why() {
    for reply in [
        Reply::json(
            400,
            error("invalid_request_error", "invalid_value", "bad messages"),
        ),
        Reply::json(
            401,
            error(
                "invalid_request_error",
                "invalid_api_key",
                "Incorrect API key",
            ),
        ),
        Reply::json(
            429,
            error(
                "insufficient_quota",
                "insufficient_quota",
                "You exceeded your current quota",
            ),
        ),
        Reply::json(
            429,
            error(
                "tokens",
                "rate_limit_exceeded",
                "Request too large for gpt-4o on tokens per min (TPM)",
            ),
        ),
        Reply::json(503, error("server_error", "overloaded", "try later"))
            .header("x-should-retry", "false"),
    ] {
        let status = reply.status;
        let server = Server::start(vec![reply], None).await;
        let c = client(&server, Some(limiter(600, 100_000)))
            .build()
            .unwrap();
        let err = c.chat(&request(50)).await.unwrap_err();
        assert!(err.is_permanent(), "{status}: {err}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(server.received().len(), 1, "{status}: sent once");
        assert!(err.to_string().contains("permanent"), "{err}");
    }
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_limit() {
    let server = Server::start(
        vec![],
        Some(Reply::json(503, error("server_error", "", "overloaded"))),
    )
    .await;
    let c = client(&server, None)
        .retry(fast_retries(3))
        .build()
        .unwrap();
    let err = c.chat(&request(50)).await.unwrap_err();
    match err {
        ClientError::Api {
            status: 503,
            permanent: false,
            attempts: 3,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transport_error_after_the_attempts() {
    // Bind then drop a listener: its port refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::builder()
        .base_url(format!("http://127.0.0.1:{port}/v1"))
        .retry(fast_retries(2))
        .build()
        .unwrap();
    match c.chat(&request(5)).await.unwrap_err() {
        ClientError::Transport { attempts: 2, .. } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_request_the_limits_can_never_admit_is_refused_before_sending() {
    let server = Server::start(vec![], Some(Reply::json(200, chat_ok(1, 1)))).await;
    let c = client(&server, Some(limiter(600, 500))).build().unwrap();
    let err = c.chat(&request(1_000)).await.unwrap_err();
    assert!(matches!(err, ClientError::TooLarge(_)), "{err:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn grants_settle_to_the_usage_as_the_provider_counts_it() {
    for (settle, expected_used) in [(Settle::Usage, 12 + 3), (Settle::Admission, 12 + 50)] {
        let server = Server::start(vec![Reply::json(200, chat_ok(12, 3))], None).await;
        let l = limiter(600, 100_000);
        let c = client(&server, Some(Arc::clone(&l)))
            .settle(settle)
            .build()
            .unwrap();
        c.chat(&request(50)).await.unwrap();
        let left = tokens_left(l.as_ref()).await;
        // A day's budget refills ~1.2 tokens a second: exact unless the machine is very slow.
        let exact = 100_000 - expected_used;
        assert!((exact..=exact + 2).contains(&left), "{settle:?}: {left}");
    }
}

fn sse(data: &serde_json::Value) -> String {
    format!("data: {data}\n\n")
}

#[tokio::test]
async fn a_stream_is_read_chunk_by_chunk_and_settled_to_its_final_usage() {
    let chunk = |content: &str| {
        serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    };
    let usage = serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}});
    let mut pieces = vec![sse(&chunk("Hel")), sse(&chunk("lo"))];
    // A chunk split across two network reads.
    let tail = sse(&usage);
    let (a, b) = tail.split_at(10);
    pieces.extend([a.to_owned(), b.to_owned(), "data: [DONE]\n\n".to_owned()]);
    let server = Server::start(vec![Reply::sse(pieces)], None).await;
    let l = limiter(600, 100_000);
    let c = client(&server, Some(Arc::clone(&l)))
        .settle(Settle::Usage)
        .build()
        .unwrap();
    let mut stream = c.chat_stream(&request(100)).await.unwrap();
    let mut text = String::new();
    let mut final_usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for choice in &chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
        }
        final_usage = chunk.usage.or(final_usage);
    }
    assert_eq!(text, "Hello");
    assert_eq!(final_usage.unwrap().total_tokens, 27);
    let sent = &server.received()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let left = tokens_left(l.as_ref()).await;
    let exact = 100_000 - 27;
    assert!(
        (exact..=exact + 2).contains(&left),
        "settled to the final chunk's 27 tokens: {left}"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_off_reports_it() {
    let pieces = vec!["data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[]}\n\n".to_owned()];
    let server = Server::start(vec![Reply::sse(pieces)], None).await;
    let c = client(&server, None).build().unwrap();
    let items: Vec<_> = c.chat_stream(&request(5)).await.unwrap().collect().await;
    assert!(items[0].is_ok());
    let last = items.last().unwrap();
    assert!(
        matches!(last, Err(ClientError::Malformed(m)) if m.contains("DONE")),
        "{last:?}"
    );
}

#[tokio::test]
async fn adaptive_limits_follow_the_response_headers() {
    let server = common::server_with_limit_headers().await;
    let adaptive = common::adaptive_from_a_guess();
    let c = Client::builder()
        .base_url(server.base_url())
        .adaptive(Arc::clone(&adaptive))
        .build()
        .unwrap();
    c.chat(&request(50)).await.unwrap();
    let status = adaptive.status("").await.unwrap();
    assert_eq!(
        status.first_of(Resource::Requests).unwrap().status.limit,
        5_000
    );
    assert_eq!(
        status.first_of(Resource::Tokens).unwrap().status.limit,
        2_000_000
    );
}

#[test]
fn bad_configurations_are_refused_at_build() {
    assert!(matches!(
        Client::builder().base_url("ftp://x/v1").build(),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        Client::builder().base_url("not a url").build(),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        Client::builder()
            .base_url("http://x/v1")
            .api_key("bad\nkey")
            .build(),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        Client::builder()
            .base_url("http://x/v1")
            .retry(RetryPolicy {
                max_attempts: 0,
                ..RetryPolicy::default()
            })
            .build(),
        Err(ClientError::Config(_))
    ));
}

#[tokio::test]
async fn a_call_sent_under_the_callers_grant_is_counted_once() {
    let server = Server::start(vec![Reply::json(200, chat_ok(12, 3))], None).await;
    let l = limiter(600, 100_000);
    let c = client(&server, Some(Arc::clone(&l)))
        .settle(Settle::Usage)
        .build()
        .unwrap();
    let call = ratelimit_client::Call::from_json(
        "/v1/chat/completions",
        serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 50, "seed": 7}),
    )
    .unwrap();
    let permit = l
        .acquire(ratelimit_limiter::Request::new(call.cost(c.estimator())))
        .await
        .unwrap();
    let result = c.call(&call, Some(permit)).await.unwrap();
    assert_eq!((result.prompt_tokens, result.completion_tokens), (12, 3));
    assert_eq!(result.body["choices"][0]["message"]["content"], "hi");
    // Unknown fields reach the server untouched.
    assert_eq!(server.received()[0].body["seed"], 7);
    let left = tokens_left(l.as_ref()).await;
    assert!(
        (100_000 - 15..=100_000 - 13).contains(&left),
        "counted once, settled: {left}"
    );
}

#[test]
fn calls_name_their_endpoint_or_are_refused() {
    let body = serde_json::json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    assert!(matches!(
        ratelimit_client::Call::from_json("embeddings", body.clone()),
        Ok(ratelimit_client::Call::Embeddings(_))
    ));
    let err = ratelimit_client::Call::from_json("/v1/images/generations", body).unwrap_err();
    assert!(err.to_string().contains("unsupported endpoint"), "{err}");
    let err =
        ratelimit_client::Call::from_json("/v1/chat/completions", serde_json::json!({"model": 3}))
            .unwrap_err();
    assert!(matches!(err, ClientError::Malformed(_)), "{err}");
}
