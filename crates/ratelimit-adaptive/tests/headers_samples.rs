//! Whole responses as providers send them (header blocks in the casing seen on the wire, real
//! 429 bodies), read into a `Snapshot` and compared field by field with what they mean.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use ratelimit_adaptive::{Observed, Resource, RetryHint, Snapshot};

/// A header map from a raw block of `Name: value` lines.
fn block(raw: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in raw.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').expect("a `Name: value` line");
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("a valid header name"),
            HeaderValue::from_bytes(value.trim().as_bytes()).expect("a valid header value"),
        );
    }
    headers
}

/// 2025-08-21T12:40:00Z, when the sample responses were received.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_755_780_000)
}

fn observed(
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
    window: Option<Duration>,
) -> Observed {
    Observed {
        limit,
        remaining,
        reset,
        window,
    }
}

fn dimensions(snapshot: &Snapshot) -> Vec<(Resource, Observed)> {
    snapshot.iter().collect()
}

#[test]
fn openai_200() {
    let headers = block(
        "
        Content-Type: application/json
        openai-organization: org-example
        openai-processing-ms: 412
        x-ratelimit-limit-requests: 60
        x-ratelimit-limit-tokens: 150000
        x-ratelimit-remaining-requests: 59
        x-ratelimit-remaining-tokens: 149984
        x-ratelimit-reset-requests: 1s
        x-ratelimit-reset-tokens: 6m0s
        x-request-id: req_0123456789abcdef
        ",
    );
    let snapshot = Snapshot::from_headers(&headers, now());
    assert_eq!(
        dimensions(&snapshot),
        [
            (
                Resource::Requests,
                observed(Some(60), Some(59), Some(Duration::from_secs(1)), None)
            ),
            (
                Resource::Tokens,
                observed(
                    Some(150_000),
                    Some(149_984),
                    Some(Duration::from_secs(360)),
                    None
                )
            ),
        ]
    );
    assert_eq!(snapshot.retry(), RetryHint::default());
}

#[test]
fn openai_429_on_tokens() {
    let headers = block(
        "
        content-type: application/json; charset=utf-8
        retry-after: 2
        x-ratelimit-limit-requests: 10000
        x-ratelimit-limit-tokens: 450000
        x-ratelimit-remaining-requests: 9999
        x-ratelimit-remaining-tokens: 0
        x-ratelimit-reset-requests: 6ms
        x-ratelimit-reset-tokens: 4m12.172s
        x-should-retry: true
        ",
    );
    let body = br#"{
    "error": {
        "message": "Rate limit reached for gpt-4.1 in organization org-example on tokens per min (TPM): Limit 450000, Used 368526, Requested 91276. Please try again in 1.306s. Visit https://platform.openai.com/account/rate-limits to learn more.",
        "type": "tokens",
        "param": null,
        "code": "rate_limit_exceeded"
    }
}"#;
    let snapshot = Snapshot::from_headers(&headers, now()).with_body(body);
    assert_eq!(
        dimensions(&snapshot),
        [
            (
                Resource::Requests,
                observed(
                    Some(10_000),
                    Some(9_999),
                    Some(Duration::from_millis(6)),
                    None
                )
            ),
            (
                Resource::Tokens,
                observed(
                    Some(450_000),
                    Some(0),
                    Some(Duration::from_millis(252_172)),
                    None
                )
            ),
        ]
    );
    // The header is more precise than the body and wins.
    assert_eq!(
        snapshot.retry(),
        RetryHint {
            after: Some(Duration::from_secs(2)),
            should_retry: Some(true),
        }
    );
    // Without the header, the body's wait is used, to the millisecond.
    let mut bare = headers.clone();
    bare.remove("retry-after");
    let snapshot = Snapshot::from_headers(&bare, now()).with_body(body);
    assert_eq!(snapshot.retry().after, Some(Duration::from_millis(1_306)));
}

#[test]
fn anthropic_200() {
    let headers = block(
        "
        content-type: application/json
        anthropic-ratelimit-requests-limit: 1000
        anthropic-ratelimit-requests-remaining: 999
        anthropic-ratelimit-requests-reset: 2025-08-21T12:40:01Z
        anthropic-ratelimit-input-tokens-limit: 450000
        anthropic-ratelimit-input-tokens-remaining: 449000
        anthropic-ratelimit-input-tokens-reset: 2025-08-21T12:40:00Z
        anthropic-ratelimit-output-tokens-limit: 90000
        anthropic-ratelimit-output-tokens-remaining: 89000
        anthropic-ratelimit-output-tokens-reset: 2025-08-21T12:40:01Z
        anthropic-ratelimit-tokens-limit: 540000
        anthropic-ratelimit-tokens-remaining: 538000
        anthropic-ratelimit-tokens-reset: 2025-08-21T12:40:00Z
        request-id: req_011CSHoEeqs5C35K2UUqR7Fy
        ",
    );
    let snapshot = Snapshot::from_headers(&headers, now());
    assert_eq!(
        dimensions(&snapshot),
        [
            (
                Resource::Requests,
                observed(Some(1000), Some(999), Some(Duration::from_secs(1)), None)
            ),
            (
                Resource::InputTokens,
                observed(Some(450_000), Some(449_000), Some(Duration::ZERO), None)
            ),
            (
                Resource::OutputTokens,
                observed(
                    Some(90_000),
                    Some(89_000),
                    Some(Duration::from_secs(1)),
                    None
                )
            ),
            (
                Resource::Tokens,
                observed(Some(540_000), Some(538_000), Some(Duration::ZERO), None)
            ),
        ]
    );
    assert_eq!(snapshot.retry(), RetryHint::default());
}

#[test]
fn anthropic_429_on_output_tokens() {
    let headers = block(
        "
        content-type: application/json
        retry-after: 21
        anthropic-ratelimit-requests-limit: 50
        anthropic-ratelimit-requests-remaining: 49
        anthropic-ratelimit-requests-reset: 2025-08-21T12:40:01Z
        anthropic-ratelimit-input-tokens-limit: 30000
        anthropic-ratelimit-input-tokens-remaining: 27000
        anthropic-ratelimit-input-tokens-reset: 2025-08-21T12:40:06Z
        anthropic-ratelimit-output-tokens-limit: 8000
        anthropic-ratelimit-output-tokens-remaining: 0
        anthropic-ratelimit-output-tokens-reset: 2025-08-21T12:40:21.250Z
        anthropic-ratelimit-tokens-limit: 38000
        anthropic-ratelimit-tokens-remaining: 0
        anthropic-ratelimit-tokens-reset: 2025-08-21T12:40:21.250Z
        x-should-retry: true
        ",
    );
    let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 8,000 output tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."}}"#;
    let snapshot = Snapshot::from_headers(&headers, now()).with_body(body);
    assert_eq!(
        dimensions(&snapshot),
        [
            (
                Resource::Requests,
                observed(Some(50), Some(49), Some(Duration::from_secs(1)), None)
            ),
            (
                Resource::InputTokens,
                observed(
                    Some(30_000),
                    Some(27_000),
                    Some(Duration::from_secs(6)),
                    None
                )
            ),
            (
                Resource::OutputTokens,
                observed(
                    Some(8_000),
                    Some(0),
                    Some(Duration::from_millis(21_250)),
                    None
                )
            ),
            (
                Resource::Tokens,
                observed(
                    Some(38_000),
                    Some(0),
                    Some(Duration::from_millis(21_250)),
                    None
                )
            ),
        ]
    );
    assert_eq!(
        snapshot.retry(),
        RetryHint {
            after: Some(Duration::from_secs(21)),
            should_retry: Some(true),
        }
    );
}

#[test]
fn azure_openai_429() {
    let headers = block(
        "
        Content-Type: application/json
        retry-after: 6
        retry-after-ms: 5842.5
        x-ratelimit-remaining-requests: 0
        x-ratelimit-remaining-tokens: 0
        x-ms-region: East US
        apim-request-id: 6a0c8b0e-1111-2222-3333-444455556666
        ",
    );
    let body = br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}"#;
    let snapshot = Snapshot::from_headers(&headers, now()).with_body(body);
    assert_eq!(
        dimensions(&snapshot),
        [
            (Resource::Requests, observed(None, Some(0), None, None)),
            (Resource::Tokens, observed(None, Some(0), None, None)),
        ]
    );
    assert_eq!(
        snapshot.retry(),
        RetryHint {
            after: Some(Duration::from_micros(5_842_500)),
            should_retry: None,
        }
    );
    // A 429 with the body alone still says how long to wait.
    let bodyonly = Snapshot::from_headers(&HeaderMap::new(), now()).with_body(body);
    assert_eq!(bodyonly.retry().after, Some(Duration::from_secs(6)));
}

#[test]
fn ietf_structured_server() {
    let headers = block(
        r#"
        Content-Type: application/json
        RateLimit-Policy: "burst";q=100;w=60, "daily";q=1000;w=86400
        RateLimit-Policy: "tpm";q=40000;qu="tokens";w=60
        RateLimit: "burst";r=50;t=30, "daily";r=900;t=40000, "tpm";r=1250;t=12
        "#,
    );
    let snapshot = Snapshot::from_headers(&headers, now());
    assert_eq!(
        dimensions(&snapshot),
        [
            (
                Resource::Requests,
                observed(
                    Some(100),
                    Some(50),
                    Some(Duration::from_secs(30)),
                    Some(Duration::from_secs(60))
                )
            ),
            (
                Resource::Tokens,
                observed(
                    Some(40_000),
                    Some(1_250),
                    Some(Duration::from_secs(12)),
                    Some(Duration::from_secs(60))
                )
            ),
        ]
    );
}

#[test]
fn ietf_server_429_with_http_date_retry_after() {
    // Thu, 21 Aug 2025 12:40:45 GMT is 45 s after `now`.
    let headers = block(
        r#"
        RateLimit-Policy: "default";q=10;w=1
        RateLimit: "default";r=0;t=1
        Retry-After: Thu, 21 Aug 2025 12:40:45 GMT
        "#,
    );
    let snapshot = Snapshot::from_headers(&headers, now());
    assert_eq!(
        dimensions(&snapshot),
        [(
            Resource::Requests,
            observed(
                Some(10),
                Some(0),
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(1))
            )
        )]
    );
    assert_eq!(snapshot.retry().after, Some(Duration::from_secs(45)));
}

#[test]
fn generic_x_ratelimit_trio_server() {
    let headers = block(
        "
        X-RateLimit-Limit: 5000
        X-RateLimit-Remaining: 4987
        X-RateLimit-Reset: 1755780600
        ",
    );
    let snapshot = Snapshot::from_headers(&headers, now());
    assert_eq!(
        dimensions(&snapshot),
        [(
            Resource::Requests,
            observed(Some(5000), Some(4987), Some(Duration::from_secs(600)), None)
        )]
    );
}

#[test]
fn gemini_429_body() {
    let body = br#"{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
            "quotaValue": "15"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "35s"
      }
    ]
  }
}"#;
    let headers = block(
        "
        Content-Type: application/json; charset=UTF-8
        Vary: Origin
        ",
    );
    let snapshot = Snapshot::from_headers(&headers, now());
    assert!(snapshot.is_empty(), "Gemini sends no rate-limit headers");
    let snapshot = snapshot.with_body(body);
    assert_eq!(snapshot.iter().count(), 0);
    assert_eq!(
        snapshot.retry(),
        RetryHint {
            after: Some(Duration::from_secs(35)),
            should_retry: None,
        }
    );
}

#[test]
fn vertex_429_without_a_wait() {
    let body = br#"[{
  "error": {
    "code": 429,
    "message": "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    "status": "RESOURCE_EXHAUSTED"
  }
}]"#;
    let snapshot = Snapshot::from_headers(&HeaderMap::new(), now()).with_body(body);
    assert!(snapshot.is_empty());
}
