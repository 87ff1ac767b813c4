//! A scripted OpenAI-compatible server on 127.0.0.1 for the client's tests: it answers each
//! request with the next scripted response and records what it received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::post;

/// One scripted answer.
#[derive(Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    /// Streamed as these pieces, with a pause between them (SSE), instead of `body`.
    pub(crate) pieces: Vec<String>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            pieces: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn sse(pieces: Vec<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            body: String::new(),
            pieces,
        }
    }
}

/// What the server received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    pub(crate) body: serde_json::Value,
}

#[derive(Clone, Default)]
struct Shared {
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// Answer every request past the script with this.
    fallback: Arc<Mutex<Option<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    shared: Shared,
}

impl Server {
    pub(crate) async fn start(script: Vec<Reply>, fallback: Option<Reply>) -> Self {
        let shared = Shared::default();
        *shared.script.lock().unwrap() = script.into();
        *shared.fallback.lock().unwrap() = fallback;
        let app = axum::Router::new()
            .route("/v1/{*path}", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, shared }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

async fn handle(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    shared.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let reply = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| shared.fallback.lock().unwrap().clone())
        .expect("the script ran out");
    let mut builder = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (k, v) in &reply.headers {
        builder = builder.header(*k, v);
    }
    if reply.pieces.is_empty() {
        return builder.body(Body::from(reply.body)).unwrap();
    }
    let pieces = reply.pieces.clone();
    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
        let piece = it.next()?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(piece)), it))
    });
    builder.body(Body::from_stream(stream)).unwrap()
}

/// A chat completion body with this usage.
pub(crate) fn chat_ok(prompt: u64, completion: u64) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
}

/// An OpenAI-style error body.
pub(crate) fn error(kind: &str, code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// A server answering every chat with OpenAI-style rate-limit headers (5,000 RPM, 2M TPM).
pub(crate) async fn server_with_limit_headers() -> Server {
    Server::start(
        vec![],
        Some(
            Reply::json(200, chat_ok(12, 3))
                .header("x-ratelimit-limit-requests", "5000")
                .header("x-ratelimit-remaining-requests", "4999")
                .header("x-ratelimit-limit-tokens", "2000000")
                .header("x-ratelimit-remaining-tokens", "1999000"),
        ),
    )
    .await
}

/// An adaptive limiter starting from a guess of 60 RPM and 10k TPM.
pub(crate) fn adaptive_from_a_guess() -> std::sync::Arc<ratelimit_adaptive::AdaptiveLimiter> {
    let policy = ratelimit_core::Policy::builder()
        .requests_per_minute(60)
        .tokens_per_minute(10_000)
        .build()
        .unwrap();
    std::sync::Arc::new(
        ratelimit_adaptive::AdaptiveLimiter::new(
            std::sync::Arc::new(ratelimit_memory::MemoryLimiter::new(policy.clone())),
            &policy,
            ratelimit_adaptive::AdaptiveConfig::default(),
        )
        .unwrap(),
    )
}
