//! The simulator's configuration and its validation.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use ratelimit_openai::Estimator;
use thiserror::Error;

/// The header that forces a fault on one request: `x-sim-fault: 500 | 503 | slow | reset`.
pub const FAULT_HEADER: &str = "x-sim-fault";

/// How the simulator behaves. Build it with struct update syntax over [`SimConfig::default`];
/// [`Sim::start`](crate::Sim::start) validates it.
///
/// ```
/// use std::time::Duration;
/// use ratelimit_sim::{HeaderStyle, SimConfig};
///
/// let config = SimConfig {
///     rpm: Some(60),
///     tpm: Some(10_000),
///     window: Duration::from_secs(1), // a short window makes tests fast
///     headers: HeaderStyle::Anthropic,
///     ..SimConfig::default()
/// };
/// config.validate()?;
/// # Ok::<(), ratelimit_sim::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Requests admitted per window; `None` is unlimited (default `None`).
    pub rpm: Option<u64>,
    /// Tokens (prompt estimate + maximum output) admitted per window; `None` is unlimited
    /// (default `None`).
    pub tpm: Option<u64>,
    /// The length of the sliding window the limits apply to (default 60 s).
    pub window: Duration,
    /// Which rate-limit headers responses carry (default [`HeaderStyle::OpenAi`]).
    pub headers: HeaderStyle,
    /// How long answers take (default: no latency).
    pub latency: Latency,
    /// How many output tokens each choice produces (default half its maximum).
    pub output: OutputTokens,
    /// Random faults (default none).
    pub faults: Faults,
    /// The seed of the random faults: the same seed and the same order of requests give the
    /// same faults (default 0).
    pub seed: u64,
    /// Answer 401 to requests without `Authorization: Bearer <key>` (any non-empty key;
    /// default `true`).
    pub require_auth: bool,
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub bind: SocketAddr,
    /// How request costs are estimated: the same rules the client uses (default
    /// [`Estimator::default`]).
    pub estimator: Estimator,
    /// The dimensions of embedding vectors when the request does not ask for a number
    /// (default 1536, as text-embedding-3-small and ada-002).
    pub embedding_dimensions: u32,
    /// The models `GET /v1/models` lists (any model name is accepted by the other endpoints).
    pub models: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            rpm: None,
            tpm: None,
            window: Duration::from_secs(60),
            headers: HeaderStyle::OpenAi,
            latency: Latency::default(),
            output: OutputTokens::default(),
            faults: Faults::default(),
            seed: 0,
            require_auth: true,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            estimator: Estimator::default(),
            embedding_dimensions: 1536,
            models: [
                "gpt-4o",
                "gpt-4o-mini",
                "gpt-4.1",
                "gpt-4.1-mini",
                "o4-mini",
                "text-embedding-3-small",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl SimConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first invalid field: a zero limit, a zero window, an output fraction outside
    /// `[0, 1]`, a fault probability outside `[0, 1]` (or probabilities summing above 1), or zero
    /// or more than [`MAX_EMBEDDING_DIMENSIONS`] embedding dimensions.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_limits(self.rpm, self.tpm)?;
        if self.window.is_zero() {
            return Err(ConfigError::ZeroWindow);
        }
        if let OutputTokens::Fraction(fraction) = self.output {
            if !(0.0..=1.0).contains(&fraction) {
                return Err(ConfigError::OutputFraction(fraction));
            }
        }
        for (field, probability) in [
            ("faults.error_500", self.faults.error_500),
            ("faults.error_503", self.faults.error_503),
        ] {
            if !(0.0..=1.0).contains(&probability) {
                return Err(ConfigError::Probability { field, probability });
            }
        }
        let sum = self.faults.error_500 + self.faults.error_503;
        if sum > 1.0 {
            return Err(ConfigError::ProbabilitySum(sum));
        }
        if self.embedding_dimensions == 0 || self.embedding_dimensions > MAX_EMBEDDING_DIMENSIONS {
            return Err(ConfigError::EmbeddingDimensions(self.embedding_dimensions));
        }
        Ok(())
    }
}

/// The most embedding dimensions a request or the configuration may ask for.
pub const MAX_EMBEDDING_DIMENSIONS: u32 = 8_192;

/// Checks limits as [`SimConfig::validate`] and [`SimHandle::set_limits`](crate::SimHandle::set_limits) do.
pub(crate) fn validate_limits(rpm: Option<u64>, tpm: Option<u64>) -> Result<(), ConfigError> {
    if rpm == Some(0) {
        return Err(ConfigError::ZeroLimit { field: "rpm" });
    }
    if tpm == Some(0) {
        return Err(ConfigError::ZeroLimit { field: "tpm" });
    }
    Ok(())
}

/// Which rate-limit headers the simulator sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HeaderStyle {
    /// OpenAI's: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as Go durations
    /// (`1m0s`, `12.5s`, `120ms`).
    #[default]
    OpenAi,
    /// Anthropic's: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, resets as
    /// RFC 3339 instants (`2025-08-21T12:40:59Z`).
    Anthropic,
    /// No rate-limit headers (429s still carry `retry-after` and `retry-after-ms`).
    None,
}

/// How long an answer takes: `base` before the first byte, plus `per_output_token` for each
/// token a choice produces (choices are produced in parallel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Latency {
    /// Time to the first byte.
    pub base: Duration,
    /// Time per produced output token.
    pub per_output_token: Duration,
}

/// How many output tokens each choice produces; never more than its maximum (the request's
/// `max_completion_tokens`/`max_tokens`, or the estimator's default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputTokens {
    /// This fraction of the maximum, rounded down (`0.0..=1.0`).
    Fraction(f64),
    /// This many tokens (or the maximum, if lower).
    Fixed(u64),
}

impl Default for OutputTokens {
    fn default() -> Self {
        OutputTokens::Fraction(0.5)
    }
}

impl OutputTokens {
    /// The tokens a choice whose maximum is `max` produces.
    pub fn produced(self, max: u64) -> u64 {
        match self {
            // `as` saturates float to integer conversions; the fraction is within [0, 1].
            OutputTokens::Fraction(fraction) => ((max as f64 * fraction).floor() as u64).min(max),
            OutputTokens::Fixed(tokens) => tokens.min(max),
        }
    }
}

/// Random faults, drawn for each admitted request from the seeded generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability of answering 500 (`server_error`).
    pub error_500: f64,
    /// Probability of answering 503 (overloaded).
    pub error_503: f64,
    /// How much later a `slow` fault answers.
    pub slow_delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_500: 0.0,
            error_503: 0.0,
            slow_delay: Duration::from_secs(10),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A limit of zero would refuse everything; use `None` for unlimited.
    #[error("`{field}` must be at least 1 (use None for no limit)")]
    ZeroLimit {
        /// `rpm` or `tpm`.
        field: &'static str,
    },
    /// The window must be longer than zero.
    #[error("`window` must be longer than zero")]
    ZeroWindow,
    /// An output fraction outside `[0, 1]` (or NaN).
    #[error("`output` fraction must be within 0..=1, got {0}")]
    OutputFraction(f64),
    /// A probability outside `[0, 1]` (or NaN).
    #[error("`{field}` must be a probability within 0..=1, got {probability}")]
    Probability {
        /// The field.
        field: &'static str,
        /// Its value.
        probability: f64,
    },
    /// The fault probabilities add up to more than 1.
    #[error("fault probabilities add up to {0}, more than 1")]
    ProbabilitySum(f64),
    /// Embedding dimensions of zero or above the maximum.
    #[error("`embedding_dimensions` must be within 1..={MAX_EMBEDDING_DIMENSIONS}, got {0}")]
    EmbeddingDimensions(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_unlimited() {
        let config = SimConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!((config.rpm, config.tpm), (None, None));
        assert_eq!(config.window, Duration::from_secs(60));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |config: SimConfig| config.validate().unwrap_err();
        let base = SimConfig::default;
        assert_eq!(
            bad(SimConfig {
                rpm: Some(0),
                ..base()
            }),
            ConfigError::ZeroLimit { field: "rpm" }
        );
        assert_eq!(
            bad(SimConfig {
                tpm: Some(0),
                ..base()
            }),
            ConfigError::ZeroLimit { field: "tpm" }
        );
        assert_eq!(
            bad(SimConfig {
                window: Duration::ZERO,
                ..base()
            }),
            ConfigError::ZeroWindow
        );
        assert!(matches!(
            bad(SimConfig {
                output: OutputTokens::Fraction(1.5),
                ..base()
            }),
            ConfigError::OutputFraction(_)
        ));
        assert!(matches!(
            bad(SimConfig {
                output: OutputTokens::Fraction(f64::NAN),
                ..base()
            }),
            ConfigError::OutputFraction(_)
        ));
        let faults = |error_500, error_503| Faults {
            error_500,
            error_503,
            ..Faults::default()
        };
        assert!(matches!(
            bad(SimConfig {
                faults: faults(-0.1, 0.0),
                ..base()
            }),
            ConfigError::Probability {
                field: "faults.error_500",
                ..
            }
        ));
        assert!(matches!(
            bad(SimConfig {
                faults: faults(0.0, f64::NAN),
                ..base()
            }),
            ConfigError::Probability {
                field: "faults.error_503",
                ..
            }
        ));
        assert!(matches!(
            bad(SimConfig {
                faults: faults(0.6, 0.6),
                ..base()
            }),
            ConfigError::ProbabilitySum(_)
        ));
        assert_eq!(
            bad(SimConfig {
                embedding_dimensions: 0,
                ..base()
            }),
            ConfigError::EmbeddingDimensions(0)
        );
    }

    #[test]
    fn produced_tokens_never_exceed_the_maximum() {
        assert_eq!(OutputTokens::Fraction(0.5).produced(101), 50);
        assert_eq!(OutputTokens::Fraction(1.0).produced(u64::MAX), u64::MAX);
        assert_eq!(OutputTokens::Fraction(0.0).produced(100), 0);
        assert_eq!(OutputTokens::Fixed(30).produced(20), 20);
        assert_eq!(OutputTokens::Fixed(30).produced(40), 30);
    }
}
