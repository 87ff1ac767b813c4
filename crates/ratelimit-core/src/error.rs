//! Typed errors: a configuration that can never work, and a request that can never fit.

use core::fmt;

/// A limit configuration was refused at construction. Names the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A value that must be positive was zero.
    #[error("`{field}` must be greater than zero")]
    Zero {
        /// The field, e.g. `tokens_per_minute` or `limits[2].window`.
        field: String,
    },
    /// A floating-point setting was NaN or infinite.
    #[error("`{field}` must be a finite number, got {value}")]
    NotFinite {
        /// The field.
        field: String,
        /// The value given.
        value: f64,
    },
    /// A value was outside the range the algorithms support.
    #[error("`{field}` = {value} is out of range: {expected}")]
    OutOfRange {
        /// The field.
        field: String,
        /// The value given, as written.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Two settings contradict each other.
    #[error("`{field}` is inconsistent: {reason}")]
    Inconsistent {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

impl ConfigError {
    /// The name of the offending field.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Self::Zero { field }
            | Self::NotFinite { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Inconsistent { field, .. } => field,
        }
    }
}

/// A request asked for more than a limit can ever grant: refused at once, never queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "request needs {requested} {unit} but the {limit} limit can never grant more than {max} at once"
)]
pub struct TooLarge {
    /// What the request needs in this dimension.
    pub requested: u64,
    /// The most this dimension can ever grant to one request.
    pub max: u64,
    /// What is counted (`requests`, `tokens`, ...).
    pub unit: &'static str,
    /// The limit that refused it, as text (`tokens per 1m`).
    pub limit: LimitName,
}

/// A short, allocation-free description of a limit for messages: resource and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitName {
    /// What is counted.
    pub resource: &'static str,
    /// The window or refill period in nanoseconds (0 for concurrency).
    pub window: u64,
}

impl fmt::Display for LimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.window == 0 {
            return write!(f, "{}", self.resource);
        }
        write!(f, "{} per ", self.resource)?;
        crate::time_fmt::write_window(f, self.window)
    }
}
