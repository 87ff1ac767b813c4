//! The IETF rate-limit header fields (draft-ietf-httpapi-ratelimit-headers): the structured
//! `RateLimit-Policy` and `RateLimit` fields, and the older `RateLimit-Limit/-Remaining/-Reset`
//! trio with its `X-RateLimit-*` form. See the [`headers`](crate::headers) module docs for the
//! units, the matching of policies and the choice of the binding policy.

mod structured;

use std::cmp::Reverse;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use ratelimit_core::Resource;

use super::duration::parse_seconds;
use super::instant::until_epoch_nanos;
use super::values::{count, joined, remaining, text};
use super::{Dimensions, Observed};
use structured::{Bare, Member, parse_list};

/// The names of a limit/remaining/reset trio.
pub(crate) struct TrioNames {
    limit: &'static str,
    remaining: &'static str,
    reset: &'static str,
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`.
pub(crate) const TRIO: TrioNames = TrioNames {
    limit: "ratelimit-limit",
    remaining: "ratelimit-remaining",
    reset: "ratelimit-reset",
};

/// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
pub(crate) const X_TRIO: TrioNames = TrioNames {
    limit: "x-ratelimit-limit",
    remaining: "x-ratelimit-remaining",
    reset: "x-ratelimit-reset",
};

/// A reset at least this large is a Unix timestamp in seconds, not a delay (10^9 s is 31 years).
const EPOCH_SECONDS_FROM: u64 = 1_000_000_000;
/// A reset at least this large is a Unix timestamp in milliseconds.
const EPOCH_MILLIS_FROM: u64 = 1_000_000_000_000;

/// The trio `names` as the requests dimension, resets counted from `now`.
pub(crate) fn trio(headers: &HeaderMap, names: &TrioNames, now: SystemTime) -> Dimensions {
    let (limit, window) = text(headers, names.limit).map_or((None, None), trio_limit);
    let observed = Observed {
        limit,
        remaining: text(headers, names.remaining).and_then(remaining),
        reset: text(headers, names.reset).and_then(|s| trio_reset(s, now)),
        window,
    };
    let mut dimensions = Dimensions::default();
    dimensions.set(Resource::Requests, observed);
    dimensions
}

/// `RateLimit-Limit`: a plain count, or (draft 03) a list whose first member is the limit in
/// effect, with its window as a `w` parameter: `10, 10;w=1, 50;w=60`.
fn trio_limit(s: &str) -> (Option<u64>, Option<Duration>) {
    if let Some(limit) = count(s) {
        return (Some(limit), None);
    }
    let Some(members) = parse_list(s) else {
        return (None, None);
    };
    let Some(first) = members.first().filter(|member| member.key.is_none()) else {
        return (None, None);
    };
    (
        first.value.number().and_then(count),
        first.param("w").and_then(window),
    )
}

/// `RateLimit-Reset`: delta seconds, or a Unix timestamp (seconds, or milliseconds) as some
/// servers send it, turned into the time until then.
fn trio_reset(s: &str, now: SystemTime) -> Option<Duration> {
    let value = parse_seconds(s)?;
    let nanos = i128::try_from(value.as_nanos()).ok()?;
    if value.as_secs() >= EPOCH_MILLIS_FROM {
        Some(until_epoch_nanos(nanos / 1_000, now))
    } else if value.as_secs() >= EPOCH_SECONDS_FROM {
        Some(until_epoch_nanos(nanos, now))
    } else {
        Some(value)
    }
}

/// A policy of `RateLimit-Policy`.
struct Policy {
    name: Option<String>,
    /// `None` when its unit is not one of the dimensions (bytes, concurrency, unknown).
    resource: Option<Resource>,
    quota: Option<u64>,
    window: Option<Duration>,
    /// Whether a `RateLimit` item has been matched with it.
    matched: bool,
}

/// The `RateLimit-Policy` and `RateLimit` fields, one binding policy per dimension.
pub(crate) fn structured(headers: &HeaderMap) -> Dimensions {
    let mut dimensions = Dimensions::default();
    let policy_field = joined(headers, "ratelimit-policy");
    let limit_field = joined(headers, "ratelimit");
    if policy_field.is_none() && limit_field.is_none() {
        return dimensions;
    }
    let mut policies: Vec<Policy> = policy_field
        .as_deref()
        .and_then(parse_list)
        .unwrap_or_default()
        .iter()
        .filter_map(policy)
        .collect();

    let mut offer = |resource: Resource, observed: Observed| {
        let current = dimensions.get(resource);
        if current.is_none_or(|current| binding_key(&observed) < binding_key(&current)) {
            dimensions.set(resource, observed);
        }
    };

    let members = limit_field
        .as_deref()
        .and_then(parse_list)
        .unwrap_or_default();
    let mut legacy = Observed::default();
    for member in &members {
        if let Some(key) = member.key {
            legacy_member(&mut legacy, key, &member.value);
            continue;
        }
        let Some(name) = member.value.name() else {
            continue;
        };
        // `r` is required; an item without a valid one says nothing usable.
        let Some(remaining) = member.param("r").and_then(Bare::number).and_then(remaining) else {
            continue;
        };
        let reset = member
            .param("t")
            .and_then(Bare::number)
            .and_then(parse_seconds);
        match policies
            .iter_mut()
            .find(|policy| policy.name.as_deref() == Some(name))
        {
            Some(policy) => {
                policy.matched = true;
                if let Some(resource) = policy.resource {
                    offer(
                        resource,
                        Observed {
                            limit: policy.quota,
                            remaining: Some(remaining),
                            reset,
                            window: policy.window,
                        },
                    );
                }
            }
            None => offer(
                Resource::Requests,
                Observed {
                    limit: None,
                    remaining: Some(remaining),
                    reset,
                    window: None,
                },
            ),
        }
    }
    if let Some(legacy) = legacy.non_empty() {
        offer(Resource::Requests, legacy);
    }
    for policy in policies.iter().filter(|policy| !policy.matched) {
        if let Some(resource) = policy.resource {
            offer(
                resource,
                Observed {
                    limit: policy.quota,
                    window: policy.window,
                    ..Observed::default()
                },
            );
        }
    }
    dimensions
}

/// Orders observations from the most binding: a known remaining before an unknown one, then the
/// least remaining, then the longest reset, then the smallest limit.
fn binding_key(observed: &Observed) -> impl Ord {
    (
        observed.remaining.is_none(),
        observed.remaining,
        Reverse(observed.reset),
        observed.limit.is_none(),
        observed.limit,
    )
}

/// One `RateLimit-Policy` member: a named policy (`"burst";q=100;w=60`) or, in older drafts, a
/// bare quota (`100;w=60`).
fn policy(member: &Member<'_>) -> Option<Policy> {
    let (name, bare_quota) = match (&member.key, &member.value) {
        (Some(key), _) => (Some((*key).to_owned()), None),
        (None, Bare::Number(quota)) => (None, count(quota)),
        (None, value) => (Some(value.name()?.to_owned()), None),
    };
    let quota = match member.param("q") {
        Some(q) => q.number().and_then(count),
        None => bare_quota,
    };
    let resource = match member.param("qu") {
        None => Some(Resource::Requests),
        Some(unit) => unit.name().and_then(unit_resource),
    };
    Some(Policy {
        name,
        resource,
        quota,
        window: member.param("w").and_then(window),
        matched: false,
    })
}

/// A `w` parameter: a positive number of seconds.
fn window(value: &Bare<'_>) -> Option<Duration> {
    value
        .number()
        .and_then(parse_seconds)
        .filter(|window| !window.is_zero())
}

/// The dimension a quota unit (`qu`) counts, if it is one of ours.
fn unit_resource(unit: &str) -> Option<Resource> {
    let unit = unit.to_ascii_lowercase();
    match unit.as_str() {
        "requests" | "request" => Some(Resource::Requests),
        "tokens" | "total-tokens" => Some(Resource::Tokens),
        "input-tokens" | "prompt-tokens" => Some(Resource::InputTokens),
        "output-tokens" | "completion-tokens" => Some(Resource::OutputTokens),
        _ => None,
    }
}

/// One member of the pre-2023 dictionary form `RateLimit: limit=100, remaining=50, reset=5`.
fn legacy_member(legacy: &mut Observed, key: &str, value: &Bare<'_>) {
    let Some(number) = value.number() else {
        return;
    };
    if key.eq_ignore_ascii_case("limit") {
        legacy.limit = count(number);
    } else if key.eq_ignore_ascii_case("remaining") {
        legacy.remaining = remaining(number);
    } else if key.eq_ignore_ascii_case("reset") {
        legacy.reset = parse_seconds(number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn policy_and_ratelimit_matched_by_name() {
        let dims = structured(&headers(&[
            ("ratelimit-policy", "\"burst\";q=100;w=60"),
            ("ratelimit", "\"burst\";r=50;t=30"),
        ]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(100),
                remaining: Some(50),
                reset: secs(30),
                window: secs(60),
            })
        );
        assert_eq!(dims.tokens, None);
    }

    #[test]
    fn the_binding_policy_is_the_one_with_least_remaining() {
        let dims = structured(&headers(&[
            (
                "ratelimit-policy",
                "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
            ),
            ("ratelimit", "\"daily\";r=3;t=3600, \"burst\";r=50;t=30"),
        ]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(1000),
                remaining: Some(3),
                reset: secs(3600),
                window: secs(86_400),
            })
        );
    }

    #[test]
    fn equal_remaining_prefers_the_longer_reset() {
        let dims = structured(&headers(&[(
            "ratelimit",
            "\"a\";r=0;t=5, \"b\";r=0;t=50, \"c\";r=0",
        )]));
        assert_eq!(dims.requests.and_then(|o| o.reset), secs(50));
    }

    #[test]
    fn policies_without_remaining_are_used_only_alone() {
        let dims = structured(&headers(&[(
            "ratelimit-policy",
            "\"hour\";q=1000;w=3600, \"minute\";q=100;w=60",
        )]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(100),
                window: secs(60),
                ..Observed::default()
            })
        );
        let dims = structured(&headers(&[
            (
                "ratelimit-policy",
                "\"hour\";q=1000;w=3600, \"minute\";q=100;w=60",
            ),
            ("ratelimit", "\"hour\";r=900"),
        ]));
        assert_eq!(dims.requests.and_then(|o| o.remaining), Some(900));
        assert_eq!(dims.requests.and_then(|o| o.window), secs(3600));
    }

    #[test]
    fn quota_units_pick_the_dimension() {
        let dims = structured(&headers(&[
            (
                "ratelimit-policy",
                "\"req\";q=60;w=60, \"tok\";q=90000;qu=\"tokens\";w=60, \
                 \"in\";q=5000;qu=input-tokens, \"out\";q=800;qu=\"completion-tokens\", \
                 \"bytes\";q=1000000;qu=\"content-bytes\", \"conc\";q=4;qu=\"concurrent-requests\"",
            ),
            (
                "ratelimit",
                "\"tok\";r=1200;t=2, \"bytes\";r=1, \"conc\";r=0, \"out\";r=-7",
            ),
        ]));
        assert_eq!(dims.requests.and_then(|o| o.limit), Some(60));
        assert_eq!(
            dims.tokens,
            Some(Observed {
                limit: Some(90_000),
                remaining: Some(1_200),
                reset: secs(2),
                window: secs(60),
            })
        );
        assert_eq!(dims.input_tokens.and_then(|o| o.limit), Some(5_000));
        assert_eq!(
            dims.output_tokens,
            Some(Observed {
                limit: Some(800),
                remaining: Some(0),
                ..Observed::default()
            })
        );
        // Bytes and concurrency are not dimensions: their remaining 1 and 0 went nowhere.
        assert_eq!(dims.requests.and_then(|o| o.remaining), None);
    }

    #[test]
    fn unmatched_ratelimit_items_count_requests() {
        let dims = structured(&headers(&[("ratelimit", "\"default\";r=50;t=30")]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                remaining: Some(50),
                reset: secs(30),
                ..Observed::default()
            })
        );
    }

    #[test]
    fn items_without_remaining_are_skipped() {
        let dims = structured(&headers(&[("ratelimit", "\"default\";t=30, \"x\";r=big")]));
        assert!(dims.is_empty());
    }

    #[test]
    fn tokens_name_policies_too() {
        let dims = structured(&headers(&[
            ("ratelimit-policy", "burst;q=100;w=60"),
            ("ratelimit", "burst;r=7;t=3"),
        ]));
        assert_eq!(dims.requests.and_then(|o| o.limit), Some(100));
        assert_eq!(dims.requests.and_then(|o| o.remaining), Some(7));
    }

    #[test]
    fn several_field_lines_are_one_list() {
        let dims = structured(&headers(&[
            ("ratelimit-policy", "\"burst\";q=100;w=60"),
            ("ratelimit-policy", "\"daily\";q=1000;w=86400"),
            ("ratelimit", "\"daily\";r=1"),
        ]));
        assert_eq!(dims.requests.and_then(|o| o.limit), Some(1000));
    }

    #[test]
    fn older_draft_forms() {
        let dims = structured(&headers(&[
            ("ratelimit-policy", "100;w=60"),
            ("ratelimit", "limit=100, remaining=40, reset=12"),
        ]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(100),
                remaining: Some(40),
                reset: secs(12),
                window: None,
            })
        );
        let dims = structured(&headers(&[("ratelimit-policy", "100;w=60")]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(100),
                window: secs(60),
                ..Observed::default()
            })
        );
    }

    #[test]
    fn an_invalid_field_is_ignored_whole() {
        let dims = structured(&headers(&[
            ("ratelimit-policy", "\"burst\";q=100;w=60,"),
            ("ratelimit", "\"burst\";r=50;t=30"),
        ]));
        // The policy list is invalid, so the item is unmatched and counts requests without limit.
        assert_eq!(dims.requests.and_then(|o| o.limit), None);
        assert_eq!(dims.requests.and_then(|o| o.remaining), Some(50));
    }

    #[test]
    fn malformed_parameters_only_drop_their_field() {
        let dims = structured(&headers(&[
            ("ratelimit-policy", "\"p\";q=99999999999999999999999;w=0"),
            ("ratelimit", "\"p\";r=5;t=-1"),
        ]));
        assert_eq!(
            dims.requests,
            Some(Observed {
                remaining: Some(5),
                ..Observed::default()
            })
        );
    }

    #[test]
    fn trio_with_delta_seconds() {
        let dims = trio(
            &headers(&[
                ("ratelimit-limit", "100"),
                ("ratelimit-remaining", "99"),
                ("ratelimit-reset", "50"),
            ]),
            &TRIO,
            now(),
        );
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(100),
                remaining: Some(99),
                reset: secs(50),
                window: None,
            })
        );
    }

    #[test]
    fn trio_limit_with_policies_of_draft_03() {
        let dims = trio(
            &headers(&[("ratelimit-limit", "10, 10;w=1, 50;w=60")]),
            &TRIO,
            now(),
        );
        assert_eq!(dims.requests.and_then(|o| o.limit), Some(10));
        assert_eq!(dims.requests.and_then(|o| o.window), None);
        let dims = trio(&headers(&[("ratelimit-limit", "50;w=60")]), &TRIO, now());
        assert_eq!(dims.requests.and_then(|o| o.window), secs(60));
    }

    #[test]
    fn x_trio_reset_as_unix_timestamp() {
        let dims = trio(
            &headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "4999"),
                ("x-ratelimit-reset", "1700000042"),
            ]),
            &X_TRIO,
            now(),
        );
        assert_eq!(
            dims.requests,
            Some(Observed {
                limit: Some(5000),
                remaining: Some(4999),
                reset: secs(42),
                window: None,
            })
        );
        let millis = trio(
            &headers(&[("x-ratelimit-reset", "1700000001500")]),
            &X_TRIO,
            now(),
        );
        assert_eq!(
            millis.requests.and_then(|o| o.reset),
            Some(Duration::from_millis(1_500))
        );
        let past = trio(
            &headers(&[("x-ratelimit-reset", "1600000000")]),
            &X_TRIO,
            now(),
        );
        assert_eq!(past.requests.and_then(|o| o.reset), Some(Duration::ZERO));
    }

    #[test]
    fn trio_ignores_malformed_values() {
        let dims = trio(
            &headers(&[
                ("ratelimit-limit", "ten"),
                ("ratelimit-remaining", "-1"),
                ("ratelimit-reset", "soon"),
            ]),
            &TRIO,
            now(),
        );
        assert_eq!(
            dims.requests,
            Some(Observed {
                remaining: Some(0),
                ..Observed::default()
            })
        );
        assert!(trio(&HeaderMap::new(), &TRIO, now()).is_empty());
    }
}
