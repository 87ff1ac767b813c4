//! The `llmrl` binary end to end: `run` against the simulated provider on 127.0.0.1 (paced, bad
//! lines reported by number, resumed), and `demo`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ratelimit_sim::{Latency, Sim, SimConfig};

fn llmrl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_llmrl"))
}

/// Runs `llmrl demo --quiet` with `args`; its stdout, after checking it succeeded.
fn demo(args: &[&str]) -> String {
    let out = llmrl()
        .args(["demo", "--quiet"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn chat_line(id: &str) -> String {
    serde_json::json!({
        "custom_id": id, "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sends_a_file_paced_reports_bad_lines_and_resumes() {
    let sim = Sim::start(SimConfig {
        rpm: Some(20),
        window: Duration::from_secs(2),
        latency: Latency {
            base: Duration::from_millis(20),
            per_output_token: Duration::ZERO,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("llmrl-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    let mut lines: Vec<String> = (0..30).map(|i| chat_line(&format!("c{i}"))).collect();
    lines.insert(5, "oops".into());
    std::fs::write(&input, lines.join("\n")).unwrap();
    let base = format!("{}/v1", sim.base_url());
    let run = |input: PathBuf, output: PathBuf, base: String| {
        tokio::task::spawn_blocking(move || {
            llmrl()
                .args(["run", "--quiet", "--input"])
                .arg(&input)
                .arg("--output")
                .arg(&output)
                .args([
                    "--base-url",
                    &base,
                    "--api-key",
                    "sk-test",
                    "--rpm",
                    "20",
                    "--minute-secs",
                    "2",
                ])
                .arg("--metrics-file")
                .arg(output.with_extension("prom"))
                .env_remove("OPENAI_API_KEY")
                .env_remove("OPENAI_BASE_URL")
                .output()
                .unwrap()
        })
    };
    let first = run(input.clone(), output.clone(), base.clone())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("30 succeeded, 0 failed"), "{stdout}");
    assert!(stdout.contains("skipped line 6: invalid JSON"), "{stdout}");
    assert!(stdout.contains("provider 429s: 0"), "{stdout}");
    // 20 go at once; the 21st waits for the window to slide (the ones after it may not).
    assert!(!stdout.contains("waited for the limiter: 0 "), "{stdout}");
    let metrics = std::fs::read_to_string(output.with_extension("prom")).unwrap();
    for series in [
        "llm_batch_requests_total{outcome=\"success\"} 30",
        "llm_batch_grants_total{waited=\"yes\"}",
        "llm_batch_latency_seconds{quantile=\"0.99\"}",
        "llm_batch_queue_depth",
        "llm_client_attempts_total 30",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    let results = std::fs::read_to_string(&output).unwrap();
    assert_eq!(results.lines().count(), 30);
    let stats = sim.stats();
    assert_eq!((stats.accepted, stats.rejected_429), (30, 0));
    assert!(stats.peak_requests <= 20);

    let again = run(input, output, base).await.unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("0 succeeded, 0 failed, 30 skipped"),
        "{stdout}"
    );
    assert_eq!(sim.stats().accepted, 30, "nothing sent again");
}

#[test]
fn demo_runs_the_main_job_with_no_429() {
    let stdout = demo(&[
        "--requests",
        "60",
        "--rpm",
        "30",
        "--tpm",
        "100000",
        "--window-secs",
        "2",
    ]);
    assert!(stdout.contains("60 succeeded, 0 failed"), "{stdout}");
    assert!(stdout.contains("60 accepted, 0 answered 429"), "{stdout}");
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = llmrl()
        .args(["mock", "--headers", "bogus", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected openai, anthropic or none"));
    let out = llmrl()
        .args([
            "run",
            "--input",
            "/nonexistent/in.jsonl",
            "--output",
            "/tmp/x.jsonl",
            "--rpm",
            "10",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/in.jsonl"));
}

#[test]
fn demo_learns_the_limits_from_the_headers() {
    // The guess (60 requests a window) is below the provider's 100: learning only raises it.
    let stdout = demo(&[
        "--learn",
        "--requests",
        "150",
        "--rpm",
        "100",
        "--tpm",
        "1000000",
        "--window-secs",
        "2",
    ]);
    assert!(stdout.contains("150 succeeded, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("limits learned from the provider's headers"),
        "{stdout}"
    );
    let rejected: u64 = stdout
        .split("accepted, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the provider's 429 count");
    assert!(rejected <= 3, "{rejected} 429s while learning: {stdout}");
}
