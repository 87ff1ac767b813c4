//! Property tests of the header and body parsers: no input makes them panic, durations and
//! timestamps round-trip exactly, and IETF fields mean the same whatever their whitespace and
//! parameter order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use ratelimit_adaptive::{Observed, Resource, Snapshot, parse_go_duration, retry_after_from_body};

/// Every header name the parsers read, so arbitrary maps reach every code path.
const NAMES: &[&str] = &[
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    "ratelimit-policy",
    "ratelimit",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "content-type",
];

/// Pieces that, strung together, look like the values those headers carry.
const FRAGMENTS: &[&str] = &[
    "0",
    "1",
    "60",
    "-",
    "-5",
    ".",
    "5",
    "18446744073709551616",
    "99999999999999999999999999",
    "s",
    "ms",
    "m",
    "h",
    "us",
    "\u{b5}s",
    "ns",
    "1.306s",
    "6m0s",
    "2025-08-21T12:40:59Z",
    "T",
    ":",
    "Z",
    "+02:00",
    "\"",
    "\\",
    "\"burst\"",
    "burst",
    ";",
    ";q=",
    ";w=",
    ";r=",
    ";t=",
    ";qu=\"tokens\"",
    ";qu=content-bytes",
    ",",
    " ",
    "\t",
    "=",
    "?1",
    ":aGk=:",
    "(",
    ")",
    "limit=",
    "remaining=",
    "reset=",
    "true",
    "false",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "GMT",
    "1700000000",
    "1700000000000",
];

fn fragment_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..12).prop_map(|parts| parts.concat())
}

/// Bytes a `HeaderValue` may hold: no controls but tab, no DEL; anything else, UTF-8 or not.
fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        fragment_text().prop_map(String::into_bytes),
        prop::collection::vec(
            any::<u8>().prop_filter("a header value byte", |b| *b == b'\t'
                || (*b >= 0x20 && *b != 0x7f)),
            0..40
        ),
    ]
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "[a-z][a-z0-9-]{0,20}",
    ];
    prop::collection::vec((name, value_bytes()), 0..12).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&value),
            ) {
                map.append(name, value);
            }
        }
        map
    })
}

fn any_time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..4_102_444_800, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| UNIX_EPOCH + Duration::new(secs, nanos)),
        (0u64..1_000_000_000).prop_map(|secs| UNIX_EPOCH - Duration::from_secs(secs)),
    ]
}

/// A duration as Go's `time.Duration.String()` writes it (`1h2m3.5s`, `1.5ms`, `0s`), with
/// `micro` as the spelling of the microsecond unit.
fn go_format(d: Duration, micro: &str) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}{micro}", decimal(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 6));
    }
    let secs = d.as_secs();
    let (hours, minutes, seconds) = (secs / 3_600, secs / 60 % 60, secs % 60);
    let seconds = decimal(
        u128::from(seconds) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        9,
    );
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

/// `value / 10^digits` in decimal, trailing zeros of the fraction removed.
fn decimal(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let fraction = format!("{:0width$}", value % scale, width = digits as usize);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{}", value / scale)
    } else {
        format!("{}.{fraction}", value / scale)
    }
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..1_000_000).prop_map(Duration::from_nanos),
        (0u64..10_000_000_000).prop_map(Duration::from_nanos),
        (0u64..1_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// (year, month, day) of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * mp + 2) / 5 + 1).expect("1..=31");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("1..=12");
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One IETF policy as the IETF property generates it.
#[derive(Debug, Clone)]
struct Policy {
    name: String,
    quota: u32,
    window: u32,
    unit: Option<&'static str>,
    /// `r` and `t` of its `RateLimit` item, if it has one.
    state: Option<(u32, u32)>,
}

fn policies() -> impl Strategy<Value = Vec<Policy>> {
    let unit = prop::option::of(prop::sample::select(vec![
        "requests",
        "tokens",
        "input-tokens",
        "output-tokens",
        "content-bytes",
    ]));
    prop::collection::vec(
        (
            1u32..100_000,
            1u32..100_000,
            unit,
            prop::option::of((0u32..100, 0u32..100)),
        ),
        1..6,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (quota, window, unit, state))| Policy {
                name: format!("p{i}"),
                quota,
                window,
                unit,
                state,
            })
            .collect()
    })
}

/// Choices drawn from random bytes; none at all give the canonical rendering.
struct Noise<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Noise<'_> {
    fn next(&mut self) -> usize {
        if self.bytes.is_empty() {
            return 0;
        }
        let byte = self.bytes[self.at % self.bytes.len()];
        self.at += 1;
        usize::from(byte)
    }

    /// Optional whitespace.
    fn space(&mut self) -> &'static str {
        ["", " ", "\t", "  ", " \t "][self.next() % 5]
    }

    /// One member: its name quoted or as a token, its parameters rotated, whitespace around.
    fn member(&mut self, name: &str, mut params: Vec<String>) -> String {
        let quoted = self.bytes.is_empty() || self.next() % 2 == 0;
        let rotate = self.next() % params.len().max(1);
        params.rotate_left(rotate);
        let mut out = self.space().to_owned();
        if quoted {
            out.push_str(&format!("\"{name}\""));
        } else {
            out.push_str(name);
        }
        for param in params {
            out.push_str(self.space());
            out.push(';');
            out.push_str(self.space());
            out.push_str(&param);
        }
        out.push_str(self.space());
        out
    }
}

/// Renders the two fields; `noise` picks the whitespace at every place it may go, the quoting of
/// names and the order of parameters. An empty `noise` gives the canonical form.
fn render(policies: &[Policy], noise: &[u8]) -> (String, String) {
    let mut noise = Noise {
        bytes: noise,
        at: 0,
    };
    let policy_field: Vec<String> = policies
        .iter()
        .map(|p| {
            let mut params = vec![format!("q={}", p.quota), format!("w={}", p.window)];
            if let Some(unit) = p.unit {
                params.push(format!("qu=\"{unit}\""));
            }
            noise.member(&p.name, params)
        })
        .collect();
    let limit_field: Vec<String> = policies
        .iter()
        .filter_map(|p| {
            let (r, t) = p.state?;
            Some(noise.member(&p.name, vec![format!("r={r}"), format!("t={t}")]))
        })
        .collect();
    (policy_field.join(","), limit_field.join(","))
}

/// What the documented rules say the fields mean: each policy's dimension from its unit, the
/// binding policy per dimension (least remaining, then longest reset; unmatched policies only
/// alone, then the smallest quota).
fn expected(policies: &[Policy]) -> Vec<(Resource, Observed)> {
    let resources = [
        Resource::Requests,
        Resource::InputTokens,
        Resource::OutputTokens,
        Resource::Tokens,
    ];
    let mut out = Vec::new();
    for resource in resources {
        let best = policies
            .iter()
            .filter(|p| match p.unit {
                None | Some("requests") => resource == Resource::Requests,
                Some("tokens") => resource == Resource::Tokens,
                Some("input-tokens") => resource == Resource::InputTokens,
                Some("output-tokens") => resource == Resource::OutputTokens,
                Some(_) => false,
            })
            .map(|p| Observed {
                limit: Some(u64::from(p.quota)),
                remaining: p.state.map(|(r, _)| u64::from(r)),
                reset: p.state.map(|(_, t)| Duration::from_secs(u64::from(t))),
                window: Some(Duration::from_secs(u64::from(p.window))),
            })
            .min_by_key(|o| {
                (
                    o.remaining.is_none(),
                    o.remaining,
                    std::cmp::Reverse(o.reset),
                    o.limit,
                )
            });
        if let Some(best) = best {
            out.push((resource, best));
        }
    }
    out
}

fn ietf_snapshot(policy_field: &str, limit_field: &str) -> Snapshot {
    let mut headers = HeaderMap::new();
    headers.insert(
        "ratelimit-policy",
        HeaderValue::from_str(policy_field).expect("a valid header value"),
    );
    if !limit_field.is_empty() {
        headers.insert(
            "ratelimit",
            HeaderValue::from_str(limit_field).expect("a valid header value"),
        );
    }
    Snapshot::from_headers(&headers, UNIX_EPOCH)
}

proptest! {
    #[test]
    fn go_duration_parser_never_panics_on_any_string(s in any::<String>()) {
        let _ = parse_go_duration(&s);
    }

    #[test]
    fn go_duration_parser_never_panics_on_go_like_strings(
        s in "[-+]?([0-9]{0,25}(\\.[0-9]{0,25})?(ns|us|µs|μs|ms|s|m|h|x)?){0,5}",
    ) {
        let _ = parse_go_duration(&s);
    }

    #[test]
    fn go_durations_round_trip_exactly(
        d in any_duration(),
        micro in prop::sample::select(vec!["\u{b5}s", "\u{3bc}s", "us"]),
    ) {
        let text = go_format(d, micro);
        prop_assert_eq!(parse_go_duration(&text), Some(d), "{}", text);
    }

    #[test]
    fn body_parser_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = retry_after_from_body(&body);
    }

    #[test]
    fn body_parser_never_panics_on_body_like_bytes(
        parts in prop::collection::vec(prop::sample::select(vec![
            &b"try again in "[..], b"retry after ", b"retry in ", b"1", b"99999999999999999999999",
            b".", b"s", b"ms", b"seconds", b" ", b"\xc2", b"\xb5", b"\xce", b"\xbc", b"\xff",
            b"{", b"}", b"[", b"]", b"\"error\":", b"\"details\":", b"\"@type\":",
            b"\"type.googleapis.com/google.rpc.RetryInfo\"", b"\"retryDelay\":", b"\"35s\"", b",",
            b"\"", b"null",
        ]), 0..25),
    ) {
        let _ = retry_after_from_body(&parts.concat());
    }

    #[test]
    fn openai_waits_in_bodies_are_read_exactly(d in any_duration()) {
        let text = go_format(d, "us");
        let body = format!(
            r#"{{"error":{{"message":"Rate limit reached. Please try again in {text}. Visit the docs.","code":"rate_limit_exceeded"}}}}"#
        );
        prop_assert_eq!(retry_after_from_body(body.as_bytes()), Some(d));
    }

    #[test]
    fn gemini_retry_delays_are_read_exactly(secs in 0u64..1_000_000_000, nanos in 0u32..1_000_000_000) {
        let delay = format!("{}s", decimal(u128::from(secs) * 1_000_000_000 + u128::from(nanos), 9));
        let body = format!(
            r#"{{"error":{{"code":429,"details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
        );
        prop_assert_eq!(retry_after_from_body(body.as_bytes()), Some(Duration::new(secs, nanos)));
    }

    #[test]
    fn from_headers_never_panics_on_any_header_map(headers in header_map(), now in any_time()) {
        let snapshot = Snapshot::from_headers(&headers, now);
        // `is_empty` agrees with what the accessors show.
        let has_anything = snapshot.iter().next().is_some()
            || snapshot.retry().after.is_some()
            || snapshot.retry().should_retry.is_some();
        prop_assert_eq!(snapshot.is_empty(), !has_anything);
        // Every dimension listed says something.
        for (_, observed) in snapshot.iter() {
            prop_assert_ne!(observed, Observed::default());
        }
    }

    #[test]
    fn retry_after_fractional_seconds_and_millis_are_exact(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        let seconds = decimal(d.as_nanos(), 9);
        let millis = decimal(d.as_nanos(), 6);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_str(&seconds).expect("valid"));
        prop_assert_eq!(Snapshot::from_headers(&headers, UNIX_EPOCH).retry().after, Some(d));
        headers.insert("retry-after", HeaderValue::from_static("1"));
        headers.insert("retry-after-ms", HeaderValue::from_str(&millis).expect("valid"));
        prop_assert_eq!(Snapshot::from_headers(&headers, UNIX_EPOCH).retry().after, Some(d));
    }

    #[test]
    fn anthropic_resets_count_exactly_from_now(
        target_secs in 0i64..253_402_300_800,
        nanos in 0u32..1_000_000_000,
        offset_minutes in -1_439i64..=1_439,
        now in any_time(),
    ) {
        // The instant written in the zone `offset_minutes` east of UTC.
        let local = target_secs + offset_minutes * 60;
        let (year, month, day) = civil_from_days(local.div_euclid(86_400));
        prop_assume!((0..=9_999).contains(&year));
        let second_of_day = local.rem_euclid(86_400);
        let offset = if offset_minutes == 0 {
            "Z".to_owned()
        } else {
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", offset_minutes.abs() / 60, offset_minutes.abs() % 60)
        };
        let text = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}{offset}",
            second_of_day / 3_600,
            second_of_day / 60 % 60,
            second_of_day % 60,
        );
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-ratelimit-requests-reset", HeaderValue::from_str(&text).expect("valid"));
        let target = UNIX_EPOCH
            + Duration::new(u64::try_from(target_secs).expect("non-negative"), nanos);
        let want = target.duration_since(now).unwrap_or(Duration::ZERO);
        let got = Snapshot::from_headers(&headers, now).get(Resource::Requests).and_then(|o| o.reset);
        prop_assert_eq!(got, Some(want), "{}", text);
    }

    #[test]
    fn http_date_retry_after_counts_from_now(target_secs in 0u64..253_402_300_799, now in any_time()) {
        let target = UNIX_EPOCH + Duration::from_secs(target_secs);
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(target)).expect("valid"),
        );
        let want = target.duration_since(now).unwrap_or(Duration::ZERO);
        prop_assert_eq!(Snapshot::from_headers(&headers, now).retry().after, Some(want));
    }

    #[test]
    fn ietf_fields_mean_the_same_whatever_the_whitespace_and_order(
        policies in policies(),
        noise in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let (policy_canonical, limit_canonical) = render(&policies, &[]);
        let (policy_noisy, limit_noisy) = render(&policies, &noise);
        let canonical = ietf_snapshot(&policy_canonical, &limit_canonical);
        let noisy = ietf_snapshot(&policy_noisy, &limit_noisy);
        prop_assert_eq!(&canonical, &noisy, "{:?} / {:?}", policy_noisy, limit_noisy);
        let got: Vec<(Resource, Observed)> = canonical.iter().collect();
        prop_assert_eq!(got, expected(&policies));
    }
}
