//! Faults: forced per request by `x-sim-fault`, or drawn at random from a seed.

use std::time::Duration;

use futures_util::StreamExt;
use ratelimit_openai::sse::ChatStreamDecoder;
use ratelimit_sim::{FAULT_HEADER, Faults, SimConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::{Harness, chat_body, expect_error, header, secs};

#[tokio::test(start_paused = true)]
async fn forced_500_and_503_count_against_the_limits() {
    let h = Harness::start(SimConfig {
        rpm: Some(10),
        ..SimConfig::default()
    })
    .await;
    for (fault, status) in [
        ("500", StatusCode::INTERNAL_SERVER_ERROR),
        ("503", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let response = h
            .post(
                "/v1/chat/completions",
                &chat_body(5),
                &[(FAULT_HEADER, fault)],
            )
            .await;
        assert!(
            response
                .headers()
                .get("x-ratelimit-remaining-requests")
                .is_some()
        );
        let error = expect_error(response, status).await;
        assert_eq!(error.error.kind.as_deref(), Some("server_error"));
    }
    let stats = h.sim.stats();
    assert_eq!((stats.accepted, stats.errors_injected), (2, 2));
    assert_eq!(stats.completion_tokens, 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_fault_delays_the_answer() {
    let h = Harness::start(SimConfig {
        faults: Faults {
            slow_delay: secs(30),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let response = h
        .post(
            "/v1/chat/completions",
            &chat_body(5),
            &[(FAULT_HEADER, "slow")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= secs(30));
    let normal = tokio::time::Instant::now();
    assert_eq!(h.chat(&chat_body(5)).await.status(), StatusCode::OK);
    assert!(normal.elapsed() < secs(30));
    let stats = h.sim.stats();
    assert_eq!((stats.slowed, stats.errors_injected), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_reset_fault_cuts_the_body() {
    let h = Harness::start(SimConfig::default()).await;
    let response = h
        .post(
            "/v1/chat/completions",
            &chat_body(20),
            &[(FAULT_HEADER, "RESET")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.is_err(),
        "the body must not arrive whole"
    );

    let mut streamed = chat_body(20);
    streamed["stream"] = json!(true);
    let response = h
        .post(
            "/v1/chat/completions",
            &streamed,
            &[(FAULT_HEADER, "reset")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut decoder = ChatStreamDecoder::new();
    let mut events = Vec::new();
    let mut body = response.bytes_stream();
    let mut cut = false;
    while let Some(bytes) = body.next().await {
        match bytes {
            Ok(bytes) => decoder.feed(&bytes, &mut events).expect("valid events"),
            Err(_) => cut = true,
        }
    }
    assert!(cut, "the stream must end in an error");
    assert!(!events.is_empty(), "part of the stream arrives");
    assert!(!decoder.is_done());
    assert_eq!(h.sim.stats().errors_injected, 2);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_fault_is_a_bad_request() {
    let h = Harness::start(SimConfig::default()).await;
    let response = h
        .post(
            "/v1/chat/completions",
            &chat_body(5),
            &[(FAULT_HEADER, "teapot")],
        )
        .await;
    let error = expect_error(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error.error.param.as_deref(), Some(FAULT_HEADER));
    assert_eq!(h.sim.stats().accepted, 0);
}

/// The statuses of `count` chat requests to a simulator with these faults and seed.
async fn statuses(faults: Faults, seed: u64, count: usize) -> Vec<u16> {
    let h = Harness::start(SimConfig {
        faults,
        seed,
        ..SimConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(h.chat(&chat_body(1)).await.status().as_u16());
    }
    statuses
}

#[tokio::test(start_paused = true)]
async fn random_faults_follow_their_probabilities_and_seed() {
    let always_500 = Faults {
        error_500: 1.0,
        ..Faults::default()
    };
    assert_eq!(statuses(always_500, 1, 5).await, vec![500; 5]);
    let always_503 = Faults {
        error_503: 1.0,
        ..Faults::default()
    };
    assert_eq!(statuses(always_503, 1, 5).await, vec![503; 5]);

    let mixed = Faults {
        error_500: 0.3,
        error_503: 0.3,
        ..Faults::default()
    };
    let first = statuses(mixed, 42, 60).await;
    assert_eq!(
        statuses(mixed, 42, 60).await,
        first,
        "the same seed gives the same faults"
    );
    assert!(first.iter().all(|status| [200, 500, 503].contains(status)));
    for status in [200, 500, 503] {
        assert!(first.contains(&status), "{status} never drawn in {first:?}");
    }
    assert_ne!(
        statuses(mixed, 43, 60).await,
        first,
        "another seed, other faults"
    );
}

#[tokio::test(start_paused = true)]
async fn faulted_answers_carry_the_latency_and_headers() {
    let h = Harness::start(SimConfig {
        rpm: Some(5),
        latency: ratelimit_sim::Latency {
            base: Duration::from_millis(250),
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let response = h
        .post(
            "/v1/chat/completions",
            &chat_body(5),
            &[(FAULT_HEADER, "503")],
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(header(&response, "x-ratelimit-remaining-requests"), "4");
}
