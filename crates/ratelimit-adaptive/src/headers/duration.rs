//! Durations as providers write them: Go-style (`4m12.172s`), decimal seconds (`1.5`) and decimal
//! milliseconds (`1500.25`), computed exactly in integer nanoseconds.
//!
//! A fraction is never truncated: digits that fall below a nanosecond round the result *up* to the
//! next nanosecond (a wait that is a hair too long is harmless, one that is too short earns another
//! 429). Values whose nanoseconds do not fit a [`Duration`] are refused (`None`).

use std::time::Duration;

/// A unit of `factor * 10^exponent` nanoseconds. Every unit a provider uses has this shape, so a
/// fraction of it is exact: moving the decimal point by `exponent` digits, then multiplying by a
/// small `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit {
    factor: u8,
    exponent: usize,
}

const NANOSECOND: Unit = Unit {
    factor: 1,
    exponent: 0,
};
const MICROSECOND: Unit = Unit {
    factor: 1,
    exponent: 3,
};
const MILLISECOND: Unit = Unit {
    factor: 1,
    exponent: 6,
};
const SECOND: Unit = Unit {
    factor: 1,
    exponent: 9,
};
const MINUTE: Unit = Unit {
    factor: 6,
    exponent: 10,
};
const HOUR: Unit = Unit {
    factor: 36,
    exponent: 11,
};

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Parses a Go duration (`time.Duration.String()` and what `time.ParseDuration` accepts): a
/// sequence of decimal numbers, each with an optional fraction and a unit, like `300ms`, `1.5h`,
/// `2h45m`, `4m12.172s`, `23h18m29.144s`, `500us`, `500µs`. Units are `ns`, `us`, `µs` (micro sign
/// or Greek mu), `ms`, `s`, `m` and `h`; a bare `0` is zero.
///
/// OpenAI writes its `x-ratelimit-reset-*` headers and its 429 messages this way. The result is
/// exact to the nanosecond: fractions are never truncated to whole seconds, and digits below a
/// nanosecond round up. Returns `None` for anything else, including negative durations (a wait
/// cannot be negative; `-0s` is zero) and values too large for a [`Duration`]. Surrounding ASCII
/// whitespace is ignored.
///
/// ```
/// use ratelimit_adaptive::parse_go_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
/// assert_eq!(parse_go_duration("4m12.172s"), Some(Duration::from_millis(252_172)));
/// assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
/// assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5_400)));
/// assert_eq!(parse_go_duration("12"), None); // a unit is required
/// ```
#[must_use]
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim_ascii().as_bytes();
    let (negative, mut rest) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if rest == b"0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (int, frac, after) = split_decimal(rest)?;
        let unit_len = after
            .iter()
            .position(|&b| b == b'.' || b.is_ascii_digit())
            .unwrap_or(after.len());
        let unit = go_unit(&after[..unit_len])?;
        total = total.checked_add(decimal_nanos(int, frac, unit)?)?;
        rest = &after[unit_len..];
    }
    if negative && total != 0 {
        return None;
    }
    nanos_to_duration(total)
}

/// Parses non-negative decimal seconds, `30`, `1.5` or `.25`, as `Retry-After`, IETF `t` and the
/// `RateLimit-Reset` trio carry them. Surrounding ASCII whitespace is ignored.
pub(crate) fn parse_seconds(s: &str) -> Option<Duration> {
    parse_plain_decimal(s, SECOND)
}

/// Parses non-negative decimal milliseconds, `1500` or `20.5`, as `retry-after-ms` carries them.
pub(crate) fn parse_millis(s: &str) -> Option<Duration> {
    parse_plain_decimal(s, MILLISECOND)
}

/// Nanoseconds of a non-negative decimal seconds value given as its digits (for timestamps'
/// fractional seconds), rounded up. `frac` must be ASCII digits.
pub(crate) fn fraction_of_second_nanos(frac: &[u8]) -> Option<u128> {
    decimal_nanos(b"", frac, SECOND)
}

/// Converts nanoseconds to a [`Duration`], or `None` if they do not fit.
pub(crate) fn nanos_to_duration(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SECOND).ok()?;
    // The remainder is below 10^9, so it fits a u32.
    let subsec = u32::try_from(nanos % NANOS_PER_SECOND).ok()?;
    Some(Duration::new(secs, subsec))
}

/// One whole decimal in `unit`, nothing before or after it but whitespace.
fn parse_plain_decimal(s: &str, unit: Unit) -> Option<Duration> {
    let (int, frac, rest) = split_decimal(s.trim_ascii().as_bytes())?;
    if !rest.is_empty() {
        return None;
    }
    nanos_to_duration(decimal_nanos(int, frac, unit)?)
}

/// Splits a leading unsigned decimal `DIGITS [ "." DIGITS ]` off `s` into its integer digits, its
/// fraction digits and the rest. At least one digit is required on one side of the point (`1`,
/// `1.`, `.5`, `1.5`).
fn split_decimal(s: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let int_len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int, rest) = s.split_at(int_len);
    let (frac, rest) = match rest.split_first() {
        Some((b'.', after_point)) => {
            let frac_len = after_point
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            after_point.split_at(frac_len)
        }
        _ => (&rest[..0], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    Some((int, frac, rest))
}

fn go_unit(name: &[u8]) -> Option<Unit> {
    match name {
        b"ns" => Some(NANOSECOND),
        // "us", and the micro sign U+00B5 or the Greek small letter mu U+03BC (in UTF-8) then
        // "s", as Go accepts them.
        b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => Some(MICROSECOND),
        b"ms" => Some(MILLISECOND),
        b"s" => Some(SECOND),
        b"m" => Some(MINUTE),
        b"h" => Some(HOUR),
        _ => None,
    }
}

/// `int.frac` of `unit` in nanoseconds, rounded up; `None` on overflow. `int` and `frac` must be
/// ASCII digits (either may be empty).
fn decimal_nanos(int: &[u8], frac: &[u8], unit: Unit) -> Option<u128> {
    let factor = u128::from(unit.factor);
    let scale = 10u128.checked_pow(u32::try_from(unit.exponent).ok()?)?;
    // The integer part, exactly.
    let whole = digits_value(int)?.checked_mul(scale)?.checked_mul(factor)?;
    // The fraction times 10^exponent is `shifted.rest`: the first `exponent` digits are whole
    // nanoseconds (before the factor), the others a fraction of a nanosecond.
    let split = frac.len().min(unit.exponent);
    let (head, tail) = frac.split_at(split);
    let padding = 10u128.checked_pow(u32::try_from(unit.exponent - split).ok()?)?;
    let shifted = digits_value(head)?
        .checked_mul(padding)?
        .checked_mul(factor)?;
    // ceil(factor * 0.tail), by multiplying the digits from the right: exact for any length.
    let mut carry = 0u128;
    let mut inexact = false;
    for &digit in tail.iter().rev() {
        let product = u128::from(digit - b'0') * factor + carry;
        inexact |= product % 10 != 0;
        carry = product / 10;
    }
    let below = carry + u128::from(inexact);
    whole.checked_add(shifted)?.checked_add(below)
}

/// The value of ASCII digits (empty is zero), or `None` when it does not fit a u128.
fn digits_value(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, &digit| {
        acc.checked_mul(10)?.checked_add(u128::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(s: &str) -> Option<Duration> {
        parse_go_duration(s)
    }

    #[test]
    fn go_durations_from_openai_headers() {
        assert_eq!(go("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go("4m12.172s"), Some(Duration::from_millis(252_172)));
        assert_eq!(
            go("23h18m29.144s"),
            Some(Duration::from_millis(
                ((23 * 60 + 18) * 60 + 29) * 1000 + 144
            ))
        );
        assert_eq!(go("0s"), Some(Duration::ZERO));
        assert_eq!(go("0"), Some(Duration::ZERO));
    }

    #[test]
    fn millisecond_unit_is_not_read_as_seconds() {
        // The seed's bug: checking for a trailing "s" before "ms".
        assert_eq!(go("120ms"), Some(Duration::from_millis(120)));
        assert_eq!(go("1m"), Some(Duration::from_secs(60)));
        assert_eq!(go("1ms"), Some(Duration::from_millis(1)));
    }

    #[test]
    fn micro_and_nano_units_in_every_spelling() {
        assert_eq!(go("500us"), Some(Duration::from_micros(500)));
        assert_eq!(go("500\u{b5}s"), Some(Duration::from_micros(500)));
        assert_eq!(go("500\u{3bc}s"), Some(Duration::from_micros(500)));
        assert_eq!(go("1.5\u{b5}s"), Some(Duration::from_nanos(1_500)));
        assert_eq!(go("7ns"), Some(Duration::from_nanos(7)));
    }

    #[test]
    fn fractions_are_exact_to_the_nanosecond() {
        assert_eq!(go("1.5h"), Some(Duration::from_secs(5_400)));
        assert_eq!(go("0.1s"), Some(Duration::from_millis(100)));
        assert_eq!(go("1.000000001s"), Some(Duration::new(1, 1)));
        assert_eq!(go("2.123456789s"), Some(Duration::new(2, 123_456_789)));
        // 19.99999999998 s: 19,999,999,999.98 ns, rounded up.
        assert_eq!(go("0.333333333333m"), Some(Duration::from_secs(20)));
        assert_eq!(go(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(go("1.s"), Some(Duration::from_secs(1)));
    }

    #[test]
    fn digits_below_a_nanosecond_round_up() {
        assert_eq!(go("1.0000000001s"), Some(Duration::new(1, 1)));
        assert_eq!(go("0.5ns"), Some(Duration::from_nanos(1)));
        assert_eq!(
            go("1.0000000000000000000000000000000000000001s"),
            Some(Duration::new(1, 1))
        );
        assert_eq!(
            go("1.0000000000000000000000000000000000000000s"),
            Some(Duration::from_secs(1))
        );
        // A third of an hour with 23 digits: 1,199,999,999,999.9999999998... ns, rounded up.
        assert_eq!(
            go("0.33333333333333333333333h"),
            Some(Duration::new(1_200, 0))
        );
    }

    #[test]
    fn several_parts_add_up_in_any_order() {
        assert_eq!(go("1h1m1s"), Some(Duration::from_secs(3_661)));
        assert_eq!(go("1s1h"), Some(Duration::from_secs(3_601)));
        assert_eq!(go("1m30.5s"), Some(Duration::from_millis(90_500)));
        assert_eq!(go("+2s"), Some(Duration::from_secs(2)));
    }

    #[test]
    fn malformed_go_durations_are_refused() {
        for bad in [
            "", " ", "12", "1", "s", ".s", ".", "1..5s", "1.5.s", "1sm", "1 s", "1S", "1d", "-1s",
            "--1s", "1s-", "h", "1h 2m", "0x10s", "1e3s", "\u{b5}s", "1\u{b5}",
        ] {
            assert_eq!(go(bad), None, "{bad:?}");
        }
        assert_eq!(go("-0s"), Some(Duration::ZERO));
        assert_eq!(go(" 1s "), Some(Duration::from_secs(1)));
    }

    #[test]
    fn overflowing_go_durations_are_refused_not_wrapped() {
        assert_eq!(go("99999999999999999999999999999999999999999h"), None);
        assert_eq!(go("18446744073709551616s"), None);
        assert_eq!(
            go("18446744073709551615s"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(go("18446744073709551615s1s"), None);
        // Leading zeros are not an overflow.
        assert_eq!(
            go("0000000000000000000000000000000000000000001s"),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn plain_seconds_and_millis() {
        assert_eq!(parse_seconds("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds(" 1.5 "), Some(Duration::from_millis(1_500)));
        assert_eq!(parse_seconds("0"), Some(Duration::ZERO));
        assert_eq!(parse_seconds(".25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_millis("1500"), Some(Duration::from_millis(1_500)));
        assert_eq!(parse_millis("20.5"), Some(Duration::from_micros(20_500)));
        assert_eq!(parse_millis("0.0000001"), Some(Duration::from_nanos(1)));
        for bad in ["", "-1", "1s", "1,5", "abc", "1 2", "+1", "1e3", "."] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
        assert_eq!(parse_seconds("18446744073709551616"), None);
    }

    #[test]
    fn fraction_of_a_second() {
        assert_eq!(fraction_of_second_nanos(b"5"), Some(500_000_000));
        assert_eq!(fraction_of_second_nanos(b"123456789"), Some(123_456_789));
        assert_eq!(fraction_of_second_nanos(b"1234567891"), Some(123_456_790));
        assert_eq!(fraction_of_second_nanos(b""), Some(0));
    }
}
