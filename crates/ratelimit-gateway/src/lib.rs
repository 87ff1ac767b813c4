//! An OpenAI-compatible rate-limiting gateway: one provider account shared fairly by many
//! services.
//!
//! Clients (any OpenAI SDK) point their base URL at the gateway and use their own tenant key; the
//! gateway checks it, costs each request as the client crate does (1 request + the prompt's
//! tokens by tiktoken + the output limit), admits it on three levels of budgets (the tenant's,
//! the model's, the whole account's: requests, tokens and concurrency per minute or day), then
//! forwards it with the account's key and settles every grant to the usage the answer reports,
//! streamed answers included.
//!
//! - Routes: `POST /v1/chat/completions` (plain and streamed), `/v1/completions`,
//!   `/v1/embeddings`; `GET /v1/limits` (the caller's budgets; `?model=` adds the model's),
//!   `GET /health`, `GET /metrics` (Prometheus; see the series in the `metrics` module docs).
//! - **Over a limit**, a request waits in the fair line of the binding budget (first come, first
//!   served; interactive tenants before batch ones, batch never starved) for at most its
//!   tenant's `max_queue_time`, or is refused at once with 429 when its turn would come later
//!   (`max_queue_time = "0s"`: never waits). The 429 carries `Retry-After` (seconds, rounded up),
//!   `retry-after-ms`, `x-should-retry`, the rate-limit headers below and an OpenAI-style error
//!   body.
//! - **Every answer** carries the caller's rate-limit headers, for its binding budget: OpenAI's
//!   `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (resets as Go durations) and the
//!   IETF `RateLimit-Policy`/`RateLimit` fields, so clients can pace themselves. The upstream's
//!   own rate-limit headers (the whole account's) are not passed on.
//! - **The provider's feedback** (its rate-limit headers, its 429s) goes to the global budget's
//!   adaptive layer: a provider 429 pauses every tenant, in every gateway instance on Redis.
//! - **All or nothing across levels**: see the `budgets` module docs for the order of the waits,
//!   which never holds a shared budget while waiting on a tenant's own.
//! - **Security**: an unknown or missing key is 401 (keys are matched by SHA-256 and never
//!   stored or logged; the file holds environment variable names or digests); the upstream key
//!   is only ever sent upstream; bodies over `max_body_bytes` are 413; malformed JSON is 400
//!   with the parser's message; per-tenant state is bounded by the configured tenants, and the
//!   budgets of unlisted models by `max_models`.
//! - **Backends**: in memory (one instance), or Redis (`[backend] kind = "redis"`), where every
//!   instance with the same URL and prefix shares each budget exactly.
//!
//! ```no_run
//! use ratelimit_gateway::{Config, Gateway};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_toml(r#"
//!     listen = "127.0.0.1:8080"
//!     [upstream]
//!     base_url = "https://api.openai.com/v1"
//!     api_key_env = "OPENAI_API_KEY"
//!     [global]
//!     rpm = 500
//!     tpm = 200000
//!     [tenant_default]
//!     rpm = 100
//!     [[tenants]]
//!     name = "search"
//!     key_env = "SEARCH_GATEWAY_KEY"
//!     [[tenants]]
//!     name = "nightly"
//!     key_env = "NIGHTLY_GATEWAY_KEY"
//!     priority = "batch"
//!     max_queue_time = "5m"
//! "#)?;
//! let gateway = Gateway::new(&config).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! // Serve until the process ends (the binary stops on Ctrl-C).
//! gateway.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/gateway.md` for the whole configuration and the design.

mod budgets;
mod config;
mod error;
mod headers;
mod metrics;
mod server;

pub use config::{
    Backend, Config, ConfigError, DEFAULT_MAX_BODY_BYTES, Limits, PriorityClass, SettleMode,
    TenantConfig, Upstream,
};
pub use error::GatewayError;
pub use server::Gateway;
