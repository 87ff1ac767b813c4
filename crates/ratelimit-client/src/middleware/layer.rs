//! [`RateLimit`] as a `tower::Layer`: [`RateLimitService`] limits the LLM calls of any
//! `tower::Service<http::Request<B>>` whose request body `B` can be rebuilt from the bytes read
//! (`reqwest::Body`, `http_body_util::Full<Bytes>`, axum's `Body`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tower_layer::Layer;
use tower_service::Service;

use super::{LimitedBody, RateLimit};
use crate::error::ClientError;

/// The error of a [`RateLimitService`]: a boxed error, as tower's own middleware use.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> Layer<S> for RateLimit {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> RateLimitService<S> {
        RateLimitService {
            inner,
            limit: self.clone(),
        }
    }
}

/// A service whose LLM calls are limited: made by [`RateLimit`] as a `tower::Layer`.
///
/// It takes the requests its inner service takes (`http::Request<B>` for any body that can be
/// rebuilt from the bytes read: `reqwest::Body`, `http_body_util::Full<Bytes>`...) and answers
/// with the inner answer's head and a [`LimitedBody`] over its body. Errors are boxed: a
/// [`ClientError`] when the limiter refuses, else the inner service's or the request body's own.
///
/// ```no_run
/// use std::sync::Arc;
/// use http_body_util::BodyExt;
/// use ratelimit_client::RateLimit;
/// use ratelimit_core::Policy;
/// use ratelimit_memory::MemoryLimiter;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let limiter = Arc::new(MemoryLimiter::new(
///     Policy::builder().requests_per_minute(500).tokens_per_minute(200_000).build()?,
/// ));
/// // Any `Service<http::Request<B>>`; here reqwest, adapted.
/// let http = reqwest::Client::new();
/// let send = tower::service_fn(move |request: http::Request<reqwest::Body>| {
///     let http = http.clone();
///     async move {
///         let response = http.execute(reqwest::Request::try_from(request)?).await?;
///         Ok::<_, reqwest::Error>(http::Response::from(response))
///     }
/// });
/// let mut service = ServiceBuilder::new().layer(RateLimit::new(limiter)).service(send);
/// let request = http::Request::post("https://api.openai.com/v1/embeddings")
///     .header("authorization", format!("Bearer {}", std::env::var("OPENAI_API_KEY")?))
///     .header("content-type", "application/json")
///     .body(reqwest::Body::from(r#"{"model":"text-embedding-3-small","input":"Hi"}"#))?;
/// let response = service.ready().await?.call(request).await?;
/// let body = response.into_body().collect().await?.to_bytes();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limit: RateLimit,
}

impl<S, B, R> Service<http::Request<B>> for RateLimitService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    R: Body + Send + 'static,
    R::Data: Send,
    R::Error: Into<BoxError>,
{
    type Response = http::Response<LimitedBody<R>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The service made ready goes with this call; a fresh clone waits for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let limit = self.limit.clone();
        Box::pin(async move {
            let Some(endpoint) = RateLimit::limited(request.method(), request.uri().path()) else {
                let response = inner.call(request).await.map_err(Into::into)?;
                return Ok(response.map(LimitedBody::inner));
            };
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
            let estimate = limit.estimate(endpoint, parts.uri.path(), &bytes);
            let permit = limit
                .admit(estimate)
                .await
                .map_err(|e: ClientError| Box::new(e) as BoxError)?;
            let request = http::Request::from_parts(parts, B::from(bytes));
            let response = inner.call(request).await.map_err(Into::into)?;
            limit
                .respond(permit, estimate, response)
                .await
                .map_err(Into::into)
        })
    }
}
