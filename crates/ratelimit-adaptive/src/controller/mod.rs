//! The controller: turns what responses say into changes to a limiter, deterministically.
//!
//! Pure and sans-I/O like the core: it is fed each response ([`Feedback`]) with the instant it
//! arrived, and answers with [`Action`]s for the limiter. The async shell
//! ([`AdaptiveLimiter`](crate::AdaptiveLimiter)) applies them; the simulations in this crate's
//! tests drive it on a manual clock.
//!
//! # What it does
//!
//! - **Header sync.** A dimension the headers describe is matched to the policy's limit on the
//!   same resource (the one with the stated window, else the shortest). Its announced limit
//!   becomes the limit's amount (times [`headroom`](AdaptiveConfig::headroom)), in both
//!   directions. Its `remaining` is compared with what the limiter had left right after granting
//!   that request, and the difference is charged or credited ([`Action::Correct`]): both sides
//!   refill alike between the grant and the response, so the difference at the grant is the
//!   difference now. Window algorithms (sliding log, fixed window) are only ever charged, not
//!   credited: their units come back at set instants, and a provider's larger `remaining` is then
//!   mostly its window edge passing a moment before ours. Requests granted before the last correction are not used to correct again
//!   (their view predates it), so concurrent responses do not count one discrepancy many times.
//! - **429.** Every user of the budget pauses ([`Action::Pause`]) for the provider's retry-after,
//!   or, when it gives none, an exponential backoff.
//! - **AIMD**, for limits no header describes: a 429 multiplies the binding limit (the one with
//!   the least left at the grant) by [`decrease`](AdaptiveConfig::decrease); a success while the
//!   limit is pressed (under a tenth left at the grant) raises it once per window: doubling before
//!   the first 429 (slow start, which ends by halving), then by
//!   [`increase`](AdaptiveConfig::increase), never during [`recovery`](AdaptiveConfig::recovery)
//!   after a decrease, within `[min, max]`. Only a 429 on a request granted after the last
//!   decrease decreases again, so a burst of 429s from requests already in flight counts once.
//!   The limit is changed in place (usage kept, no fresh burst), unlike the seed's limiter, which
//!   rebuilt its bucket on every change, and it only grows while demand presses it.

mod aimd;
mod config;

use std::time::Duration;

use ratelimit_core::{ConfigError, Decision, LimitId, LimitState, Nanos, Policy, Resource};

pub use config::AdaptiveConfig;

use crate::headers::{Observed, Snapshot};
use aimd::Aimd;

/// A change the controller asks of the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set this limit's amount (for every key).
    SetAmount {
        /// Which limit.
        id: LimitId,
        /// The new amount per window.
        amount: u64,
    },
    /// Charge (positive) or credit (negative) this limit by `delta` units, for this key.
    Correct {
        /// Which limit.
        id: LimitId,
        /// Units to charge (positive) or give back (negative).
        delta: i64,
    },
    /// Hold every request of this key back for this long.
    Pause(Duration),
}

/// One response, as the controller needs it.
#[derive(Debug, Clone, Copy)]
pub struct Feedback<'a> {
    /// The HTTP status.
    pub status: u16,
    /// What its headers (and body) said.
    pub snapshot: &'a Snapshot,
    /// The limiter's state right after granting the request, and when that was (controller
    /// clock); `None` when unknown (then nothing is corrected and AIMD treats it as old news).
    pub granted: Option<(Nanos, &'a Decision)>,
}

/// One limit the controller follows.
#[derive(Debug, Clone)]
struct Tracked {
    id: LimitId,
    resource: Resource,
    window: Nanos,
    /// The amount the limiter has now (as far as this controller knows).
    amount: u64,
    /// Whether headers have described it: then they, not AIMD, drive it.
    from_headers: bool,
    /// A window algorithm (sliding log, fixed window, sliding counter): its units come back at
    /// set instants, so it is never credited (see `sync`).
    windowed: bool,
    aimd: Aimd,
}

/// Follows a provider's limits for one budget. See the [module docs](self).
///
/// ```
/// use std::time::SystemTime;
/// use http::HeaderMap;
/// use ratelimit_adaptive::{Action, AdaptiveConfig, Controller, Feedback, Snapshot};
/// use ratelimit_core::{Cost, Policy};
///
/// let mut policy = Policy::builder().requests_per_minute(100).build()?;
/// let mut controller = Controller::new(&policy, AdaptiveConfig::default())?;
/// policy.try_take(&Cost::ONE_REQUEST, 0).unwrap();
/// let granted = policy.status(0); // 99 left, as the limiter sees it
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-limit-requests", "500".parse()?);
/// headers.insert("x-ratelimit-remaining-requests", "450".parse()?);
/// let snapshot = Snapshot::from_headers(&headers, SystemTime::now());
/// let actions = controller.on_response(
///     &Feedback { status: 200, snapshot: &snapshot, granted: Some((0, &granted)) },
///     1_000,
/// );
/// let id = policy.limits().next().unwrap().0;
/// // The real limit is 500; the account already used 50 (others share it): 49 more than we saw.
/// assert_eq!(actions, [Action::SetAmount { id, amount: 500 }, Action::Correct { id, delta: 49 }]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Controller {
    config: AdaptiveConfig,
    limits: Vec<Tracked>,
    /// Responses to requests granted before this instant do not correct again.
    last_sync: Option<Nanos>,
    /// 429s in a row without retry information (for the backoff).
    blind_429s: u32,
}

impl Controller {
    /// A controller for a limiter enforcing `policy` (as configured at start: the AIMD bounds are
    /// fractions of these amounts).
    ///
    /// # Errors
    /// [`ConfigError`] when `config` is invalid.
    pub fn new(policy: &Policy, config: AdaptiveConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let limits = policy
            .limits()
            .map(|(id, limit)| Tracked {
                id,
                resource: limit.resource(),
                window: limit.window(),
                amount: limit.amount(),
                from_headers: false,
                windowed: !limit.algorithm_kind().has_burst(),
                aimd: Aimd::new(limit.amount(), &config),
            })
            .collect();
        Ok(Self {
            config,
            limits,
            last_sync: None,
            blind_429s: 0,
        })
    }

    /// The amount the controller believes `id` has now.
    #[must_use]
    pub fn amount(&self, id: LimitId) -> Option<u64> {
        self.limits.iter().find(|t| t.id == id).map(|t| t.amount)
    }

    /// Records a change of `id`'s amount made by someone else (an operator), so AIMD continues
    /// from it.
    pub fn set_amount(&mut self, id: LimitId, amount: u64) {
        if let Some(t) = self.limits.iter_mut().find(|t| t.id == id) {
            t.amount = amount;
        }
    }

    /// What to change, given one response that arrived at `now`.
    pub fn on_response(&mut self, feedback: &Feedback<'_>, now: Nanos) -> Vec<Action> {
        let mut actions = Vec::new();
        let granted_at = feedback.granted.map(|(at, _)| at);
        let fresh = match (granted_at, self.last_sync) {
            (Some(at), Some(sync)) => at >= sync,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut synced = false;
        for (resource, observed) in feedback.snapshot.iter() {
            let Some(i) = self.match_limit(resource, observed.window) else {
                continue;
            };
            let state = feedback
                .granted
                .and_then(|(_, d)| d.limits().iter().find(|s| s.id == self.limits[i].id));
            synced |= self.sync(i, observed, state.filter(|_| fresh), &mut actions);
        }
        if synced {
            self.last_sync = Some(now);
        }
        let header_limited = feedback.snapshot.iter().next().is_some();
        match feedback.status {
            429 => self.on_429(feedback, granted_at, header_limited, now, &mut actions),
            200..=299 => {
                self.blind_429s = 0;
                self.on_success(feedback, now, &mut actions);
            }
            _ => {}
        }
        actions
    }

    /// The tracked limit a header dimension speaks of.
    fn match_limit(&self, resource: Resource, window: Option<Duration>) -> Option<usize> {
        let same = || {
            self.limits
                .iter()
                .enumerate()
                .filter(move |(_, t)| t.resource == resource)
        };
        if let Some(w) = window {
            let w = u64::try_from(w.as_nanos()).unwrap_or(u64::MAX);
            if let Some((i, _)) = same().find(|(_, t)| t.window == w) {
                return Some(i);
            }
        }
        same().min_by_key(|(_, t)| t.window).map(|(i, _)| i)
    }

    /// Header sync of one limit; true if it corrected the limiter's books.
    fn sync(
        &mut self,
        i: usize,
        observed: Observed,
        at_grant: Option<&LimitState>,
        actions: &mut Vec<Action>,
    ) -> bool {
        let headroom = self.config.headroom;
        let tolerance = self.config.sync_tolerance;
        let t = &mut self.limits[i];
        t.from_headers = true;
        if let Some(limit) = observed.limit.filter(|l| *l > 0) {
            let amount = ((limit as f64 * headroom).floor() as u64).max(1);
            if amount != t.amount {
                t.amount = amount;
                actions.push(Action::SetAmount { id: t.id, amount });
            }
        }
        let (Some(remaining), Some(state)) = (observed.remaining, at_grant) else {
            return false;
        };
        // What we had left at the grant, re-expressed under the amount now in force (a change
        // keeps the usage: capacity scales with the amount).
        let s = state.status;
        let capacity_now = if s.limit == t.amount || s.limit == 0 {
            s.capacity
        } else {
            u64::try_from(u128::from(s.capacity) * u128::from(t.amount) / u128::from(s.limit))
                .unwrap_or(u64::MAX)
        };
        let used = s.capacity.saturating_sub(s.remaining);
        let ours = capacity_now.saturating_sub(used);
        // The provider's remaining, scaled like the limit, is what should be left.
        let theirs = (remaining as f64 * headroom).floor() as u64;
        let delta = i128::from(ours) - i128::from(theirs);
        if delta < 0 && t.windowed {
            // The provider has more left than we do. For a window algorithm that is, most of the
            // time, the edge of the windows: ours is a little longer than the provider's (a
            // margin for network delays), so its oldest units have already left the provider's
            // window and will leave ours a moment later. Crediting the newest units now would
            // free that capacity twice. Charges (the provider has less) always apply.
            return false;
        }
        let threshold = ((t.amount as f64 * tolerance).floor() as i128).max(0);
        if delta.abs() <= threshold {
            return false;
        }
        let delta = i64::try_from(delta).unwrap_or(if delta > 0 { i64::MAX } else { i64::MIN });
        actions.push(Action::Correct { id: t.id, delta });
        true
    }

    fn on_429(
        &mut self,
        feedback: &Feedback<'_>,
        granted_at: Option<Nanos>,
        header_limited: bool,
        now: Nanos,
        actions: &mut Vec<Action>,
    ) {
        let pause = match feedback.snapshot.retry().after {
            Some(after) => {
                self.blind_429s = 0;
                after
            }
            None => {
                let doubling = 2_u32.saturating_pow(self.blind_429s.min(30));
                self.blind_429s = self.blind_429s.saturating_add(1);
                self.config
                    .backoff
                    .saturating_mul(doubling)
                    .min(self.config.max_backoff)
            }
        };
        if !pause.is_zero() {
            actions.push(Action::Pause(pause));
        }
        if header_limited && self.limits.iter().all(|t| t.from_headers) {
            return; // the headers corrected the books; nothing to guess
        }
        // AIMD: the binding limit among those the headers leave to us.
        let Some((_, granted)) = feedback.granted else {
            return;
        };
        let binding = self
            .limits
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.from_headers)
            .filter_map(|(i, t)| {
                let s = granted.limits().iter().find(|s| s.id == t.id)?.status;
                Some((i, fraction_left(s.remaining, s.capacity)))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        if let Some(i) = binding {
            let t = &mut self.limits[i];
            if let Some(amount) = t.aimd.decrease(t.amount, granted_at, now, &self.config) {
                t.amount = amount;
                actions.push(Action::SetAmount { id: t.id, amount });
            }
        }
    }

    fn on_success(&mut self, feedback: &Feedback<'_>, now: Nanos, actions: &mut Vec<Action>) {
        let Some((_, granted)) = feedback.granted else {
            return;
        };
        for t in self.limits.iter_mut().filter(|t| !t.from_headers) {
            let Some(s) = granted.limits().iter().find(|s| s.id == t.id) else {
                continue;
            };
            let pressed = s.status.remaining.saturating_mul(10) < s.status.capacity;
            if !pressed {
                continue;
            }
            if let Some(amount) = t.aimd.increase(t.amount, t.window, now, &self.config) {
                t.amount = amount;
                actions.push(Action::SetAmount { id: t.id, amount });
            }
        }
    }
}

fn fraction_left(remaining: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        remaining as f64 / capacity as f64
    }
}
