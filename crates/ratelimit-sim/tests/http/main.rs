//! The simulator over real HTTP on 127.0.0.1, with reqwest as the client. Tests that depend on
//! time run under tokio's paused clock, so windows, latencies and retry waits are exact and
//! take no real time.

mod endpoints;
mod faults;
mod headers;
mod limits;

use std::time::Duration;

use ratelimit_openai::{ChatCompletion, ErrorResponse};
use ratelimit_sim::{Sim, SimConfig, SimHandle};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// A running simulator and a client for it.
pub(crate) struct Harness {
    pub(crate) sim: SimHandle,
    pub(crate) client: reqwest::Client,
}

impl Harness {
    pub(crate) async fn start(config: SimConfig) -> Self {
        let sim = Sim::start(config).await.expect("the simulator starts");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a client");
        Harness { sim, client }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// POSTs `body` to `path` with a bearer key and the extra `headers`.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth("sk-test")
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the request is answered")
    }

    pub(crate) async fn chat(&self, body: &Value) -> Response {
        self.post("/v1/chat/completions", body, &[]).await
    }
}

/// A small chat request for `gpt-4o` with this output limit.
pub(crate) fn chat_body(max_tokens: u64) -> Value {
    json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_completion_tokens": max_tokens,
    })
}

/// The token cost the simulator charges for `body` (a chat request).
pub(crate) fn chat_cost(body: &Value) -> u64 {
    let request = serde_json::from_value(body.clone()).expect("a chat request");
    ratelimit_openai::Estimator::default()
        .chat(&request)
        .total()
}

pub(crate) async fn expect_ok(response: Response) -> ChatCompletion {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("a chat completion")
}

pub(crate) async fn expect_error(response: Response, status: StatusCode) -> ErrorResponse {
    assert_eq!(response.status(), status);
    response.json().await.expect("an OpenAI error body")
}

pub(crate) fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name} missing"))
        .to_str()
        .expect("an ASCII header")
}

pub(crate) fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}
