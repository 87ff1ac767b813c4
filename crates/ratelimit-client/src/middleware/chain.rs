//! [`RateLimit`] as a `reqwest_middleware::Middleware`: for clients built on
//! `reqwest_middleware::ClientWithMiddleware` (reqwest 0.12).

use http::Extensions;
use http_body_util::BodyExt;
use reqwest::ResponseBuilderExt;
use reqwest_middleware::{Error, Middleware, Next};

use super::RateLimit;

#[async_trait::async_trait]
impl Middleware for RateLimit {
    /// Limits the request if it is an LLM call (see [`RateLimit`]), else passes it on untouched.
    ///
    /// Errors: `Error::Middleware` holding a [`ClientError`](crate::ClientError) when the
    /// limiter refuses (a request too large for any grant, an unreachable backend); the inner
    /// chain's errors as they are; a `reqwest` error if the answer's body breaks off while it is
    /// read (a JSON answer or an error's).
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let Some(endpoint) = Self::limited(request.method(), request.url().path()) else {
            return next.run(request, extensions).await;
        };
        let path = request.url().path().to_owned();
        let estimate = match request.body().map(reqwest::Body::as_bytes) {
            Some(Some(bytes)) => self.estimate(endpoint, &path, bytes),
            // A streamed body: read it to cost it, and send what was read.
            Some(None) => {
                let body = request.body_mut().take().unwrap_or_default();
                let bytes = body.collect().await.map_err(Error::Reqwest)?.to_bytes();
                let estimate = self.estimate(endpoint, &path, &bytes);
                *request.body_mut() = Some(bytes.into());
                estimate
            }
            None => self.estimate(endpoint, &path, b""),
        };
        let permit = self.admit(estimate).await.map_err(Error::middleware)?;
        // A transport error drops the grant with its estimate counted: the request may have
        // reached the provider.
        let response = next.run(request, extensions).await?;
        let url = response.url().clone();
        let response = self
            .respond(permit, estimate, http::Response::from(response))
            .await
            .map_err(Error::Reqwest)?;
        Ok(into_reqwest(response.map(reqwest::Body::wrap), url))
    }
}

/// Back to a `reqwest::Response`, keeping its URL (the conversion from `http` would forget it).
fn into_reqwest(response: http::Response<reqwest::Body>, url: reqwest::Url) -> reqwest::Response {
    let (mut parts, body) = response.into_parts();
    if let Ok(tagged) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(tagged.into_parts().0.extensions);
    }
    reqwest::Response::from(http::Response::from_parts(parts, body))
}
