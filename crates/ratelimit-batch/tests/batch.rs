//! The batch runner end to end against the simulated provider on 127.0.0.1: paced with no 429s,
//! malformed lines reported and skipped, resume, interruption (drain and abort), a torn output
//! line repaired, a provider that errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ratelimit_batch::{Batch, BatchConfig, Outcome, Stop, Stopper};
use ratelimit_client::{Client, RetryPolicy};
use ratelimit_core::{AlgorithmKind, Limit, Policy, Resource};
use ratelimit_memory::MemoryLimiter;
use ratelimit_sim::{Faults, Latency, Sim, SimConfig, SimHandle};

/// `n` per second, counted as the simulator's referee counts (a sliding log), over a window 50 ms
/// longer than the provider's: requests reach the provider a variable few milliseconds after
/// their grant, so two grants exactly one window apart can land less than a window apart.
fn per_second(n: u64) -> Policy {
    Policy::builder()
        .limit(
            Limit::new(Resource::Requests, n, Duration::from_millis(1_050))
                .algorithm(AlgorithmKind::SlidingWindowLog),
        )
        .build()
        .unwrap()
}

async fn sim(rps: u64, faults: Faults) -> SimHandle {
    Sim::start(SimConfig {
        rpm: Some(rps),
        window: Duration::from_secs(1),
        latency: Latency {
            base: Duration::from_millis(30),
            per_output_token: Duration::ZERO,
        },
        faults,
        seed: 7,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(sim: &SimHandle, policy: Policy) -> Client {
    Client::builder()
        .base_url(format!("{}/v1", sim.base_url()))
        .api_key("sk-sim")
        .limiter(Arc::new(MemoryLimiter::new(policy)))
        .retry(RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        })
        .build()
        .unwrap()
}

fn chat_line(id: &str) -> String {
    serde_json::json!({
        "custom_id": id, "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("Hello {id}")}], "max_tokens": 20}
    })
    .to_string()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ratelimit-batch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn outcomes(path: &Path) -> Vec<Outcome> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the output ends with a whole line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid output line {l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_runs_paced_with_no_429s_reports_bad_lines_and_resumes() {
    let sim = sim(10, Faults::default()).await;
    let dir = temp("main");
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    let mut lines: Vec<String> = (0..24).map(|i| chat_line(&format!("r{i}"))).collect();
    lines.insert(3, "{this is not json".into());
    lines.insert(7, String::new());
    lines.insert(9, chat_line("r1")); // a duplicate id
    lines.push(
        r#"{"model":"text-embedding-3-small","input":"bare body","metadata":{"id":"emb"}}"#.into(),
    );
    lines.push(
        r#"{"custom_id":"img","url":"/v1/images/generations","body":{"prompt":"a cat"}}"#.into(),
    );
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let mut config = BatchConfig::new(&input, &output);
    config.default_endpoint = "/v1/embeddings".into();
    let summary = Batch::new(client(&sim, per_second(10)), config.clone())
        .run(&Stopper::new())
        .await
        .unwrap();
    let p = &summary.progress;
    assert_eq!(summary.stopped, Stop::Run);
    assert_eq!(
        (p.succeeded, p.failed, p.malformed),
        (25, 1, 2),
        "{summary:?}"
    );
    let bad: Vec<u64> = summary.bad_lines.iter().map(|e| e.line).collect();
    assert_eq!(bad, [4, 10], "line numbers of the bad lines");
    assert!(summary.bad_lines[1].message.contains("duplicate"));

    let results = outcomes(&output);
    assert_eq!(results.len(), 26, "one line per request");
    let failed: Vec<_> = results.iter().filter(|o| !o.is_success()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].custom_id, "img");
    assert!(failed[0].error.as_ref().unwrap().permanent);
    let emb = results.iter().find(|o| o.custom_id == "emb").unwrap();
    assert_eq!(emb.response.as_ref().unwrap().body["object"], "list");

    let stats = sim.stats();
    assert_eq!(stats.rejected_429, 0, "paced by the limiter: {stats:?}");
    assert_eq!(stats.accepted, 25);
    assert!(stats.peak_requests <= 10, "{stats:?}");

    // A rerun has nothing left to send.
    let again = Batch::new(client(&sim, per_second(10)), config.clone())
        .run(&Stopper::new())
        .await
        .unwrap();
    assert_eq!((again.progress.skipped, again.progress.finished()), (26, 0));
    assert_eq!(sim.stats().accepted, 25);
    // With retry_errors, only the failed one goes again (and fails again).
    config.retry_errors = true;
    let retried = Batch::new(client(&sim, per_second(10)), config)
        .run(&Stopper::new())
        .await
        .unwrap();
    assert_eq!((retried.progress.skipped, retried.progress.failed), (25, 1));
    assert_eq!(outcomes(&output).len(), 27);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_leaves_a_valid_file_and_the_rerun_finishes_the_rest() {
    for stop in [Stop::Drain, Stop::Abort] {
        let sim = sim(100, Faults::default()).await;
        let dir = temp(&format!("stop-{stop:?}"));
        let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
        let ids: Vec<String> = (0..40).map(|i| format!("q{i}")).collect();
        let lines: Vec<String> = ids.iter().map(|id| chat_line(id)).collect();
        std::fs::write(&input, lines.join("\n")).unwrap(); // no final newline: still read
        let config = BatchConfig::new(&input, &output);

        let stopper = Stopper::new();
        let run = tokio::spawn({
            let (stopper, config, client) = (
                stopper.clone(),
                config.clone(),
                client(&sim, per_second(10)),
            );
            async move { Batch::new(client, config).run(&stopper).await }
        });
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        stopper.request(stop);
        let first = run.await.unwrap().unwrap();
        assert_eq!(first.stopped, stop);
        let written = outcomes(&output);
        assert!(
            !written.is_empty() && written.len() < 40,
            "{stop:?}: {}",
            written.len()
        );
        assert_eq!(
            written.len() as u64,
            first.progress.finished(),
            "{stop:?}: every finished request is written"
        );

        let second = Batch::new(client(&sim, per_second(100)), config)
            .run(&Stopper::new())
            .await
            .unwrap();
        assert_eq!(second.progress.skipped, written.len() as u64);
        let mut all: Vec<String> = outcomes(&output).into_iter().map(|o| o.custom_id).collect();
        all.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(
            all, expected,
            "{stop:?}: each request exactly once, none lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_from_a_killed_run_is_cut_off_before_appending() {
    let sim = sim(100, Faults::default()).await;
    let dir = temp("torn");
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    std::fs::write(&input, format!("{}\n{}\n", chat_line("a"), chat_line("b"))).unwrap();
    let done = r#"{"custom_id":"a","response":{"status_code":200,"body":{}},"error":null}"#;
    std::fs::write(&output, format!("{done}\n{{\"custom_id\":\"b\",\"resp")).unwrap();
    let summary = Batch::new(
        client(&sim, per_second(100)),
        BatchConfig::new(&input, &output),
    )
    .run(&Stopper::new())
    .await
    .unwrap();
    assert!(summary.repaired_output);
    assert_eq!(
        (summary.progress.skipped, summary.progress.succeeded),
        (1, 1)
    );
    let ids: Vec<String> = outcomes(&output).into_iter().map(|o| o.custom_id).collect();
    assert_eq!(ids, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_errors_is_retried_and_every_request_ends_as_one_line() {
    let sim = sim(
        1_000,
        Faults {
            error_500: 0.3,
            error_503: 0.2,
            ..Faults::default()
        },
    )
    .await;
    let dir = temp("faults");
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    let lines: Vec<String> = (0..30).map(|i| chat_line(&format!("f{i}"))).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let c = client(&sim, per_second(1_000));
    let summary = Batch::new(c.clone(), BatchConfig::new(&input, &output))
        .run(&Stopper::new())
        .await
        .unwrap();
    let p = &summary.progress;
    assert_eq!(p.succeeded + p.failed, 30);
    assert!(p.succeeded >= 27, "retries recover most: {p:?}");
    assert!(c.stats().retries > 0, "the faults were retried");
    assert!(sim.stats().errors_injected > 0);
    assert_eq!(outcomes(&output).len(), 30);
}
