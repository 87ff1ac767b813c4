//! Provider rate-limit headers and 429 bodies, read into one provider-neutral [`Snapshot`].
//!
//! Every parser here is pure: no I/O, no clock (the response's wall-clock `now` is an argument),
//! and total: any header map and any body bytes give a snapshot, never a panic or an error.
//! A malformed value only makes its own field `None`.
//!
//! # Families and precedence
//!
//! Each dimension ([`Resource`]) is filled by the first family, in this order, that says anything
//! about it; its [`Observed`] comes whole from that family (fields are never mixed across
//! families, whose figures may disagree):
//!
//! 1. Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
//!    (reset is an RFC 3339 instant) → `Requests`, `Tokens`, `InputTokens`, `OutputTokens`.
//! 2. OpenAI and Azure OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset is a
//!    Go duration such as `6m0s`; a bare number is taken as seconds) → `Requests`, `Tokens`.
//! 3. IETF structured fields: `RateLimit-Policy` and `RateLimit` (see [the IETF
//!    rules](#ietf-structured-fields)).
//! 4. The IETF trio `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` → `Requests`.
//! 5. The same trio prefixed `X-`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//!    `X-RateLimit-Reset` → `Requests`.
//!
//! Vendor headers win over generic ones because they name their dimension; the structured fields
//! win over the trio they supersede. A trio reset of at least 10^9 is read as a Unix timestamp in
//! seconds (at least 10^12: milliseconds), as GitHub-style servers send it, and turned into the
//! time until it.
//!
//! # IETF structured fields
//!
//! `RateLimit-Policy: "burst";q=100;w=60, "daily";q=1000;w=86400` lists policies (quota `q`,
//! window `w` seconds, unit `qu`); `RateLimit: "burst";r=50;t=30` gives each policy's remaining
//! `r` and seconds to reset `t`, matched by name. A policy counts `Requests` when `qu` is absent or
//! `requests`; `tokens`/`total-tokens` count `Tokens`, `input-tokens`/`prompt-tokens`
//! `InputTokens`, `output-tokens`/`completion-tokens` `OutputTokens`; other units
//! (`content-bytes`, `concurrent-requests`, ...) match no dimension and are ignored. A `RateLimit`
//! item without a policy of its name counts requests. When several policies give the same
//! dimension, the binding one is kept: the least remaining (ties: the longest reset); policies with
//! no remaining figure only when none has one (then the smallest quota). The pre-2023 drafts'
//! forms are read too: a numeric policy item (`100;w=60`) and the dictionary
//! `RateLimit: limit=100, remaining=50, reset=5`. A field that is not a valid structured list is
//! ignored whole, as RFC 9651 requires.
//!
//! # Retry information
//!
//! [`RetryHint::after`] comes from `retry-after-ms` (milliseconds, fractions allowed), else
//! `retry-after` (seconds, fractions allowed, or an HTTP date counted from `now`), else, through
//! [`Snapshot::with_body`], the error body ([`retry_after_from_body`]). [`RetryHint::should_retry`]
//! is `x-should-retry: true|false`.

mod anthropic;
mod duration;
mod ietf;
mod instant;
mod openai;
mod retry;
mod values;

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use ratelimit_core::Resource;

pub use duration::parse_go_duration;
pub use retry::retry_after_from_body;

/// What one dimension's headers said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    /// The dimension's limit (quota), when stated.
    pub limit: Option<u64>,
    /// What is left of it now, when stated (a negative figure reads as 0).
    pub remaining: Option<u64>,
    /// Time until the dimension is fully replenished (OpenAI, IETF `t`, trio reset) or until the
    /// window resets (Anthropic), from the response's `now`.
    pub reset: Option<Duration>,
    /// The policy window when the headers state it (IETF `w`), else None.
    pub window: Option<Duration>,
}

impl Observed {
    /// `Some(self)` unless every field is `None`.
    fn non_empty(self) -> Option<Self> {
        (self != Self::default()).then_some(self)
    }
}

/// What to do before retrying, from `retry-after-ms`, `retry-after`, `x-should-retry` and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryHint {
    /// How long to wait before retrying: the most precise source wins (retry-after-ms, then
    /// retry-after, then the body).
    pub after: Option<Duration>,
    /// `x-should-retry`, when present.
    pub should_retry: Option<bool>,
}

/// One `Option<Observed>` per [`Resource`]; families fill it in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Dimensions {
    requests: Option<Observed>,
    input_tokens: Option<Observed>,
    output_tokens: Option<Observed>,
    tokens: Option<Observed>,
}

/// The resources a snapshot can hold, in [`Snapshot::iter`] order.
const RESOURCES: [Resource; 4] = [
    Resource::Requests,
    Resource::InputTokens,
    Resource::OutputTokens,
    Resource::Tokens,
];

impl Dimensions {
    fn get(&self, resource: Resource) -> Option<Observed> {
        match resource {
            Resource::Requests => self.requests,
            Resource::InputTokens => self.input_tokens,
            Resource::OutputTokens => self.output_tokens,
            Resource::Tokens => self.tokens,
            _ => None,
        }
    }

    fn slot(&mut self, resource: Resource) -> Option<&mut Option<Observed>> {
        match resource {
            Resource::Requests => Some(&mut self.requests),
            Resource::InputTokens => Some(&mut self.input_tokens),
            Resource::OutputTokens => Some(&mut self.output_tokens),
            Resource::Tokens => Some(&mut self.tokens),
            _ => None,
        }
    }

    /// Sets `resource` to `observed` if it says anything.
    fn set(&mut self, resource: Resource, observed: Observed) {
        if let Some(slot) = self.slot(resource) {
            *slot = observed.non_empty();
        }
    }

    /// Fills every dimension that is still empty from `other` (a lower-precedence family).
    fn fill_from(&mut self, other: Self) {
        for resource in RESOURCES {
            if let Some(slot) = self.slot(resource) {
                if slot.is_none() {
                    *slot = other.get(resource);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The provider-neutral snapshot of one response's rate-limit information.
///
/// Built by [`Snapshot::from_headers`] from any provider's headers (see the [module
/// docs](crate::headers) for the families and their precedence), optionally completed from the
/// error body by [`Snapshot::with_body`].
///
/// ```
/// use http::HeaderMap;
/// use ratelimit_adaptive::{Snapshot, Resource};
/// use std::time::{Duration, SystemTime};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-limit-tokens", "150000".parse()?);
/// headers.insert("x-ratelimit-remaining-tokens", "149984".parse()?);
/// headers.insert("x-ratelimit-reset-tokens", "6m0s".parse()?);
/// headers.insert("x-ratelimit-remaining-requests", "59".parse()?);
///
/// let snapshot = Snapshot::from_headers(&headers, SystemTime::now());
/// let tokens = snapshot.get(Resource::Tokens).expect("token headers were sent");
/// assert_eq!(tokens.limit, Some(150_000));
/// assert_eq!(tokens.remaining, Some(149_984));
/// assert_eq!(tokens.reset, Some(Duration::from_secs(360)));
/// assert_eq!(snapshot.get(Resource::Requests).and_then(|r| r.remaining), Some(59));
/// assert_eq!(snapshot.iter().count(), 2);
///
/// // A 429 whose only hint is in the body.
/// let body = br#"{"error":{"message":"Rate limit reached ... Please try again in 1.306s."}}"#;
/// let snapshot = Snapshot::from_headers(&HeaderMap::new(), SystemTime::now()).with_body(body);
/// assert_eq!(snapshot.retry().after, Some(Duration::from_millis(1_306)));
/// # Ok::<(), http::header::InvalidHeaderValue>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    dimensions: Dimensions,
    retry: RetryHint,
}

impl Snapshot {
    /// Reads every rate-limit and retry header of one response received at wall-clock `now`
    /// (used to turn absolute reset times into durations). Never panics; unknown or malformed
    /// values are ignored.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Self {
        if headers.is_empty() {
            return Self::default();
        }
        let mut dimensions = anthropic::parse(headers, now);
        dimensions.fill_from(openai::parse(headers));
        dimensions.fill_from(ietf::structured(headers));
        dimensions.fill_from(ietf::trio(headers, &ietf::TRIO, now));
        dimensions.fill_from(ietf::trio(headers, &ietf::X_TRIO, now));
        Self {
            dimensions,
            retry: retry::from_headers(headers, now),
        }
    }

    /// What the headers said about `resource`, if anything.
    #[must_use]
    pub fn get(&self, resource: Resource) -> Option<Observed> {
        self.dimensions.get(resource)
    }

    /// Every dimension the headers spoke of, in the order `Requests`, `InputTokens`,
    /// `OutputTokens`, `Tokens`.
    pub fn iter(&self) -> impl Iterator<Item = (Resource, Observed)> + '_ {
        RESOURCES
            .into_iter()
            .filter_map(|resource| Some((resource, self.get(resource)?)))
    }

    /// The retry information (wait and whether to retry at all).
    #[must_use]
    pub fn retry(&self) -> RetryHint {
        self.retry
    }

    /// True when the response carried no dimension and no retry information.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.dimensions.is_empty() && self.retry == RetryHint::default()
    }

    /// Fills [`RetryHint::after`] from an error body (see [`retry_after_from_body`]) when the
    /// headers gave none; headers always win, being more precise.
    #[must_use]
    pub fn with_body(mut self, body: &[u8]) -> Self {
        if self.retry.after.is_none() {
            self.retry.after = retry_after_from_body(body);
        }
        self
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

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_755_780_000)
    }

    #[test]
    fn empty_headers_give_an_empty_snapshot() {
        let snapshot = Snapshot::from_headers(&HeaderMap::new(), now());
        assert!(snapshot.is_empty());
        assert_eq!(snapshot.iter().count(), 0);
        let unrelated = Snapshot::from_headers(&headers(&[("content-type", "text/plain")]), now());
        assert!(unrelated.is_empty());
    }

    #[test]
    fn retry_information_alone_makes_a_snapshot_non_empty() {
        let snapshot = Snapshot::from_headers(&headers(&[("x-should-retry", "false")]), now());
        assert!(!snapshot.is_empty());
        assert_eq!(snapshot.iter().count(), 0);
        assert_eq!(snapshot.retry().should_retry, Some(false));
    }

    #[test]
    fn vendor_headers_win_over_generic_ones_per_dimension() {
        let map = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "59"),
            ("ratelimit-policy", "\"burst\";q=100;w=60"),
            ("ratelimit", "\"burst\";r=50;t=30"),
            ("ratelimit-limit", "7"),
            ("x-ratelimit-limit", "8"),
        ]);
        let snapshot = Snapshot::from_headers(&map, now());
        assert_eq!(
            snapshot.get(Resource::Requests),
            Some(Observed {
                limit: Some(60),
                remaining: Some(59),
                reset: None,
                window: None,
            })
        );
    }

    #[test]
    fn anthropic_wins_over_openai_names_and_families_fill_different_dimensions() {
        let map = headers(&[
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("ratelimit-policy", "\"in\";q=500;qu=\"input-tokens\""),
        ]);
        let snapshot = Snapshot::from_headers(&map, now());
        assert_eq!(
            snapshot.get(Resource::Requests).and_then(|o| o.limit),
            Some(1000)
        );
        assert_eq!(
            snapshot.get(Resource::Tokens).and_then(|o| o.limit),
            Some(150_000)
        );
        assert_eq!(
            snapshot.get(Resource::InputTokens).and_then(|o| o.limit),
            Some(500)
        );
        assert_eq!(snapshot.get(Resource::OutputTokens), None);
        let order: Vec<Resource> = snapshot.iter().map(|(resource, _)| resource).collect();
        assert_eq!(
            order,
            [Resource::Requests, Resource::InputTokens, Resource::Tokens]
        );
    }

    #[test]
    fn structured_fields_win_over_the_trio_and_the_trio_over_its_x_form() {
        let both = headers(&[
            ("ratelimit", "\"default\";r=5"),
            ("ratelimit-remaining", "6"),
            ("x-ratelimit-remaining", "7"),
        ]);
        let snapshot = Snapshot::from_headers(&both, now());
        assert_eq!(
            snapshot.get(Resource::Requests).and_then(|o| o.remaining),
            Some(5)
        );
        let trio = headers(&[("ratelimit-remaining", "6"), ("x-ratelimit-remaining", "7")]);
        let snapshot = Snapshot::from_headers(&trio, now());
        assert_eq!(
            snapshot.get(Resource::Requests).and_then(|o| o.remaining),
            Some(6)
        );
        let x_trio = headers(&[("x-ratelimit-remaining", "7")]);
        let snapshot = Snapshot::from_headers(&x_trio, now());
        assert_eq!(
            snapshot.get(Resource::Requests).and_then(|o| o.remaining),
            Some(7)
        );
    }

    #[test]
    fn a_family_whose_values_are_all_malformed_does_not_shadow_the_next() {
        let map = headers(&[
            ("x-ratelimit-remaining-requests", "lots"),
            ("x-ratelimit-remaining", "3"),
        ]);
        let snapshot = Snapshot::from_headers(&map, now());
        assert_eq!(
            snapshot.get(Resource::Requests).and_then(|o| o.remaining),
            Some(3)
        );
    }

    #[test]
    fn body_fills_retry_only_when_headers_gave_none() {
        let body = br#"{"error":{"message":"Please try again in 20ms."}}"#;
        let from_body = Snapshot::from_headers(&HeaderMap::new(), now()).with_body(body);
        assert_eq!(from_body.retry().after, Some(Duration::from_millis(20)));
        assert!(!from_body.is_empty());
        let from_header =
            Snapshot::from_headers(&headers(&[("retry-after", "3")]), now()).with_body(body);
        assert_eq!(from_header.retry().after, Some(Duration::from_secs(3)));
        let nothing = Snapshot::from_headers(&HeaderMap::new(), now()).with_body(b"nope");
        assert!(nothing.is_empty());
    }
}
