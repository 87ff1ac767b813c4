//! The LLM policy: several limits on requests and tokens, plus concurrency, granted all together or
//! not at all.
//!
//! A request's [`Cost`] is spread over every limit according to what the limit counts (see
//! [`Resource`]). The policy finds the earliest instant at which *every* limit admits the request
//! and records it in all of them at that same instant, so capacity is never held in one limit while
//! waiting on another. Grants are made in non-decreasing time order across the whole policy, which
//! makes reservations first-come-first-served.
//!
//! The concurrency limit is claimed when a request starts (immediately for
//! [`try_acquire`](Policy::try_acquire), by [`start`](Policy::start) for a reservation) and held until
//! [`release`](Policy::release).

mod builder;
mod cost;
mod decision;
mod limit;

pub use builder::PolicyBuilder;
pub use cost::{Cost, Reservation};
pub use decision::{Decision, LimitState, LimitedBy, Rejection, StartError};
pub use limit::{Limit, LimitId, Resource};

use std::sync::Arc;

use crate::algorithm::{Algorithm, Concurrency, Quota, Step, Ticket};
use crate::error::{ConfigError, LimitName, TooLarge};
use crate::meter::Meter;
use crate::time::Nanos;

/// The most rate limits one policy holds (RPM, RPD, TPM, TPD, ITPM, OTPM and two more).
pub const MAX_LIMITS: usize = 8;

const NO_TICKET: Ticket = Ticket {
    amount: 0,
    at: 0,
    mark: 0,
    prev: 0,
    gap: 0,
};

/// The configuration part of a [`Policy`], shared by its clones.
#[derive(Debug, Clone, PartialEq)]
struct Shared {
    /// The limits as configured, parallel to the policy's `dims`.
    specs: Vec<Spec>,
    burndown_milli: u64,
    burst_multiplier: f64,
}

/// A limit's live state and what it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dim {
    resource: Resource,
    meter: Meter,
}

/// A limit as configured, with the name it was given (for messages). Cold: off the decision path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    field: String,
    limit: Limit,
}

/// Units of `cost` counted by a limit on `resource`, output tokens weighted by the burndown rate
/// (in thousandths) in the combined token limits, rounded up.
#[inline]
fn amount(burndown_milli: u64, resource: Resource, cost: &Cost) -> u64 {
    match resource {
        Resource::Requests => cost.requests,
        Resource::InputTokens => cost.input_tokens,
        Resource::OutputTokens => cost.output_tokens,
        Resource::Tokens => {
            let weighted = if burndown_milli == 1000 {
                cost.output_tokens
            } else {
                weighted_output(cost.output_tokens, burndown_milli)
            };
            cost.input_tokens.saturating_add(weighted)
        }
    }
}

/// `ceil(output * burndown_milli / 1000)`, saturating. Kept out of line: most policies have no
/// burndown, and the compiler would otherwise compute this ahead of the check.
#[cold]
#[inline(never)]
fn weighted_output(output: u64, burndown_milli: u64) -> u64 {
    match output.checked_mul(burndown_milli) {
        Some(w) => w.div_ceil(1000),
        None => {
            let w = u128::from(output) * u128::from(burndown_milli);
            u64::try_from(w.div_ceil(1000)).unwrap_or(u64::MAX)
        }
    }
}

/// `Ok` when the joint earliest instant `found` by [`Policy::earliest_shares`] is `now` (it is
/// never earlier); otherwise the exact wait and the limit that imposes it.
#[inline(always)]
fn admitted_now(found: (Nanos, Option<LimitId>), now: Nanos) -> Result<(), Rejection> {
    let (t, limiting) = found;
    if t > now {
        return Err(Rejection::RateLimited {
            retry_after: t - now,
            limited_by: limiting.unwrap_or(LimitId(0)),
        });
    }
    Ok(())
}

/// The fast decision of [`Policy::try_take`] and [`Policy::try_acquire`]: `true` when every limit
/// of `dims` is GCRA and admits its share at `now` (nothing being granted before `horizon`).
///
/// It says yes exactly when the general decision admits at `now`: that one starts from
/// `max(now, horizon)` and admits only if every limit's earliest instant is `now`, which for GCRA
/// is [`Gcra::admit_now`](crate::algorithm::Gcra::admit_now). Being only a yes or no for one
/// instant, it needs no running instant, no limiting limit, no wait and no error.
#[inline(always)]
fn admits_now_gcra(dims: &[Dim], horizon: Nanos, shares: &[u64; 4], now: Nanos) -> bool {
    horizon <= now
        && dims.iter().all(|dim| match &dim.meter {
            Meter::Gcra(gcra) => gcra.admit_now(shares[dim.resource as usize], now).is_some(),
            _ => false,
        })
}

/// A set of limits checked together for each request. Pure state: the caller supplies `now`.
///
/// ```
/// use ratelimit_core::{Cost, Policy, Rejection};
/// use ratelimit_core::time::NANOS_PER_SEC;
///
/// let mut policy = Policy::builder()
///     .requests_per_minute(60)
///     .tokens_per_minute(10_000)
///     .build()?;
///
/// // 6,000 prompt tokens + 4,000 max_tokens: the whole minute's token budget.
/// let mut grant = policy.try_acquire(&Cost::request(6_000, 4_000), 0).unwrap();
/// let Err(Rejection::RateLimited { retry_after, .. }) =
///     policy.try_acquire(&Cost::request(100, 100), 0)
/// else {
///     panic!("tokens are exhausted");
/// };
/// assert_eq!(retry_after, 1_200_000_000); // 200 tokens refill in 1.2 s
///
/// // The answer used only 1,000 output tokens: 3,000 come back at once.
/// policy.adjust(&mut grant, &Cost::request(6_000, 1_000), 0);
/// assert!(policy.try_acquire(&Cost::request(100, 100), 0).is_ok());
/// # Ok::<(), ratelimit_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// One meter per limit, with what it counts: the hot state.
    dims: Box<[Dim]>,
    /// What does not change per decision, shared between clones (the keys of a keyed limiter).
    shared: Arc<Shared>,
    /// Boxed: most policies have none, and the box keeps their size (and each key's) down.
    concurrency: Option<Box<Concurrency>>,
    /// The latest grant instant: nothing is granted before it.
    horizon: Nanos,
    /// Reservations recorded so far (identifies the most recent one).
    seq: u64,
}

impl Policy {
    /// Units of `cost` that count against limits on `resource`.
    #[must_use]
    pub fn amount(&self, resource: Resource, cost: &Cost) -> u64 {
        amount(self.shared.burndown_milli, resource, cost)
    }

    /// The configured limits with their ids, in order.
    pub fn limits(&self) -> impl Iterator<Item = (LimitId, &Limit)> {
        self.shared
            .specs
            .iter()
            .enumerate()
            .map(|(i, d)| (LimitId(i as u8), &d.limit))
    }

    /// The concurrency limit's state, if there is one.
    #[must_use]
    pub fn concurrency(&self) -> Option<&Concurrency> {
        self.concurrency.as_deref()
    }

    /// The error for a share of `index`'s limit beyond what it can ever grant.
    #[cold]
    #[inline(never)]
    fn too_large(&self, index: usize, shares: &[u64; 4]) -> TooLarge {
        let dim = &self.dims[index];
        let limit = &self.shared.specs[index].limit;
        TooLarge {
            requested: shares[dim.resource as usize],
            max: dim.meter.max_cost(),
            unit: limit.resource.unit(),
            limit: LimitName {
                resource: limit.resource.unit(),
                window: limit.window,
            },
        }
    }

    /// `cost` per resource, indexed by `Resource as usize`: computed once per decision.
    #[inline(always)]
    fn shares(&self, cost: &Cost) -> [u64; 4] {
        [
            cost.requests,
            cost.input_tokens,
            cost.output_tokens,
            amount(self.shared.burndown_milli, Resource::Tokens, cost),
        ]
    }

    /// The earliest instant, not before `from`, at which every rate limit admits `cost`, and the
    /// limit that pushed it furthest; the concurrency limit's size is checked too.
    #[inline]
    fn earliest(&self, cost: &Cost, from: Nanos) -> Result<(Nanos, Option<LimitId>), TooLarge> {
        let found = self.earliest_shares(&self.shares(cost), from)?;
        if let Some(c) = &self.concurrency {
            c.fits(cost.requests)?;
        }
        Ok(found)
    }

    /// [`earliest`](Self::earliest) over the rate limits only, for the shares of a cost.
    #[inline(always)]
    fn earliest_shares(
        &self,
        shares: &[u64; 4],
        from: Nanos,
    ) -> Result<(Nanos, Option<LimitId>), TooLarge> {
        self.earliest_rates(shares, from)
            .map_err(|i| self.too_large(i, shares))
    }

    /// [`earliest_shares`](Self::earliest_shares) with the error left to build: `Err` with the
    /// index of the first limit that can never admit its share.
    ///
    /// Every limit is monotone (a share that fits at `t` fits at any later instant, until the next
    /// grant), so the joint instant is found in one pass: each limit is asked from the instant the
    /// limits before it pushed to.
    #[inline(always)]
    fn earliest_rates(
        &self,
        shares: &[u64; 4],
        from: Nanos,
    ) -> Result<(Nanos, Option<LimitId>), usize> {
        let mut t = from;
        let mut limiting = None;
        for (i, dim) in self.dims.iter().enumerate() {
            let at = dim
                .meter
                .earliest_within(shares[dim.resource as usize], t)
                .ok_or(i)?;
            if at > t {
                t = at;
                limiting = Some(LimitId(i as u8));
            }
        }
        Ok((t, limiting))
    }

    /// The fast path of [`try_take`](Self::try_take): when every rate limit is GCRA and admits its
    /// share at `now` ([`admits_now_gcra`]), records the shares and returns `true`; otherwise
    /// changes nothing and returns `false`, and the general decision answers (and explains a
    /// refusal).
    ///
    /// The policies of one to four limits are dispatched on their number, a constant in each arm,
    /// and each limit's check hands its [`Step`] (the decision instant in scaled units and the
    /// backlog there) to its record, which so does not work them out again. Longer policies check,
    /// then record as the general path does.
    #[inline(always)]
    fn take_now_if_admitted(&mut self, shares: &[u64; 4], now: Nanos) -> bool {
        match self.dims.len() {
            1 => self.take_now_if_admitted_n::<1>(shares, now),
            2 => self.take_now_if_admitted_n::<2>(shares, now),
            3 => self.take_now_if_admitted_n::<3>(shares, now),
            4 => self.take_now_if_admitted_n::<4>(shares, now),
            _ => {
                let admitted = admits_now_gcra(&self.dims, self.horizon, shares, now);
                if admitted {
                    self.take_now(shares, now);
                }
                admitted
            }
        }
    }

    /// [`take_now_if_admitted`](Self::take_now_if_admitted) for a policy of exactly `N` limits.
    #[inline(always)]
    fn take_now_if_admitted_n<const N: usize>(&mut self, shares: &[u64; 4], now: Nanos) -> bool {
        if self.horizon > now {
            return false;
        }
        let Ok(dims) = <&mut [Dim; N]>::try_from(&mut self.dims[..]) else {
            return false;
        };
        // With `N` a constant, these arrays live in registers.
        let mut steps = [Step::default(); N];
        for (dim, step) in dims.iter().zip(&mut steps) {
            let admitted = match &dim.meter {
                Meter::Gcra(gcra) => gcra.admit_now(shares[dim.resource as usize], now),
                _ => None,
            };
            match admitted {
                Some(s) => *step = s,
                None => return false,
            }
        }
        for (dim, step) in dims.iter_mut().zip(steps) {
            // Always GCRA: every limit was checked above, on this same `&mut self`.
            if let Meter::Gcra(gcra) = &mut dim.meter {
                let _ = gcra.commit(shares[dim.resource as usize], step);
            }
        }
        self.horizon = now;
        self.seq += 1;
        true
    }

    /// The general decision of [`try_take`](Self::try_take), taken when the fast path says no:
    /// `Ok` when every rate limit admits `shares` now (some limit is not GCRA), otherwise why not.
    #[inline(never)]
    fn decide_take(&self, shares: &[u64; 4], now: Nanos) -> Result<(), Rejection> {
        admitted_now(self.earliest_shares(shares, now.max(self.horizon))?, now)
    }

    /// The general decision of [`try_acquire`](Self::try_acquire), taken when the fast path says
    /// no: `Ok` when every rate limit admits `shares` now and `slots` concurrency slots are free,
    /// otherwise why not.
    #[inline(never)]
    fn decide_acquire(&self, shares: &[u64; 4], slots: u64, now: Nanos) -> Result<(), Rejection> {
        let found = self.earliest_shares(shares, now.max(self.horizon))?;
        // Too many slots is refused before any wait, a full limit only once the rates admit.
        let free = match &self.concurrency {
            Some(c) => c.fits(slots)?,
            None => true,
        };
        admitted_now(found, now)?;
        if !free {
            return Err(Rejection::ConcurrencyFull);
        }
        Ok(())
    }

    /// Records `shares` at `now` in every limit, once all of them have admitted them there, keeping
    /// no tickets: nothing will be settled (what [`record`](Self::record) does, less the tickets).
    #[inline(always)]
    fn take_now(&mut self, shares: &[u64; 4], now: Nanos) {
        for dim in &mut self.dims {
            let _ = dim
                .meter
                .record_fast(shares[dim.resource as usize], now, now);
        }
        self.horizon = self.horizon.max(now);
        self.seq += 1;
    }

    /// Records `cost` at `at` in every limit: a reservation holding `slots` concurrency slots.
    #[inline]
    fn record(&mut self, cost: &Cost, at: Nanos, now: Nanos, slots: u64) -> Reservation {
        let shares = self.shares(cost);
        let mut dims = self.dims.iter_mut();
        let mut next = || match dims.next() {
            Some(dim) => dim
                .meter
                .record_fast(shares[dim.resource as usize], at, now),
            None => NO_TICKET,
        };
        // Spelled out rather than a loop over an array cleared first (the array's type makes the
        // compiler count them: `MAX_LIMITS`, the most limits a policy holds): each ticket is
        // written once, and the compiler clears no 320 bytes it then overwrites.
        let tickets = [
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
        ];
        debug_assert!(dims.next().is_none(), "at most MAX_LIMITS limits");
        let prev_horizon = self.horizon;
        self.horizon = self.horizon.max(at);
        self.seq += 1;
        Reservation {
            at,
            cost: *cost,
            tickets,
            slots,
            seq: self.seq,
            prev_horizon,
        }
    }

    /// Whether `cost` could ever be granted: `Err` with the first limit it exceeds if not.
    ///
    /// # Errors
    /// [`TooLarge`] naming the limit.
    pub fn check_size(&self, cost: &Cost) -> Result<(), TooLarge> {
        self.earliest(cost, self.horizon).map(|_| ())
    }

    /// Grants `cost` now in every dimension, concurrency included, or grants nothing.
    ///
    /// # Errors
    /// [`Rejection::RateLimited`] with the exact wait, [`Rejection::ConcurrencyFull`], or
    /// [`Rejection::TooLarge`] when some limit can never admit the request.
    #[inline]
    pub fn try_acquire(&mut self, cost: &Cost, now: Nanos) -> Result<Reservation, Rejection> {
        let shares = self.shares(cost);
        let slots = cost.requests.max(1);
        // Free slots for `slots` also mean that `cost` is not too large for the concurrency limit.
        let free = self
            .concurrency
            .as_ref()
            .is_none_or(|c| c.fits(slots) == Ok(true));
        // The decision is not unrolled here as in `try_take`: the reservation's recording is
        // large, and copies of it per number of limits cost more than the arithmetic they share.
        if !(free && admits_now_gcra(&self.dims, self.horizon, &shares, now)) {
            self.decide_acquire(&shares, slots, now)?;
        }
        Ok(self.grant_now(cost, slots, now))
    }

    /// Claims `slots` concurrency slots and records `cost` at `now`, once every limit has admitted
    /// it (the slots included).
    #[inline(always)]
    fn grant_now(&mut self, cost: &Cost, slots: u64, now: Nanos) -> Reservation {
        let held = match &mut self.concurrency {
            Some(c) => {
                c.take_free(slots);
                slots
            }
            None => 0,
        };
        self.record(cost, now, now, held)
    }

    /// Takes `cost` now from every rate limit, or nothing: the fast path for callers that never
    /// settle a grant (like governor's `check`). There is no reservation, so the cost cannot be
    /// adjusted or cancelled later, and the concurrency limit is not consulted (nothing would
    /// release the slot); use [`try_acquire`](Self::try_acquire) for that.
    ///
    /// # Errors
    /// [`Rejection::RateLimited`] with the exact wait, or [`Rejection::TooLarge`].
    // Always inlined: the fast path is short, and a call returns the 64-byte result through memory
    // with only its one-byte tag written on success. A caller that then copies the whole result
    // reads it in wider pieces than were written, which the processor cannot forward from the
    // pending store: it waits for it (about 4 ns a decision, measured on the VM).
    #[inline(always)]
    pub fn try_take(&mut self, cost: &Cost, now: Nanos) -> Result<(), Rejection> {
        let shares = self.shares(cost);
        if !self.take_now_if_admitted(&shares, now) {
            self.decide_take(&shares, now)?;
            self.take_now(&shares, now);
        }
        Ok(())
    }

    /// Reserves `cost` in every rate limit at the earliest instant they all admit it (possibly
    /// `now`); the request may go at [`Reservation::ready_at`], after [`start`](Self::start) claims
    /// its concurrency slot. Later reservations are placed after this one (first come, first served).
    ///
    /// # Errors
    /// [`TooLarge`] when some limit can never admit the request; nothing is reserved then.
    pub fn reserve(&mut self, cost: &Cost, now: Nanos) -> Result<Reservation, TooLarge> {
        let (t, _) = self.earliest(cost, now.max(self.horizon))?;
        Ok(self.record(cost, t, now, 0))
    }

    /// Starts a reservation at `now`: claims its concurrency slot (a no-op without a concurrency
    /// limit). Idempotent.
    ///
    /// # Errors
    /// [`StartError::NotYet`] before the reservation's instant, [`StartError::ConcurrencyFull`] when
    /// no slot is free; nothing changes then. A caller that has to wait for a slot may
    /// [`cancel`](Self::cancel) the reservation meanwhile, so as not to hold rate capacity idle.
    pub fn start(&mut self, reservation: &mut Reservation, now: Nanos) -> Result<(), StartError> {
        if now < reservation.at {
            return Err(StartError::NotYet {
                retry_after: reservation.at - now,
            });
        }
        if reservation.slots > 0 {
            return Ok(());
        }
        if let Some(c) = &mut self.concurrency {
            let slots = reservation.cost.requests.max(1);
            c.try_take(slots).map_err(|_| StartError::ConcurrencyFull)?;
            reservation.slots = slots;
        }
        Ok(())
    }

    /// Replaces the reservation's cost with `actual` in every limit (refund or charge), combined
    /// tokens included. Usage whose window has passed no longer counts and is left alone.
    pub fn adjust(&mut self, reservation: &mut Reservation, actual: &Cost, now: Nanos) {
        let shares = self.shares(actual);
        for (dim, ticket) in self.dims.iter_mut().zip(&mut reservation.tickets) {
            dim.meter.adjust(ticket, shares[dim.resource as usize], now);
        }
        reservation.cost = *actual;
    }

    /// The request is finished: frees its concurrency slot. Its rate usage stays counted.
    #[inline]
    pub fn release(&mut self, reservation: Reservation) {
        if let Some(c) = &mut self.concurrency {
            c.release(reservation.slots);
        }
    }

    /// The request never happened: gives back everything it holds, rate and concurrency. Cancelling
    /// the most recent reservation restores the policy as it was before it (to the nanosecond),
    /// so a dropped waiter at the back of the queue leaves no trace; an older one is refunded in
    /// full, and the waiters queued behind it keep their places.
    pub fn cancel(&mut self, reservation: Reservation, now: Nanos) {
        for (dim, ticket) in self.dims.iter_mut().zip(reservation.tickets) {
            dim.meter.give_back(ticket, now);
        }
        if reservation.seq == self.seq {
            self.horizon = reservation.prev_horizon;
            self.seq -= 1;
        }
        self.release(reservation);
    }

    /// Whether `cost` would be granted at `now`, and every dimension's state. Changes nothing.
    #[must_use]
    pub fn check(&self, cost: &Cost, now: Nanos) -> Decision {
        match self.earliest(cost, now.max(self.horizon)) {
            Ok((t, limiting)) => {
                let mut limited_by = if t > now {
                    limiting.map(LimitedBy::Limit)
                } else {
                    None
                };
                if t <= now {
                    if let Some(c) = &self.concurrency {
                        if !c.fits(cost.requests).unwrap_or(false) {
                            limited_by = Some(LimitedBy::Concurrency);
                        }
                    }
                }
                self.decision(now, t, limited_by)
            }
            Err(_) => {
                let mut d = self.decision(now, now, None);
                d.allowed = false;
                d
            }
        }
    }

    /// Whether the policy is back to its initial state at `now`: nothing in flight, nothing
    /// reserved ahead, every limit fully replenished. Such a policy can be dropped and rebuilt
    /// fresh without granting anything extra (keyed limiters evict on this).
    #[must_use]
    pub fn is_idle(&self, now: Nanos) -> bool {
        self.horizon <= now
            && self.concurrency.as_ref().is_none_or(|c| c.in_flight() == 0)
            && self.dims.iter().all(|d| d.meter.peek(now).reset_after == 0)
    }

    /// Every dimension's state at `now`.
    #[must_use]
    pub fn status(&self, now: Nanos) -> Decision {
        self.check(&Cost::NONE, now)
    }

    fn decision(&self, now: Nanos, at: Nanos, limited_by: Option<LimitedBy>) -> Decision {
        let allowed = limited_by.is_none() && at <= now;
        let mut d = Decision::new(allowed, at.saturating_sub(now), limited_by);
        for (i, (spec, dim)) in self.shared.specs.iter().zip(&self.dims).enumerate() {
            d.push(LimitState {
                id: LimitId(i as u8),
                resource: spec.limit.resource,
                window: spec.limit.window,
                status: dim.meter.peek(now),
            });
        }
        d.concurrency = self.concurrency.as_deref().map(Concurrency::peek);
        d
    }

    /// Changes one limit's amount at runtime. The burst scales with it (an explicit burst keeps its
    /// ratio to the amount); usage already recorded keeps counting, so no fresh burst is granted.
    ///
    /// # Errors
    /// [`ConfigError`] when the amount is invalid or breaks the policy's consistency; nothing
    /// changes then.
    pub fn set_amount(&mut self, id: LimitId, amount: u64, now: Nanos) -> Result<(), ConfigError> {
        let Some(spec) = self.shared.specs.get(id.index()) else {
            return Err(unknown_limit(id));
        };
        let mut limit = spec.limit;
        if let Some(burst) = limit.burst {
            let ratio = burst as f64 / limit.amount as f64;
            limit.burst = Some(((amount as f64 * ratio).floor() as u64).max(1));
        }
        limit.amount = amount;
        self.set_limit(id, limit, now)
    }

    /// Replaces one limit's settings at runtime (same resource; any amount, window, burst; same
    /// algorithm). Usage already recorded keeps counting against the new settings.
    ///
    /// # Errors
    /// [`ConfigError`] when the new limit is invalid, changes resource or algorithm, or breaks the
    /// policy's consistency; nothing changes then.
    pub fn set_limit(&mut self, id: LimitId, limit: Limit, now: Nanos) -> Result<(), ConfigError> {
        let i = id.index();
        let Some(spec) = self.shared.specs.get(i) else {
            return Err(unknown_limit(id));
        };
        let field = spec.field.clone();
        if limit.resource != spec.limit.resource || limit.algorithm != spec.limit.algorithm {
            return Err(ConfigError::Inconsistent {
                field,
                reason: "a runtime change keeps the limit's resource and algorithm".into(),
            });
        }
        let quota: Quota = builder::validate(&field, &limit, self.shared.burst_multiplier)?;
        let mut candidate = self.shared.specs.clone();
        candidate[i].limit = limit;
        builder::check_consistency(&candidate)?;
        Arc::make_mut(&mut self.shared).specs[i].limit = limit;
        self.dims[i].meter.set_quota(quota, now);
        Ok(())
    }

    /// Corrects one limit's books to what the provider reports: a positive `delta` charges usage
    /// this policy did not see (debt that later requests wait out), a negative one gives back units
    /// the provider says are free (newest usage first, never beyond empty). Reservations already
    /// made keep their instants.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] when `id` is not one of this policy's limits; nothing changes.
    pub fn correct(&mut self, id: LimitId, delta: i64, now: Nanos) -> Result<(), ConfigError> {
        let Some(dim) = self.dims.get_mut(id.index()) else {
            return Err(unknown_limit(id));
        };
        let n = delta.unsigned_abs();
        if delta > 0 {
            dim.meter.record(n, now, now);
        } else if delta < 0 {
            dim.meter.credit(n, now);
        }
        Ok(())
    }

    /// Changes the concurrency limit at runtime (requests in flight keep their slots).
    ///
    /// # Errors
    /// [`ConfigError`] when `max` is invalid or the policy has no concurrency limit.
    pub fn set_concurrency(&mut self, max: u64) -> Result<(), ConfigError> {
        match &mut self.concurrency {
            Some(c) => c.set_max(max),
            None => Err(ConfigError::Inconsistent {
                field: "concurrency".into(),
                reason: "this policy was built without a concurrency limit".into(),
            }),
        }
    }
}

/// The error for a limit id that is not one of the policy's.
#[cold]
fn unknown_limit(id: LimitId) -> ConfigError {
    ConfigError::OutOfRange {
        field: "limit id".into(),
        value: id.index().to_string(),
        expected: "an id returned by this policy",
    }
}
