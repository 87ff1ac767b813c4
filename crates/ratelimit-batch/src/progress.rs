//! Live counters of a run, read by progress bars and summaries while it goes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// A run's counters, shared with whoever watches it. Cheap to update from many tasks.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    total: AtomicU64,
    skipped: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    malformed: AtomicU64,
    in_flight: AtomicU64,
    queued: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    limited: AtomicU64,
    /// Latency of each finished request, waiting for the limiter included, in microseconds.
    latency: Mutex<Histogram<u64>>,
}

/// A consistent-enough view of [`Progress`] at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Requests in the input (valid lines), once counted.
    pub total: u64,
    /// Requests skipped because an earlier run finished them.
    pub skipped: u64,
    /// Requests answered successfully in this run.
    pub succeeded: u64,
    /// Requests that failed in this run (their error is in the output).
    pub failed: u64,
    /// Input lines that could not be read (reported with their line numbers).
    pub malformed: u64,
    /// Requests sent and not answered yet.
    pub in_flight: u64,
    /// Requests read and waiting for the limiter.
    pub queued: u64,
    /// Prompt tokens reported by the provider.
    pub prompt_tokens: u64,
    /// Completion tokens reported by the provider.
    pub completion_tokens: u64,
    /// Requests that had to wait for the limiter before they could be sent (the rate-limit hit
    /// count: `limited / (succeeded + failed)` is the hit rate).
    pub limited: u64,
    /// Latency percentiles (p50, p95, p99), waiting for the limiter included.
    pub latency: [Duration; 3],
}

impl Snapshot {
    /// Requests this run finished (succeeded or failed).
    #[must_use]
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// Requests per minute over the run so far.
    #[must_use]
    pub fn requests_per_minute(&self) -> f64 {
        per_minute(self.finished(), self.elapsed)
    }

    /// Tokens (prompt + completion) per minute over the run so far.
    #[must_use]
    pub fn tokens_per_minute(&self) -> f64 {
        per_minute(self.prompt_tokens + self.completion_tokens, self.elapsed)
    }

    /// The share of finished requests that had to wait for the limiter.
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        if self.finished() == 0 {
            0.0
        } else {
            self.limited as f64 / self.finished() as f64
        }
    }

    /// Time left at the current pace, once there is a pace and a total.
    #[must_use]
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total.checked_sub(self.skipped + self.finished())?;
        let rate = self.finished() as f64 / self.elapsed.as_secs_f64();
        (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(left as f64 / rate))
    }
}

fn per_minute(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 * 60.0 / secs
    } else {
        0.0
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Counters starting now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            total: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 24 * 3_600 * 1_000_000, 3).expect("valid bounds"),
            ),
        }
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let latency = {
            let h = self.latency.lock();
            [50.0, 95.0, 99.0].map(|q| Duration::from_micros(h.value_at_quantile(q / 100.0)))
        };
        Snapshot {
            elapsed: self.started.elapsed(),
            total: load(&self.total),
            skipped: load(&self.skipped),
            succeeded: load(&self.succeeded),
            failed: load(&self.failed),
            malformed: load(&self.malformed),
            in_flight: load(&self.in_flight),
            queued: load(&self.queued),
            prompt_tokens: load(&self.prompt_tokens),
            completion_tokens: load(&self.completion_tokens),
            limited: load(&self.limited),
            latency,
        }
    }

    pub(crate) fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }

    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("llm_batch_malformed_lines_total").increment(1);
    }

    /// A request waited `waited` for its grant.
    pub(crate) fn granted(&self, waited: std::time::Duration) {
        let hit = !waited.is_zero();
        if hit {
            self.limited.fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!("llm_batch_grants_total", "waited" => if hit { "yes" } else { "no" })
            .increment(1);
        metrics::histogram!("llm_batch_limiter_wait_seconds").record(waited.as_secs_f64());
    }

    pub(crate) fn queued(&self, delta: i64) {
        add(&self.queued, delta);
        metrics::gauge!("llm_batch_queue_depth").increment(delta as f64);
    }

    pub(crate) fn in_flight(&self, delta: i64) {
        add(&self.in_flight, delta);
        metrics::gauge!("llm_batch_in_flight").increment(delta as f64);
    }

    pub(crate) fn finished(&self, ok: bool, latency: Duration, tokens: (u64, u64)) {
        let (counter, outcome) = if ok {
            (&self.succeeded, "success")
        } else {
            (&self.failed, "error")
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(tokens.0, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(tokens.1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.lock().saturating_record(micros);
        metrics::counter!("llm_batch_requests_total", "outcome" => outcome).increment(1);
        metrics::counter!("llm_batch_tokens_total", "kind" => "prompt").increment(tokens.0);
        metrics::counter!("llm_batch_tokens_total", "kind" => "completion").increment(tokens.1);
        metrics::histogram!("llm_batch_latency_seconds").record(latency.as_secs_f64());
    }
}

fn add(a: &AtomicU64, delta: i64) {
    if delta >= 0 {
        a.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        a.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}
