//! Quickstart: plan a burst of LLM requests under RPM and TPM limits, with no API key and no I/O.
//!
//! Run with `cargo run -p llm-ratelimit --example quickstart`. It pushes 12 chat requests through a
//! policy of 20 requests and 10,000 tokens per minute, reserving each request's estimate
//! (prompt + max_tokens), settling it with the "actual" usage, and prints when each may go.
#![allow(clippy::print_stdout)]

use llm_ratelimit::core::time::NANOS_PER_SEC;
use llm_ratelimit::{Cost, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut policy = Policy::builder()
        .requests_per_minute(20)
        .tokens_per_minute(10_000)
        .build()?;

    println!("policy: 20 requests/min, 10,000 tokens/min (GCRA, burst = one minute's worth)\n");
    println!(
        "{:>4}  {:>8}  {:>8}  {:>10}  {:>8}",
        "req", "estimate", "actual", "starts at", "refund"
    );
    let now = 0;
    let mut last_start = now;
    for i in 0..12u64 {
        let prompt = 800 + 150 * (i % 4);
        let max_tokens = 1_000;
        // Reserve the estimate at the earliest instant every limit admits it (first come, first served).
        let mut grant = policy.reserve(&Cost::request(prompt, max_tokens), now)?;
        let starts = grant.ready_at();
        last_start = starts;
        // ... the request would be sent at `starts`; the provider answers with fewer tokens:
        let completion = 200 + 97 * (i % 5);
        let actual = Cost::request(prompt, completion);
        policy.adjust(&mut grant, &actual, starts);
        policy.release(grant);
        println!(
            "{:>4}  {:>8}  {:>8}  {:>9.3}s  {:>8}",
            i + 1,
            prompt + max_tokens,
            prompt + completion,
            starts as f64 / NANOS_PER_SEC as f64,
            max_tokens - completion
        );
    }
    let status = policy.status(last_start);
    println!(
        "\nat {:.3}s, when the last request starts:",
        last_start as f64 / NANOS_PER_SEC as f64
    );
    for limit in status.limits() {
        println!(
            "  {:?} per {}s: {} of {} remaining, full again {:.3}s later",
            limit.resource,
            limit.window / NANOS_PER_SEC,
            limit.status.remaining,
            limit.status.limit,
            limit.status.reset_after as f64 / NANOS_PER_SEC as f64
        );
    }
    Ok(())
}
