//! The conformance suite: the behaviour every [`Limiter`] backend must show, written once.
//!
//! Each check is an async function taking a factory that builds a fresh limiter (a new, empty
//! budget) for a [`Policy`]. The [`conformance_tests!`](crate::conformance_tests) macro turns them
//! into `#[tokio::test]`s with the attribute of your choice: the in-memory backend runs them on
//! tokio's paused clock, the Redis backend in real time against real servers. Time is measured on
//! tokio's clock, and every timing assertion allows [`SLACK`] of lateness (and none of earliness),
//! so the same checks hold in both.

mod checks;

pub use checks::*;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::Policy;

use crate::Limiter;

/// How late a real backend may be (network round trips, scheduling). Never how early.
pub const SLACK: Duration = Duration::from_millis(250);

/// Builds a fresh limiter for a policy.
pub trait Factory: Send + Sync {
    /// The limiter's future.
    type Fut: Future<Output = Arc<dyn Limiter>> + Send;
    /// A new limiter with its own, empty budget.
    fn make(&self, policy: Policy) -> Self::Fut;
}

impl<F, Fut> Factory for F
where
    F: Fn(Policy) -> Fut + Send + Sync,
    Fut: Future<Output = Arc<dyn Limiter>> + Send,
{
    type Fut = Fut;
    fn make(&self, policy: Policy) -> Fut {
        self(policy)
    }
}

/// Generates one test per conformance check.
///
/// ```ignore
/// ratelimit_limiter::conformance_tests!(#[tokio::test(start_paused = true)], make_limiter);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (#[$attr:meta], $factory:expr) => {
        $crate::conformance_tests!(@each #[$attr], $factory,
            grants_up_to_the_burst_then_says_exactly_when,
            refuses_a_request_too_large_at_once,
            grants_all_dimensions_or_none,
            waits_exactly_for_its_turn,
            serves_waiters_first_come_first_served,
            does_not_starve_a_large_request,
            a_dropped_waiter_gives_back_its_place,
            a_timeout_fails_at_once_when_the_turn_is_too_far,
            holds_concurrency_until_the_permit_is_dropped,
            adjust_refunds_unused_tokens,
            adjust_corrects_every_dimension_including_combined_tokens,
            cancel_gives_everything_back,
            try_acquire_never_overtakes_a_waiter,
            runtime_limit_change_keeps_usage,
            stats_count_grants_and_hits,
            pause_holds_everyone_back_until_it_ends,
            correct_charges_and_credits_one_limit,
        );
    };
    (@each #[$attr:meta], $factory:expr, $($check:ident),+ $(,)?) => {
        $(
            #[$attr]
            async fn $check() {
                $crate::conformance::$check(&$factory).await;
            }
        )+
    };
}
