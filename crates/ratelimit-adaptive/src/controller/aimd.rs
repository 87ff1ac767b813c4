//! AIMD for one limit no header describes: additive (or, before the first 429, multiplicative)
//! increase while pressed, multiplicative decrease on 429, bounded, with a recovery period.

use ratelimit_core::Nanos;

use super::config::AdaptiveConfig;

#[derive(Debug, Clone)]
pub(super) struct Aimd {
    min: u64,
    max: u64,
    /// Before the first 429: grow by doubling.
    slow_start: bool,
    /// When the limit last went down (no increase during recovery; 429s on requests granted
    /// before it do not decrease again).
    last_decrease: Option<Nanos>,
    /// When the limit last went up (at most once per window).
    last_increase: Option<Nanos>,
}

impl Aimd {
    pub(super) fn new(start: u64, config: &AdaptiveConfig) -> Self {
        let min = ((start as f64 * config.min_fraction).floor() as u64).max(1);
        let max = ((start as f64 * config.max_fraction).ceil() as u64).max(min);
        Self {
            min,
            max,
            slow_start: true,
            last_decrease: None,
            last_increase: None,
        }
    }

    /// The new amount after a 429 on a request granted at `granted_at`, if it changes.
    pub(super) fn decrease(
        &mut self,
        amount: u64,
        granted_at: Option<Nanos>,
        now: Nanos,
        config: &AdaptiveConfig,
    ) -> Option<u64> {
        if let (Some(last), Some(at)) = (self.last_decrease, granted_at) {
            if at < last {
                return None; // sent before the last decrease: already answered
            }
        }
        let factor = if self.slow_start {
            // Slow start overshot by up to its factor: back to the last amount that was fine.
            1.0 / config.slow_start.max(2.0)
        } else {
            config.decrease
        };
        self.slow_start = false;
        self.last_decrease = Some(now);
        let next = ((amount as f64 * factor).floor() as u64).clamp(self.min, self.max);
        (next != amount).then_some(next)
    }

    /// The new amount after a success while the limit is pressed, if it changes.
    pub(super) fn increase(
        &mut self,
        amount: u64,
        window: Nanos,
        now: Nanos,
        config: &AdaptiveConfig,
    ) -> Option<u64> {
        let recovery = u64::try_from(config.recovery.as_nanos()).unwrap_or(u64::MAX);
        if self
            .last_decrease
            .is_some_and(|d| now < d.saturating_add(recovery))
        {
            return None;
        }
        let since = self
            .last_increase
            .max(self.last_decrease)
            .map_or(window, |t| now.saturating_sub(t));
        if since < window {
            return None;
        }
        let grown = if self.slow_start {
            (amount as f64 * config.slow_start).ceil() as u64
        } else {
            amount.saturating_add(((amount as f64 * config.increase).ceil() as u64).max(1))
        };
        let next = grown.clamp(self.min, self.max);
        self.last_increase = Some(now);
        (next != amount).then_some(next)
    }
}
