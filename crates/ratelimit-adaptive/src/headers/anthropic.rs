//! Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`.
//!
//! Resets are RFC 3339 instants (`2025-08-21T12:40:59Z`), turned into the time from the
//! response's `now` (zero when already past). The `tokens` family is the most restrictive token
//! limit in effect; `remaining` figures are rounded by Anthropic to the nearest thousand.

use std::time::SystemTime;

use http::HeaderMap;
use ratelimit_core::Resource;

use super::instant::until_rfc3339;
use super::values::{count, remaining, text};
use super::{Dimensions, Observed};

/// The header names of one dimension: limit, remaining, reset.
struct Names {
    resource: Resource,
    limit: &'static str,
    remaining: &'static str,
    reset: &'static str,
}

const DIMENSIONS: [Names; 4] = [
    Names {
        resource: Resource::Requests,
        limit: "anthropic-ratelimit-requests-limit",
        remaining: "anthropic-ratelimit-requests-remaining",
        reset: "anthropic-ratelimit-requests-reset",
    },
    Names {
        resource: Resource::InputTokens,
        limit: "anthropic-ratelimit-input-tokens-limit",
        remaining: "anthropic-ratelimit-input-tokens-remaining",
        reset: "anthropic-ratelimit-input-tokens-reset",
    },
    Names {
        resource: Resource::OutputTokens,
        limit: "anthropic-ratelimit-output-tokens-limit",
        remaining: "anthropic-ratelimit-output-tokens-remaining",
        reset: "anthropic-ratelimit-output-tokens-reset",
    },
    Names {
        resource: Resource::Tokens,
        limit: "anthropic-ratelimit-tokens-limit",
        remaining: "anthropic-ratelimit-tokens-remaining",
        reset: "anthropic-ratelimit-tokens-reset",
    },
];

/// The Anthropic dimensions present in `headers`, resets counted from `now`.
pub(super) fn parse(headers: &HeaderMap, now: SystemTime) -> Dimensions {
    let mut dimensions = Dimensions::default();
    for names in &DIMENSIONS {
        let observed = Observed {
            limit: text(headers, names.limit).and_then(count),
            remaining: text(headers, names.remaining).and_then(remaining),
            reset: text(headers, names.reset).and_then(|s| until_rfc3339(s, now)),
            window: None,
        };
        dimensions.set(names.resource, observed);
    }
    dimensions
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    /// 2025-08-21T12:40:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_755_780_000)
    }

    #[test]
    fn every_dimension_maps_to_its_resource() {
        let dims = parse(
            &headers(&[
                ("anthropic-ratelimit-requests-limit", "1000"),
                ("anthropic-ratelimit-requests-remaining", "999"),
                ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
                ("anthropic-ratelimit-input-tokens-limit", "400000"),
                ("anthropic-ratelimit-input-tokens-remaining", "399000"),
                (
                    "anthropic-ratelimit-input-tokens-reset",
                    "2025-08-21T12:40:01Z",
                ),
                ("anthropic-ratelimit-output-tokens-limit", "80000"),
                ("anthropic-ratelimit-output-tokens-remaining", "79000"),
                (
                    "anthropic-ratelimit-output-tokens-reset",
                    "2025-08-21T12:40:02.5Z",
                ),
                ("anthropic-ratelimit-tokens-limit", "480000"),
                ("anthropic-ratelimit-tokens-remaining", "478000"),
                ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:01Z"),
            ]),
            now(),
        );
        let observed = |limit, remaining, reset| {
            Some(Observed {
                limit: Some(limit),
                remaining: Some(remaining),
                reset: Some(reset),
                window: None,
            })
        };
        assert_eq!(dims.requests, observed(1000, 999, Duration::from_secs(59)));
        assert_eq!(
            dims.input_tokens,
            observed(400_000, 399_000, Duration::from_secs(1))
        );
        assert_eq!(
            dims.output_tokens,
            observed(80_000, 79_000, Duration::from_millis(2_500))
        );
        assert_eq!(
            dims.tokens,
            observed(480_000, 478_000, Duration::from_secs(1))
        );
    }

    #[test]
    fn past_resets_clamp_to_zero_and_bad_ones_are_dropped() {
        let dims = parse(
            &headers(&[
                ("anthropic-ratelimit-requests-reset", "2025-08-21T12:39:00Z"),
                ("anthropic-ratelimit-tokens-remaining", "5"),
                ("anthropic-ratelimit-tokens-reset", "in a minute"),
            ]),
            now(),
        );
        assert_eq!(
            dims.requests,
            Some(Observed {
                reset: Some(Duration::ZERO),
                ..Observed::default()
            })
        );
        assert_eq!(
            dims.tokens,
            Some(Observed {
                remaining: Some(5),
                ..Observed::default()
            })
        );
        assert_eq!(dims.input_tokens, None);
    }

    #[test]
    fn openai_names_are_not_read_here() {
        let dims = parse(&headers(&[("x-ratelimit-limit-requests", "60")]), now());
        assert!(dims.is_empty());
    }
}
