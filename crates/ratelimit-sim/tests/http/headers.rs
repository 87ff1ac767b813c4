//! Rate-limit headers of both styles: present, exact, and parseable by what clients use.

use std::time::Duration;

use ratelimit_adaptive::parse_go_duration;
use ratelimit_sim::{HeaderStyle, SimConfig};
use reqwest::StatusCode;

use crate::{Harness, chat_body, chat_cost, header, secs};

#[tokio::test(start_paused = true)]
async fn openai_headers_are_exact_go_durations() {
    let h = Harness::start(SimConfig {
        rpm: Some(10),
        tpm: Some(10_000),
        ..SimConfig::default()
    })
    .await;
    let body = chat_body(100);
    let cost = chat_cost(&body);
    let first = h.chat(&body).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), "10");
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), "9");
    assert_eq!(header(&first, "x-ratelimit-limit-tokens"), "10000");
    assert_eq!(
        header(&first, "x-ratelimit-remaining-tokens"),
        (10_000 - cost).to_string()
    );
    // Fully replenished when this admission leaves the 60 s window.
    assert_eq!(header(&first, "x-ratelimit-reset-requests"), "1m0s");
    assert_eq!(header(&first, "x-ratelimit-reset-tokens"), "1m0s");
    assert!(header(&first, "x-request-id").starts_with("req_sim_"));

    tokio::time::advance(Duration::from_millis(12_345)).await;
    let second = h.chat(&chat_body(1)).await;
    assert_eq!(header(&second, "x-ratelimit-remaining-requests"), "8");
    let reset = parse_go_duration(header(&second, "x-ratelimit-reset-requests")).unwrap();
    assert_eq!(reset, secs(60));

    // When the second admission is refused, the headers still describe the window.
    h.sim.set_limits(Some(2), Some(10_000)).unwrap();
    tokio::time::advance(secs(1)).await;
    let refused = h.chat(&chat_body(1)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    // The last admission (1 s ago) leaves in 59 s; the first in 60 - 13.345 = 46.655 s.
    assert_eq!(header(&refused, "x-ratelimit-reset-requests"), "59s");
    assert_eq!(header(&refused, "retry-after-ms"), "46655");
    let reset = parse_go_duration(header(&refused, "x-ratelimit-reset-tokens")).unwrap();
    assert_eq!(reset, secs(59));
}

#[tokio::test(start_paused = true)]
async fn anthropic_headers_carry_rfc3339_resets() {
    let h = Harness::start(SimConfig {
        rpm: Some(50),
        tpm: Some(20_000),
        headers: HeaderStyle::Anthropic,
        ..SimConfig::default()
    })
    .await;
    let first = h.chat(&chat_body(10)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "anthropic-ratelimit-requests-limit"), "50");
    assert_eq!(
        header(&first, "anthropic-ratelimit-requests-remaining"),
        "49"
    );
    assert_eq!(header(&first, "anthropic-ratelimit-tokens-limit"), "20000");
    assert!(first.headers().get("x-ratelimit-limit-requests").is_none());
    let reset_first =
        humantime::parse_rfc3339(header(&first, "anthropic-ratelimit-requests-reset")).unwrap();
    assert!(header(&first, "anthropic-ratelimit-tokens-reset").ends_with('Z'));

    tokio::time::advance(secs(20)).await;
    let second = h.chat(&chat_body(10)).await;
    let reset_second =
        humantime::parse_rfc3339(header(&second, "anthropic-ratelimit-requests-reset")).unwrap();
    // Both are the start's wall time plus a whole number of seconds, rounded up alike.
    assert_eq!(reset_second.duration_since(reset_first).unwrap(), secs(20));
}

#[tokio::test(start_paused = true)]
async fn style_none_sends_only_retry_headers() {
    let h = Harness::start(SimConfig {
        rpm: Some(1),
        headers: HeaderStyle::None,
        ..SimConfig::default()
    })
    .await;
    let ok = h.chat(&chat_body(1)).await;
    assert!(
        ok.headers()
            .keys()
            .all(|name| !name.as_str().contains("ratelimit")),
        "{:?}",
        ok.headers()
    );
    let refused = h.chat(&chat_body(1)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "60");
    assert!(
        refused
            .headers()
            .keys()
            .all(|name| !name.as_str().contains("ratelimit"))
    );
}

#[tokio::test(start_paused = true)]
async fn unlimited_kinds_send_no_headers() {
    let h = Harness::start(SimConfig {
        tpm: Some(5_000),
        ..SimConfig::default()
    })
    .await;
    let ok = h.chat(&chat_body(1)).await;
    assert!(ok.headers().get("x-ratelimit-limit-requests").is_none());
    assert_eq!(header(&ok, "x-ratelimit-limit-tokens"), "5000");
}
