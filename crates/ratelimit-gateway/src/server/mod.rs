//! The HTTP service: [`Gateway`], its routes, the tenants' authentication, and the informational
//! endpoints (`/v1/limits`, `/health`, `/metrics`).

mod proxy;
mod stream;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use ratelimit_client::Settle;
use ratelimit_client::proxy::Endpoint;
use ratelimit_limiter::Priority;
use ratelimit_openai::Estimator;
use serde::Deserialize;

use crate::budgets::Budgets;
use crate::config::{Config, SettleMode, digest};
use crate::error::{GatewayError, error_response};
use crate::metrics::{Metrics, TenantMetrics};

/// One configured tenant, as the service knows it.
pub(crate) struct Tenant {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) priority: Priority,
    pub(crate) max_queue_time: Duration,
    pub(crate) metrics: TenantMetrics,
}

/// What every handler shares.
pub(crate) struct Inner {
    pub(crate) budgets: Budgets,
    /// Tenants by the SHA-256 of their key.
    by_digest: HashMap<[u8; 32], usize>,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    /// The upstream's URL of each endpoint, parsed once.
    upstream_urls: [reqwest::Url; 3],
    /// `Bearer <upstream key>`, marked sensitive (never logged).
    pub(crate) upstream_auth: http::HeaderValue,
    pub(crate) max_body_bytes: usize,
    pub(crate) settle: Settle,
    pub(crate) estimator: Estimator,
    pub(crate) metrics: Metrics,
}

impl Inner {
    /// The upstream's URL for `endpoint`.
    pub(crate) fn upstream_url(&self, endpoint: Endpoint) -> reqwest::Url {
        let i = match endpoint {
            Endpoint::Chat => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
        };
        self.upstream_urls[i].clone()
    }

    /// The tenant whose key the request carries (`Authorization: Bearer <key>`).
    fn authenticate(&self, headers: &HeaderMap) -> Option<&Tenant> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, key) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let index = *self.by_digest.get(&digest(key.trim()))?;
        self.tenants.get(index)
    }

    /// The 401 answer, counted.
    fn unauthorized(&self) -> Response {
        self.metrics
            .counter("gateway_unauthorized_total", &[])
            .increment(1);
        error_response(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Missing or unknown API key: send `Authorization: Bearer <your tenant key>`.",
        )
    }
}

/// The rate-limiting gateway: an OpenAI-compatible reverse proxy that enforces global, per-model
/// and per-tenant limits. See the [crate docs](crate) for what it serves.
///
/// ```no_run
/// use ratelimit_gateway::{Config, Gateway};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::load("gateway.toml".as_ref())?;
/// let listen = config.listen;
/// let gateway = Gateway::new(&config).await?; // secrets from the environment
/// let listener = tokio::net::TcpListener::bind(listen).await?;
/// gateway.serve(listener, std::future::pending()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstream", &self.inner.base_url)
            .field("tenants", &self.inner.tenants.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway for `config`, its secrets read from the process environment.
    ///
    /// # Errors
    /// [`GatewayError`] when the configuration is invalid, a secret is missing or Redis cannot be
    /// reached.
    pub async fn new(config: &Config) -> Result<Self, GatewayError> {
        Self::with_env(config, &|var| std::env::var(var).ok()).await
    }

    /// As [`new`](Self::new), reading secrets through `env` instead of the process environment.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub async fn with_env(
        config: &Config,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, GatewayError> {
        let resolved = config.resolve(&|var| env(var))?;
        let budgets = Budgets::build(&resolved).await?;
        let metrics = Metrics::new();
        let tenants = resolved
            .tenants
            .iter()
            .enumerate()
            .map(|(index, t)| Tenant {
                index,
                name: t.name.clone(),
                priority: t.priority,
                max_queue_time: t.max_queue_time,
                metrics: metrics.tenant(&t.name),
            })
            .collect();
        let by_digest = resolved
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.digest, i))
            .collect();
        let http = reqwest::Client::builder()
            .timeout(resolved.timeout)
            .build()?;
        let invalid = |reason: String| {
            GatewayError::Config(crate::ConfigError::Invalid {
                field: "upstream".into(),
                reason,
            })
        };
        let url = |endpoint: Endpoint| {
            reqwest::Url::parse(&format!("{}/{}", resolved.base_url, endpoint.path()))
                .map_err(|e| invalid(format!("`base_url` does not make a URL: {e}")))
        };
        let upstream_urls = [
            url(Endpoint::Chat)?,
            url(Endpoint::Completions)?,
            url(Endpoint::Embeddings)?,
        ];
        let mut upstream_auth = http::HeaderValue::try_from(format!("Bearer {}", resolved.api_key))
            .map_err(|_| invalid("the upstream key is not a valid header value".into()))?;
        upstream_auth.set_sensitive(true);
        Ok(Self {
            inner: Arc::new(Inner {
                budgets,
                by_digest,
                tenants,
                http,
                base_url: resolved.base_url,
                upstream_urls,
                upstream_auth,
                max_body_bytes: resolved.max_body_bytes,
                settle: match resolved.settle {
                    SettleMode::Admission => Settle::Admission,
                    SettleMode::Usage => Settle::Usage,
                },
                estimator: Estimator::default(),
                metrics,
            }),
        })
    }

    /// The routes, to serve or to nest in a larger application.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(proxy::forward))
            .route("/v1/completions", post(proxy::forward))
            .route("/v1/embeddings", post(proxy::forward))
            .route("/v1/limits", get(limits))
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .with_state(Arc::clone(&self.inner))
    }

    /// Serves on `listener` until `shutdown` completes, then finishes the requests in flight.
    ///
    /// # Errors
    /// [`GatewayError::Io`] when serving fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct LimitsQuery {
    model: Option<String>,
}

/// `GET /v1/limits[?model=...]`: the caller's budgets and their state.
async fn limits(
    State(gw): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<LimitsQuery>,
) -> Response {
    let Some(tenant) = gw.authenticate(&headers) else {
        return gw.unauthorized();
    };
    let levels = gw.budgets.levels(tenant.index, query.model.as_deref());
    let decisions = match Budgets::status(&levels).await {
        Ok(d) => d,
        Err(e) => return backend_unavailable(&e),
    };
    let levels: Vec<_> = levels
        .iter()
        .zip(&decisions)
        .map(|(level, decision)| {
            let limits: Vec<_> = decision
                .limits()
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "resource": s.resource.unit(),
                        "window_seconds": s.window / 1_000_000_000,
                        "limit": s.status.limit,
                        "remaining": s.status.remaining,
                        "reset_ms": s.status.reset_after.div_ceil(1_000_000),
                    })
                })
                .collect();
            let concurrency = decision
                .concurrency
                .map(|c| serde_json::json!({ "limit": c.limit, "available": c.remaining }));
            serde_json::json!({
                "level": level.kind.name(),
                "key": level.key,
                "limits": limits,
                "concurrency": concurrency,
            })
        })
        .collect();
    let mut response = axum::Json(serde_json::json!({
        "tenant": tenant.name,
        "priority": match tenant.priority {
            Priority::Batch => "batch",
            _ => "interactive",
        },
        "max_queue_time_ms": u64::try_from(tenant.max_queue_time.as_millis()).unwrap_or(u64::MAX),
        "levels": levels,
    }))
    .into_response();
    crate::headers::rate_limit_headers(&decisions, response.headers_mut());
    response
}

/// `GET /health`.
async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics(State(gw): State<Arc<Inner>>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gw.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        "This gateway serves POST /v1/chat/completions, /v1/completions and /v1/embeddings, and GET /v1/limits, /health and /metrics.",
    )
}

/// The answer when the limiter's backend cannot be reached.
pub(crate) fn backend_unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "rate-limit backend failed");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "limiter_unavailable",
        "The gateway's rate-limit backend is unavailable; retry later.",
    )
}
