//! Go's duration text (`6m0s`, `4m12.172s`, `120ms`), the format of OpenAI's
//! `x-ratelimit-reset-*` headers and of the "Please try again in ..." of its 429 messages.
//!
//! [`format_go_duration`] writes exactly what Go's `time.Duration.String` writes;
//! [`parse_go_duration`] reads what Go's `time.ParseDuration` reads, exactly (no floating point),
//! so `120ms` is 120 milliseconds and never 120 seconds.
//!
//! ```
//! use std::time::Duration;
//! use ratelimit_openai::duration::{format_go_duration, parse_go_duration};
//!
//! assert_eq!(format_go_duration(Duration::from_millis(252_172)), "4m12.172s");
//! assert_eq!(parse_go_duration("6m0s")?, Duration::from_secs(360));
//! assert_eq!(parse_go_duration("120ms")?, Duration::from_millis(120));
//! assert_eq!(parse_go_duration("1h30m")?, Duration::from_secs(5_400));
//! # Ok::<(), ratelimit_openai::duration::DurationError>(())
//! ```

use std::time::Duration;

use thiserror::Error;

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Fraction digits beyond this many are ignored when parsing (they are worth far less than a
/// nanosecond; keeping them would only risk overflow).
const MAX_FRACTION_DIGITS: u32 = 25;

/// Why a text is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// The text is empty (or only a sign).
    #[error("empty duration")]
    Empty,
    /// The duration is negative: a wait cannot be.
    #[error("negative duration `{0}`")]
    Negative(String),
    /// A number is missing or malformed where one was expected.
    #[error("invalid duration `{0}`: expected a number followed by a unit")]
    Syntax(String),
    /// A number has no unit after it.
    #[error("missing unit in duration `{0}`")]
    MissingUnit(String),
    /// A unit is not one of `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
    #[error("unknown unit `{unit}` in duration `{input}`")]
    UnknownUnit {
        /// The unit found.
        unit: String,
        /// The whole text.
        input: String,
    },
    /// The duration is longer than `u64::MAX` nanoseconds (about 584 years).
    #[error("duration `{0}` is too long")]
    Overflow(String),
}

/// The text Go's `time.Duration.String` gives for `duration`: `0s`; below a second the largest
/// unit among `ns`, `µs`, `ms` (`1.5µs`, `120ms`); from a second on, hours, minutes and seconds
/// with the fraction of a second (`1h0m0s`, `6m0s`, `4m12.172s`). Trailing zeros of a fraction
/// are left out; the value is exact to the nanosecond.
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_SECOND {
        let (unit, scale) = if nanos < NANOS_PER_MICRO {
            ("ns", 1)
        } else if nanos < NANOS_PER_MILLI {
            ("µs", NANOS_PER_MICRO)
        } else {
            ("ms", NANOS_PER_MILLI)
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let seconds = nanos / NANOS_PER_SECOND;
    let fraction = nanos % NANOS_PER_SECOND;
    let mut out = String::new();
    let (hours, minutes, secs) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if seconds >= 60 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&decimal(
        secs * NANOS_PER_SECOND + fraction,
        NANOS_PER_SECOND,
    ));
    out.push('s');
    out
}

/// `value / scale` in decimal, without trailing zeros in the fraction (and without a point if
/// there is no fraction).
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let text = format!("{fraction:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

/// Reads a Go duration: an optional `+`, then one or more numbers (with an optional fraction),
/// each followed by a unit among `ns`, `us`, `µs` (or `μs`), `ms`, `s`, `m`, `h`; or a bare `0`.
///
/// Fractions are computed exactly and rounded down to the nanosecond. Negative durations are
/// refused ([`DurationError::Negative`]), as are durations above `u64::MAX` nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let owned = || text.to_owned();
    let mut rest = text;
    if let Some(after) = rest.strip_prefix('-') {
        // `-0` is zero in Go; any other negative value is refused.
        return match parse_go_duration(after) {
            Ok(zero) if zero.is_zero() => Ok(zero),
            Ok(_) => Err(DurationError::Negative(owned())),
            Err(DurationError::Empty) => Err(DurationError::Empty),
            Err(_) => Err(DurationError::Syntax(owned())),
        };
    }
    if let Some(after) = rest.strip_prefix('+') {
        rest = after;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, after_whole) = rest.split_at(whole_len);
        let (fraction, after_number) = match after_whole.strip_prefix('.') {
            Some(after_point) => {
                let len = after_point.bytes().take_while(u8::is_ascii_digit).count();
                after_point.split_at(len)
            }
            None => ("", after_whole),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::Syntax(owned()));
        }
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(owned()));
        }
        let (unit, after_unit) = after_number.split_at(unit_len);
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: owned(),
        })?;
        let value =
            number_nanos(whole, fraction, scale).ok_or_else(|| DurationError::Overflow(owned()))?;
        total = total
            .checked_add(value)
            .filter(|total| *total <= u128::from(u64::MAX))
            .ok_or_else(|| DurationError::Overflow(owned()))?;
        rest = after_unit;
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::Overflow(owned()))?;
    Ok(Duration::from_nanos(nanos))
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => NANOS_PER_MICRO,
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// `whole.fraction × scale` nanoseconds, rounded down; `None` above `u64::MAX`.
fn number_nanos(whole: &str, fraction: &str, scale: u128) -> Option<u128> {
    let mut value: u128 = 0;
    for digit in whole.bytes() {
        value = value
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
        if value > u128::from(u64::MAX) {
            return None;
        }
    }
    let mut nanos = value.checked_mul(scale)?;
    let (mut numerator, mut denominator) = (0u128, 1u128);
    for digit in fraction.bytes().take(MAX_FRACTION_DIGITS as usize) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    nanos = nanos.checked_add(numerator * scale / denominator)?;
    (nanos <= u128::from(u64::MAX)).then_some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_100), "1.1µs"),
            (Duration::from_micros(2_200), "2.2ms"),
            (ms(12), "12ms"),
            (ms(120), "120ms"),
            (ms(1_000), "1s"),
            (ms(1_306), "1.306s"),
            (ms(60_000), "1m0s"),
            (ms(360_000), "6m0s"),
            (ms(252_172), "4m12.172s"),
            (ms(3_600_000), "1h0m0s"),
            (ms(83_909_144), "23h18m29.144s"),
            (Duration::from_nanos(3_723_000_000_001), "1h2m3.000000001s"),
            (Duration::from_secs(100 * 3_600), "100h0m0s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_go_duration(duration), text, "{duration:?}");
        }
    }

    #[test]
    fn parses_like_go() {
        let cases = [
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("0s", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("120ms", ms(120)),
            ("12ms", ms(12)),
            ("6m0s", ms(360_000)),
            ("4m12.172s", ms(252_172)),
            ("23h18m29.144s", ms(83_909_144)),
            ("1.5h", Duration::from_secs(5_400)),
            ("1h30m", Duration::from_secs(5_400)),
            ("1.1µs", Duration::from_nanos(1_100)),
            ("1.1μs", Duration::from_nanos(1_100)),
            ("3us", Duration::from_micros(3)),
            ("5ns", Duration::from_nanos(5)),
            (".5s", ms(500)),
            ("5.s", Duration::from_secs(5)),
            ("1.0000000009s", Duration::from_nanos(1_000_000_000)),
            (
                "0.3333333333333333333333333333333h",
                Duration::from_nanos(1_199_999_999_999),
            ),
            ("18446744073.709551615s", Duration::from_nanos(u64::MAX)),
        ];
        for (text, duration) in cases {
            assert_eq!(parse_go_duration(text), Ok(duration), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_go_duration("+"), Err(DurationError::Empty));
        assert_eq!(parse_go_duration("-"), Err(DurationError::Empty));
        assert!(matches!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_go_duration("1"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_go_duration("1s2"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_go_duration(".s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_go_duration("s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_go_duration("1 s"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("3d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("1sec"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("18446744073.709551616s"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("99999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("5000000h5000000h"),
            Err(DurationError::Overflow(_))
        ));
    }
}
