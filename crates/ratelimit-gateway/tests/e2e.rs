//! End to end: tenants' clients → the gateway → the simulated provider, over real HTTP on
//! 127.0.0.1: isolation, the global limit, priorities, queue-or-reject, headers, streaming, the
//! informational endpoints and the refusals (401, 400, 413).

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{UPSTREAM_KEY, gateway, hello, hello_to, sim};
use ratelimit_adaptive::{Resource, Snapshot};
use ratelimit_sim::{HeaderStyle, Latency, OutputTokens, SimConfig};

const TWO_TENANTS: &str = r#"
    [upstream]
    base_url = "{upstream}"
    api_key_env = "UPSTREAM_KEY"
    [global]
    rpm = 100
    tpm = 1000000
    [[tenants]]
    name = "a"
    key_env = "KEY_A"
    max_queue_time = "0s"
    limits = { rpm = 3, tpm = 100000 }
    [[tenants]]
    name = "b"
    key_env = "KEY_B"
    max_queue_time = "0s"
    limits = { rpm = 10, tpm = 100000 }
"#;

#[tokio::test]
async fn a_chat_is_proxied_with_the_tenants_headers_and_the_upstream_key_stays_hidden() {
    let upstream = sim(SimConfig::default()).await;
    let gw = gateway(TWO_TENANTS, &upstream).await;
    let answer = gw.chat("tenant-a-key", hello(20)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let headers = answer.headers().clone();
    assert_eq!(headers["x-ratelimit-limit-requests"], "3");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "2");
    assert!(headers.get("ratelimit-policy").is_some());
    let snapshot = Snapshot::from_headers(&headers, SystemTime::now());
    let requests = snapshot.get(Resource::Requests).unwrap();
    assert_eq!((requests.limit, requests.remaining), (Some(3), Some(2)));
    assert!(requests.reset.unwrap() > Duration::from_secs(19));
    assert!(requests.reset.unwrap() <= Duration::from_secs(20));
    assert!(snapshot.get(Resource::Tokens).is_some());
    let text = answer.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    for (_, v) in &headers {
        assert!(
            !v.as_bytes()
                .windows(10)
                .any(|w| w == &UPSTREAM_KEY.as_bytes()[..10])
        );
    }
    assert!(!text.contains(UPSTREAM_KEY));
    assert_eq!(upstream.stats().accepted, 1);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_keys_bad_json_and_large_bodies_are_refused_with_openai_errors() {
    let upstream = sim(SimConfig::default()).await;
    let gw = gateway(
        &TWO_TENANTS.replace("[upstream]", "max_body_bytes = 2000\n[upstream]"),
        &upstream,
    )
    .await;
    let missing = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .json(&hello(5))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let unknown = gw.chat("not-a-tenant", hello(5)).send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");

    let bad = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("tenant-a-key")
        .header("content-type", "application/json")
        .body("{\"model\": \"gpt-4o\", \"messages\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );
    let no_model = gw
        .chat("tenant-a-key", serde_json::json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_model.status(), 400);
    let wrong_shape = gw
        .chat(
            "tenant-a-key",
            serde_json::json!({"model": "gpt-4o", "messages": 5}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_shape.status(), 400);

    let big = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x".repeat(5_000)}],
    });
    let too_large = gw.chat("tenant-a-key", big).send().await.unwrap();
    assert_eq!(too_large.status(), 413);
    // A chunked body (no content-length) over the limit is refused too.
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 500])));
    let chunked = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("tenant-a-key")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status(), 413);
    // None of it reached the provider, and none of it spent a tenant's budget.
    assert_eq!(upstream.stats().accepted, 0);
    let ok = gw.chat("tenant-a-key", hello(5)).send().await.unwrap();
    assert_eq!(ok.headers()["x-ratelimit-remaining-requests"], "2");
    let unknown_route = gw.http.get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(unknown_route.status(), 404);
    gw.stop().await;
}

#[tokio::test]
async fn over_its_limit_a_tenant_is_refused_at_once_with_retry_headers_and_the_other_is_not_delayed()
 {
    let upstream = sim(SimConfig::default()).await;
    let gw = gateway(TWO_TENANTS, &upstream).await;
    let started = Instant::now();
    let flood = (0..10).map(|_| gw.chat("tenant-a-key", hello(10)).send());
    let answers = futures_util::future::join_all(flood).await;
    let mut refused = Vec::new();
    let mut ok = 0;
    for a in answers {
        let a = a.unwrap();
        match a.status().as_u16() {
            200 => ok += 1,
            429 => refused.push(a),
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!((ok, refused.len()), (3, 7));
    let r = refused.pop().unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(r.headers()["x-should-retry"], "true");
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    let snapshot = Snapshot::from_headers(r.headers(), SystemTime::now());
    assert!(snapshot.retry().after.unwrap() <= Duration::from_secs(retry));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    // B is not held back by A's flood.
    for _ in 0..5 {
        let b = gw.chat("tenant-b-key", hello(10)).send().await.unwrap();
        assert_eq!(b.status(), 200);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(upstream.stats().accepted, 8);
    gw.stop().await;
}

#[tokio::test]
async fn the_global_limit_holds_whoever_sends() {
    let upstream = sim(SimConfig {
        rpm: Some(5),
        ..SimConfig::default()
    })
    .await;
    let config = TWO_TENANTS
        .replace("rpm = 100\n", "rpm = 5\n")
        .replace("rpm = 3,", "rpm = 50,")
        .replace("rpm = 10,", "rpm = 50,");
    let gw = gateway(&config, &upstream).await;
    let sends = (0..12).map(|i| {
        let key = if i % 2 == 0 {
            "tenant-a-key"
        } else {
            "tenant-b-key"
        };
        gw.chat(key, hello(10)).send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|a| a.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    let stats = upstream.stats();
    assert_eq!(stats.accepted, 5);
    assert!(stats.peak_requests <= 5);
    gw.stop().await;
}

#[tokio::test]
async fn a_waiting_request_is_served_when_its_turn_fits_the_queue_time() {
    let upstream = sim(SimConfig {
        latency: Latency {
            base: Duration::from_millis(300),
            per_output_token: Duration::ZERO,
        },
        ..SimConfig::default()
    })
    .await;
    let config = r#"
        [upstream]
        base_url = "{upstream}"
        api_key_env = "UPSTREAM_KEY"
        [global]
        concurrency = 1
        [[tenants]]
        name = "a"
        key_env = "KEY_A"
        max_queue_time = "5s"
    "#;
    let gw = gateway(config, &upstream).await;
    let started = Instant::now();
    let (one, two) = tokio::join!(
        gw.chat("tenant-a-key", hello(5)).send(),
        gw.chat("tenant-a-key", hello(5)).send()
    );
    assert_eq!(one.unwrap().status(), 200);
    assert_eq!(two.unwrap().status(), 200);
    // One after the other: the concurrency slot was waited for, not refused.
    assert!(started.elapsed() >= Duration::from_millis(600));
    gw.stop().await;
}

#[tokio::test]
async fn interactive_tenants_are_served_before_waiting_batch_ones() {
    let upstream = sim(SimConfig {
        latency: Latency {
            base: Duration::from_millis(200),
            per_output_token: Duration::ZERO,
        },
        ..SimConfig::default()
    })
    .await;
    let config = r#"
        max_queue_time = "30s"
        [upstream]
        base_url = "{upstream}"
        api_key_env = "UPSTREAM_KEY"
        [global]
        concurrency = 1
        [[tenants]]
        name = "batch"
        key_env = "KEY_A"
        priority = "batch"
        [[tenants]]
        name = "live"
        key_env = "KEY_B"
    "#;
    let gw = std::sync::Arc::new(gateway(config, &upstream).await);
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, (key, delay)) in [
        ("tenant-a-key", 0),
        ("tenant-a-key", 50),
        ("tenant-a-key", 60),
        ("tenant-a-key", 70),
        ("tenant-b-key", 120),
    ]
    .into_iter()
    .enumerate()
    {
        let (gw, order) = (std::sync::Arc::clone(&gw), std::sync::Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let a = gw.chat(key, hello(5)).send().await.unwrap();
            assert_eq!(a.status(), 200);
            order.lock().unwrap().push(i);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    // The first batch request held the slot and the second was already the head of the line
    // (the head keeps its turn); the interactive one, though it came last, overtook the batch
    // requests still waiting behind it.
    assert_eq!(order, [0, 1, 4, 2, 3]);
}

/// A simulated provider answering 7 output tokens, and a gateway settling to usage in front of it
/// with tenants `a` and `b` (10,000 tokens a minute each).
async fn settling_gateway() -> (ratelimit_sim::SimHandle, common::Running) {
    let upstream = sim(SimConfig {
        output: OutputTokens::Fixed(7),
        ..SimConfig::default()
    })
    .await;
    let config = r#"
        settle = "usage"
        [upstream]
        base_url = "{upstream}"
        api_key_env = "UPSTREAM_KEY"
        [global]
        tpm = 1000000
        [[tenants]]
        name = "a"
        key_env = "KEY_A"
        limits = { tpm = 10000 }
        [[tenants]]
        name = "b"
        key_env = "KEY_B"
        limits = { tpm = 10000 }
    "#;
    let gw = gateway(config, &upstream).await;
    (upstream, gw)
}

#[tokio::test]
async fn a_stream_is_passed_through_and_its_grants_settled_to_the_reported_usage() {
    let (_upstream, gw) = settling_gateway().await;
    let mut body = hello(500);
    body["stream"] = true.into();
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let answer = gw.chat("tenant-a-key", body).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Admitted at the estimate: 500 output tokens held.
    let held: u64 = answer.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(held < 10_000 - 500, "{held}");
    let text = answer.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let usage: serde_json::Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find_map(|v| v.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("the final chunk reports usage");
    let used =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
    assert_eq!(usage["completion_tokens"], 7);
    // Settled before the stream's end was reported: the tenant's budget shows the actual usage.
    let limits = gw.limits("tenant-a-key", None).await;
    assert_eq!(limits["tenant"], "a");
    let tenant = &limits["levels"][0];
    assert_eq!(tenant["level"], "tenant");
    let remaining = tenant["limits"][0]["remaining"].as_u64().unwrap();
    // A token or two may have come back since (the bucket refills continuously).
    assert!(
        remaining >= 10_000 - used && remaining <= 10_000 - used + 5,
        "{remaining} {used}"
    );
    assert_eq!(limits["levels"][1]["level"], "global");

    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_requests_total{tenant=\"a\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_tokens_total{tenant=\"a\",kind=\"output\"} 7"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_wait_seconds_bucket{tenant=\"a\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_latency_seconds_count{tenant=\"a\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_queue_depth{tenant=\"a\"} 0"),
        "{metrics}"
    );
    let health = gw.http.get(gw.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_without_include_usage_is_settled_and_its_client_sees_no_usage() {
    let (_upstream, gw) = settling_gateway().await;
    // The same request unstreamed, by the other tenant: its prompt's tokens.
    let plain: serde_json::Value = gw
        .chat("tenant-b-key", hello(500))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prompt = plain["usage"]["prompt_tokens"].as_u64().unwrap();

    let mut body = hello(500);
    body["stream"] = true.into();
    let answer = gw.chat("tenant-a-key", body).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let chunks: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() > 2, "{text}");
    // Exactly what was asked for: no usage anywhere, no chunk without choices.
    for chunk in &chunks {
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert!(!chunk["choices"].as_array().unwrap().is_empty(), "{chunk}");
    }
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty(), "{text}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    // The gateway asked for the usage: the grant settled to 7 output tokens, not 500.
    let limits = gw.limits("tenant-a-key", None).await;
    let remaining = limits["levels"][0]["limits"][0]["remaining"]
        .as_u64()
        .unwrap();
    let used = prompt + 7;
    // The bucket refills 167 tokens a second meanwhile; kept at the estimate, 500 would be held.
    assert!(
        remaining >= 10_000 - used && remaining <= 10_000 - used + 100,
        "{remaining} {used}"
    );
    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_tokens_total{tenant=\"a\",kind=\"output\"} 7"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_429_pauses_every_tenant() {
    let upstream = sim(SimConfig {
        rpm: Some(1),
        ..SimConfig::default()
    })
    .await;
    let gw = gateway(TWO_TENANTS, &upstream).await;
    assert_eq!(
        gw.chat("tenant-a-key", hello(5))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The provider (tighter than configured) refuses B's: passed on as the provider's 429.
    let refused = gw.chat("tenant-b-key", hello(5)).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    // And now every tenant is paused by the gateway itself, without reaching the provider.
    let paused = gw.chat("tenant-a-key", hello(5)).send().await.unwrap();
    assert_eq!(paused.status(), 429);
    let body: serde_json::Value = paused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("global"),
        "{body}"
    );
    let stats = upstream.stats();
    assert_eq!(stats.accepted, 1);
    gw.stop().await;
}

#[tokio::test]
async fn embeddings_and_completions_are_proxied_and_counted() {
    let upstream = sim(SimConfig::default()).await;
    let gw = gateway(TWO_TENANTS, &upstream).await;
    let e = gw
        .http
        .post(gw.url("/v1/embeddings"))
        .bearer_auth("tenant-b-key")
        .json(&serde_json::json!({"model": "text-embedding-3-small", "input": "hello world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(e.status(), 200);
    let c = gw
        .http
        .post(gw.url("/v1/completions"))
        .bearer_auth("tenant-b-key")
        .json(&serde_json::json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Once", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(c.status(), 200);
    assert_eq!(c.headers()["x-ratelimit-remaining-requests"], "8");
    assert_eq!(upstream.stats().accepted, 2);
    gw.stop().await;
}

/// The requests limit a level of `/v1/limits` shows.
fn requests_limit(level: &serde_json::Value) -> u64 {
    level["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == "requests")
        .and_then(|l| l["limit"].as_u64())
        .unwrap_or_else(|| panic!("no requests limit in {level}"))
}

/// A global budget and one model with a budget of its own.
const NAMED_MODEL: &str = r#"
    [upstream]
    base_url = "{upstream}"
    api_key_env = "UPSTREAM_KEY"
    [global]
    rpm = 1000
    [models."gpt-4o-mini"]
    rpm = 500
    [[tenants]]
    name = "a"
    key_env = "KEY_A"
    max_queue_time = "0s"
"#;

#[tokio::test]
async fn a_named_models_budget_learns_from_its_own_answers_not_the_global_one() {
    // The provider allows 50 requests a window and says so in its headers.
    let upstream = sim(SimConfig {
        rpm: Some(50),
        ..SimConfig::default()
    })
    .await;
    let gw = gateway(NAMED_MODEL, &upstream).await;
    let chat = |model: &str| gw.chat("tenant-a-key", hello_to(model, 5)).send();
    assert_eq!(chat("gpt-4o-mini").await.unwrap().status(), 200);
    let seen = gw.limits("tenant-a-key", Some("gpt-4o-mini")).await;
    assert_eq!(seen["levels"][0]["level"], "model", "{seen}");
    assert_eq!(
        requests_limit(&seen["levels"][0]),
        50,
        "the model learned: {seen}"
    );
    assert_eq!(
        requests_limit(&seen["levels"][1]),
        1000,
        "the global budget is not set to one model's limit: {seen}"
    );
    // A model without a budget of its own teaches the global one.
    assert_eq!(chat("gpt-4o").await.unwrap().status(), 200);
    let seen = gw.limits("tenant-a-key", Some("gpt-4o")).await;
    assert_eq!(seen["levels"][0]["level"], "global", "{seen}");
    assert_eq!(requests_limit(&seen["levels"][0]), 50, "{seen}");
    gw.stop().await;
}

#[tokio::test]
async fn a_provider_429_on_a_named_model_pauses_that_model_alone() {
    // No rate-limit headers here, so nothing is learned before the provider refuses.
    let upstream = sim(SimConfig {
        rpm: Some(1),
        headers: HeaderStyle::None,
        ..SimConfig::default()
    })
    .await;
    let gw = gateway(NAMED_MODEL, &upstream).await;
    let chat = |model: &str| gw.chat("tenant-a-key", hello_to(model, 5)).send();
    assert_eq!(chat("gpt-4o-mini").await.unwrap().status(), 200);
    let refused = chat("gpt-4o-mini").await.unwrap();
    assert_eq!(refused.status(), 429, "the provider's own 429");
    // The model is paused by the gateway itself now...
    let paused = chat("gpt-4o-mini").await.unwrap();
    assert_eq!(paused.status(), 429);
    let body: serde_json::Value = paused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("model level"), "{body}");
    // ...while another model still reaches the provider (which refuses it: its limit is the
    // account's here, but the gateway did not hold it back).
    let other = chat("gpt-4o").await.unwrap();
    assert_eq!(other.status(), 429);
    let body = other.text().await.unwrap();
    assert!(body.contains("org-sim"), "the provider's answer: {body}");
    let stats = upstream.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(
        stats.rejected_429, 2,
        "the paused model's request never went upstream: {stats:?} {body}"
    );
    gw.stop().await;
}
