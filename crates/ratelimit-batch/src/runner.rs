//! The run: read, pace on the limiter, send, write; stop cleanly when asked.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use ratelimit_client::{Call, Client, ClientError};
use ratelimit_limiter::{Priority, Request};
use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::error::BatchError;
use crate::output::{Writer, scan};
use crate::progress::{Progress, Snapshot};
use crate::record::{Failure, Item, LineError, Outcome, Response, parse_line};

/// Line errors kept for the summary (all are logged; counting goes on past this).
const MAX_REPORTED_LINES: usize = 1_000;

/// What a run reads, writes and how hard it pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// The JSONL requests (see [`parse_line`](crate::parse_line) for the accepted lines).
    pub input: PathBuf,
    /// The JSONL results; appended to, and read first to skip what an earlier run finished.
    pub output: PathBuf,
    /// Where lines that are bare request bodies go (default `/v1/chat/completions`).
    pub default_endpoint: String,
    /// On a rerun, send again the requests whose earlier result was an error (their new result
    /// is appended; the last line of an id is its result). Default: only never-answered ones.
    pub retry_errors: bool,
    /// Requests read ahead of the limiter (backpressure: the input is read no faster).
    pub read_ahead: usize,
    /// A safety cap on requests in flight; the limiter decides the pace well below it.
    pub max_in_flight: usize,
    /// The priority class of the batch's requests on a shared limiter (default: batch).
    pub priority: Priority,
}

impl BatchConfig {
    /// Defaults for reading `input` and writing `output`.
    #[must_use]
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        Self {
            input: input.into(),
            output: output.into(),
            default_endpoint: "/v1/chat/completions".into(),
            retry_errors: false,
            read_ahead: 1_024,
            max_in_flight: 10_000,
            priority: Priority::Batch,
        }
    }
}

/// How far a run is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep going.
    Run,
    /// Send nothing new; finish what is in flight and write it (the first Ctrl-C).
    Drain,
    /// Abandon what is in flight (it is not written, so a rerun sends it again; the second Ctrl-C).
    Abort,
}

/// Asks a running batch to stop; clones share one signal.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<watch::Sender<Stop>>);

impl Default for Stopper {
    fn default() -> Self {
        Self::new()
    }
}

impl Stopper {
    /// A signal that says "run".
    #[must_use]
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(Stop::Run).0))
    }

    /// Escalates the signal (never de-escalates).
    pub fn request(&self, stop: Stop) {
        self.0.send_if_modified(|s| {
            let escalate = stop > *s;
            if escalate {
                *s = stop;
            }
            escalate
        });
    }

    /// Escalates one step: run → drain → abort (what successive Ctrl-Cs do).
    pub fn escalate(&self) -> Stop {
        let next = match *self.0.borrow() {
            Stop::Run => Stop::Drain,
            _ => Stop::Abort,
        };
        self.request(next);
        next
    }

    fn subscribe(&self) -> watch::Receiver<Stop> {
        self.0.subscribe()
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The counters at the end.
    pub progress: Snapshot,
    /// How far it was asked to stop ([`Stop::Run`]: it read the whole input).
    pub stopped: Stop,
    /// Input lines that could not be read (the first 1,000).
    pub bad_lines: Vec<LineError>,
    /// An earlier run's torn last output line was cut off.
    pub repaired_output: bool,
}

/// A batch job: every request of the input through `client`, results in the output.
///
/// The dispatch is paced on the client's limiter: a request is read, waits for its grant (in
/// FIFO order, as a batch-class request), then is sent under that grant, so the number of
/// requests in flight is what the limits and the provider's latency make it, not a guess.
/// Nothing is lost: every request read ends as exactly one result line (answer or error), and a
/// request in flight when the run is aborted ends as none (a rerun sends it).
#[derive(Debug)]
pub struct Batch {
    client: Client,
    config: BatchConfig,
    progress: Arc<Progress>,
}

impl Batch {
    /// A job sending through `client` (whose limiter paces it).
    #[must_use]
    pub fn new(client: Client, config: BatchConfig) -> Self {
        Self {
            client,
            config,
            progress: Arc::new(Progress::new()),
        }
    }

    /// The live counters (for a progress bar).
    #[must_use]
    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Runs the job until the input is done or `stopper` says stop.
    ///
    /// # Errors
    /// [`BatchError`] when the input cannot be read or the output written; a single request's
    /// failure is its result line, never an error of the run.
    pub async fn run(self, stopper: &Stopper) -> Result<Summary, BatchError> {
        let c = &self.config;
        if c.read_ahead == 0 || c.max_in_flight == 0 {
            return Err(BatchError::Config(
                "read_ahead and max_in_flight must be at least 1".into(),
            ));
        }
        let earlier = scan(&c.output, c.retry_errors).await?;
        self.progress.set_total(count_lines(&c.input).await?);
        let mut writer = Writer::open(&c.output).await?;
        let bad_lines = Arc::new(Mutex::new(Vec::new()));

        let (items_tx, mut items_rx) = mpsc::channel::<Item>(c.read_ahead);
        let reader = tokio::spawn(read_input(
            c.input.clone(),
            c.default_endpoint.clone(),
            earlier.done,
            items_tx,
            Arc::clone(&self.progress),
            Arc::clone(&bad_lines),
            stopper.subscribe(),
        ));

        let (results_tx, mut results_rx) = mpsc::unbounded_channel::<Outcome>();
        let write_all = async move {
            while let Some(outcome) = results_rx.recv().await {
                writer.write(&outcome).await?;
            }
            writer.finish().await
        };
        let dispatch = self.dispatch(&mut items_rx, results_tx, stopper);
        let (written, stopped) = tokio::join!(write_all, dispatch);
        written?;
        // The reader ends once the dispatcher stops taking items.
        drop(items_rx);
        reader
            .await
            .map_err(|e| BatchError::Internal(format!("reader: {e}")))??;
        let bad_lines = std::mem::take(&mut *bad_lines.lock());
        Ok(Summary {
            progress: self.progress.snapshot(),
            stopped,
            bad_lines,
            repaired_output: earlier.repaired,
        })
    }

    /// Takes items in order, waits for each one's grant, sends it under that grant.
    async fn dispatch(
        &self,
        items: &mut mpsc::Receiver<Item>,
        results: mpsc::UnboundedSender<Outcome>,
        stopper: &Stopper,
    ) -> Stop {
        let mut stop = stopper.subscribe();
        let slots = Arc::new(Semaphore::new(self.config.max_in_flight));
        let mut tasks = JoinSet::new();
        let limiter = self.client.limiter().cloned();
        loop {
            if *stop.borrow() != Stop::Run {
                break;
            }
            let item = tokio::select! {
                item = items.recv() => match item {
                    Some(item) => item,
                    None => break,
                },
                _ = stop.changed() => continue,
            };
            self.progress.queued(-1);
            let started = Instant::now();
            let call = match Call::from_json(&item.endpoint, item.body) {
                Ok(call) => call,
                Err(e) => {
                    self.finish(&results, item.id, Err(e), started);
                    continue;
                }
            };
            let permit = match &limiter {
                Some(l) => {
                    let request = Request::new(call.cost(self.client.estimator()))
                        .key(self.client.key())
                        .priority(self.config.priority);
                    tokio::select! {
                        granted = l.acquire(request) => match granted {
                            Ok(p) => {
                                self.progress.granted(p.waited());
                                Some(p)
                            }
                            Err(e) => {
                                self.finish(&results, item.id, Err(e.into()), started);
                                continue;
                            }
                        },
                        // Not sent: a rerun sends it.
                        _ = stop.wait_for(|s| *s != Stop::Run) => break,
                    }
                }
                None => None,
            };
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let (client, results, progress) = (
                self.client.clone(),
                results.clone(),
                Arc::clone(&self.progress),
            );
            let id = item.id;
            progress.in_flight(1);
            tasks.spawn(async move {
                let result = client.call(&call, permit).await;
                progress.in_flight(-1);
                finish_with(&progress, &results, id, result, started);
                drop(slot);
            });
            // Reap finished tasks as we go so the set stays small.
            while tasks.try_join_next().is_some() {}
        }
        let stopped = *stop.borrow();
        if stopped == Stop::Abort {
            tasks.abort_all();
        }
        loop {
            tokio::select! {
                done = tasks.join_next() => if done.is_none() { break },
                _ = stop.wait_for(|s| *s == Stop::Abort) => tasks.abort_all(),
            }
        }
        *stop.borrow()
    }

    fn finish(
        &self,
        results: &mpsc::UnboundedSender<Outcome>,
        id: String,
        result: Result<ratelimit_client::CallResult, ClientError>,
        started: Instant,
    ) {
        finish_with(&self.progress, results, id, result, started);
    }
}

fn finish_with(
    progress: &Progress,
    results: &mpsc::UnboundedSender<Outcome>,
    id: String,
    result: Result<ratelimit_client::CallResult, ClientError>,
    started: Instant,
) {
    let latency = started.elapsed();
    let outcome = match result {
        Ok(r) => {
            progress.finished(true, latency, (r.prompt_tokens, r.completion_tokens));
            Outcome {
                custom_id: id,
                response: Some(Response {
                    status_code: 200,
                    body: r.body,
                }),
                error: None,
            }
        }
        Err(e) => {
            progress.finished(false, latency, (0, 0));
            tracing::debug!(id, error = %e, "request failed");
            Outcome {
                custom_id: id,
                response: None,
                error: Some(Failure {
                    message: e.to_string(),
                    status: e.status(),
                    permanent: e.is_permanent(),
                }),
            }
        }
    };
    // The writer outlives every task; a send can only fail if it failed, which the run reports.
    let _ = results.send(outcome);
}

/// Non-blank lines of the input: the total for progress and ETA (one streaming pass).
async fn count_lines(path: &std::path::Path) -> Result<u64, BatchError> {
    let file = File::open(path)
        .await
        .map_err(|e| BatchError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| BatchError::io(path, e))?
            == 0
        {
            return Ok(n);
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            n += 1;
        }
    }
}

/// Streams the input: parses each line, skips what is done, hands the rest over (waiting when
/// the dispatcher is behind: the input is never read further ahead than `read_ahead`).
async fn read_input(
    path: PathBuf,
    default_endpoint: String,
    done: HashSet<String>,
    items: mpsc::Sender<Item>,
    progress: Arc<Progress>,
    bad_lines: Arc<Mutex<Vec<LineError>>>,
    mut stop: watch::Receiver<Stop>,
) -> Result<(), BatchError> {
    let file = File::open(&path)
        .await
        .map_err(|e| BatchError::io(&path, e))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut seen = HashSet::new();
    let mut number = 0_u64;
    let report = |e: LineError| {
        tracing::warn!(line = e.line, error = %e.message, "input line skipped");
        progress.malformed();
        let mut bad = bad_lines.lock();
        if bad.len() < MAX_REPORTED_LINES {
            bad.push(e);
        }
    };
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| BatchError::io(&path, e))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let Ok(text) = std::str::from_utf8(&buf) else {
            report(LineError {
                line: number,
                message: "not UTF-8".into(),
            });
            continue;
        };
        let item = match parse_line(text, number, &default_endpoint) {
            Ok(Some(item)) => item,
            Ok(None) => continue,
            Err(e) => {
                report(e);
                continue;
            }
        };
        if !seen.insert(item.id.clone()) {
            report(LineError {
                line: number,
                message: format!("duplicate id {:?} (ids must be unique to resume)", item.id),
            });
            continue;
        }
        if done.contains(&item.id) {
            progress.skipped();
            continue;
        }
        progress.queued(1);
        tokio::select! {
            sent = items.send(item) => if sent.is_err() {
                progress.queued(-1);
                return Ok(()); // the dispatcher stopped
            },
            _ = stop.wait_for(|s| *s != Stop::Run) => {
                progress.queued(-1);
                return Ok(());
            }
        }
    }
}
