//! Points in time in headers (RFC 3339 timestamps, HTTP dates, Unix epoch numbers), turned into
//! the duration from the response's `now` until them, clamped at zero when they are past.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::duration::{fraction_of_second_nanos, nanos_to_duration};

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// The time from `now` until the RFC 3339 timestamp `s` (`2025-08-21T12:40:59Z`,
/// `2025-08-21T14:40:59.5+02:00`), zero if it is past; `None` if `s` is not a valid timestamp.
pub(crate) fn until_rfc3339(s: &str, now: SystemTime) -> Option<Duration> {
    Some(until_epoch_nanos(parse_rfc3339(s)?, now))
}

/// The time from `now` until the HTTP date `s` (`Wed, 21 Oct 2015 07:28:00 GMT` and the two
/// obsolete forms), zero if it is past.
pub(crate) fn until_http_date(s: &str, now: SystemTime) -> Option<Duration> {
    let target = httpdate::parse_http_date(s.trim_ascii()).ok()?;
    Some(target.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The time from `now` until `target` nanoseconds after the Unix epoch, zero if it is past.
pub(crate) fn until_epoch_nanos(target: i128, now: SystemTime) -> Duration {
    let left = target.saturating_sub(epoch_nanos(now)).max(0);
    // Non-negative; anything beyond a Duration's range saturates.
    u128::try_from(left)
        .ok()
        .and_then(nanos_to_duration)
        .unwrap_or(Duration::MAX)
}

/// Nanoseconds from the Unix epoch to `t` (negative before it).
fn epoch_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    }
}

/// An RFC 3339 `date-time` as nanoseconds since the Unix epoch. Accepts `T`, `t` or a space
/// between date and time, any number of fractional second digits (rounded up to the nanosecond),
/// `Z`, `z` or a `±HH:MM` offset, and a leap second `:60`.
fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.trim_ascii().as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = number(&b[0..4])?;
    let month = number(&b[5..7])?;
    let day = number(&b[8..10])?;
    let hour = number(&b[11..13])?;
    let minute = number(&b[14..16])?;
    let second = number(&b[17..19])?;
    let separators_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !separators_ok
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut fraction = 0i128;
    if let Some((b'.', after)) = rest.split_first() {
        let len = after.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        fraction = i128::try_from(fraction_of_second_nanos(&after[..len])?).ok()?;
        rest = &after[len..];
    }
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = number(&[*h1, *h2])?;
            let minutes = number(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = i128::from(hours * 3_600 + minutes * 60);
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let days = days_from_civil(i128::from(year), month, day);
    let seconds = days * 86_400 + i128::from(hour * 3_600 + minute * 60 + second) - offset_seconds;
    Some(seconds * NANOS_PER_SECOND + fraction)
}

/// The value of ASCII digits that fit a u32 (every caller passes two or four).
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i128, month: u32, day: u32) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i128::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i128::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        // 2025-08-21T12:40:59Z is 1755780059 s after the epoch.
        assert_eq!(
            parse_rfc3339("2025-08-21T12:40:59Z"),
            Some(1_755_780_059 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_rfc3339("2025-08-21T14:40:59+02:00"),
            Some(1_755_780_059 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_rfc3339("2025-08-21t10:10:59.25-02:30"),
            Some(1_755_780_059 * NANOS_PER_SECOND + 250_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29 00:00:00z"),
            Some(951_782_400 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Some(-NANOS_PER_SECOND)
        );
    }

    #[test]
    fn rfc3339_invalid_forms_are_refused() {
        for bad in [
            "",
            "2025-08-21",
            "2025-08-21T12:40:59",
            "2025-08-21T12:40:59+0200",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2025-08-32T00:00:00Z",
            "2025-08-21T24:00:00Z",
            "2025-08-21T12:60:00Z",
            "2025-08-21T12:00:61Z",
            "2025-08-21T12:00:00.Z",
            "2025-08-21T12:00:00+24:00",
            "2025/08/21T12:00:00Z",
            "2025-08-21T12:00:00ZZ",
            "+025-08-21T12:00:00Z",
            "2025-08-21T12:00:00\u{e9}",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn until_rfc3339_counts_from_now_and_clamps_the_past() {
        let now = at(1_755_780_000);
        assert_eq!(
            until_rfc3339("2025-08-21T12:40:59Z", now),
            Some(Duration::from_secs(59))
        );
        assert_eq!(
            until_rfc3339("2025-08-21T12:40:59.5Z", now),
            Some(Duration::from_millis(59_500))
        );
        assert_eq!(
            until_rfc3339("2025-08-21T12:39:00Z", now),
            Some(Duration::ZERO)
        );
        assert_eq!(until_rfc3339("not a date", now), None);
        // A `now` before the epoch still counts correctly.
        assert_eq!(
            until_rfc3339("1970-01-01T00:00:01Z", UNIX_EPOCH - Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn http_dates_count_from_now() {
        // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480 s after the epoch.
        let now = at(1_445_412_480 - 120);
        assert_eq!(
            until_http_date("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            until_http_date("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            until_http_date("Wed, 21 Oct 2015 07:28:00 GMT", at(1_445_412_480 + 5)),
            Some(Duration::ZERO)
        );
        assert_eq!(until_http_date("21 Oct 2015", now), None);
    }

    #[test]
    fn epoch_targets_clamp_and_saturate() {
        let now = at(100);
        assert_eq!(
            until_epoch_nanos(105 * NANOS_PER_SECOND, now),
            Duration::from_secs(5)
        );
        assert_eq!(until_epoch_nanos(0, now), Duration::ZERO);
        assert_eq!(until_epoch_nanos(i128::MIN, now), Duration::ZERO);
        assert_eq!(until_epoch_nanos(i128::MAX, now), Duration::MAX);
    }
}
