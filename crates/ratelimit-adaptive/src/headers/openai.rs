//! OpenAI and Azure OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
//!
//! OpenAI sends all six on every response; its resets are Go durations (`1s`, `6m0s`,
//! `4m12.172s`) meaning "time until fully replenished". Azure OpenAI sends only the two
//! `remaining` headers. OpenAI-compatible servers that write a reset as a bare number of seconds
//! (`33011.38`) are read too.

use std::time::Duration;

use http::HeaderMap;
use ratelimit_core::Resource;

use super::duration::{parse_go_duration, parse_seconds};
use super::values::{count, remaining, text};
use super::{Dimensions, Observed};

/// The header names of one dimension: limit, remaining, reset.
struct Names {
    resource: Resource,
    limit: &'static str,
    remaining: &'static str,
    reset: &'static str,
}

const DIMENSIONS: [Names; 2] = [
    Names {
        resource: Resource::Requests,
        limit: "x-ratelimit-limit-requests",
        remaining: "x-ratelimit-remaining-requests",
        reset: "x-ratelimit-reset-requests",
    },
    Names {
        resource: Resource::Tokens,
        limit: "x-ratelimit-limit-tokens",
        remaining: "x-ratelimit-remaining-tokens",
        reset: "x-ratelimit-reset-tokens",
    },
];

/// The OpenAI/Azure dimensions present in `headers`.
pub(super) fn parse(headers: &HeaderMap) -> Dimensions {
    let mut dimensions = Dimensions::default();
    for names in &DIMENSIONS {
        let observed = Observed {
            limit: text(headers, names.limit).and_then(count),
            remaining: text(headers, names.remaining).and_then(remaining),
            reset: text(headers, names.reset).and_then(reset),
            window: None,
        };
        dimensions.set(names.resource, observed);
    }
    dimensions
}

/// A reset: a Go duration, or plain seconds for OpenAI-compatible servers that send those.
fn reset(s: &str) -> Option<Duration> {
    parse_go_duration(s).or_else(|| parse_seconds(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn all_six_headers() {
        let dims = parse(&headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(60),
                remaining: Some(59),
                reset: Some(Duration::from_secs(1)),
                window: None,
            })
        );
        assert_eq!(
            dims.tokens,
            Some(Observed {
                limit: Some(150_000),
                remaining: Some(149_984),
                reset: Some(Duration::from_secs(360)),
                window: None,
            })
        );
        assert_eq!(dims.input_tokens, None);
        assert_eq!(dims.output_tokens, None);
    }

    #[test]
    fn azure_sends_remaining_only() {
        let dims = parse(&headers(&[
            ("x-ratelimit-remaining-requests", "2"),
            ("x-ratelimit-remaining-tokens", "1800"),
        ]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                remaining: Some(2),
                ..Observed::default()
            })
        );
        assert_eq!(dims.tokens.and_then(|o| o.remaining), Some(1_800));
        assert_eq!(dims.tokens.and_then(|o| o.limit), None);
    }

    #[test]
    fn sub_second_and_fractional_resets_are_exact() {
        let dims = parse(&headers(&[
            ("x-ratelimit-reset-requests", "12ms"),
            ("x-ratelimit-reset-tokens", "23h18m29.144s"),
        ]));
        assert_eq!(
            dims.requests.and_then(|o| o.reset),
            Some(Duration::from_millis(12))
        );
        assert_eq!(
            dims.tokens.and_then(|o| o.reset),
            Some(Duration::from_millis(83_909_144))
        );
    }

    #[test]
    fn bare_seconds_reset_from_compatible_servers() {
        let dims = parse(&headers(&[("x-ratelimit-reset-requests", "2.5")]));
        assert_eq!(
            dims.requests.and_then(|o| o.reset),
            Some(Duration::from_millis(2_500))
        );
    }

    #[test]
    fn malformed_values_only_drop_their_field() {
        let dims = parse(&headers(&[
            ("x-ratelimit-limit-requests", "sixty"),
            ("x-ratelimit-remaining-requests", "-3"),
            ("x-ratelimit-reset-requests", "soon"),
            ("x-ratelimit-limit-tokens", "99999999999999999999999"),
        ]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                remaining: Some(0),
                ..Observed::default()
            })
        );
        assert_eq!(dims.tokens, None);
    }
}
