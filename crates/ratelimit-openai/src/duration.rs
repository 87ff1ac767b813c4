//! Go's duration text (`6m0s`, `4m12.172s`, `120ms`), the format of OpenAI's
//! `x-ratelimit-reset-*` headers and of the "Please try again in ..." of its 429 messages.
//!
//! [`format_go_duration`] writes exactly what Go's `time.Duration.String` writes. Reading them is
//! the adaptive layer's job (`ratelimit_adaptive::parse_go_duration`, with every other header
//! format); this crate's tests check that what is written here reads back exactly there.
//!
//! ```
//! use std::time::Duration;
//! use ratelimit_openai::duration::format_go_duration;
//!
//! assert_eq!(format_go_duration(Duration::from_millis(252_172)), "4m12.172s");
//! assert_eq!(format_go_duration(Duration::from_millis(120)), "120ms");
//! ```

use std::time::Duration;

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

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
}
