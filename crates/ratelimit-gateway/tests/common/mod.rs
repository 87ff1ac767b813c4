//! Test support: a simulated provider as upstream, a gateway in front of it on 127.0.0.1, and a
//! client that speaks to the gateway as a tenant.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use ratelimit_gateway::{Config, Gateway};
use ratelimit_sim::{Sim, SimConfig, SimHandle};

/// The upstream key every test configures (it must never reach a client).
pub const UPSTREAM_KEY: &str = "sk-upstream-secret-0123456789";

/// Tenant keys, by environment variable name.
pub fn env(var: &str) -> Option<String> {
    match var {
        "UPSTREAM_KEY" => Some(UPSTREAM_KEY.into()),
        "KEY_A" => Some("tenant-a-key".into()),
        "KEY_B" => Some("tenant-b-key".into()),
        "KEY_C" => Some("tenant-c-key".into()),
        _ => None,
    }
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A chat completion request as `key`.
    pub fn chat(&self, key: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
    }

    /// `GET /v1/limits[?model=...]` as `key`: the caller's budgets, as JSON.
    pub async fn limits(&self, key: &str, model: Option<&str>) -> serde_json::Value {
        let path = match model {
            Some(m) => format!("/v1/limits?model={m}"),
            None => "/v1/limits".to_owned(),
        };
        self.http
            .get(self.url(&path))
            .bearer_auth(key)
            .send()
            .await
            .expect("the gateway answers")
            .json()
            .await
            .expect("a JSON body")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// A small chat request.
pub fn hello(max_tokens: u64) -> serde_json::Value {
    hello_to("gpt-4o-mini", max_tokens)
}

/// A small chat request to `model`.
pub fn hello_to(model: &str, max_tokens: u64) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Say hello."}],
    })
}

/// Starts a simulated provider.
pub async fn sim(config: SimConfig) -> SimHandle {
    Sim::start(config).await.expect("start the simulator")
}

/// Starts a gateway whose configuration is `toml` with `{upstream}` replaced by the sim's URL.
pub async fn gateway(toml: &str, upstream: &SimHandle) -> Running {
    let text = toml.replace("{upstream}", &format!("{}/v1", upstream.base_url()));
    let config = Config::from_toml(&text).expect("valid configuration");
    let gateway = Gateway::with_env(&config, &env)
        .await
        .expect("gateway starts");
    serve(gateway).await
}

/// Serves a gateway on a free port.
pub async fn serve(gateway: Gateway) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = gateway
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        addr,
        http: reqwest::Client::new(),
        stop: Some(stop),
        task,
    }
}
