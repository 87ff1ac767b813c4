//! Admission: limits enforced exactly, retry-after sufficient and rounded up, costs counted as
//! the estimator counts them, requests too large, limits changed mid-run, and the peaks.

use std::time::Duration;

use futures_util::future::join_all;
use ratelimit_openai::{ChatCompletionRequest, Estimator};
use ratelimit_sim::{ConfigError, SimConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::{Harness, chat_body, chat_cost, expect_error, expect_ok, header, secs};

#[tokio::test(start_paused = true)]
async fn the_rpm_plus_first_request_in_the_window_gets_429_and_fits_after_it() {
    let h = Harness::start(SimConfig {
        rpm: Some(3),
        ..SimConfig::default()
    })
    .await;
    for _ in 0..3 {
        expect_ok(h.chat(&chat_body(10)).await).await;
    }
    let refused = h.chat(&chat_body(10)).await;
    let body = expect_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body.error.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(body.error.kind.as_deref(), Some("requests"));
    assert!(
        body.error.message.contains("Limit 3, Used 3, Requested 1."),
        "{}",
        body.error.message
    );

    // One window after the first admissions, they have all left.
    tokio::time::advance(secs(60)).await;
    expect_ok(h.chat(&chat_body(10)).await).await;
    let stats = h.sim.stats();
    assert_eq!((stats.accepted, stats.rejected_429), (4, 1));
    assert_eq!(stats.peak_requests, 3);
}

#[tokio::test(start_paused = true)]
async fn tpm_counts_prompt_plus_max_output_at_admission() {
    let body = chat_body(100);
    let cost = chat_cost(&body);
    let h = Harness::start(SimConfig {
        tpm: Some(cost * 2 + cost / 2),
        ..SimConfig::default()
    })
    .await;
    expect_ok(h.chat(&body).await).await;
    expect_ok(h.chat(&body).await).await;
    let refused = expect_error(h.chat(&body).await, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(refused.error.kind.as_deref(), Some("tokens"));
    let used = format!("Used {}, Requested {cost}.", cost * 2);
    assert!(
        refused.error.message.contains(&used),
        "{}",
        refused.error.message
    );
    // A smaller request still fits in what is left.
    let small = chat_body(1);
    assert!(chat_cost(&small) <= cost / 2);
    expect_ok(h.chat(&small).await).await;
    assert_eq!(h.sim.stats().tokens_admitted, cost * 2 + chat_cost(&small));
}

#[tokio::test(start_paused = true)]
async fn limits_hold_exactly_under_concurrent_requests() {
    let h = Harness::start(SimConfig {
        rpm: Some(17),
        ..SimConfig::default()
    })
    .await;
    let body = chat_body(5);
    let responses = join_all((0..40).map(|_| h.chat(&body))).await;
    let ok = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let limited = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, limited), (17, 23));
    assert_eq!(h.sim.stats().peak_requests, 17);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_rounded_up_and_waiting_it_out_succeeds() {
    let h = Harness::start(SimConfig {
        rpm: Some(2),
        ..SimConfig::default()
    })
    .await;
    expect_ok(h.chat(&chat_body(10)).await).await;
    tokio::time::advance(Duration::from_millis(10_500)).await;
    expect_ok(h.chat(&chat_body(10)).await).await;
    // The first admission leaves the window 49.5 s from now.
    let refused = h.chat(&chat_body(10)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "50");
    assert_eq!(header(&refused, "retry-after-ms"), "49500");
    let body = expect_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        body.error.message.ends_with("Please try again in 49.5s."),
        "{}",
        body.error.message
    );

    // A millisecond early is still too early (and says so); the advertised wait is enough.
    tokio::time::sleep(Duration::from_millis(49_499)).await;
    let early = h.chat(&chat_body(10)).await;
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(&early, "retry-after-ms").parse().unwrap();
    assert_eq!(wait, 1);
    assert_eq!(header(&early, "retry-after"), "1");
    tokio::time::sleep(Duration::from_millis(wait)).await;
    expect_ok(h.chat(&chat_body(10)).await).await;
}

#[tokio::test(start_paused = true)]
async fn usage_and_admitted_tokens_match_the_estimator() {
    let h = Harness::start(SimConfig::default()).await;
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "name": "ada", "content": [
                {"type": "text", "text": "Describe this picture in one line."},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
            ]}
        ],
        "max_tokens": 41,
        "n": 3,
    });
    let request: ChatCompletionRequest = serde_json::from_value(body.clone()).unwrap();
    let estimate = Estimator::default().chat(&request);
    let answer = expect_ok(h.chat(&body).await).await;
    let usage = answer.usage.expect("usage");
    assert_eq!(usage.prompt_tokens, estimate.input);
    // Half of 41 per choice, rounded down, for 3 choices.
    assert_eq!(usage.completion_tokens, 20 * 3);
    assert_eq!(usage.total_tokens, estimate.input + 60);
    assert_eq!(answer.choices.len(), 3);
    let stats = h.sim.stats();
    assert_eq!(stats.tokens_admitted, estimate.total());
    assert_eq!(stats.tokens_admitted, estimate.input + 41 * 3);
    assert_eq!(stats.completion_tokens, 60);
}

#[tokio::test(start_paused = true)]
async fn a_request_above_the_tpm_is_refused_for_good() {
    let h = Harness::start(SimConfig {
        tpm: Some(100),
        ..SimConfig::default()
    })
    .await;
    let response = h.chat(&chat_body(200)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "x-should-retry"), "false");
    assert!(response.headers().get("retry-after").is_none());
    let body = expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        body.error
            .message
            .starts_with("Request too large for gpt-4o"),
        "{}",
        body.error.message
    );
    assert!(body.error.message.contains("Limit 100, Requested"));
    let stats = h.sim.stats();
    assert_eq!(
        (stats.accepted, stats.rejected_too_large, stats.rejected_429),
        (0, 1, 0)
    );
    // It took nothing: a request that fits is admitted.
    expect_ok(h.chat(&chat_body(50)).await).await;
}

#[tokio::test(start_paused = true)]
async fn limits_can_drop_and_rise_mid_run() {
    let h = Harness::start(SimConfig {
        rpm: Some(5),
        ..SimConfig::default()
    })
    .await;
    for _ in 0..3 {
        expect_ok(h.chat(&chat_body(1)).await).await;
    }
    h.sim.set_limits(Some(2), None).unwrap();
    let refused = h.chat(&chat_body(1)).await;
    assert_eq!(header(&refused, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    h.sim.set_limits(Some(10), Some(1_000_000)).unwrap();
    expect_ok(h.chat(&chat_body(1)).await).await;
    assert_eq!(
        h.sim.set_limits(Some(0), None),
        Err(ConfigError::ZeroLimit { field: "rpm" })
    );
    let stats = h.sim.stats();
    assert_eq!((stats.rpm, stats.tpm), (Some(10), Some(1_000_000)));
}

#[tokio::test(start_paused = true)]
async fn peaks_measure_what_an_unlimited_run_admitted() {
    let h = Harness::start(SimConfig {
        window: secs(10),
        ..SimConfig::default()
    })
    .await;
    let body = chat_body(10);
    let cost = chat_cost(&body);
    // 3 at 0 s, 2 at 5 s, 4 at 10 s: the window (0, 10] holds 6, the most of any window.
    let begin = tokio::time::Instant::now();
    for (at, count) in [(0, 3), (5, 2), (10, 4)] {
        tokio::time::sleep_until(begin + secs(at)).await;
        for _ in 0..count {
            expect_ok(h.chat(&body).await).await;
        }
    }
    let stats = h.sim.stats();
    assert_eq!(stats.accepted, 9);
    assert_eq!(stats.peak_requests, 6);
    assert_eq!(stats.peak_tokens, 6 * cost);
    assert_eq!(stats.admission_span(), secs(10));
    assert_eq!(stats.window(), secs(10));
}

#[tokio::test(start_paused = true)]
async fn huge_requests_saturate_the_counts_instead_of_failing() {
    let h = Harness::start(SimConfig::default()).await;
    let mut body = chat_body(1 << 62);
    body["n"] = json!(4);
    for _ in 0..2 {
        let answer = expect_ok(h.chat(&body).await).await;
        let usage = answer.usage.expect("usage");
        assert_eq!(usage.completion_tokens, (1 << 61) * 4);
        assert!(answer.choices[0].message.content.is_some());
    }
    let stats = h.sim.stats();
    assert_eq!(
        (stats.peak_tokens, stats.tokens_admitted),
        (u64::MAX, u64::MAX)
    );
    assert_eq!(stats.completion_tokens, u64::MAX);
}
