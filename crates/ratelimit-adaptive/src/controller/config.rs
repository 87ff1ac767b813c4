//! The controller's settings, validated once.

use std::time::Duration;

use ratelimit_core::ConfigError;

/// How the [`Controller`](super::Controller) follows the provider.
///
/// The defaults suit OpenAI-, Anthropic- and Azure-style providers: headers are trusted as they
/// come; without headers, AIMD starts by doubling each window while the limit is pressed, halves
/// on the first 429, then settles into a sawtooth between 90% and 100% of the provider's limit.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// Fraction of a provider's announced limit to use (1.0: all of it; lower leaves room for
    /// other clients of the same account that do not share this limiter).
    pub headroom: f64,
    /// Differences between the provider's `remaining` and the limiter's smaller than this fraction
    /// of the limit are left alone (Anthropic rounds remaining figures to thousands; everyone's
    /// figures lag a little).
    pub sync_tolerance: f64,
    /// AIMD: the factor a 429 without headers multiplies the binding limit by.
    pub decrease: f64,
    /// AIMD: after the first 429, a pressed limit grows by this fraction once per window.
    pub increase: f64,
    /// AIMD: before the first 429 (slow start), a pressed limit is multiplied by this once per
    /// window.
    pub slow_start: f64,
    /// AIMD: no increase for this long after a decrease.
    pub recovery: Duration,
    /// AIMD bounds, as fractions of the limit configured at start: never below `min_fraction`,
    /// never above `max_fraction`.
    pub min_fraction: f64,
    /// See [`min_fraction`](Self::min_fraction).
    pub max_fraction: f64,
    /// Pause after a 429 that says nothing about when to retry; doubled for each such 429 in a
    /// row (reset by a success), up to [`max_backoff`](Self::max_backoff).
    pub backoff: Duration,
    /// The longest pause taken without the provider asking for it.
    pub max_backoff: Duration,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            headroom: 1.0,
            sync_tolerance: 0.01,
            decrease: 0.9,
            increase: 0.05,
            slow_start: 2.0,
            recovery: Duration::from_secs(10),
            min_fraction: 0.01,
            max_fraction: 100.0,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl AdaptiveConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first field out of its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fraction = |field: &str, v: f64, ok: bool, expected: &'static str| {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    field: field.into(),
                    value: v.to_string(),
                    expected,
                })
            }
        };
        fraction(
            "headroom",
            self.headroom,
            self.headroom > 0.0 && self.headroom <= 1.0,
            "a fraction in (0, 1]",
        )?;
        fraction(
            "sync_tolerance",
            self.sync_tolerance,
            (0.0..1.0).contains(&self.sync_tolerance),
            "a fraction in [0, 1)",
        )?;
        fraction(
            "decrease",
            self.decrease,
            self.decrease > 0.0 && self.decrease < 1.0,
            "a factor in (0, 1)",
        )?;
        fraction(
            "increase",
            self.increase,
            self.increase > 0.0 && self.increase <= 1.0,
            "a fraction in (0, 1]",
        )?;
        fraction(
            "slow_start",
            self.slow_start,
            self.slow_start >= 1.0 && self.slow_start <= 16.0,
            "a factor in [1, 16]",
        )?;
        fraction(
            "min_fraction",
            self.min_fraction,
            self.min_fraction > 0.0 && self.min_fraction <= 1.0,
            "a fraction in (0, 1]",
        )?;
        fraction(
            "max_fraction",
            self.max_fraction,
            self.max_fraction >= 1.0,
            "a factor of at least 1",
        )?;
        if self.backoff.is_zero() || self.max_backoff < self.backoff {
            return Err(ConfigError::OutOfRange {
                field: "backoff".into(),
                value: format!("{:?} (max {:?})", self.backoff, self.max_backoff),
                expected: "a non-zero backoff no longer than max_backoff",
            });
        }
        Ok(())
    }
}
