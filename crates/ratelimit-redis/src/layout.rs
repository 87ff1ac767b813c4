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
//!
//! Numbers travel to and from the script packed, as little-endian doubles ([`Packed`],
//! [`unpack`]): every one is an integer below 2^53, so a double holds it exactly, and the script
//! reads and writes them without any decimal conversion. A [`Plan`] is everything calls need from
//! one policy, the packed layout included, computed once per policy change.

use std::time::Duration;

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

/// The largest integer a double holds exactly, with every smaller one.
const MAX_EXACT: u64 = (1 << 53) - 1;

/// Numbers packed for the script: little-endian doubles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Packed(Vec<u8>);

impl Packed {
    /// Room for `n` numbers.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(8 * n))
    }

    /// Appends a count, an amount or an instant. Beyond 2^53 - 1 (no limit or instant here comes
    /// near it) it is capped there, which every limit refuses as too large.
    pub(crate) fn u(&mut self, x: u64) -> &mut Self {
        self.0
            .extend_from_slice(&(x.min(MAX_EXACT) as f64).to_le_bytes());
        self
    }

    /// Appends a signed number (capped to +-(2^53 - 1) likewise).
    pub(crate) fn i(&mut self, x: i64) -> &mut Self {
        let capped = x.clamp(-(MAX_EXACT as i64), MAX_EXACT as i64);
        self.0.extend_from_slice(&(capped as f64).to_le_bytes());
        self
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The numbers of a packed reply, or `None` if it is not one.
pub(crate) fn unpack(bytes: &[u8]) -> Option<Vec<i64>> {
    if bytes.len() % 8 != 0 {
        return None;
    }
    bytes
        .chunks_exact(8)
        .map(|c| {
            let x = f64::from_le_bytes(c.try_into().ok()?);
            // Every number the script returns is an integer below 2^53.
            (x.fract() == 0.0 && x.abs() <= MAX_EXACT as f64).then_some(x as i64)
        })
        .collect()
}

/// Everything calls need from one policy, computed once per policy change.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The policy.
    pub(crate) policy: Policy,
    /// Its concurrency limit.
    pub(crate) concurrency: Option<u64>,
    /// The layout as the script reads it (its `ARGV[2]`).
    pub(crate) packed: Packed,
    /// The 1-based indices of the limits that are sliding logs, in order.
    logs: Vec<usize>,
}

impl Plan {
    /// Plans `policy`, whose concurrency slots are leased for `lease`.
    pub(crate) fn new(policy: Policy, lease: Duration) -> Result<Self, RedisLimiterError> {
        let dims = layout(&policy)?;
        let concurrency = policy.concurrency().map(|c| c.max());
        let logs: Vec<usize> = (1..=dims.len()).filter(|i| dims[i - 1].kind == 3).collect();
        let mut packed = Packed::with_capacity(3 + 5 * dims.len());
        packed
            .u(concurrency.unwrap_or(0))
            .u(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
            .u(logs.len() as u64);
        for d in &dims {
            for x in d.args() {
                packed.u(x);
            }
        }
        Ok(Self {
            policy,
            concurrency,
            packed,
            logs,
        })
    }

    /// The number of limits.
    pub(crate) fn limits(&self) -> usize {
        self.policy.limits().count()
    }

    /// The keys the script needs for `key`'s budget, whose hash tag is `{tag_head}{key}}` (the
    /// head being `{prefix:name:`).
    pub(crate) fn keys(&self, tag_head: &str, key: &str) -> Vec<String> {
        let name = |suffix: &str| {
            let mut k = String::with_capacity(tag_head.len() + key.len() + 2 + suffix.len());
            k.push_str(tag_head);
            k.push_str(key);
            k.push_str("}:");
            k.push_str(suffix);
            k
        };
        let mut keys = Vec::with_capacity(2 + 2 * self.logs.len());
        keys.push(name("state"));
        if self.concurrency.is_some() {
            keys.push(name("slots"));
        }
        for i in &self.logs {
            // Sliding logs: entries by time and by running total.
            keys.push(name(&format!("t{i}")));
            keys.push(name(&format!("c{i}")));
        }
        keys
    }
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
    fn numbers_are_packed_exactly_as_little_endian_doubles() {
        let mut p = Packed::default();
        p.u(0).u(MAX_EXACT).i(-42).i(1_795_608_173_290_637);
        assert_eq!(p.bytes().len(), 32);
        assert_eq!(&p.bytes()[8..16], &(MAX_EXACT as f64).to_le_bytes());
        assert_eq!(
            unpack(p.bytes()),
            Some(vec![0, MAX_EXACT as i64, -42, 1_795_608_173_290_637])
        );
        // Beyond 2^53 - 1 a number is capped there rather than rounded to something else.
        let mut big = Packed::default();
        big.u(u64::MAX).i(i64::MIN);
        assert_eq!(
            unpack(big.bytes()),
            Some(vec![MAX_EXACT as i64, -(MAX_EXACT as i64)])
        );
    }

    #[test]
    fn a_reply_that_is_not_whole_integers_is_refused() {
        assert_eq!(unpack(&[0; 7]), None);
        assert_eq!(unpack(&0.5f64.to_le_bytes()), None);
        assert_eq!(unpack(&f64::NAN.to_le_bytes()), None);
        assert_eq!(unpack(&1e300f64.to_le_bytes()), None);
        assert_eq!(unpack(&[]), Some(vec![]));
    }

    #[test]
    fn a_plan_sends_only_the_keys_its_policy_needs() {
        let lease = Duration::from_secs(600);
        let plain = Plan::new(
            Policy::builder()
                .requests_per_minute(500)
                .tokens_per_minute(90_000)
                .build()
                .unwrap(),
            lease,
        )
        .unwrap();
        assert_eq!(plain.keys("{p:n:", "k"), vec!["{p:n:k}:state"]);
        assert_eq!(plain.limits(), 2);
        // The layout: concurrency max, lease, sliding logs; then five numbers per limit.
        let numbers = unpack(plain.packed.bytes()).unwrap();
        assert_eq!(numbers.len(), 3 + 5 * 2);
        assert_eq!(&numbers[..3], &[0, 600_000, 0]);
        assert_eq!(numbers[3], 1, "gcra");

        let full = Plan::new(
            Policy::builder()
                .requests_per_minute(500)
                .limit(
                    Limit::new(Resource::Tokens, 90_000, Duration::from_secs(60))
                        .algorithm(AlgorithmKind::SlidingWindowLog),
                )
                .concurrency(4)
                .build()
                .unwrap(),
            lease,
        )
        .unwrap();
        assert_eq!(
            full.keys("{p:n:", "k"),
            vec!["{p:n:k}:state", "{p:n:k}:slots", "{p:n:k}:t2", "{p:n:k}:c2"]
        );
        let numbers = unpack(full.packed.bytes()).unwrap();
        assert_eq!(&numbers[..3], &[4, 600_000, 1]);
        assert_eq!(numbers[3 + 5], 3, "the second limit is a sliding log");
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
