//! `RateLimit` in other clients' stacks, against a scripted server on 127.0.0.1: as a
//! reqwest-middleware middleware (waiting for grants, settling plain and streamed answers,
//! 429 pauses and refunds, retries outside it limited anew, other routes untouched, malformed
//! and oversized bodies) and as a tower layer over a reqwest-backed service.
#![cfg(any(feature = "middleware", feature = "tower"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Reply, Server, chat_ok, error};
use ratelimit_core::{Limit, Policy, Resource};
use ratelimit_limiter::Limiter;
use ratelimit_memory::MemoryLimiter;
use ratelimit_openai::{ChatCompletionRequest, Estimator};

/// A day's budgets of requests and tokens (they barely refill during a test, so what a call
/// leaves counted can be read exactly), and optionally a short-window request limit that makes
/// calls wait.
fn limiter(tokens: u64, short: Option<(u64, Duration)>) -> Arc<MemoryLimiter> {
    let day = Duration::from_secs(86_400);
    let mut policy = Policy::builder()
        .limit(Limit::new(Resource::Requests, 1_000, day))
        .limit(Limit::new(Resource::Tokens, tokens, day));
    if let Some((amount, window)) = short {
        policy = policy.limit(Limit::new(Resource::Requests, amount, window));
    }
    Arc::new(MemoryLimiter::new(policy.build().unwrap()))
}

/// (requests, tokens) left on the day's budgets.
async fn left(l: &dyn Limiter) -> (u64, u64) {
    let status = l.status("").await.unwrap();
    let day = |r| {
        status
            .limits()
            .iter()
            .filter(|s| s.resource == r)
            .map(|s| s.status.remaining)
            .max()
            .unwrap()
    };
    (day(Resource::Requests), day(Resource::Tokens))
}

/// Asserts the day's budgets show exactly `requests` and `tokens` used (tokens refill ~1.2 a
/// second, so a slow machine may see a token or two more).
async fn assert_used(l: &dyn Limiter, requests: u64, tokens: u64, tokens_budget: u64) {
    let (r, t) = left(l).await;
    assert_eq!(r, 1_000 - requests, "requests used");
    let exact = tokens_budget - tokens;
    assert!(
        (exact..=exact + 2).contains(&t),
        "tokens left {t}, expected {exact}"
    );
}

fn chat(max_tokens: u64) -> serde_json::Value {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_completion_tokens": max_tokens,
    })
}

/// Loads the tokenizer before a test reads the clock: the first estimate of a process loads
/// it, which takes long enough to hide a wait.
fn warm_up() {
    estimate(&chat(1));
}

fn estimate(body: &serde_json::Value) -> u64 {
    let request: ChatCompletionRequest = serde_json::from_value(body.clone()).unwrap();
    Estimator::default().chat(&request).total()
}

fn sse(data: &serde_json::Value) -> String {
    format!("data: {data}\n\n")
}

/// A streamed chat answer: "Hello" in two chunks, then a usage chunk (20 + 7) split across two
/// network reads, then `[DONE]`.
fn stream_pieces() -> Vec<String> {
    let chunk = |content: &str| {
        serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    };
    let usage = serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}});
    let tail = sse(&usage);
    let (a, b) = tail.split_at(10);
    vec![
        sse(&chunk("Hel")),
        sse(&chunk("lo")),
        a.to_owned(),
        b.to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ]
}

#[cfg(feature = "middleware")]
mod chain {
    use std::time::Instant;

    use futures_util::StreamExt;
    use http::Extensions;
    use ratelimit_client::{ClientError, RateLimit, Settle};
    use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};

    use super::*;

    fn http(limit: RateLimit) -> ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(limit)
            .build()
    }

    async fn post(
        http: &ClientWithMiddleware,
        url: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        http.post(url)
            .bearer_auth("sk-test")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_limited_call_waits_for_its_grant() {
        let server = Server::start(vec![], Some(Reply::json(200, chat_ok(12, 3)))).await;
        let l = limiter(100_000, Some((1, Duration::from_millis(400))));
        let http = http(RateLimit::new(l.clone()));
        let url = format!("{}/chat/completions", server.base_url());
        warm_up();
        let started = Instant::now();
        post(&http, &url, &chat(50)).await;
        post(&http, &url, &chat(50)).await;
        // One request per 400 ms: the second is granted 400 ms after the first.
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        let received = server.received();
        assert_eq!(received.len(), 2);
        assert_eq!(received[1].path, "/v1/chat/completions");
        assert_eq!(received[1].authorization.as_deref(), Some("Bearer sk-test"));
        assert_eq!(received[1].body, chat(50), "the body is sent as it was");
    }

    #[tokio::test]
    async fn plain_answers_are_settled_to_their_usage_and_handed_on_intact() {
        for (settle, used) in [(Settle::Usage, 12 + 3), (Settle::Admission, 12 + 50)] {
            let reply = Reply::json(200, chat_ok(12, 3)).header("x-request-id", "req-1");
            let expected = reply.body.clone();
            let server = Server::start(vec![reply], None).await;
            let l = limiter(100_000, None);
            let http = http(RateLimit::new(l.clone()).settle(settle));
            let url = format!("{}/chat/completions", server.base_url());
            let response = post(&http, &url, &chat(50)).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.url().as_str(), url, "the URL is kept");
            assert_eq!(response.headers()["x-request-id"], "req-1");
            assert_eq!(response.content_length(), Some(expected.len() as u64));
            assert_eq!(response.text().await.unwrap(), expected);
            // Settled before the answer is handed on.
            assert_used(l.as_ref(), 1, used, 100_000).await;
        }
    }

    #[tokio::test]
    async fn streamed_answers_settle_to_their_final_usage_when_they_end() {
        let pieces = stream_pieces();
        let server = Server::start(vec![Reply::sse(pieces.clone())], None).await;
        let l = limiter(100_000, None);
        let http = http(RateLimit::new(l.clone()).settle(Settle::Usage));
        let url = format!("{}/chat/completions", server.base_url());
        let mut body = chat(100);
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
        let response = post(&http, &url, &body).await;
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        // While the stream is open, the estimate is what counts.
        assert_used(l.as_ref(), 1, estimate(&body), 100_000).await;
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(String::from_utf8(bytes).unwrap(), pieces.concat());
        assert_used(l.as_ref(), 1, 27, 100_000).await;
    }

    #[tokio::test]
    async fn a_stream_reaches_the_caller_while_the_provider_still_writes_it() {
        // A provider that writes the first chunk, then the rest only when the test says so.
        let pieces = stream_pieces();
        let (first, rest) = (pieces[0].clone(), pieces[1..].concat());
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(Some(wait)));
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move || {
                let wait = wait.lock().unwrap().take().expect("one call");
                let (first, rest) = (first.clone(), rest.clone());
                async move {
                    let body = futures_util::stream::once(std::future::ready(first))
                        .chain(futures_util::stream::once(async move {
                            let _ = wait.await;
                            rest
                        }))
                        .map(|piece| {
                            Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(piece))
                        });
                    axum::http::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(axum::body::Body::from_stream(body))
                        .unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let l = limiter(100_000, None);
        let http = http(RateLimit::new(l.clone()).settle(Settle::Usage));
        let mut body = chat(100);
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
        let url = format!("http://{addr}/v1/chat/completions");
        let mut stream = tokio::time::timeout(Duration::from_secs(30), post(&http, &url, &body))
            .await
            .expect("the answer's head is handed on before its body ends")
            .bytes_stream();
        let head = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the first chunk is handed on while the provider holds the rest")
            .unwrap()
            .unwrap();
        assert_eq!(head, pieces[0].as_bytes());
        assert_used(l.as_ref(), 1, estimate(&body), 100_000).await;
        release.send(()).unwrap();
        let mut bytes = head.to_vec();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(String::from_utf8(bytes).unwrap(), pieces.concat());
        assert_used(l.as_ref(), 1, 27, 100_000).await;
    }

    #[tokio::test]
    async fn a_429_pauses_everyone_gives_its_grant_back_and_reaches_the_caller() {
        let refusal = error(
            "tokens",
            "rate_limit_exceeded",
            "Rate limit reached. Please try again in 300ms.",
        );
        let server = Server::start(
            vec![Reply::json(429, refusal.clone()).header("retry-after-ms", "300")],
            Some(Reply::json(200, chat_ok(12, 3))),
        )
        .await;
        let l = limiter(100_000, None);
        let http = http(RateLimit::new(l.clone()).settle(Settle::Usage));
        let url = format!("{}/chat/completions", server.base_url());
        warm_up();
        let started = Instant::now();
        let response = post(&http, &url, &chat(50)).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after-ms"], "300");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body, refusal,
            "the caller's client sees the provider's answer"
        );
        // Refused, not admitted: nothing stays counted.
        assert_used(l.as_ref(), 0, 0, 100_000).await;
        // The caller's retry (any call under the budget) waits out the pause.
        let response = post(&http, &url, &chat(50)).await;
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        assert_used(l.as_ref(), 1, 15, 100_000).await;
    }

    /// A retrying middleware as reqwest-retry's: it resends a 429 once.
    struct RetryOnce;

    #[async_trait::async_trait]
    impl Middleware for RetryOnce {
        async fn handle(
            &self,
            request: reqwest::Request,
            extensions: &mut Extensions,
            next: Next<'_>,
        ) -> reqwest_middleware::Result<reqwest::Response> {
            let again = request.try_clone().expect("a buffered body");
            let first = next.clone().run(request, extensions).await?;
            if first.status() != 429 {
                return Ok(first);
            }
            next.run(again, extensions).await
        }
    }

    #[tokio::test]
    async fn a_retry_middleware_outside_it_is_limited_on_every_attempt() {
        let server = Server::start(
            vec![
                Reply::json(429, error("requests", "rate_limit_exceeded", "slow down"))
                    .header("retry-after-ms", "300"),
                Reply::json(200, chat_ok(12, 3)),
            ],
            None,
        )
        .await;
        let l = limiter(100_000, None);
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(RetryOnce)
            .with(RateLimit::new(l.clone()).settle(Settle::Usage))
            .build();
        let url = format!("{}/chat/completions", server.base_url());
        warm_up();
        let started = Instant::now();
        let response = post(&http, &url, &chat(50)).await;
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the retry waited out the pause: {:?}",
            started.elapsed()
        );
        assert_eq!(server.received().len(), 2);
        // The 429's grant was given back, the retry's settled.
        assert_used(l.as_ref(), 1, 15, 100_000).await;
    }

    #[tokio::test]
    async fn other_requests_pass_through_untouched_and_unlimited() {
        let server = Server::start(
            vec![
                Reply::json(200, chat_ok(12, 3)),
                Reply::json(200, serde_json::json!({"id": "file-1"})),
            ],
            None,
        )
        .await;
        // One request an hour: any other limited call would wait an hour.
        let l = limiter(100_000, Some((1, Duration::from_secs(3_600))));
        let http = http(RateLimit::new(l.clone()).settle(Settle::Usage));
        let base = server.base_url();
        post(&http, &format!("{base}/chat/completions"), &chat(50)).await;
        let untouched = async {
            let files = post(&http, &format!("{base}/files"), &serde_json::json!({})).await;
            assert_eq!(files.text().await.unwrap(), r#"{"id":"file-1"}"#);
            // Not a POST: not an LLM call (the scripted server only routes POSTs).
            let get = http
                .get(format!("{base}/chat/completions"))
                .send()
                .await
                .unwrap();
            assert_eq!(get.status(), 405);
        };
        tokio::time::timeout(Duration::from_secs(30), untouched)
            .await
            .expect("other requests do not wait for the limiter");
        assert_eq!(server.received()[1].path, "/v1/files");
        assert_used(l.as_ref(), 1, 15, 100_000).await;
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_request_is_sent_as_is_costed_as_one_request() {
        let server = Server::start(
            vec![Reply::json(
                400,
                error(
                    "invalid_request_error",
                    "",
                    "We could not parse the JSON body",
                ),
            )],
            None,
        )
        .await;
        let l = limiter(100_000, None);
        let http = http(RateLimit::new(l.clone()));
        let response = http
            .post(format!("{}/chat/completions", server.base_url()))
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "the provider's own answer");
        assert_eq!(server.received().len(), 1);
        assert_eq!(server.received()[0].body, serde_json::Value::Null);
        assert_used(l.as_ref(), 1, 0, 100_000).await;
    }

    #[tokio::test]
    async fn a_streamed_request_body_is_read_costed_and_sent_unchanged() {
        // No usage in the answer: the estimate made from the body stays counted.
        let server = Server::start(vec![Reply::json(200, serde_json::json!({}))], None).await;
        let l = limiter(100_000, None);
        let http = http(RateLimit::new(l.clone()));
        let body = chat(64);
        let text = body.to_string();
        let pieces: Vec<Result<String, std::io::Error>> = text
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
            .collect();
        let response = http
            .post(format!("{}/chat/completions", server.base_url()))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                pieces,
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(server.received()[0].body, body);
        assert_used(l.as_ref(), 1, estimate(&body), 100_000).await;
    }

    #[tokio::test]
    async fn a_call_no_grant_can_hold_is_refused_with_a_typed_error_before_sending() {
        let server = Server::start(vec![], Some(Reply::json(200, chat_ok(1, 1)))).await;
        let http = http(RateLimit::new(limiter(500, None)));
        let err = http
            .post(format!("{}/chat/completions", server.base_url()))
            .body(chat(1_000).to_string())
            .send()
            .await
            .unwrap_err();
        let reqwest_middleware::Error::Middleware(err) = err else {
            panic!("{err:?}");
        };
        let err = err.downcast_ref::<ClientError>().expect("a ClientError");
        assert!(matches!(err, ClientError::TooLarge(_)), "{err:?}");
        assert!(err.is_permanent());
        assert!(server.received().is_empty());
    }

    #[tokio::test]
    async fn adaptive_limits_follow_the_answers_headers() {
        let server = common::server_with_limit_headers().await;
        let adaptive = common::adaptive_from_a_guess();
        let http = http(RateLimit::adaptive(adaptive.clone()));
        post(
            &http,
            &format!("{}/chat/completions", server.base_url()),
            &chat(50),
        )
        .await;
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
}

#[cfg(feature = "tower")]
mod layer {
    use std::time::Instant;

    use http_body::Body as _;
    use http_body_util::BodyExt;
    use ratelimit_client::{ClientError, RateLimit, Settle};
    use tower::{Service, ServiceBuilder, ServiceExt};

    use super::*;

    /// A tower HTTP client: reqwest behind `Service<http::Request<reqwest::Body>>`.
    fn reqwest_service() -> impl Service<
        http::Request<reqwest::Body>,
        Response = http::Response<reqwest::Body>,
        Error = reqwest::Error,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let client = reqwest::Client::new();
        tower::service_fn(move |request: http::Request<reqwest::Body>| {
            let client = client.clone();
            async move {
                let response = client.execute(reqwest::Request::try_from(request)?).await?;
                Ok::<_, reqwest::Error>(http::Response::from(response))
            }
        })
    }

    fn post(url: &str, body: &serde_json::Value) -> http::Request<reqwest::Body> {
        http::Request::post(url)
            .header("authorization", "Bearer sk-tower")
            .header("content-type", "application/json")
            .body(reqwest::Body::from(body.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn the_layer_waits_for_grants_and_settles_plain_answers() {
        let reply = Reply::json(200, chat_ok(12, 3));
        let expected = reply.body.clone();
        let server = Server::start(vec![], Some(reply)).await;
        let l = limiter(100_000, Some((1, Duration::from_millis(400))));
        let service = ServiceBuilder::new()
            .layer(RateLimit::new(l.clone()).settle(Settle::Usage))
            .service(reqwest_service());
        let url = format!("{}/chat/completions", server.base_url());
        warm_up();
        let started = Instant::now();
        for _ in 0..2 {
            let response = service
                .clone()
                .oneshot(post(&url, &chat(50)))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.body().size_hint().exact(),
                Some(expected.len() as u64)
            );
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(bytes, expected.as_bytes());
        }
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        let received = server.received();
        assert_eq!(received[1].path, "/v1/chat/completions");
        assert_eq!(
            received[1].authorization.as_deref(),
            Some("Bearer sk-tower")
        );
        assert_eq!(received[1].body, chat(50), "the body is sent as it was");
        assert_used(l.as_ref(), 2, 2 * 15, 100_000).await;
    }

    #[tokio::test]
    async fn the_layer_settles_a_stream_when_it_ends() {
        let pieces = stream_pieces();
        let server = Server::start(vec![Reply::sse(pieces.clone())], None).await;
        let l = limiter(100_000, None);
        let mut service = ServiceBuilder::new()
            .layer(RateLimit::new(l.clone()).settle(Settle::Usage))
            .service(reqwest_service());
        let mut body = chat(100);
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
        let url = format!("{}/chat/completions", server.base_url());
        let response = service
            .ready()
            .await
            .unwrap()
            .call(post(&url, &body))
            .await
            .unwrap();
        assert_used(l.as_ref(), 1, estimate(&body), 100_000).await;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, pieces.concat().as_bytes());
        assert_used(l.as_ref(), 1, 27, 100_000).await;
    }

    #[tokio::test]
    async fn the_layer_passes_other_requests_through_and_hands_429s_on() {
        let server = Server::start(
            vec![
                Reply::json(200, serde_json::json!({"id": "file-1"})),
                Reply::json(429, error("requests", "rate_limit_exceeded", "slow down"))
                    .header("retry-after-ms", "300"),
            ],
            None,
        )
        .await;
        let l = limiter(100_000, None);
        let service = ServiceBuilder::new()
            .layer(RateLimit::new(l.clone()))
            .service(reqwest_service());
        let base = server.base_url();
        let files = service
            .clone()
            .oneshot(post(&format!("{base}/files"), &serde_json::json!({})))
            .await
            .unwrap();
        let bytes = files.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, r#"{"id":"file-1"}"#.as_bytes());
        assert_used(l.as_ref(), 0, 0, 100_000).await;

        let refused = service
            .clone()
            .oneshot(post(&format!("{base}/chat/completions"), &chat(50)))
            .await
            .unwrap();
        assert_eq!(refused.status(), 429);
        let body = refused.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["message"], "slow down");
        assert_used(l.as_ref(), 0, 0, 100_000).await;
    }

    #[tokio::test]
    async fn the_layer_refuses_what_no_grant_can_hold_with_a_client_error() {
        let server = Server::start(vec![], Some(Reply::json(200, chat_ok(1, 1)))).await;
        let service = ServiceBuilder::new()
            .layer(RateLimit::new(limiter(500, None)))
            .service(reqwest_service());
        let url = format!("{}/chat/completions", server.base_url());
        let err = service.oneshot(post(&url, &chat(1_000))).await.unwrap_err();
        let err = err.downcast::<ClientError>().expect("a ClientError");
        assert!(matches!(*err, ClientError::TooLarge(_)), "{err:?}");
        assert!(server.received().is_empty());
    }
}
