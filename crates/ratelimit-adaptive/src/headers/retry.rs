//! Retry information: `retry-after-ms`, `retry-after`, `x-should-retry`, and the wait written in a
//! 429 body by OpenAI, Azure OpenAI and Gemini.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde_json::Value;

use super::RetryHint;
use super::duration::{parse_go_duration, parse_millis, parse_seconds};
use super::instant::until_http_date;
use super::values::text;

/// The retry headers of one response received at `now`: `retry-after-ms` (the most precise) wins
/// over `retry-after` (delta-seconds, fractions accepted, or an HTTP date).
pub(super) fn from_headers(headers: &HeaderMap, now: SystemTime) -> RetryHint {
    let after = text(headers, "retry-after-ms")
        .and_then(parse_millis)
        .or_else(|| {
            text(headers, "retry-after")
                .and_then(|s| parse_seconds(s).or_else(|| until_http_date(s, now)))
        });
    let should_retry = text(headers, "x-should-retry").and_then(|s| {
        if s.eq_ignore_ascii_case("true") {
            Some(true)
        } else if s.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    });
    RetryHint {
        after,
        should_retry,
    }
}

/// The wait an error body asks for, if it states one:
///
/// - Gemini / Google APIs: `"retryDelay": "35s"` in the `error.details[]` entry whose `@type` is
///   `type.googleapis.com/google.rpc.RetryInfo` (a JSON object, or an array of them);
/// - OpenAI: `... Please try again in 1.306s.` (any Go duration: `20ms`, `6m0s`, `1m30.5s`);
/// - Azure OpenAI: `... Please retry after 6 seconds.` (also `second`, `milliseconds`,
///   `minutes`);
/// - Gemini's message, when its `RetryInfo` is missing: `... Please retry in 47.434392449s.`
///
/// Anything else, including invalid UTF-8, truncated JSON or numbers too large for a
/// [`Duration`], gives `None`. Never panics.
///
/// ```
/// use ratelimit_adaptive::retry_after_from_body;
/// use std::time::Duration;
///
/// let gemini = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[
///     {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"35s"}]}}"#;
/// assert_eq!(retry_after_from_body(gemini), Some(Duration::from_secs(35)));
///
/// let openai = br#"{"error":{"message":"Rate limit reached. Please try again in 6m0s."}}"#;
/// assert_eq!(retry_after_from_body(openai), Some(Duration::from_secs(360)));
///
/// assert_eq!(retry_after_from_body(b"\xff\xfe slow down"), None);
/// ```
#[must_use]
pub fn retry_after_from_body(body: &[u8]) -> Option<Duration> {
    google_retry_info(body).or_else(|| phrase_delay(body))
}

/// `retryDelay` of a `google.rpc.RetryInfo` error detail.
fn google_retry_info(body: &[u8]) -> Option<Duration> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if !matches!(first, b'{' | b'[') {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    retry_info_in(&value)
}

fn retry_info_in(value: &Value) -> Option<Duration> {
    match value {
        // Some Google endpoints (streaming) wrap the error object in an array.
        Value::Array(items) => items.iter().find_map(retry_info_in),
        Value::Object(object) => object
            .get("error")?
            .get("details")?
            .as_array()?
            .iter()
            .find_map(|detail| {
                let kind = detail.get("@type")?.as_str()?;
                if !kind.ends_with("google.rpc.RetryInfo") {
                    return None;
                }
                // A protobuf JSON Duration: decimal seconds with an `s` suffix.
                parse_seconds(detail.get("retryDelay")?.as_str()?.strip_suffix('s')?)
            }),
        _ => None,
    }
}

/// The phrases after which OpenAI, Azure and Gemini write the wait in a message.
const PHRASES: [&[u8]; 3] = [b"try again in ", b"retry after ", b"retry in "];

/// The first `try again in <wait>` / `retry after <wait>` / `retry in <wait>` whose wait parses.
fn phrase_delay(body: &[u8]) -> Option<Duration> {
    (0..body.len()).find_map(|start| {
        let rest = &body[start..];
        PHRASES.iter().find_map(|phrase| {
            let head = rest.get(..phrase.len())?;
            if !head.eq_ignore_ascii_case(phrase) {
                return None;
            }
            wait_at(&rest[phrase.len()..])
        })
    })
}

/// A wait at the start of `text`: a Go duration (`1.306s`, `20ms`) or a number and a unit word
/// (`6 seconds`), a sentence's full stop allowed after it.
fn wait_at(text: &[u8]) -> Option<Duration> {
    let text = skip_spaces(text);
    let len = text
        .iter()
        .take_while(|&&b| {
            // Digits, the point, unit letters and the bytes of `µ`/`μ` in UTF-8.
            b.is_ascii_digit()
                || b == b'.'
                || b.is_ascii_alphabetic()
                || matches!(b, 0xc2 | 0xb5 | 0xce | 0xbc)
        })
        .count();
    let word = std::str::from_utf8(&text[..len])
        .ok()?
        .trim_end_matches('.');
    if let Some(wait) = parse_go_duration(word) {
        return Some(wait);
    }
    // `6 seconds`: a plain number, a space, then a unit word.
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let after = skip_spaces(&text[len..]);
    let unit_len = after.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let unit = match after[..unit_len].to_ascii_lowercase().as_slice() {
        b"millisecond" | b"milliseconds" | b"ms" => "ms",
        b"second" | b"seconds" | b"sec" | b"secs" | b"s" => "s",
        b"minute" | b"minutes" | b"min" | b"mins" => "m",
        _ => return None,
    };
    parse_go_duration(&format!("{word}{unit}"))
}

fn skip_spaces(text: &[u8]) -> &[u8] {
    let spaces = text.iter().take_while(|&&b| b == b' ').count();
    &text[spaces..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn hint(pairs: &[(&'static str, &'static str)], now: SystemTime) -> RetryHint {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        from_headers(&map, now)
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_445_412_480 - 120)
    }

    #[test]
    fn retry_after_seconds_whole_and_fractional() {
        assert_eq!(
            hint(&[("retry-after", "20")], now()).after,
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            hint(&[("retry-after", "1.5")], now()).after,
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            hint(&[("retry-after", "0")], now()).after,
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_http_date_counts_from_now() {
        assert_eq!(
            hint(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], now()).after,
            Some(Duration::from_secs(120))
        );
        let later = now() + Duration::from_secs(600);
        assert_eq!(
            hint(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], later).after,
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_ms_is_preferred_and_may_be_fractional() {
        assert_eq!(
            hint(&[("retry-after-ms", "1500.5"), ("retry-after", "2")], now()).after,
            Some(Duration::from_micros(1_500_500))
        );
        // A malformed `retry-after-ms` falls back to `retry-after`.
        assert_eq!(
            hint(&[("retry-after-ms", "soon"), ("retry-after", "2")], now()).after,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn malformed_retry_after_is_ignored() {
        for bad in ["-1", "soon", "1s", "", "99999999999999999999999"] {
            assert_eq!(hint(&[("retry-after", bad)], now()).after, None, "{bad:?}");
        }
    }

    #[test]
    fn should_retry_true_false_or_absent() {
        assert_eq!(
            hint(&[("x-should-retry", "true")], now()).should_retry,
            Some(true)
        );
        assert_eq!(
            hint(&[("x-should-retry", "FALSE")], now()).should_retry,
            Some(false)
        );
        assert_eq!(
            hint(&[("x-should-retry", "maybe")], now()).should_retry,
            None
        );
        assert_eq!(hint(&[], now()), RetryHint::default());
    }

    #[test]
    fn openai_body_messages() {
        let body = |message: &str| {
            format!(
                r#"{{"error":{{"message":"Rate limit reached for gpt-4.1 in organization org-x on tokens per min (TPM): Limit 450000, Used 368526, Requested 91276. {message} Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}}}"#
            )
        };
        for (message, wait) in [
            ("Please try again in 1.306s.", Duration::from_millis(1_306)),
            ("Please try again in 20ms.", Duration::from_millis(20)),
            ("Please try again in 6m0s.", Duration::from_secs(360)),
            (
                "Please try again in 1m30.5s.",
                Duration::from_millis(90_500),
            ),
            (
                "Please try again in 500\u{b5}s.",
                Duration::from_micros(500),
            ),
        ] {
            assert_eq!(
                retry_after_from_body(body(message).as_bytes()),
                Some(wait),
                "{message}"
            );
        }
    }

    #[test]
    fn azure_body_message() {
        let body = br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}"#;
        assert_eq!(retry_after_from_body(body), Some(Duration::from_secs(6)));
        assert_eq!(
            retry_after_from_body(b"Please retry after 1 second."),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after_from_body(b"Retry after 250 milliseconds"),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn gemini_retry_info() {
        let body = |delay: &str| {
            format!(
                r#"{{"error":{{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
            )
        };
        assert_eq!(
            retry_after_from_body(body("35s").as_bytes()),
            Some(Duration::from_secs(35))
        );
        assert_eq!(
            retry_after_from_body(body("0.5s").as_bytes()),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after_from_body(body("1.250s").as_bytes()),
            Some(Duration::from_millis(1_250))
        );
        assert_eq!(
            retry_after_from_body(body("45.837906927s").as_bytes()),
            Some(Duration::new(45, 837_906_927))
        );
        assert_eq!(retry_after_from_body(body("-1s").as_bytes()), None);
        assert_eq!(retry_after_from_body(body("35").as_bytes()), None);
        let wrapped = format!("[{}]", body("2s"));
        assert_eq!(
            retry_after_from_body(wrapped.as_bytes()),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn gemini_message_without_retry_info() {
        let body = br#"{"error":{"code":429,"message":"You exceeded your current quota.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20\nPlease retry in 10.05676626s.","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            retry_after_from_body(body),
            Some(Duration::from_nanos(10_056_766_260))
        );
    }

    #[test]
    fn retry_info_wins_over_the_message() {
        let body = br#"{"error":{"message":"Please retry in 47.434392449s.","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"47s"}]}}"#;
        assert_eq!(retry_after_from_body(body), Some(Duration::from_secs(47)));
    }

    #[test]
    fn retry_info_needs_its_type() {
        let body = br#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.Help","retryDelay":"3s"}]}}"#;
        assert_eq!(retry_after_from_body(body), None);
    }

    #[test]
    fn bodies_without_a_wait_give_none() {
        for body in [
            &b""[..],
            b"{}",
            b"[]",
            b"null",
            b"{\"error\":",
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            b"Please try again in a moment.",
            b"Please try again in .",
            b"please retry after the quota resets",
            b"try again in 99999999999999999999999999h",
            b"\xff\xfe\xfd",
            b"try again in \xc2",
            b"try again in ",
            b"retry after 3 fortnights",
        ] {
            assert_eq!(retry_after_from_body(body), None, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn the_first_parseable_phrase_wins() {
        assert_eq!(
            retry_after_from_body(b"try again in a bit; try again in 2s; retry after 9 seconds"),
            Some(Duration::from_secs(2))
        );
    }
}
