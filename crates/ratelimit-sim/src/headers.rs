//! The rate-limit headers of each style, computed from the referee's window.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use ratelimit_openai::duration::format_go_duration;

use crate::{HeaderStyle, referee::Window};

/// Sets the rate-limit headers of `style` for `window` (nothing for limits that are off).
///
/// - OpenAI: `x-ratelimit-limit-*`, `x-ratelimit-remaining-*`, and `x-ratelimit-reset-*` as the
///   Go duration until the window holds nothing of that kind (the limit is whole again),
///   rounded up to the millisecond.
/// - Anthropic: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, the reset as
///   the RFC 3339 instant (whole seconds, rounded up) at which the limit is whole again.
///   Remaining values are exact (Anthropic rounds them to thousands).
pub(crate) fn rate_limit_headers(
    style: HeaderStyle,
    window: &Window,
    start_wall: SystemTime,
    headers: &mut HeaderMap,
) {
    let kinds = [
        (
            "requests",
            window.rpm,
            window.requests_remaining(),
            window.requests_reset,
        ),
        (
            "tokens",
            window.tpm,
            window.tokens_remaining(),
            window.tokens_reset,
        ),
    ];
    for (kind, limit, remaining, reset) in kinds {
        let (Some(limit), Some(remaining)) = (limit, remaining) else {
            continue;
        };
        let (names, reset) = match style {
            HeaderStyle::None => return,
            HeaderStyle::OpenAi => (
                [
                    format!("x-ratelimit-limit-{kind}"),
                    format!("x-ratelimit-remaining-{kind}"),
                    format!("x-ratelimit-reset-{kind}"),
                ],
                format_go_duration(round_up_to(reset, Duration::from_millis(1))),
            ),
            HeaderStyle::Anthropic => (
                [
                    format!("anthropic-ratelimit-{kind}-limit"),
                    format!("anthropic-ratelimit-{kind}-remaining"),
                    format!("anthropic-ratelimit-{kind}-reset"),
                ],
                rfc3339_after(start_wall, window.now + reset),
            ),
        };
        let values = [limit.to_string(), remaining.to_string(), reset];
        for (name, value) in names.into_iter().zip(values) {
            insert(headers, &name, &value);
        }
    }
}

/// `retry-after` (whole seconds, rounded up) and `retry-after-ms` (rounded up).
pub(crate) fn retry_headers(retry_after: Duration, headers: &mut HeaderMap) {
    let seconds = round_up_to(retry_after, Duration::from_secs(1)).as_secs();
    let millis = round_up_to(retry_after, Duration::from_millis(1)).as_millis();
    insert(headers, "retry-after", &seconds.to_string());
    insert(headers, "retry-after-ms", &millis.to_string());
}

/// Sets a header whose name and value are known to be valid (lowercase ASCII names, ASCII
/// values); anything else is skipped rather than sent malformed.
pub(crate) fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.insert(name, value);
    }
}

/// `duration` rounded up to a whole number of `unit`s.
pub(crate) fn round_up_to(duration: Duration, unit: Duration) -> Duration {
    let unit_nanos = unit.as_nanos().max(1);
    let units = duration.as_nanos().div_ceil(unit_nanos);
    let nanos = units.saturating_mul(unit_nanos);
    Duration::new(
        u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
        (nanos % 1_000_000_000) as u32,
    )
}

/// The wall-clock instant `since_start` after the start, as RFC 3339 with whole seconds,
/// rounded up so a client waiting until then is never early.
pub(crate) fn rfc3339_after(start_wall: SystemTime, since_start: Duration) -> String {
    let since_epoch = start_wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .saturating_add(since_start);
    let rounded = round_up_to(since_epoch, Duration::from_secs(1)).min(LATEST_RFC3339);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + rounded).to_string()
}

/// 9999-12-31T23:59:59Z, the latest instant RFC 3339 can write.
const LATEST_RFC3339: Duration = Duration::from_secs(253_402_300_799);

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            now: Duration::from_secs(5),
            rpm: Some(60),
            tpm: Some(1_000),
            requests: 2,
            tokens: 300,
            requests_reset: Duration::from_micros(59_000_001),
            tokens_reset: Duration::from_millis(1_500),
        }
    }

    fn get<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("header {name} missing"))
    }

    #[test]
    fn openai_headers() {
        let mut headers = HeaderMap::new();
        rate_limit_headers(HeaderStyle::OpenAi, &window(), UNIX_EPOCH, &mut headers);
        assert_eq!(get(&headers, "x-ratelimit-limit-requests"), "60");
        assert_eq!(get(&headers, "x-ratelimit-remaining-requests"), "58");
        assert_eq!(get(&headers, "x-ratelimit-reset-requests"), "59.001s");
        assert_eq!(get(&headers, "x-ratelimit-limit-tokens"), "1000");
        assert_eq!(get(&headers, "x-ratelimit-remaining-tokens"), "700");
        assert_eq!(get(&headers, "x-ratelimit-reset-tokens"), "1.5s");
        assert_eq!(headers.len(), 6);
    }

    #[test]
    fn anthropic_headers() {
        let mut headers = HeaderMap::new();
        let start = UNIX_EPOCH + Duration::from_secs(1_755_780_000);
        rate_limit_headers(HeaderStyle::Anthropic, &window(), start, &mut headers);
        assert_eq!(get(&headers, "anthropic-ratelimit-requests-limit"), "60");
        assert_eq!(
            get(&headers, "anthropic-ratelimit-requests-remaining"),
            "58"
        );
        // 5 s + 59.000001 s after the start, rounded up: 65 s after it.
        assert_eq!(
            get(&headers, "anthropic-ratelimit-requests-reset"),
            "2025-08-21T12:41:05Z"
        );
        assert_eq!(get(&headers, "anthropic-ratelimit-tokens-remaining"), "700");
        assert_eq!(
            get(&headers, "anthropic-ratelimit-tokens-reset"),
            "2025-08-21T12:40:07Z"
        );
        assert_eq!(headers.len(), 6);
    }

    #[test]
    fn no_headers_for_unlimited_kinds_or_style_none() {
        let mut headers = HeaderMap::new();
        let unlimited_requests = Window {
            rpm: None,
            ..window()
        };
        rate_limit_headers(
            HeaderStyle::OpenAi,
            &unlimited_requests,
            UNIX_EPOCH,
            &mut headers,
        );
        assert!(headers.get("x-ratelimit-limit-requests").is_none());
        assert_eq!(headers.len(), 3);
        let mut headers = HeaderMap::new();
        rate_limit_headers(HeaderStyle::None, &window(), UNIX_EPOCH, &mut headers);
        assert!(headers.is_empty());
    }

    #[test]
    fn far_resets_stay_writable() {
        assert_eq!(
            rfc3339_after(UNIX_EPOCH, Duration::MAX),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339_after(UNIX_EPOCH, Duration::from_millis(1)),
            "1970-01-01T00:00:01Z"
        );
        let mut headers = HeaderMap::new();
        retry_headers(Duration::MAX, &mut headers);
        assert_eq!(get(&headers, "retry-after"), u64::MAX.to_string());
    }

    #[test]
    fn retry_after_rounds_up() {
        let mut headers = HeaderMap::new();
        retry_headers(Duration::from_micros(1_200_001), &mut headers);
        assert_eq!(get(&headers, "retry-after"), "2");
        assert_eq!(get(&headers, "retry-after-ms"), "1201");
        retry_headers(Duration::from_secs(3), &mut headers);
        assert_eq!(get(&headers, "retry-after"), "3");
        assert_eq!(get(&headers, "retry-after-ms"), "3000");
    }
}
