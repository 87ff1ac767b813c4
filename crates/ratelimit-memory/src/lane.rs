//! One budget's acquisition algorithm: the fast path, the line, the head's plan, cancellation.
//!
//! A [`Handle`] is a lane (a policy and its waiters, behind one lock) with its engine (clock and
//! counters). [`MemoryLimiter`](crate::MemoryLimiter) is one lane; [`KeyedLimiter`](crate::KeyedLimiter)
//! one lane per key. The lock is never held across an await.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use ratelimit_core::{Clock, Cost, LimitId, Nanos, Policy, Rejection, Reservation, StartError};
use ratelimit_limiter::{AcquireError, BackendError, Permit, PermitHandle, Request, StatsRecorder};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::queue::Queue;

pub(crate) struct State {
    pub(crate) policy: Policy,
    pub(crate) queue: Queue,
    /// Nothing is granted before this instant (a provider's retry-after; 0 when not paused).
    pub(crate) paused_until: Nanos,
}

impl State {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            policy,
            queue: Queue::default(),
            paused_until: 0,
        }
    }

    /// Whether nothing is held here at `now`: no waiter, no pause, the policy fully replenished.
    pub(crate) fn is_idle(&self, now: Nanos) -> bool {
        self.queue.is_empty() && self.paused_until <= now && self.policy.is_idle(now)
    }

    /// Holds every grant back until `until` (never shortens a pause). The head gives back its
    /// reservation, if it holds one, and plans again once the pause is over.
    pub(crate) fn pause(&mut self, until: Nanos, now: Nanos) {
        if until <= self.paused_until {
            return;
        }
        self.paused_until = until;
        if let Some(reservation) = self.queue.take_head_reservation() {
            self.policy.cancel(reservation, now);
        }
        self.queue.wake_head();
    }
}

/// What every lane of a limiter shares: the clock and the activity counters.
pub(crate) struct Engine {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stats: StatsRecorder,
    /// Requests waiting, across every lane.
    pub(crate) waiting: AtomicUsize,
}

impl Engine {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            stats: StatsRecorder::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    /// The tokio instant at which the clock reads `at`.
    fn instant_of(&self, at: Nanos) -> tokio::time::Instant {
        let now = self.clock.now();
        tokio::time::Instant::now() + Duration::from_nanos(at.saturating_sub(now))
    }
}

/// Takes `cost` now from `lane`'s rate limits, or refuses, without a permit: the fast path of
/// [`MemoryLimiter::try_take`](crate::MemoryLimiter::try_take) and
/// [`KeyedLimiter::try_take`](crate::KeyedLimiter::try_take). It never overtakes a waiter.
pub(crate) fn try_take(lane: &Lane, engine: &Engine, cost: &Cost) -> Result<(), AcquireError> {
    let mut state = lane.lock();
    let now = engine.clock.now();
    let result = if state.queue.is_empty() && now >= state.paused_until {
        state.policy.try_take(cost, now).map_err(|r| match r {
            Rejection::TooLarge(e) => AcquireError::TooLarge(e),
            Rejection::RateLimited { retry_after, .. } => AcquireError::RateLimited {
                retry_after: Duration::from_nanos(retry_after),
            },
            Rejection::ConcurrencyFull => AcquireError::ConcurrencyFull,
        })
    } else {
        Err(match state.policy.check_size(cost) {
            Err(e) => AcquireError::TooLarge(e),
            Ok(()) => AcquireError::RateLimited {
                retry_after: Handle::estimate(&state, cost, now),
            },
        })
    };
    drop(state);
    match &result {
        Ok(()) => engine.stats.granted(Duration::ZERO),
        Err(_) => engine.stats.refused(),
    }
    result
}

/// One budget: a policy and its line of waiters, and the key it is kept under in a
/// [`KeyedLimiter`](crate::KeyedLimiter) (empty in a [`MemoryLimiter`](crate::MemoryLimiter)),
/// held in the same allocation as the state.
pub(crate) struct Lane {
    pub(crate) key: Box<str>,
    state: Mutex<State>,
}

impl Lane {
    pub(crate) fn new(key: Box<str>, policy: Policy) -> Self {
        Self {
            key,
            state: Mutex::new(State::new(policy)),
        }
    }

    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    pub(crate) fn try_lock(&self) -> Option<parking_lot::MutexGuard<'_, State>> {
        self.state.try_lock()
    }
}

/// A lane with its engine: where the acquisition algorithm runs.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) lane: Arc<Lane>,
    pub(crate) engine: Arc<Engine>,
}

#[allow(clippy::large_enum_variant)]
enum Step {
    Granted(Permit),
    /// Not the head: wait to be told.
    WaitTurn(Arc<Notify>),
    /// Head with a reservation for a later instant.
    Sleep(Nanos, Arc<Notify>),
    /// Head, rate fits, no concurrency slot: wait for a release.
    WaitSlot(Arc<Notify>),
    Refused(AcquireError),
}

impl Handle {
    fn permit(&self, reservation: Reservation, cost: Cost, waited: Duration) -> Permit {
        let handle = MemoryPermit {
            handle: self.clone(),
            reservation: Some(reservation),
        };
        Permit::new(Box::new(handle), cost, waited)
    }

    /// The fast path: nobody waits and everything fits now.
    fn try_now(state: &mut State, cost: &Cost, now: Nanos) -> Fast {
        if !state.queue.is_empty() || now < state.paused_until {
            // Someone is waiting (a newcomer never overtakes them), or the budget is paused.
            // Refuse at once what can never fit.
            return match state.policy.check_size(cost) {
                Err(e) => Fast::Refuse(AcquireError::TooLarge(e)),
                Ok(()) => Fast::Queue(None),
            };
        }
        match state.policy.try_acquire(cost, now) {
            Ok(r) => Fast::Granted(r),
            Err(Rejection::TooLarge(e)) => Fast::Refuse(AcquireError::TooLarge(e)),
            Err(Rejection::ConcurrencyFull) => Fast::Queue(Some(AcquireError::ConcurrencyFull)),
            Err(Rejection::RateLimited { retry_after, .. }) => {
                Fast::Queue(Some(AcquireError::RateLimited {
                    retry_after: Duration::from_nanos(retry_after),
                }))
            }
        }
    }

    /// How long `cost` would wait if it joined the line now: everyone ahead reserves in turn on a
    /// copy of the policy (from the end of a pause, if any), then this request. Exact for the rate
    /// limits when everyone ahead is in the same class; concurrency slots are not predicted.
    fn estimate(state: &State, cost: &Cost, now: Nanos) -> Duration {
        let mut sim = state.policy.clone();
        let from = now.max(state.paused_until);
        for ahead in state.queue.unplanned_costs() {
            // Too-large requests were refused before queueing; ignore the impossible.
            let _ = sim.reserve(&ahead, from);
        }
        let ready = sim.reserve(cost, from).map_or(from, |r| r.ready_at());
        Duration::from_nanos(ready.saturating_sub(now).max(1))
    }

    pub(crate) async fn acquire_inner(
        &self,
        request: Request<'_>,
        deadline: Option<Nanos>,
        try_only: bool,
    ) -> Result<Permit, AcquireError> {
        let engine = &self.engine;
        let cost = request.cost;
        let (start, (id, _notify)) = {
            let mut state = self.lane.lock();
            // Read the clock under the lock: read before it, another thread could grant at a
            // later instant first, and this request would see the policy ahead of its `now` and
            // be told to wait a few microseconds for nothing (refused outright with a timeout of 0).
            let start = engine.clock.now();
            let why = match Self::try_now(&mut state, &cost, start) {
                Fast::Granted(reservation) => {
                    drop(state);
                    engine.stats.granted(Duration::ZERO);
                    return Ok(self.permit(reservation, cost, Duration::ZERO));
                }
                Fast::Refuse(err) => {
                    drop(state);
                    engine.stats.refused();
                    tracing::debug!(error = %err, "request refused");
                    return Err(err);
                }
                Fast::Queue(why) => why,
            };
            if try_only || deadline.is_some() {
                // Nobody waits ahead: the policy's own answer is exact. Otherwise estimate.
                let err = why.unwrap_or_else(|| AcquireError::RateLimited {
                    retry_after: Self::estimate(&state, &cost, start),
                });
                let wait = err.retry_after().unwrap_or(Duration::ZERO);
                let too_late = deadline.is_some_and(|d| start.saturating_add(nanos(wait)) > d);
                if try_only || too_late {
                    drop(state);
                    engine.stats.refused();
                    tracing::debug!(error = %err, "request limited");
                    return Err(err);
                }
            }
            tracing::debug!(priority = ?request.priority, queued = state.queue.len(), "request waits its turn");
            engine.waiting.fetch_add(1, Ordering::Relaxed);
            (start, state.queue.push(request.priority, cost))
        };
        let span = tracing::debug_span!(
            "rate_limit.wait",
            priority = ?request.priority,
            requests = cost.requests,
            input_tokens = cost.input_tokens,
            output_tokens = cost.output_tokens,
        );
        self.wait_in_line(id, cost, start, deadline)
            .instrument(span)
            .await
    }

    /// Waits in the line until granted, refused or out of time; cancellation-safe.
    async fn wait_in_line(
        &self,
        id: u64,
        cost: Cost,
        start: Nanos,
        deadline: Option<Nanos>,
    ) -> Result<Permit, AcquireError> {
        let engine = &self.engine;
        let mut guard = WaitGuard {
            handle: self.clone(),
            id,
            done: false,
        };
        let deadline_at = deadline.map(|d| engine.instant_of(d));
        let mut for_slot = false;
        loop {
            let step = self.step(id, &cost, start, deadline);
            for_slot =
                matches!(step, Step::WaitSlot(_)) || (for_slot && matches!(step, Step::Sleep(..)));
            let timed_out = match step {
                Step::Granted(permit) => {
                    guard.done = true;
                    tracing::debug!(waited = ?permit.waited(), "granted after waiting");
                    return Ok(permit);
                }
                Step::Refused(err) => {
                    guard.done = true;
                    engine.stats.refused();
                    tracing::debug!(error = %err, "refused while waiting");
                    return Err(err);
                }
                Step::WaitTurn(n) | Step::WaitSlot(n) => wait(n.notified(), deadline_at).await,
                Step::Sleep(at, n) => {
                    let until = engine.instant_of(at);
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => false,
                        () = n.notified() => {
                            // Capacity or limits changed: plan again from scratch.
                            self.replan(id);
                            false
                        }
                    }
                }
            };
            if timed_out {
                // Out of time before our turn came: leave the line (the guard cleans up).
                guard.cleanup(false);
                engine.stats.refused();
                tracing::debug!("out of time while waiting");
                if for_slot {
                    return Err(AcquireError::ConcurrencyFull);
                }
                let now = engine.clock.now();
                let waited = Duration::from_nanos(now.saturating_sub(start));
                let rest = Self::estimate(&self.lane.lock(), &cost, now);
                return Err(AcquireError::RateLimited {
                    retry_after: waited + rest,
                });
            }
        }
    }

    /// One planning step for waiter `id`, under the lock.
    fn step(&self, id: u64, cost: &Cost, start: Nanos, deadline: Option<Nanos>) -> Step {
        let engine = &self.engine;
        let mut state = self.lane.lock();
        let now = engine.clock.now();
        let paused_until = state.paused_until;
        let State { policy, queue, .. } = &mut *state;
        let Some(waiter) = queue.get_mut(id) else {
            return Step::Refused(AcquireError::Backend(BackendError::new(
                "waiter vanished from the queue",
                None,
            )));
        };
        let notify = Arc::clone(&waiter.notify);
        if queue.head() != Some(id) {
            return Step::WaitTurn(notify);
        }
        let waiter = queue.get_mut(id).expect("present above");
        if waiter.reservation.is_none() && now < paused_until {
            // Paused: plan only once the pause is over (a pause taken later cancels any plan).
            return Step::Sleep(paused_until, notify);
        }
        if waiter.reservation.is_none() {
            let reservation = match policy.reserve(cost, now) {
                Ok(r) => r,
                Err(e) => {
                    self.leave(queue, id, false);
                    return Step::Refused(AcquireError::TooLarge(e));
                }
            };
            if let Some(d) = deadline {
                if reservation.ready_at() > d {
                    let retry_after = Duration::from_nanos(reservation.ready_at() - start);
                    policy.cancel(reservation, now);
                    self.leave(queue, id, false);
                    return Step::Refused(AcquireError::RateLimited { retry_after });
                }
            }
            waiter.reservation = Some(reservation);
        }
        let ready = waiter
            .reservation
            .as_ref()
            .map_or(now, Reservation::ready_at);
        if ready > now {
            return Step::Sleep(ready, notify);
        }
        let mut reservation = waiter.reservation.take().expect("reserved above");
        match policy.start(&mut reservation, now) {
            Ok(()) => {
                self.leave(queue, id, true);
                drop(state);
                let waited = Duration::from_nanos(now.saturating_sub(start));
                engine.stats.granted(waited);
                Step::Granted(self.permit(reservation, *cost, waited))
            }
            Err(StartError::ConcurrencyFull) => {
                // Do not sit on rate capacity while waiting for a slot.
                policy.cancel(reservation, now);
                Step::WaitSlot(notify)
            }
            Err(StartError::NotYet { .. }) => {
                let at = reservation.ready_at();
                waiter.reservation = Some(reservation);
                Step::Sleep(at, notify)
            }
        }
    }

    /// Takes a waiter out of the line, keeping the engine's count.
    fn leave(&self, queue: &mut Queue, id: u64, granted: bool) -> Option<crate::queue::Waiter> {
        let waiter = queue.remove(id, granted);
        if waiter.is_some() {
            self.engine.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        waiter
    }

    /// [`Limiter::correct`](ratelimit_limiter::Limiter::correct) on this lane.
    pub(crate) fn correct(&self, id: LimitId, delta: i64) -> Result<(), BackendError> {
        let mut state = self.lane.lock();
        let now = self.engine.clock.now();
        state
            .policy
            .correct(id, delta, now)
            .map_err(|e| BackendError::new(e.to_string(), Some(Arc::new(e))))?;
        // A credit may let the head go sooner: it plans again.
        state.queue.wake_head();
        Ok(())
    }

    /// [`Limiter::pause`](ratelimit_limiter::Limiter::pause) on this lane.
    pub(crate) fn pause(&self, duration: Duration) {
        let mut state = self.lane.lock();
        let now = self.engine.clock.now();
        state.pause(now.saturating_add(nanos(duration)), now);
        drop(state);
        tracing::debug!(?duration, "budget paused");
    }

    /// Gives back the head's reservation so its next step plans again (exact: it is the latest).
    fn replan(&self, id: u64) {
        let mut state = self.lane.lock();
        let now = self.engine.clock.now();
        let State { policy, queue, .. } = &mut *state;
        if let Some(reservation) = queue.get_mut(id).and_then(|w| w.reservation.take()) {
            policy.cancel(reservation, now);
        }
    }
}

#[allow(clippy::large_enum_variant)] // a short-lived local: boxing would add an allocation
enum Fast {
    Granted(Reservation),
    Refuse(AcquireError),
    /// Must wait: why, when nobody else is waiting (then the answer is exact).
    Queue(Option<AcquireError>),
}

pub(crate) fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(Nanos::MAX)
}

/// Waits for a notification, or until `deadline`; true if the deadline passed first.
async fn wait(
    notified: tokio::sync::futures::Notified<'_>,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    match deadline {
        None => {
            notified.await;
            false
        }
        Some(at) => tokio::time::timeout_at(at, notified).await.is_err(),
    }
}

/// Leaves the line when the waiting future is dropped at any await point: gives back the
/// reservation it may hold and hands the head on.
struct WaitGuard {
    handle: Handle,
    id: u64,
    done: bool,
}

impl WaitGuard {
    fn cleanup(&mut self, dropped: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let mut state = self.handle.lane.lock();
        let now = self.handle.engine.clock.now();
        let State { policy, queue, .. } = &mut *state;
        if let Some(waiter) = self.handle.leave(queue, self.id, false) {
            if let Some(reservation) = waiter.reservation {
                policy.cancel(reservation, now);
            }
        }
        drop(state);
        if dropped {
            self.handle.engine.stats.cancelled();
            tracing::debug!("waiter dropped; its reservation was given back");
        }
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.cleanup(true);
    }
}

struct MemoryPermit {
    handle: Handle,
    reservation: Option<Reservation>,
}

impl MemoryPermit {
    fn with(&mut self, f: impl FnOnce(&mut Policy, Reservation, Nanos) -> Option<Reservation>) {
        if let Some(reservation) = self.reservation.take() {
            let mut state = self.handle.lane.lock();
            let now = self.handle.engine.clock.now();
            self.reservation = f(&mut state.policy, reservation, now);
            state.queue.wake_head();
        }
    }
}

#[async_trait]
impl PermitHandle for MemoryPermit {
    async fn adjust(&mut self, actual: Cost) -> Result<(), BackendError> {
        self.with(|policy, mut r, now| {
            policy.adjust(&mut r, &actual, now);
            Some(r)
        });
        Ok(())
    }

    async fn cancel(&mut self) -> Result<(), BackendError> {
        self.with(|policy, r, now| {
            policy.cancel(r, now);
            None
        });
        Ok(())
    }

    fn release(&mut self) {
        // Without a concurrency slot there is nothing to give back and nobody to wake: skip the
        // lock (the rate usage stays counted either way).
        if self.reservation.as_ref().is_some_and(|r| !r.is_started()) {
            self.reservation = None;
            return;
        }
        self.with(|policy, r, _| {
            policy.release(r);
            None
        });
    }
}
