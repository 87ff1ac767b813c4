//! Reading header values: the text of a header, and counts (limits, remaining) as providers write
//! them, with malformed or overflowing numbers ignored and negative remainders clamped to zero.

use http::HeaderMap;

/// The first value of header `name` (lowercase), trimmed, if it is UTF-8 (a Go duration may
/// contain `µ`, which `HeaderValue::to_str` would refuse).
pub(crate) fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?;
    std::str::from_utf8(value.as_bytes())
        .ok()
        .map(str::trim_ascii)
}

/// Every value of header `name` (lowercase) joined with `,`, as RFC 9651 says to combine the lines
/// of a list-valued structured field. Values that are not UTF-8 are skipped.
pub(crate) fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let Ok(value) = std::str::from_utf8(value.as_bytes()) else {
            continue;
        };
        match &mut out {
            Some(out) => {
                out.push(',');
                out.push_str(value);
            }
            None => out = Some(value.to_owned()),
        }
    }
    out
}

/// A count (a limit): a non-negative decimal integer that fits a u64.
pub(crate) fn count(s: &str) -> Option<u64> {
    let s = s.trim_ascii();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A remaining count: like [`count`], but a negative integer (a provider that went over) is zero.
pub(crate) fn remaining(s: &str) -> Option<u64> {
    let s = s.trim_ascii();
    match s.strip_prefix('-') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Some(0),
        Some(_) => None,
        None => count(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn counts_accept_only_plain_integers_that_fit() {
        assert_eq!(count("60"), Some(60));
        assert_eq!(count(" 150000 "), Some(150_000));
        assert_eq!(count("0"), Some(0));
        assert_eq!(count("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "18446744073709551616",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "1,000",
            "abc",
            "١٢",
        ] {
            assert_eq!(count(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn negative_remaining_clamps_to_zero() {
        assert_eq!(remaining("-5"), Some(0));
        assert_eq!(remaining("-99999999999999999999999"), Some(0));
        assert_eq!(remaining("42"), Some(42));
        assert_eq!(remaining("-"), None);
        assert_eq!(remaining("--5"), None);
        assert_eq!(remaining("-5.5"), None);
        assert_eq!(remaining("18446744073709551616"), None);
    }

    #[test]
    fn text_reads_utf8_and_trims() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-a",
            HeaderValue::from_bytes("  500\u{b5}s ".as_bytes()).expect("valid value"),
        );
        headers.insert(
            "x-b",
            HeaderValue::from_bytes(b"\xff\xfe").expect("valid value"),
        );
        assert_eq!(text(&headers, "x-a"), Some("500\u{b5}s"));
        assert_eq!(text(&headers, "x-b"), None);
        assert_eq!(text(&headers, "x-c"), None);
    }

    #[test]
    fn joined_combines_every_line_of_a_list_field() {
        let mut headers = HeaderMap::new();
        headers.append("ratelimit-policy", HeaderValue::from_static("\"a\";q=1"));
        headers.append(
            "ratelimit-policy",
            HeaderValue::from_bytes(b"\xff").expect("valid value"),
        );
        headers.append("ratelimit-policy", HeaderValue::from_static("\"b\";q=2"));
        assert_eq!(
            joined(&headers, "ratelimit-policy").as_deref(),
            Some("\"a\";q=1,\"b\";q=2")
        );
        assert_eq!(joined(&headers, "ratelimit"), None);
    }
}
