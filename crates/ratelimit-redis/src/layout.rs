//! How a policy's limits are laid out for the Lua script: integer time units that stay exact.
//!
//! Lua numbers in Redis are doubles: integers are exact only below 2^53. Each limit is expressed in
//! its own units so that everything the script computes stays far below that bound and exact:
//! time counts in *ticks* of `tick` microseconds (1 µs unless the limit is so large that a coarser
//! tick is needed), and a *scaled* unit is `1 / scale` tick, with `scale` and `emission` the
//! reduced fraction `amount / window`: one unit of the limit costs exactly `emission` scaled units,
//! and `scale` scaled units drain per tick. The capacity is `burst * emission`.
//!
//! Rounding only ever makes the limit stricter: a window that is not a whole number of ticks is
//! rounded up (a slightly slower rate), and Redis time is read down to the tick.

use ratelimit_core::{AlgorithmKind, Limit, Policy};

use crate::error::RedisLimiterError;

/// The largest capacity a limit may have in scaled units: 2^50 leaves room for debt and sums.
const MAX_SCALED: u64 = 1 << 50;

/// One limit as the script sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DimLayout {
    /// 1 for GCRA, 2 for the leaky bucket.
    pub(crate) kind: u8,
    /// Microseconds per tick.
    pub(crate) tick: u64,
    /// Scaled units drained per tick.
    pub(crate) scale: u64,
    /// Scaled units one unit of the limit costs.
    pub(crate) emission: u64,
    /// Capacity in scaled units (burst * emission).
    pub(crate) cap: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl DimLayout {
    /// Lays out one limit with its burst.
    pub(crate) fn new(limit: &Limit, burst: u64) -> Result<Self, RedisLimiterError> {
        let window_us = limit.window().div_ceil(1_000).max(1);
        let kind = match limit.algorithm_kind() {
            AlgorithmKind::Gcra => 1,
            AlgorithmKind::LeakyBucket => 2,
            AlgorithmKind::SlidingWindowLog => 3,
            AlgorithmKind::FixedWindow => 4,
            other => return Err(RedisLimiterError::Unsupported(other.name())),
        };
        if kind >= 3 {
            // Windows count whole units per window of microseconds: no scaling needed.
            return Ok(Self {
                kind,
                tick: 1,
                scale: window_us,
                emission: 1,
                cap: limit.amount(),
            });
        }
        let mut tick = 1u64;
        loop {
            let window_ticks = window_us.div_ceil(tick).max(1);
            let g = gcd(window_ticks, limit.amount());
            let (emission, scale) = (window_ticks / g, limit.amount() / g);
            if let Some(cap) = burst.checked_mul(emission).filter(|c| *c <= MAX_SCALED) {
                if scale <= MAX_SCALED {
                    return Ok(Self {
                        kind,
                        tick,
                        scale,
                        emission,
                        cap,
                    });
                }
            }
            if tick >= 1_000_000_000 {
                return Err(RedisLimiterError::TooLargeForRedis {
                    amount: limit.amount(),
                    burst,
                });
            }
            tick *= 10;
        }
    }

    /// The five script arguments of this limit.
    pub(crate) fn args(&self) -> [u64; 5] {
        [
            u64::from(self.kind),
            self.tick,
            self.scale,
            self.emission,
            self.cap,
        ]
    }
}

/// Lays out every limit of a policy, in order.
pub(crate) fn layout(policy: &Policy) -> Result<Vec<DimLayout>, RedisLimiterError> {
    let status = policy.status(0);
    policy
        .limits()
        .zip(status.limits())
        .map(|((_, limit), state)| DimLayout::new(limit, state.status.capacity))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratelimit_core::Resource;
    use std::time::Duration;

    fn lay(amount: u64, window: Duration, burst: u64) -> DimLayout {
        DimLayout::new(&Limit::new(Resource::Tokens, amount, window), burst).unwrap()
    }

    #[test]
    fn round_limits_reduce_to_small_exact_integers() {
        // 1,000,000 tokens per minute: 60 µs per token exactly.
        let d = lay(1_000_000, Duration::from_secs(60), 1_000_000);
        assert_eq!((d.tick, d.scale, d.emission, d.cap), (1, 1, 60, 60_000_000));
        // 7 per minute: 60,000,000 / 7 µs, kept as a fraction.
        let d = lay(7, Duration::from_secs(60), 7);
        assert_eq!(
            (d.tick, d.scale, d.emission, d.cap),
            (1, 7, 60_000_000, 420_000_000)
        );
    }

    #[test]
    fn huge_limits_coarsen_the_tick_instead_of_losing_exactness() {
        // A prime daily amount with a huge burst does not fit in µs: ticks grow, math stays exact.
        let d = lay(1_000_000_007, Duration::from_secs(86_400), 1_000_000_007);
        assert!(d.tick > 1);
        assert!(d.cap <= MAX_SCALED);
        assert_eq!(d.cap, 1_000_000_007 * d.emission);
    }

    #[test]
    fn windows_count_whole_units_per_window_of_microseconds() {
        let limit = Limit::new(Resource::Requests, 10, Duration::from_secs(60))
            .algorithm(AlgorithmKind::SlidingWindowLog);
        let d = DimLayout::new(&limit, 10).unwrap();
        assert_eq!(
            (d.kind, d.tick, d.scale, d.emission, d.cap),
            (3, 1, 60_000_000, 1, 10)
        );
        let limit = limit.algorithm(AlgorithmKind::FixedWindow);
        assert_eq!(DimLayout::new(&limit, 10).unwrap().kind, 4);
    }

    #[test]
    fn the_sliding_counter_is_not_on_redis() {
        let limit = Limit::new(Resource::Requests, 10, Duration::from_secs(1))
            .algorithm(AlgorithmKind::SlidingWindowCounter);
        assert!(matches!(
            DimLayout::new(&limit, 10),
            Err(RedisLimiterError::Unsupported("sliding_window_counter"))
        ));
    }
}
