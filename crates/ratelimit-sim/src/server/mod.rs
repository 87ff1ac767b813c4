//! The HTTP server: starting and stopping it, and the state its handlers share.

mod answer;
mod gate;
mod routes;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use parking_lot::Mutex;
use rand::{SeedableRng, rngs::StdRng};
use ratelimit_openai::Encoding;
use thiserror::Error;
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};

use crate::{
    ConfigError, SimConfig, SimStats, config::validate_limits, referee::Referee, stats::nanos,
};

/// Why the simulator could not start or stopped badly.
#[derive(Debug, Error)]
pub enum SimError {
    /// The configuration is invalid.
    #[error("invalid simulator configuration: {0}")]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("simulator server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The server task panicked or was cancelled.
    #[error("simulator server task ended abnormally: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The simulated provider. [`Sim::start`] runs one on the current tokio runtime.
///
/// ```
/// use ratelimit_sim::{Sim, SimConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ratelimit_sim::SimError> {
/// let sim = Sim::start(SimConfig { rpm: Some(100), ..SimConfig::default() }).await?;
/// let url = format!("{}/v1/chat/completions", sim.base_url()); // http://127.0.0.1:<port>/v1/...
/// assert!(url.starts_with("http://127.0.0.1:"));
/// assert_eq!(sim.stats().accepted, 0);
/// sim.set_limits(Some(10), Some(5_000))?; // the limits drop mid-run
/// sim.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Sim;

impl Sim {
    /// Validates `config`, binds `config.bind` (default `127.0.0.1:0`) and serves on a spawned
    /// task until [`SimHandle::shutdown`] (or until the handle is dropped).
    ///
    /// # Errors
    ///
    /// [`SimError::Config`] for an invalid configuration, [`SimError::Bind`] if the address
    /// cannot be bound.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        config.validate()?;
        // Parse the tokenizer tables off the runtime's threads, before the first request needs
        // them (a panic there would resurface, as a panic, at the first count).
        let _ = tokio::task::spawn_blocking(|| {
            Encoding::O200kBase.preload();
            Encoding::Cl100kBase.preload();
        })
        .await;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.bind,
            source,
        })?;
        let shared = Arc::new(Shared::new(config));
        let router = routes::router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(SimHandle {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running simulator: its address, its counters, its limits. Dropping it stops the server
/// (in-flight answers are finished first).
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a path: the endpoints are `/v1/chat/completions`,
    /// `/v1/completions`, `/v1/embeddings`, `/v1/models` and `/sim/stats` (OpenAI SDKs want
    /// `base_url() + "/v1"`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Changes the limits from now on (`None`: unlimited). What the window holds stays, so
    /// lowering a limit below the current load refuses requests until enough has left it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for a limit of zero (nothing is changed).
    pub fn set_limits(&self, rpm: Option<u64>, tpm: Option<u64>) -> Result<(), ConfigError> {
        validate_limits(rpm, tpm)?;
        self.shared.state.lock().referee.set_limits(rpm, tpm);
        Ok(())
    }

    /// Stops accepting connections, lets in-flight answers finish, and waits for the server
    /// to stop.
    ///
    /// # Errors
    ///
    /// [`SimError::Serve`] or [`SimError::Task`] if the server failed.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(SimError::Task)?.map_err(SimError::Serve),
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A fault to inject into one admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer 500.
    Error500,
    /// Answer 503.
    Error503,
    /// Answer normally, `faults.slow_delay` later.
    Slow,
    /// Send the status and headers, part of the body, then cut the connection.
    Reset,
}

/// Counters that are not the referee's.
#[derive(Debug, Default)]
struct Counters {
    rejected_429: u64,
    rejected_too_large: u64,
    invalid: u64,
    unauthorized: u64,
    errors_injected: u64,
    slowed: u64,
    completion_tokens: u64,
}

#[derive(Debug)]
struct State {
    referee: Referee,
    rng: StdRng,
    counters: Counters,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    /// The simulator's time zero, on tokio's clock (paused time works).
    start: Instant,
    /// The wall-clock time at `start`, for Anthropic's RFC 3339 resets and `created`.
    start_wall: SystemTime,
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl Shared {
    fn new(config: SimConfig) -> Self {
        let state = State {
            referee: Referee::new(config.window, config.rpm, config.tpm),
            rng: StdRng::seed_from_u64(config.seed),
            counters: Counters::default(),
        };
        Shared {
            config,
            start: Instant::now(),
            start_wall: SystemTime::now(),
            state: Mutex::new(state),
            next_id: AtomicU64::new(1),
        }
    }

    /// Time since the start, on tokio's clock.
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// A fresh id for a response.
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn count(&self, update: impl FnOnce(&mut Counters)) {
        update(&mut self.state.lock().counters);
    }

    fn stats(&self) -> SimStats {
        let state = self.state.lock();
        let referee = &state.referee;
        let counters = &state.counters;
        let (rpm, tpm) = referee.limits();
        SimStats {
            accepted: referee.accepted,
            rejected_429: counters.rejected_429,
            rejected_too_large: counters.rejected_too_large,
            invalid: counters.invalid,
            unauthorized: counters.unauthorized,
            errors_injected: counters.errors_injected,
            slowed: counters.slowed,
            tokens_admitted: referee.tokens_admitted,
            completion_tokens: counters.completion_tokens,
            peak_requests: referee.peak_requests,
            peak_tokens: referee.peak_tokens,
            first_admission_ns: referee.first_admission.map(nanos),
            last_admission_ns: referee.last_admission.map(nanos),
            window_ns: nanos(referee.window_length()),
            rpm,
            tpm,
        }
    }
}
