//! Running a batch from the command line: Ctrl-C handling, the progress bar, the summary and the
//! Prometheus metrics file. `run` and `demo` both go through here.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use metrics_exporter_prometheus::PrometheusHandle;
use ratelimit_batch::{Batch, BatchConfig, Stop, Stopper, Summary};
use ratelimit_client::Client;

/// How the run is shown.
pub(crate) struct Show {
    /// Draw a live progress bar (on stderr).
    pub(crate) progress: bool,
    /// Write the Prometheus metrics here at the end.
    pub(crate) metrics_file: Option<PathBuf>,
}

/// Runs the batch with a progress bar; the first Ctrl-C drains, the second aborts.
pub(crate) async fn execute(
    client: Client,
    config: BatchConfig,
    show: &Show,
    metrics: Option<&PrometheusHandle>,
) -> Result<Summary> {
    let batch = Batch::new(client.clone(), config);
    let progress = batch.progress();
    let stopper = Stopper::new();
    let signals = tokio::spawn({
        let stopper = stopper.clone();
        async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                match stopper.escalate() {
                    Stop::Drain => eprintln!(
                        "\nstopping: finishing the requests in flight (Ctrl-C again to abandon them)"
                    ),
                    _ => eprintln!("\nabandoning the requests in flight (a rerun sends them)"),
                }
            }
        }
    });
    let bar = show.progress.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} ({eta} left) {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let ticker = bar.clone().map(|bar| {
        let (progress, client) = (progress.clone(), client.clone());
        tokio::spawn(async move {
            loop {
                let p = progress.snapshot();
                let c = client.stats();
                bar.set_length(p.total);
                bar.set_position(p.skipped + p.finished() + p.malformed);
                bar.set_message(format!(
                    "{:.0} req/min, {:.0} tok/min, 429s {}, retries {}, in flight {}",
                    p.requests_per_minute(),
                    p.tokens_per_minute(),
                    c.rate_limited,
                    c.retries,
                    p.in_flight
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });
    let result = batch.run(&stopper).await;
    if let Some(t) = ticker {
        t.abort();
    }
    signals.abort();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = result?;
    print_summary(&summary, &client);
    if let (Some(path), Some(handle)) = (&show.metrics_file, metrics) {
        std::fs::write(path, handle.render())
            .with_context(|| format!("writing the metrics to {}", path.display()))?;
    }
    Ok(summary)
}

/// The final report, on stdout.
fn print_summary(summary: &Summary, client: &Client) {
    let p = &summary.progress;
    let c = client.stats();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\n{} succeeded, {} failed, {} skipped (done before), {} unreadable line(s) in {:.1} s",
        p.succeeded,
        p.failed,
        p.skipped,
        p.malformed,
        p.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "pace: {:.0} requests/min, {:.0} tokens/min; waited for the limiter: {} ({:.0}%); provider 429s: {}, retries: {}",
        p.requests_per_minute(),
        p.tokens_per_minute(),
        p.limited,
        100.0 * p.hit_rate(),
        c.rate_limited,
        c.retries
    );
    let [p50, p95, p99] = p.latency.map(|d| d.as_secs_f64());
    let _ = writeln!(
        out,
        "latency (waiting for the limiter included): p50 {p50:.2} s, p95 {p95:.2} s, p99 {p99:.2} s"
    );
    for e in summary.bad_lines.iter().take(10) {
        let _ = writeln!(out, "  skipped {e}");
    }
    if summary.bad_lines.len() > 10 {
        let _ = writeln!(out, "  ... and {} more", p.malformed - 10);
    }
    if summary.repaired_output {
        let _ = writeln!(
            out,
            "note: the output's torn last line (from a killed run) was cut off"
        );
    }
    if summary.stopped != Stop::Run {
        let _ = writeln!(out, "interrupted: run the same command again to finish");
    }
}
