//! Pure rate-limiting algorithms and the multi-dimension LLM policy, with no I/O and no clock.
//!
//! This crate is the sans-I/O core of `llm-ratelimit`: every function takes `now` (integer
//! nanoseconds from a [`Clock`] the caller owns) and returns a decision. It never reads the time,
//! never sleeps, never spawns. The async and distributed layers (`ratelimit-memory`,
//! `ratelimit-redis`) are thin shells around it.
//!
//! - [`algorithm`]: single-dimension algorithms behind one interface: [`Gcra`](algorithm::Gcra)
//!   (continuous token bucket), [`LeakyBucket`](algorithm::LeakyBucket),
//!   [`SlidingWindowLog`](algorithm::SlidingWindowLog) (exact),
//!   [`SlidingWindowCounter`](algorithm::SlidingWindowCounter) (approximate, bounded),
//!   [`FixedWindow`](algorithm::FixedWindow), and the [`Concurrency`](algorithm::Concurrency)
//!   counter.
//! - [`Policy`]: RPM, RPD, TPM, TPD, input and output TPM, concurrency, burst multiplier and
//!   burndown rate, granted all together or not at all, with reservations that are adjusted to the
//!   actual usage once it is known.
//!
//! ```
//! use ratelimit_core::{Cost, ManualClock, Clock, Policy};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let mut policy = Policy::builder().requests_per_minute(2).build()?;
//! assert!(policy.try_acquire(&Cost::ONE_REQUEST, clock.now()).is_ok());
//! assert!(policy.try_acquire(&Cost::ONE_REQUEST, clock.now()).is_ok());
//! assert!(policy.try_acquire(&Cost::ONE_REQUEST, clock.now()).is_err());
//! clock.advance(Duration::from_secs(30));
//! assert!(policy.try_acquire(&Cost::ONE_REQUEST, clock.now()).is_ok());
//! # Ok::<(), ratelimit_core::ConfigError>(())
//! ```

pub mod algorithm;
mod clock;
mod error;
mod meter;
mod policy;
pub mod time;
mod time_fmt;

pub use clock::{Clock, ManualClock};
pub use error::{ConfigError, LimitName, TooLarge};
pub use meter::AlgorithmKind;
pub use policy::{
    Cost, Decision, Limit, LimitId, LimitState, LimitedBy, MAX_LIMITS, Policy, PolicyBuilder,
    Rejection, Reservation, Resource, StartError,
};
pub use time::Nanos;
