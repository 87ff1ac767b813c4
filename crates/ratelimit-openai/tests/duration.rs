//! Go durations: whatever this crate formats, the adaptive layer's parser reads back to the same
//! duration, and no text panics that parser.

use std::time::Duration;

use proptest::prelude::*;
use ratelimit_adaptive::parse_go_duration;
use ratelimit_openai::duration::format_go_duration;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn formatted_durations_parse_back_exactly(nanos in prop_oneof![
        any::<u64>(),
        0u64..2_000_000_000,
        (0u64..100_000).prop_map(|ms| ms * 1_000_000),
    ]) {
        let duration = Duration::from_nanos(nanos);
        let text = format_go_duration(duration);
        prop_assert_eq!(parse_go_duration(&text), Some(duration), "{}", text);
    }

    #[test]
    fn any_text_parses_or_errs_without_panicking(text in "[-+0-9.a-zµμ ]{0,16}") {
        let _ = parse_go_duration(&text);
    }

    #[test]
    fn sums_of_parts_parse_to_their_sum(parts in proptest::collection::vec((0u64..1_000, 0usize..7), 1..5)) {
        let units = [("h", 3_600_000_000_000u64), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000), ("µs", 1_000), ("ns", 1)];
        let text: String = parts.iter().map(|(n, u)| format!("{n}{}", units[*u].0)).collect();
        let total: u64 = parts.iter().map(|(n, u)| n * units[*u].1).sum();
        prop_assert_eq!(parse_go_duration(&text), Some(Duration::from_nanos(total)));
    }
}
