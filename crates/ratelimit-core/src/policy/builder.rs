//! Builds a [`Policy`] from user settings, refusing anything that could never work.

use core::time::Duration;

use super::limit::{Limit, LimitId, Resource};
use super::{Dim, MAX_LIMITS, Policy, Shared, Spec};
use crate::algorithm::{Concurrency, Quota, quota};
use crate::error::ConfigError;
use crate::meter::Meter;
use crate::time::{NANOS_PER_DAY, NANOS_PER_MINUTE};

/// Collects a policy's settings; [`build`](Self::build) validates them all at once.
///
/// ```
/// use ratelimit_core::Policy;
///
/// let policy = Policy::builder()
///     .requests_per_minute(500)
///     .tokens_per_minute(200_000)
///     .concurrency(16)
///     .build()?;
/// assert_eq!(policy.limits().count(), 2);
///
/// let err = Policy::builder().tokens_per_minute(0).build().unwrap_err();
/// assert_eq!(err.field(), "tokens_per_minute");
/// # Ok::<(), ratelimit_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PolicyBuilder {
    limits: Vec<(String, Limit)>,
    concurrency: Option<u64>,
    burst_multiplier: Option<f64>,
    burndown_rate: Option<f64>,
}

impl PolicyBuilder {
    /// Adds a limit of any resource, window and algorithm.
    pub fn limit(mut self, limit: Limit) -> Self {
        let field = format!("limits[{}]", self.limits.len());
        self.limits.push((field, limit));
        self
    }

    fn named(mut self, field: &str, resource: Resource, amount: u64, window: u64) -> Self {
        let limit = Limit::new(resource, amount, Duration::from_nanos(window));
        self.limits.push((field.to_owned(), limit));
        self
    }

    /// Requests per minute (RPM).
    pub fn requests_per_minute(self, amount: u64) -> Self {
        self.named(
            "requests_per_minute",
            Resource::Requests,
            amount,
            NANOS_PER_MINUTE,
        )
    }

    /// Requests per day (RPD).
    pub fn requests_per_day(self, amount: u64) -> Self {
        self.named(
            "requests_per_day",
            Resource::Requests,
            amount,
            NANOS_PER_DAY,
        )
    }

    /// Combined tokens per minute (TPM): input plus output times the burndown rate.
    pub fn tokens_per_minute(self, amount: u64) -> Self {
        self.named(
            "tokens_per_minute",
            Resource::Tokens,
            amount,
            NANOS_PER_MINUTE,
        )
    }

    /// Combined tokens per day (TPD).
    pub fn tokens_per_day(self, amount: u64) -> Self {
        self.named("tokens_per_day", Resource::Tokens, amount, NANOS_PER_DAY)
    }

    /// Input tokens per minute (ITPM).
    pub fn input_tokens_per_minute(self, amount: u64) -> Self {
        self.named(
            "input_tokens_per_minute",
            Resource::InputTokens,
            amount,
            NANOS_PER_MINUTE,
        )
    }

    /// Output tokens per minute (OTPM).
    pub fn output_tokens_per_minute(self, amount: u64) -> Self {
        self.named(
            "output_tokens_per_minute",
            Resource::OutputTokens,
            amount,
            NANOS_PER_MINUTE,
        )
    }

    /// At most `max` requests in flight at once.
    pub fn concurrency(mut self, max: u64) -> Self {
        self.concurrency = Some(max);
        self
    }

    /// Multiplies the burst of every GCRA limit without an explicit burst: 1.0 (the default) lets a
    /// fresh limiter use one full window's amount at once; 0.1 smooths it to a tenth; 2.0 allows
    /// twice. Must be finite and positive, and leave every burst at least 1.
    pub fn burst_multiplier(mut self, multiplier: f64) -> Self {
        self.burst_multiplier = Some(multiplier);
        self
    }

    /// Weight of output tokens in the combined token limits (AWS Bedrock counts output tokens 5
    /// times for recent Claude models). Default 1.0. Must be finite and positive; kept to 1/1000.
    pub fn burndown_rate(mut self, rate: f64) -> Self {
        self.burndown_rate = Some(rate);
        self
    }

    /// Validates every setting and builds the policy.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first offending field: zero, out of range, not finite, or
    /// inconsistent (the same resource and window twice, a longer window with a smaller amount than
    /// a shorter one, a burst on a window algorithm, more than eight limits).
    pub fn build(self) -> Result<Policy, ConfigError> {
        let multiplier = match self.burst_multiplier {
            None => 1.0,
            Some(m) => positive_finite("burst_multiplier", m)?,
        };
        let burndown_milli = match self.burndown_rate {
            None => 1000,
            Some(r) => {
                let r = positive_finite("burndown_rate", r)?;
                let milli = (r * 1000.0).round();
                if !(1.0..=1e9).contains(&milli) {
                    return Err(ConfigError::OutOfRange {
                        field: "burndown_rate".into(),
                        value: r.to_string(),
                        expected: "between 0.001 and 1,000,000",
                    });
                }
                milli as u64
            }
        };
        if self.limits.len() > MAX_LIMITS {
            return Err(ConfigError::OutOfRange {
                field: "limits".into(),
                value: self.limits.len().to_string(),
                expected: "at most 8 limits per policy",
            });
        }
        let mut specs = Vec::with_capacity(self.limits.len());
        let mut meters = Vec::with_capacity(self.limits.len());
        for (field, limit) in &self.limits {
            let quota = validate(field, limit, multiplier)?;
            meters.push(Meter::new(limit.algorithm, quota));
            specs.push(Spec {
                field: field.clone(),
                limit: *limit,
            });
        }
        check_consistency(&specs)?;
        let concurrency = self
            .concurrency
            .map(Concurrency::new)
            .transpose()?
            .map(Box::new);
        Ok(Policy {
            dims: meters
                .into_iter()
                .zip(&specs)
                .map(|(meter, spec)| Dim {
                    resource: spec.limit.resource,
                    meter,
                })
                .collect(),
            shared: std::sync::Arc::new(Shared {
                specs,
                burndown_milli,
                burst_multiplier: multiplier,
            }),
            concurrency,
            horizon: 0,
            seq: 0,
        })
    }
}

fn positive_finite(field: &str, value: f64) -> Result<f64, ConfigError> {
    if !value.is_finite() {
        return Err(ConfigError::NotFinite {
            field: field.to_owned(),
            value,
        });
    }
    if value <= 0.0 {
        return Err(ConfigError::OutOfRange {
            field: field.to_owned(),
            value: value.to_string(),
            expected: "greater than zero",
        });
    }
    Ok(value)
}

/// Turns a user limit into a validated quota, naming `field` in every error.
pub(super) fn validate(field: &str, limit: &Limit, multiplier: f64) -> Result<Quota, ConfigError> {
    let sub = |name: &str| {
        if field.starts_with("limits[") {
            format!("{field}.{name}")
        } else {
            field.to_owned()
        }
    };
    quota::check_amount(&sub("amount"), limit.amount)?;
    quota::check_window(&sub("window"), limit.window)?;
    let quota = Quota::new(limit.amount, limit.window)?;
    let burst = match limit.burst {
        Some(burst) => {
            if !limit.algorithm.has_burst() && burst != limit.amount {
                return Err(ConfigError::Inconsistent {
                    field: sub("burst"),
                    reason: format!(
                        "{} counts whole windows and has no burst; use gcra or leaky_bucket",
                        limit.algorithm.name()
                    ),
                });
            }
            quota::check_amount(&sub("burst"), burst)?;
            burst
        }
        None if limit.algorithm.has_burst() => {
            let scaled = (limit.amount as f64 * multiplier).floor();
            if scaled < 1.0 {
                return Err(ConfigError::Inconsistent {
                    field: "burst_multiplier".into(),
                    reason: format!(
                        "{multiplier} times {} ({field}) leaves a burst below 1",
                        limit.amount
                    ),
                });
            }
            if scaled > quota::MAX_AMOUNT as f64 {
                return Err(ConfigError::OutOfRange {
                    field: "burst_multiplier".into(),
                    value: multiplier.to_string(),
                    expected: "a burst of at most 2^48",
                });
            }
            scaled as u64
        }
        None => limit.amount,
    };
    quota.with_burst(burst).map_err(|mut e| {
        if let ConfigError::Zero { field: f } | ConfigError::OutOfRange { field: f, .. } = &mut e {
            *f = sub("burst");
        }
        e
    })
}

pub(super) fn check_consistency(dims: &[Spec]) -> Result<(), ConfigError> {
    for (i, a) in dims.iter().enumerate() {
        for b in &dims[..i] {
            if a.limit.resource != b.limit.resource {
                continue;
            }
            if a.limit.window == b.limit.window {
                return Err(ConfigError::Inconsistent {
                    field: a.field.clone(),
                    reason: format!(
                        "`{}` already limits {} over the same window",
                        b.field,
                        a.limit.resource.unit()
                    ),
                });
            }
            let (short, long) = if a.limit.window < b.limit.window {
                (a, b)
            } else {
                (b, a)
            };
            if long.limit.amount < short.limit.amount {
                return Err(ConfigError::Inconsistent {
                    field: long.field.clone(),
                    reason: format!(
                        "{} is smaller than `{}` ({}) over a shorter window, which could then never bind",
                        long.limit.amount, short.field, short.limit.amount
                    ),
                });
            }
        }
    }
    Ok(())
}

impl Policy {
    /// Starts building a policy.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Finds the limit on `resource` over `window` nanoseconds.
    #[must_use]
    pub fn find(&self, resource: Resource, window: u64) -> Option<LimitId> {
        self.shared
            .specs
            .iter()
            .position(|d| d.limit.resource == resource && d.limit.window == window)
            .map(|i| LimitId(i as u8))
    }
}
