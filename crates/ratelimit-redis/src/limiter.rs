//! `RedisLimiter`: the async shell that turns `Limiter` calls into script calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ratelimit_core::algorithm::Status;
use ratelimit_core::{ConfigError, Cost, Decision, LimitId, LimitState, MAX_LIMITS, Policy};
use ratelimit_limiter::{
    AcquireError, BackendError, Limiter, Permit, PermitHandle, Request, Stats, StatsRecorder,
};
use tokio::sync::Notify;

use crate::conn::ScriptConn;
use crate::error::RedisLimiterError;
use crate::layout::{Packed, Plan, unpack};

/// What a limiter does when Redis cannot be reached after its retries.
///
/// Whatever the policy, the limiter keeps trying Redis: after a failure it goes straight to the
/// policy for [`RedisConfig::probe_interval`], then tries Redis again, and is back to normal as
/// soon as Redis answers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Refuse with [`AcquireError::Backend`]: never exceed the limit, even blind.
    #[default]
    FailClosed,
    /// Grant without counting: availability over the limit.
    FailOpen,
    /// Enforce a share of the limit locally, in this process, until Redis is back. With N
    /// processes sharing the budget, a share of 1/N keeps the total within the limit.
    LocalFallback {
        /// The fraction of every limit (and of the concurrency limit) this process may use alone,
        /// in (0, 1].
        share: f64,
    },
}

/// How a [`RedisLimiter`] names its keys and talks to Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// Namespace of every key, e.g. a tenant or application (`llmrl` by default).
    pub prefix: String,
    /// The budget's name: processes that share a name share a budget.
    pub name: String,
    /// How long a concurrency slot is held if its holder vanishes (crash) without releasing it.
    pub lease: Duration,
    /// Timeout of one script call.
    pub call_timeout: Duration,
    /// Attempts per script call before the failure policy applies (at least 1).
    pub attempts: u32,
    /// First retry delay; doubles each attempt, with full jitter.
    pub backoff: Duration,
    /// What to do when Redis stays unreachable.
    pub on_failure: FailurePolicy,
    /// After a failure, how long to skip Redis (applying the failure policy at once) before
    /// trying it again.
    pub probe_interval: Duration,
    /// The Rust client to use.
    pub client: Client,
}

impl RedisConfig {
    /// Defaults for a budget called `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            prefix: "llmrl".into(),
            name: name.into(),
            lease: Duration::from_secs(600),
            call_timeout: Duration::from_secs(1),
            attempts: 3,
            backoff: Duration::from_millis(20),
            on_failure: FailurePolicy::FailClosed,
            probe_interval: Duration::from_secs(1),
            client: Client::default(),
        }
    }
}

/// Where a limiter's budgets live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server: `redis://host:port/db`, or `rediss://` for TLS.
    Url(String),
    /// A Redis Cluster, reached through any of its nodes (`redis://host:port` each).
    Cluster(Vec<String>),
    /// Independent servers (no Cluster): each budget lives on one of them, chosen by consistent
    /// hashing, so adding a server moves only its share of the budgets. Every process must list
    /// the same URLs.
    Sharded(Vec<String>),
}

impl From<&str> for Target {
    fn from(url: &str) -> Self {
        Self::Url(url.to_owned())
    }
}

impl From<String> for Target {
    fn from(url: String) -> Self {
        Self::Url(url)
    }
}

/// Which Rust client talks to Redis (each behind the feature of the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Client {
    /// The `redis` crate.
    #[cfg(feature = "redis")]
    Redis,
    /// The `fred` crate.
    #[cfg(feature = "fred")]
    Fred,
}

impl Default for Client {
    fn default() -> Self {
        #[cfg(feature = "redis")]
        return Self::Redis;
        #[cfg(not(feature = "redis"))]
        return Self::Fred;
    }
}

async fn open(client: Client, url: &str) -> Result<Arc<dyn ScriptConn>, RedisLimiterError> {
    Ok(match client {
        #[cfg(feature = "redis")]
        Client::Redis => Arc::new(crate::conn::RedisRsConn::connect(url).await?),
        #[cfg(feature = "fred")]
        Client::Fred => Arc::new(crate::conn::FredConn::connect(url).await?),
    })
}

async fn open_cluster(
    client: Client,
    urls: &[String],
) -> Result<Arc<dyn ScriptConn>, RedisLimiterError> {
    Ok(match client {
        #[cfg(feature = "redis")]
        Client::Redis => Arc::new(crate::conn::RedisRsConn::connect_cluster(urls).await?),
        #[cfg(feature = "fred")]
        Client::Fred => Arc::new(crate::conn::FredConn::connect_cluster(urls).await?),
    })
}

struct Inner {
    conn: Arc<dyn ScriptConn>,
    config: RedisConfig,
    /// The policy and what the script needs of it; replaced whole when the policy changes.
    plan: parking_lot::Mutex<Arc<Plan>>,
    /// `{prefix:name:`, the start of every budget's hash tag.
    tag_head: String,
    stats: StatsRecorder,
    /// Woken when this process releases a concurrency slot.
    released: Notify,
    /// Give-backs of dropped waiters still on their way to Redis; a new request from this process
    /// waits for them, so it never finds a place that is already free still taken.
    cancels_in_flight: std::sync::atomic::AtomicUsize,
    cancels_done: Notify,
    /// The local limiter of [`FailurePolicy::LocalFallback`].
    fallback: Option<ratelimit_memory::MemoryLimiter>,
    /// Until when Redis is skipped after a failure.
    down_until: parking_lot::Mutex<Option<tokio::time::Instant>>,
    next_permit: AtomicU64,
    instance: u64,
    /// Acquires queued behind the call in flight on their budget (see `lane`).
    lanes: crate::lane::Lanes,
}

/// A limiter whose budget lives in Redis, shared by every process that uses the same name.
///
/// Waiting is a reservation: the script places the request at the earliest instant every limit
/// admits it (after everyone who reserved before, across all processes) and the caller sleeps
/// exactly until then; a waiter that is dropped gives its reservation back.
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// One limit's share of a grant, as the script returned it.
#[derive(Debug, Clone, Copy)]
struct Slice {
    held: u64,
    mark: i64,
    backlog_before: i64,
    last_before: i64,
}

/// A grant as the script recorded it.
#[derive(Debug, Clone)]
struct Grant {
    key: String,
    seq: i64,
    prev_horizon: i64,
    at: i64,
    slices: Vec<Slice>,
    /// Names its concurrency leases (empty without a concurrency limit).
    permit_id: String,
    slots: u64,
}

enum Outcome {
    Granted {
        now: i64,
        grant: Grant,
        started: bool,
    },
    RateLimited(Duration),
    ConcurrencyFull,
}

impl RedisLimiter {
    /// A limiter on `target`: one server (`"redis://host:port/db"`, or `rediss://` for TLS), a
    /// [`Target::Cluster`], or [`Target::Sharded`] servers, through the client chosen in
    /// [`RedisConfig::client`].
    ///
    /// # Errors
    /// [`RedisLimiterError`] if the policy cannot run on Redis or a server cannot be reached.
    pub async fn connect(
        target: impl Into<Target>,
        policy: Policy,
        config: RedisConfig,
    ) -> Result<Self, RedisLimiterError> {
        let conn: Arc<dyn ScriptConn> = match target.into() {
            Target::Url(url) => open(config.client, &url).await?,
            Target::Cluster(urls) => open_cluster(config.client, &urls).await?,
            Target::Sharded(urls) => {
                if urls.is_empty() {
                    return Err(ConfigError::Zero {
                        field: "urls".into(),
                    }
                    .into());
                }
                let mut conns = Vec::with_capacity(urls.len());
                for url in &urls {
                    conns.push(open(config.client, url).await?);
                }
                Arc::new(crate::conn::ShardedConn::new(&urls, conns))
            }
        };
        Self::with_conn(conn, policy, config)
    }

    /// The index, in the URL list of a [`Target::Sharded`], of the server that holds `key`'s
    /// budget for a limiter with this `prefix` and `name`.
    #[must_use]
    pub fn shard_of(urls: &[String], prefix: &str, name: &str, key: &str) -> usize {
        crate::ring::Ring::new(urls).server_of(&format!("{{{prefix}:{name}:{key}}}"))
    }

    /// A limiter on an existing `redis` connection manager.
    ///
    /// # Errors
    /// [`RedisLimiterError`] if the policy cannot run on Redis.
    #[cfg(feature = "redis")]
    pub fn from_connection_manager(
        conn: redis::aio::ConnectionManager,
        policy: Policy,
        config: RedisConfig,
    ) -> Result<Self, RedisLimiterError> {
        Self::with_conn(
            Arc::new(crate::conn::RedisRsConn::from_manager(conn)),
            policy,
            config,
        )
    }

    /// A limiter on a `fred` client the caller built and initialised.
    ///
    /// # Errors
    /// [`RedisLimiterError`] if the policy cannot run on Redis.
    #[cfg(feature = "fred")]
    pub fn from_fred_client(
        client: fred::prelude::Client,
        policy: Policy,
        config: RedisConfig,
    ) -> Result<Self, RedisLimiterError> {
        Self::with_conn(
            Arc::new(crate::conn::FredConn::from_client(client)),
            policy,
            config,
        )
    }

    pub(crate) fn with_conn(
        conn: Arc<dyn ScriptConn>,
        policy: Policy,
        config: RedisConfig,
    ) -> Result<Self, RedisLimiterError> {
        if config.attempts == 0 {
            return Err(ConfigError::Zero {
                field: "attempts".into(),
            }
            .into());
        }
        if config.name.contains(['{', '}']) || config.prefix.contains(['{', '}']) {
            return Err(ConfigError::Inconsistent {
                field: "name".into(),
                reason: "braces are reserved for the key's hash tag".into(),
            }
            .into());
        }
        let plan = Plan::new(policy, config.lease)?;
        let fallback = match config.on_failure {
            FailurePolicy::LocalFallback { share } => Some(ratelimit_memory::MemoryLimiter::new(
                scaled(&plan.policy, share)?,
            )),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                tag_head: format!("{{{}:{}:", config.prefix, config.name),
                config,
                plan: parking_lot::Mutex::new(Arc::new(plan)),
                stats: StatsRecorder::new(),
                released: Notify::new(),
                cancels_in_flight: std::sync::atomic::AtomicUsize::new(0),
                cancels_done: Notify::new(),
                fallback,
                down_until: parking_lot::Mutex::new(None),
                next_permit: AtomicU64::new(0),
                instance: rand::random(),
                lanes: crate::lane::Lanes::default(),
            }),
        })
    }

    /// The coalescing lanes of this limiter's budgets.
    pub(crate) fn lanes(&self) -> &crate::lane::Lanes {
        &self.inner.lanes
    }

    /// The current plan.
    fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.inner.plan.lock())
    }

    /// Each limit's amount of `cost`, in the policy's order (the first `plan.limits()`).
    fn amounts(plan: &Plan, cost: &Cost) -> [u64; MAX_LIMITS] {
        let policy = &plan.policy;
        let mut amounts = [0; MAX_LIMITS];
        for (a, (_, l)) in amounts.iter_mut().zip(policy.limits()) {
            *a = policy.amount(l.resource(), cost);
        }
        amounts
    }

    /// Runs operation `op` of the policy function on `key`'s budget with its numbers and permit
    /// id (empty: none), with retries; returns the reply's numbers.
    pub(crate) async fn call(
        &self,
        plan: &Plan,
        key: &str,
        op: &str,
        nums: &Packed,
        permit: &str,
    ) -> Result<Vec<i64>, BackendError> {
        if permit.is_empty() {
            self.call_with(plan, key, op, nums, &[]).await
        } else {
            self.call_with(plan, key, op, nums, &[permit.as_bytes()])
                .await
        }
    }

    /// Runs operation `op` of the policy function on `key`'s budget with its numbers and further
    /// arguments (permit ids), with retries; returns the reply's numbers.
    pub(crate) async fn call_with(
        &self,
        plan: &Plan,
        key: &str,
        op: &str,
        nums: &Packed,
        extra: &[&[u8]],
    ) -> Result<Vec<i64>, BackendError> {
        if let Some(until) = *self.inner.down_until.lock() {
            if tokio::time::Instant::now() < until {
                return Err(BackendError::new(
                    "redis is down (waiting to probe again)",
                    None,
                ));
            }
        }
        let keys = plan.keys(&self.inner.tag_head, key);
        let head: [&[u8]; 3] = [op.as_bytes(), plan.packed.bytes(), nums.bytes()];
        let mut all: Vec<&[u8]>;
        let args = if extra.is_empty() {
            &head[..]
        } else {
            all = Vec::with_capacity(3 + extra.len());
            all.extend_from_slice(&head);
            all.extend_from_slice(extra);
            &all[..]
        };
        let result = self.run_with_retries(&keys, args).await;
        {
            let mut down = self.inner.down_until.lock();
            match &result {
                Ok(_) => {
                    if down.take().is_some() {
                        tracing::info!("redis is back");
                    }
                }
                Err(_) => {
                    *down = Some(tokio::time::Instant::now() + self.inner.config.probe_interval);
                }
            }
        }
        let reply = result?;
        unpack(&reply).ok_or_else(|| {
            BackendError::new(format!("unexpected script reply {reply:?} to {op}"), None)
        })
    }

    /// Runs the script with retries, backoff with full jitter, and a timeout per call.
    async fn run_with_retries(
        &self,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<Vec<u8>, BackendError> {
        let c = &self.inner.config;
        let mut delay = c.backoff;
        let mut last = None;
        for attempt in 0..c.attempts {
            if attempt > 0 {
                let jitter = rand::random_range(0..=delay.as_micros().max(1) as u64);
                tokio::time::sleep(Duration::from_micros(jitter)).await;
                delay = delay.saturating_mul(2);
            }
            match tokio::time::timeout(c.call_timeout, self.inner.conn.run(keys, args)).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => {
                    tracing::debug!(attempt, error = %e, "redis call failed");
                    last = Some(e);
                }
                Err(_) => {
                    tracing::debug!(attempt, "redis call timed out");
                    last = Some(BackendError::new("redis call timed out", None));
                }
            }
        }
        Err(last.unwrap_or_else(|| BackendError::new("redis call failed", None)))
    }

    /// Waits (briefly) for this process's pending give-backs to reach Redis.
    async fn settle_cancels(&self) {
        if self.inner.cancels_in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        let limit = tokio::time::Instant::now() + self.inner.config.call_timeout;
        loop {
            let notified = self.inner.cancels_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.cancels_in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(limit, notified).await.is_err() {
                return;
            }
        }
    }

    async fn try_once(
        &self,
        plan: &Arc<Plan>,
        request: &Request<'_>,
        mode: u8,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Outcome, BackendError> {
        self.settle_cancels().await;
        // Leases are named after the permit; without a concurrency limit there are none.
        let permit_id = if plan.concurrency.is_some() {
            format!(
                "{:x}-{:x}",
                self.inner.instance,
                self.inner.next_permit.fetch_add(1, Ordering::Relaxed)
            )
        } else {
            String::new()
        };
        let slots = request.cost.requests.max(1);
        let all = Self::amounts(plan, &request.cost);
        let amounts = &all[..plan.limits()];
        let acquire = crate::lane::Acquire {
            plan: Arc::clone(plan),
            mode,
            deadline,
            slots,
            amounts: all,
            permit_id: permit_id.clone(),
        };
        let r = self.acquire_call(request.key, acquire).await?;
        outcome_of(request.key, amounts, slots, permit_id, &r)
    }

    /// Gives back what an acquire was granted when nobody is left to claim it: its caller's future
    /// was dropped while the call was in flight (the server ran it all the same).
    pub(crate) fn give_back_unclaimed(&self, key: &str, acquire: &crate::lane::Acquire, r: &[i64]) {
        let amounts = &acquire.amounts[..acquire.plan.limits()];
        if let Ok(Outcome::Granted { grant, .. }) =
            outcome_of(key, amounts, acquire.slots, acquire.permit_id.clone(), r)
        {
            tracing::debug!("an acquire's caller left while its call was in flight; giving back");
            // Dropped at once: the guard gives the grant back in a task of its own, counted with
            // the other give-backs in flight (which a new request from this process waits out).
            drop(CancelGuard {
                limiter: self.clone(),
                grant: Some(grant),
            });
        }
    }

    /// Sleeps until the budget's pause (if any) is over, however often it is extended.
    async fn wait_out_pause(&self, key: &str) -> Result<(), BackendError> {
        loop {
            let plan = self.plan();
            let r = self
                .call(&plan, key, "paused", &Packed::default(), "")
                .await?;
            let left = u64::try_from(r.get(2).copied().unwrap_or(0)).unwrap_or(0);
            if left == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_micros(left)).await;
        }
    }

    /// Starts a reservation: claims its concurrency slots.
    async fn start(
        &self,
        plan: &Plan,
        grant: &mut Grant,
        slots: u64,
    ) -> Result<bool, BackendError> {
        if plan.concurrency.is_none() {
            return Ok(true);
        }
        let mut nums = Packed::with_capacity(1);
        nums.u(slots);
        let r = self
            .call(plan, &grant.key, "start", &nums, &grant.permit_id)
            .await?;
        if r.first() == Some(&0) {
            grant.slots = slots;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn cancel(&self, grant: &Grant) -> Result<(), BackendError> {
        let plan = self.plan();
        let mut nums = Packed::with_capacity(4 + 4 * grant.slices.len());
        nums.i(grant.seq)
            .i(grant.prev_horizon)
            .i(grant.at)
            .u(grant.slots);
        for s in &grant.slices {
            nums.u(s.held)
                .i(s.mark)
                .i(s.backlog_before)
                .i(s.last_before);
        }
        self.call(&plan, &grant.key, "cancel", &nums, &grant.permit_id)
            .await
            .map(drop)
    }

    fn permit(&self, grant: Grant, cost: Cost, waited: Duration) -> Permit {
        let handle = RedisPermit {
            limiter: self.clone(),
            grant: Some(grant),
        };
        Permit::new(Box::new(handle), cost, waited)
    }

    fn open_permit(&self, cost: Cost) -> Permit {
        // Fail-open: a grant that was never counted has nothing to settle.
        Permit::new(Box::new(NoopPermit), cost, Duration::ZERO)
    }

    async fn backend_failed(
        &self,
        e: BackendError,
        request: Request<'_>,
        timeout: Option<Duration>,
        try_only: bool,
    ) -> Result<Permit, AcquireError> {
        tracing::warn!(error = %e, policy = ?self.inner.config.on_failure, "redis unreachable");
        match (&self.inner.config.on_failure, &self.inner.fallback) {
            (FailurePolicy::FailOpen, _) => Ok(self.open_permit(request.cost)),
            (FailurePolicy::LocalFallback { .. }, Some(local)) => {
                let local_request = Request { key: "", ..request };
                match (try_only, timeout) {
                    (true, _) => local.try_acquire(local_request).await,
                    (false, Some(t)) => local.acquire_timeout(local_request, t).await,
                    (false, None) => local.acquire(local_request).await,
                }
            }
            _ => {
                self.inner.stats.refused();
                Err(AcquireError::Backend(e))
            }
        }
    }

    async fn acquire_inner(
        &self,
        request: Request<'_>,
        timeout: Option<Duration>,
        try_only: bool,
    ) -> Result<Permit, AcquireError> {
        let cost = request.cost;
        if let Err(e) = self.plan().policy.check_size(&cost) {
            self.inner.stats.refused();
            return Err(AcquireError::TooLarge(e));
        }
        let started_at = tokio::time::Instant::now();
        let deadline = timeout.map(|t| started_at + t);
        loop {
            let mode = if try_only {
                0
            } else if deadline.is_some() {
                2
            } else {
                1
            };
            let plan = self.plan();
            let outcome = match self.try_once(&plan, &request, mode, deadline).await {
                Ok(o) => o,
                Err(e) => return self.backend_failed(e, request, timeout, try_only).await,
            };
            let (now, grant, started) = match outcome {
                Outcome::Granted {
                    now,
                    grant,
                    started,
                } => (now, grant, started),
                Outcome::RateLimited(retry_after) => {
                    self.inner.stats.refused();
                    return Err(AcquireError::RateLimited { retry_after });
                }
                Outcome::ConcurrencyFull => {
                    self.inner.stats.refused();
                    return Err(AcquireError::ConcurrencyFull);
                }
            };
            let wait = u64::try_from(grant.at - now).unwrap_or(0);
            if wait == 0 && (started || plan.concurrency.is_none()) {
                // Granted now, slots (if any) taken: nothing left that could be dropped midway.
                let waited = started_at.elapsed();
                self.inner.stats.granted(waited);
                return Ok(self.permit(grant, cost, waited));
            }
            // From here the grant holds capacity: give it back if this future is dropped.
            let mut guard = CancelGuard {
                limiter: self.clone(),
                grant: Some(grant),
            };
            if wait > 0 {
                tokio::time::sleep(Duration::from_micros(wait)).await;
                // A pause may have come while this reservation slept (a 429 seen by any process):
                // it holds this request too.
                if let Err(e) = self.wait_out_pause(request.key).await {
                    return self.backend_failed(e, request, timeout, try_only).await;
                }
            }
            if plan.concurrency.is_some() && !started {
                let slots = cost.requests.max(1);
                let grant = guard.grant.as_mut().expect("armed");
                match self.start(&plan, grant, slots).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // No slot: give the rate capacity back rather than sit on it, wait for a
                        // release, then plan again.
                        let g = guard.grant.take().expect("armed");
                        if let Err(e) = self.cancel(&g).await {
                            return self.backend_failed(e, request, timeout, try_only).await;
                        }
                        let pause = deadline.map_or(Duration::from_millis(50), |d| {
                            d.saturating_duration_since(tokio::time::Instant::now())
                                .min(Duration::from_millis(50))
                        });
                        if pause.is_zero() {
                            self.inner.stats.refused();
                            return Err(AcquireError::ConcurrencyFull);
                        }
                        // Released here, or (another process) found on the next attempt.
                        let _ = tokio::time::timeout(pause, self.inner.released.notified()).await;
                        continue;
                    }
                    Err(e) => return self.backend_failed(e, request, timeout, try_only).await,
                }
            }
            let grant = guard.grant.take().expect("armed");
            let waited = started_at.elapsed();
            self.inner.stats.granted(waited);
            return Ok(self.permit(grant, cost, waited));
        }
    }
}

/// The policy with every limit (and the concurrency limit) scaled by `share`, rounded down but at
/// least 1.
fn scaled(policy: &Policy, share: f64) -> Result<Policy, RedisLimiterError> {
    if !(share > 0.0 && share <= 1.0) {
        return Err(ConfigError::OutOfRange {
            field: "on_failure.share".into(),
            value: share.to_string(),
            expected: "a fraction in (0, 1]",
        }
        .into());
    }
    let mut local = policy.clone();
    let ids: Vec<(LimitId, u64)> = policy.limits().map(|(id, l)| (id, l.amount())).collect();
    // Lower the longest windows last, so the policy stays consistent at every step.
    for (id, amount) in ids.into_iter().rev() {
        let part = ((amount as f64 * share).floor() as u64).max(1);
        local.set_amount(id, part, 0)?;
    }
    if let Some(c) = policy.concurrency() {
        local.set_concurrency(((c.max() as f64 * share).floor() as u64).max(1))?;
    }
    Ok(local)
}

/// What the library's reply `r` to one acquire of `amounts` (and `slots`, leases named
/// `permit_id`) on `key` says.
fn outcome_of(
    key: &str,
    amounts: &[u64],
    slots: u64,
    permit_id: String,
    r: &[i64],
) -> Result<Outcome, BackendError> {
    let bad = || BackendError::new(format!("unexpected script reply {r:?}"), None);
    let status = *r.first().ok_or_else(bad)?;
    match status {
        0 => {
            let d = amounts.len();
            if r.len() != 6 + 3 * d {
                return Err(bad());
            }
            let (now, at, seq, prev, started) = (r[1], r[2], r[3], r[4], r[5] == 1);
            let slices = (0..d)
                .map(|i| Slice {
                    held: amounts[i],
                    backlog_before: r[6 + 3 * i],
                    last_before: r[7 + 3 * i],
                    mark: r[8 + 3 * i],
                })
                .collect();
            Ok(Outcome::Granted {
                now,
                started,
                grant: Grant {
                    key: key.to_owned(),
                    seq,
                    prev_horizon: prev,
                    at,
                    slices,
                    permit_id,
                    slots: if started { slots } else { 0 },
                },
            })
        }
        2 | 5 => Ok(Outcome::RateLimited(Duration::from_micros(
            u64::try_from(*r.get(2).ok_or_else(bad)?).unwrap_or(0),
        ))),
        3 => Ok(Outcome::ConcurrencyFull),
        _ => Err(bad()),
    }
}

/// Gives a reservation back if the waiting future is dropped before its turn.
struct CancelGuard {
    limiter: RedisLimiter,
    grant: Option<Grant>,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take() {
            let limiter = self.limiter.clone();
            limiter.inner.stats.cancelled();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                limiter
                    .inner
                    .cancels_in_flight
                    .fetch_add(1, Ordering::AcqRel);
                rt.spawn(async move {
                    if let Err(e) = limiter.cancel(&grant).await {
                        tracing::warn!(error = %e, "could not give back a dropped reservation");
                    }
                    limiter
                        .inner
                        .cancels_in_flight
                        .fetch_sub(1, Ordering::AcqRel);
                    limiter.inner.cancels_done.notify_waiters();
                });
            }
        }
    }
}

struct RedisPermit {
    limiter: RedisLimiter,
    grant: Option<Grant>,
}

#[async_trait]
impl PermitHandle for RedisPermit {
    async fn adjust(&mut self, actual: Cost) -> Result<(), BackendError> {
        let Some(grant) = &mut self.grant else {
            return Ok(());
        };
        let plan = self.limiter.plan();
        let all = RedisLimiter::amounts(&plan, &actual);
        let want = &all[..plan.limits()];
        let mut nums = Packed::with_capacity(3 * want.len());
        for (s, w) in grant.slices.iter().zip(want) {
            nums.u(s.held).u(*w).i(s.mark);
        }
        let r = self
            .limiter
            .call(&plan, &grant.key, "adjust", &nums, "")
            .await?;
        for (i, (s, w)) in grant.slices.iter_mut().zip(want).enumerate() {
            s.held = *w;
            if let Some(mark) = r.get(2 + i) {
                s.mark = *mark;
            }
        }
        Ok(())
    }

    async fn cancel(&mut self) -> Result<(), BackendError> {
        if let Some(grant) = self.grant.take() {
            self.limiter.cancel(&grant).await?;
            self.limiter.inner.released.notify_waiters();
        }
        Ok(())
    }

    fn release(&mut self) {
        let Some(grant) = self.grant.take() else {
            return;
        };
        if grant.slots == 0 {
            return;
        }
        let limiter = self.limiter.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let plan = limiter.plan();
                let mut nums = Packed::with_capacity(1);
                nums.u(grant.slots);
                let released = limiter
                    .call(&plan, &grant.key, "release", &nums, &grant.permit_id)
                    .await;
                if let Err(e) = released {
                    tracing::warn!(error = %e, "could not release a concurrency slot; its lease will expire");
                }
                limiter.inner.released.notify_waiters();
            });
        }
    }
}

struct NoopPermit;

#[async_trait]
impl PermitHandle for NoopPermit {
    async fn adjust(&mut self, _actual: Cost) -> Result<(), BackendError> {
        Ok(())
    }
    async fn cancel(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn release(&mut self) {}
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        self.acquire_inner(request, None, false).await
    }

    async fn try_acquire(&self, request: Request<'_>) -> Result<Permit, AcquireError> {
        self.acquire_inner(request, None, true).await
    }

    async fn acquire_timeout(
        &self,
        request: Request<'_>,
        timeout: Duration,
    ) -> Result<Permit, AcquireError> {
        self.acquire_inner(request, Some(timeout), false).await
    }

    async fn status(&self, key: &str) -> Result<Decision, BackendError> {
        let plan = self.plan();
        let r = self
            .call(&plan, key, "status", &Packed::default(), "")
            .await?;
        if r.len() != 4 + 2 * plan.limits() {
            return Err(BackendError::new(
                format!("unexpected status reply {r:?}"),
                None,
            ));
        }
        let bad = || BackendError::new(format!("unexpected status reply {r:?}"), None);
        let (now, horizon, in_use) = (r[1], r[2], r[3]);
        let policy = &plan.policy;
        let base = policy.status(0);
        let mut limits: Vec<LimitState> = Vec::new();
        for (i, state) in base.limits().iter().enumerate() {
            let remaining = u64::try_from(*r.get(4 + 2 * i).ok_or_else(bad)?).unwrap_or(0);
            let reset_us = u64::try_from(*r.get(5 + 2 * i).ok_or_else(bad)?).unwrap_or(0);
            limits.push(LimitState {
                status: Status {
                    remaining,
                    reset_after: reset_us.saturating_mul(1_000),
                    ..state.status
                },
                ..*state
            });
        }
        let concurrency = policy.concurrency().map(|c| Status {
            limit: c.max(),
            capacity: c.max(),
            remaining: c.max().saturating_sub(u64::try_from(in_use).unwrap_or(0)),
            reset_after: 0,
        });
        let waiting = u64::try_from(horizon - now)
            .unwrap_or(0)
            .saturating_mul(1_000);
        Ok(Decision::from_parts(
            waiting == 0,
            waiting,
            None,
            &limits,
            concurrency,
        ))
    }

    async fn set_amount(&self, id: LimitId, amount: u64) -> Result<(), ConfigError> {
        let mut guard = self.inner.plan.lock();
        let mut policy = guard.policy.clone();
        policy.set_amount(id, amount, 0)?;
        let plan =
            Plan::new(policy, self.inner.config.lease).map_err(|e| ConfigError::Inconsistent {
                field: "amount".into(),
                reason: e.to_string(),
            })?;
        *guard = Arc::new(plan);
        Ok(())
    }

    async fn correct(&self, key: &str, id: LimitId, delta: i64) -> Result<(), BackendError> {
        let plan = self.plan();
        if id.index() >= plan.limits() {
            return Err(BackendError::new(
                format!("no limit with id {} in this policy", id.index()),
                None,
            ));
        }
        let mut nums = Packed::with_capacity(2);
        nums.u(id.index() as u64 + 1).i(delta);
        self.call(&plan, key, "correct", &nums, "").await.map(drop)
    }

    async fn pause(&self, key: &str, duration: Duration) -> Result<(), BackendError> {
        if let Some(local) = &self.inner.fallback {
            // Should Redis fail during the pause, the local share honours it too.
            local.pause("", duration).await?;
        }
        let plan = self.plan();
        let micros = u64::try_from(duration.as_nanos().div_ceil(1_000)).unwrap_or(u64::MAX);
        let mut nums = Packed::with_capacity(1);
        nums.u(micros);
        self.call(&plan, key, "pause", &nums, "").await.map(drop)
    }

    fn stats(&self) -> Stats {
        let mut s = self.inner.stats.snapshot();
        s.queue_depth = 0;
        s
    }
}
