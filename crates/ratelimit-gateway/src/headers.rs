//! The rate-limit headers of every answer: OpenAI's `x-ratelimit-*`, the IETF `RateLimit-Policy`
//! and `RateLimit` fields, and on a refusal `Retry-After` (seconds, rounded up) and
//! `retry-after-ms`, all read from the state of the caller's budgets.
//!
//! Each dimension reports its *binding* budget: among the caller's levels (tenant, model,
//! global), the limit with the least remaining (ties: the longest reset). OpenAI's headers give
//! one figure for requests and one for tokens over every window; the IETF fields give one policy
//! per resource and window (`"rpm"`, `"tpm"`, `"rpd"`, `"tpd"`), tokens marked `qu="tokens"`.

use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use ratelimit_core::{Decision, LimitState, Resource};
use ratelimit_openai::duration::format_go_duration;

/// Nanoseconds in a second.
const SECOND: u64 = 1_000_000_000;

/// The binding one of two states of the same dimension.
fn tighter<'a>(a: &'a LimitState, b: &'a LimitState) -> &'a LimitState {
    if (b.status.remaining, std::cmp::Reverse(b.status.reset_after))
        < (a.status.remaining, std::cmp::Reverse(a.status.reset_after))
    {
        b
    } else {
        a
    }
}

/// The IETF policy name of a resource and window.
fn policy_name(resource: Resource, window: u64) -> String {
    let r = match resource {
        Resource::Requests => "r",
        Resource::InputTokens => "it",
        Resource::OutputTokens => "ot",
        _ => "t",
    };
    match window {
        w if w == 60 * SECOND => format!("{r}pm"),
        w if w == 86_400 * SECOND => format!("{r}pd"),
        w => format!("{r}p{}s", w.div_ceil(SECOND)),
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Adds the rate-limit headers of `decisions` (the caller's levels) to `headers`.
pub(crate) fn rate_limit_headers(decisions: &[Decision], headers: &mut HeaderMap) {
    let states = || decisions.iter().flat_map(Decision::limits);
    for (resource, suffix) in [
        (Resource::Requests, "requests"),
        (Resource::Tokens, "tokens"),
    ] {
        let Some(binding) = states()
            .filter(|s| s.resource == resource)
            .reduce(|a, b| tighter(a, b))
        else {
            continue;
        };
        let reset = format_go_duration(Duration::from_nanos(binding.status.reset_after));
        let (limit, remaining, reset_name) = match suffix {
            "requests" => (
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ),
            _ => (
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ),
        };
        set(headers, limit, binding.status.limit.to_string());
        set(headers, remaining, binding.status.remaining.to_string());
        set(headers, reset_name, reset);
    }
    // One IETF policy per (resource, window), the binding level's.
    let mut policies: Vec<&LimitState> = Vec::new();
    for state in states() {
        match policies
            .iter_mut()
            .find(|p| p.resource == state.resource && p.window == state.window)
        {
            Some(slot) => *slot = tighter(slot, state),
            None => policies.push(state),
        }
    }
    if policies.is_empty() {
        return;
    }
    let (mut policy, mut current) = (String::new(), String::new());
    for (i, p) in policies.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let name = policy_name(p.resource, p.window);
        let unit = match p.resource {
            Resource::Requests => "",
            Resource::InputTokens => ";qu=\"input-tokens\"",
            Resource::OutputTokens => ";qu=\"output-tokens\"",
            _ => ";qu=\"tokens\"",
        };
        let _ = write!(
            policy,
            "{sep}\"{name}\";q={};w={}{unit}",
            p.status.limit,
            p.window.div_ceil(SECOND)
        );
        let _ = write!(
            current,
            "{sep}\"{name}\";r={};t={}",
            p.status.remaining,
            p.status.reset_after.div_ceil(SECOND)
        );
    }
    set(headers, "ratelimit-policy", policy);
    set(headers, "ratelimit", current);
}

/// Adds `Retry-After` (whole seconds, rounded up, at least 1) and `retry-after-ms` (rounded up).
pub(crate) fn retry_headers(wait: Duration, headers: &mut HeaderMap) {
    let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
    set(
        headers,
        "retry-after",
        nanos.div_ceil(SECOND).max(1).to_string(),
    );
    set(
        headers,
        "retry-after-ms",
        nanos.div_ceil(1_000_000).max(1).to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratelimit_adaptive::Snapshot;
    use ratelimit_core::{Cost, Policy};
    use std::time::SystemTime;

    fn decision(rpm: u64, tpm: u64, take: Cost) -> Decision {
        let mut policy = Policy::builder()
            .requests_per_minute(rpm)
            .tokens_per_minute(tpm)
            .tokens_per_day(tpm * 100)
            .build()
            .unwrap();
        policy.try_take(&take, 0).unwrap();
        policy.status(1_000_000)
    }

    #[test]
    fn what_is_sent_reads_back_in_the_adaptive_parser() {
        let tenant = decision(10, 50_000, Cost::request(100, 900));
        let global = decision(500, 20_000, Cost::request(9_000, 1_000));
        let mut headers = HeaderMap::new();
        rate_limit_headers(&[tenant, global], &mut headers);
        // Requests bind at the tenant (9 left), tokens at the global level (10,000 left).
        assert_eq!(headers["x-ratelimit-limit-requests"], "10");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "9");
        assert_eq!(headers["x-ratelimit-limit-tokens"], "20000");
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "10000");
        assert_eq!(headers["x-ratelimit-reset-tokens"], "29.999s");
        assert_eq!(
            headers["ratelimit-policy"],
            "\"rpm\";q=10;w=60, \"tpm\";q=20000;w=60;qu=\"tokens\", \"tpd\";q=2000000;w=86400;qu=\"tokens\""
        );
        assert_eq!(
            headers["ratelimit"],
            "\"rpm\";r=9;t=6, \"tpm\";r=10000;t=30, \"tpd\";r=1990000;t=432"
        );
        let snapshot = Snapshot::from_headers(&headers, SystemTime::now());
        let requests = snapshot.get(Resource::Requests).unwrap();
        assert_eq!((requests.limit, requests.remaining), (Some(10), Some(9)));
        assert_eq!(requests.reset, Some(Duration::from_nanos(5_999_000_000)));
        let tokens = snapshot.get(Resource::Tokens).unwrap();
        assert_eq!(
            (tokens.limit, tokens.remaining),
            (Some(20_000), Some(10_000))
        );
        assert_eq!(tokens.reset, Some(Duration::from_millis(29_999)));

        // The IETF fields alone read back too.
        headers.remove("x-ratelimit-limit-requests");
        headers.remove("x-ratelimit-remaining-requests");
        headers.remove("x-ratelimit-reset-requests");
        headers.remove("x-ratelimit-limit-tokens");
        headers.remove("x-ratelimit-remaining-tokens");
        headers.remove("x-ratelimit-reset-tokens");
        let ietf = Snapshot::from_headers(&headers, SystemTime::now());
        let requests = ietf.get(Resource::Requests).unwrap();
        assert_eq!((requests.limit, requests.remaining), (Some(10), Some(9)));
        assert_eq!(ietf.get(Resource::Tokens).unwrap().remaining, Some(10_000));
    }

    #[test]
    fn retry_after_rounds_up() {
        let mut headers = HeaderMap::new();
        retry_headers(Duration::from_millis(1_001), &mut headers);
        assert_eq!(headers["retry-after"], "2");
        assert_eq!(headers["retry-after-ms"], "1001");
        retry_headers(Duration::from_nanos(1), &mut headers);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(headers["retry-after-ms"], "1");
        let snapshot = Snapshot::from_headers(&headers, SystemTime::now());
        assert_eq!(snapshot.retry().after, Some(Duration::from_millis(1)));
    }
}
