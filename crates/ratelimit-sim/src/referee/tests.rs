//! The referee by hand-computed cases, and against a brute-force sweep over every window.

use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn admitted(decision: Decision) -> Window {
    match decision {
        Decision::Admitted(window) => window,
        other => panic!("expected an admission, got {other:?}"),
    }
}

fn limited(decision: Decision) -> (Duration, Exceeded) {
    match decision {
        Decision::Limited {
            retry_after,
            exceeded,
            ..
        } => (retry_after, exceeded),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_n_plus_first_request_waits_for_the_first_to_leave() {
    let mut referee = Referee::new(s(60), Some(3), None);
    admitted(referee.decide(s(0), 1, 0));
    admitted(referee.decide(s(10), 1, 0));
    let window = admitted(referee.decide(s(20), 1, 0));
    assert_eq!(window.requests_remaining(), Some(0));
    assert_eq!(window.requests_reset, s(60)); // the last admission leaves at 80
    assert_eq!(
        limited(referee.decide(s(30), 1, 0)),
        (s(30), Exceeded::Requests)
    );
    // One nanosecond early it still does not fit; at 60 s it does.
    let early = s(60) - Duration::from_nanos(1);
    assert_eq!(
        limited(referee.decide(early, 1, 0)),
        (Duration::from_nanos(1), Exceeded::Requests)
    );
    let window = admitted(referee.decide(s(60), 1, 0));
    assert_eq!((window.requests, window.requests_reset), (3, s(60)));
}

#[test]
fn tokens_wait_until_enough_have_left() {
    let mut referee = Referee::new(s(60), None, Some(100));
    admitted(referee.decide(s(0), 1, 40));
    admitted(referee.decide(s(5), 1, 30));
    admitted(referee.decide(s(10), 1, 20));
    // 90 used; 50 more needs 40 to leave: the first admission, at 60.
    assert_eq!(
        limited(referee.decide(s(12), 1, 50)),
        (s(48), Exceeded::Tokens)
    );
    // 75 more needs 65 to leave: the first two, the second at 65.
    assert_eq!(
        limited(referee.decide(s(12), 1, 75)),
        (s(53), Exceeded::Tokens)
    );
    let window = referee.window(s(12));
    assert_eq!((window.tokens, window.tokens_remaining()), (90, Some(10)));
    assert_eq!(window.tokens_reset, s(58)); // the last one leaves at 70
    admitted(referee.decide(s(12), 1, 10));
    assert_eq!(referee.window(s(61)).tokens, 60);
}

#[test]
fn the_later_limit_is_the_one_reported() {
    let mut referee = Referee::new(s(60), Some(2), Some(100));
    admitted(referee.decide(s(0), 1, 90));
    admitted(referee.decide(s(30), 1, 5));
    // Requests are full until 60; tokens (95 + 10) need the first to leave, also 60.
    assert_eq!(
        limited(referee.decide(s(40), 1, 10)),
        (s(20), Exceeded::Tokens)
    );
    // Requests only: 2 more requests need both to leave (90 s), tokens fit at once.
    let mut referee = Referee::new(s(60), Some(2), Some(100));
    admitted(referee.decide(s(0), 1, 1));
    admitted(referee.decide(s(30), 1, 1));
    assert_eq!(
        limited(referee.decide(s(40), 2, 1)),
        (s(50), Exceeded::Requests)
    );
}

#[test]
fn a_request_larger_than_a_limit_is_too_large_and_takes_nothing() {
    let mut referee = Referee::new(s(60), Some(5), Some(100));
    assert!(matches!(
        referee.decide(s(0), 1, 101),
        Decision::TooLarge {
            exceeded: Exceeded::Tokens,
            limit: 100,
            ..
        }
    ));
    assert!(matches!(
        referee.decide(s(0), 6, 1),
        Decision::TooLarge {
            exceeded: Exceeded::Requests,
            limit: 5,
            ..
        }
    ));
    assert_eq!(referee.accepted, 0);
    admitted(referee.decide(s(0), 1, 100));
}

#[test]
fn time_never_goes_back() {
    let mut referee = Referee::new(s(10), Some(1), None);
    admitted(referee.decide(s(20), 1, 0));
    // An earlier instant is read as the latest one seen.
    assert_eq!(limited(referee.decide(s(5), 1, 0)).0, s(10));
    assert_eq!(referee.window(s(0)).now, s(20));
}

#[test]
fn set_limits_applies_to_the_current_window() {
    let mut referee = Referee::new(s(60), Some(10), None);
    for i in 0..5 {
        admitted(referee.decide(s(i), 1, 0));
    }
    referee.set_limits(Some(3), None);
    assert_eq!(referee.window(s(5)).requests_remaining(), Some(0));
    // 5 + 1 - 3 = 3 must leave: the third leaves at 62.
    assert_eq!(limited(referee.decide(s(5), 1, 0)).0, s(57));
    referee.set_limits(None, None);
    admitted(referee.decide(s(5), 1, 0));
    assert_eq!(referee.limits(), (None, None));
}

#[test]
fn peaks_by_hand() {
    // Window 10 s, unlimited: admissions at 0, 3, 9 (tokens 5, 1, 2), 10, 12, 19, 30.
    let mut referee = Referee::new(s(10), None, None);
    for (at, tokens) in [(0, 5), (3, 1), (9, 2), (10, 4), (12, 1), (19, 1), (30, 7)] {
        admitted(referee.decide(s(at), 1, tokens));
    }
    // The load of the window ending at each admission, (t - 10, t]:
    //   t=0 {0}: 1 request, 5 tokens      t=12 {3, 9, 10, 12}: 4, 8
    //   t=3 {0, 3}: 2, 6                  t=19 {10, 12, 19}: 3, 6
    //   t=9 {0, 3, 9}: 3, 8               t=30 {30}: 1, 7
    //   t=10 {3, 9, 10}: 3, 7
    assert_eq!(referee.peak_requests, 4);
    assert_eq!(referee.peak_tokens, 8);
    assert_eq!(referee.accepted, 7);
    assert_eq!(referee.tokens_admitted, 21);
    assert_eq!(referee.first_admission, Some(s(0)));
    assert_eq!(referee.last_admission, Some(s(30)));
}

#[test]
fn an_admission_exactly_one_window_later_is_not_in_the_same_window() {
    let mut referee = Referee::new(s(10), None, None);
    admitted(referee.decide(s(0), 1, 0));
    admitted(referee.decide(s(10), 1, 0));
    admitted(referee.decide(s(20), 1, 0));
    assert_eq!(referee.peak_requests, 1);
    admitted(referee.decide(s(20), 1, 0));
    assert_eq!(referee.peak_requests, 2);
}

#[test]
fn huge_costs_and_windows_saturate_instead_of_overflowing() {
    let mut referee = Referee::new(Duration::MAX, None, Some(u64::MAX));
    admitted(referee.decide(s(1), 1, u64::MAX));
    let (retry_after, exceeded) = limited(referee.decide(s(2), 1, 1));
    assert_eq!(exceeded, Exceeded::Tokens);
    assert_eq!(retry_after, Duration::MAX - s(2));
    referee.set_limits(None, None);
    admitted(referee.decide(s(3), 1, u64::MAX));
    assert_eq!(referee.peak_tokens, u64::MAX);
    assert_eq!(referee.tokens_admitted, u64::MAX);
    let window = referee.window(s(4));
    assert_eq!((window.requests, window.tokens), (2, u64::MAX));
    assert_eq!(window.tokens_reset, Duration::MAX - s(4));
}

#[test]
fn resets_are_zero_when_the_window_is_empty() {
    let mut referee = Referee::new(s(10), Some(5), Some(50));
    let window = referee.window(s(3));
    assert_eq!(
        (window.requests_reset, window.tokens_reset),
        (Duration::ZERO, Duration::ZERO)
    );
    admitted(referee.decide(s(3), 1, 0));
    let window = referee.window(s(4));
    // A request without tokens: the token limit is already whole.
    assert_eq!(
        (window.requests_reset, window.tokens_reset),
        (s(9), Duration::ZERO)
    );
    assert_eq!(referee.window(s(13)).requests, 0);
}

mod properties {
    //! The referee against first principles: the load of a window is recomputed from the list of
    //! admissions for every window of the run.

    use proptest::prelude::*;

    use super::super::{Decision, Referee};
    use std::time::Duration;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096)
    }

    /// The load (requests, tokens) of the window ending at `t`: admissions in `(t - w, t]`.
    fn load(admitted: &[(Duration, u64, u64)], window: Duration, t: Duration) -> (u64, u64) {
        admitted
            .iter()
            .filter(|(at, _, _)| *at <= t && *at + window > t)
            .fold((0, 0), |(r, k), (_, requests, tokens)| {
                (r + requests, k + tokens)
            })
    }

    fn fits(load: (u64, u64), cost: (u64, u64), rpm: Option<u64>, tpm: Option<u64>) -> bool {
        rpm.is_none_or(|rpm| load.0 + cost.0 <= rpm) && tpm.is_none_or(|tpm| load.1 + cost.1 <= tpm)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn decisions_retry_afters_and_peaks_are_exact(
            window_ms in 1u64..40,
            rpm in proptest::option::of(1u64..8),
            tpm in proptest::option::of(1u64..120),
            requests in proptest::collection::vec((0u64..15, 1u64..3, 0u64..60), 0..60),
        ) {
            let window = Duration::from_millis(window_ms);
            let mut referee = Referee::new(window, rpm, tpm);
            let mut admitted: Vec<(Duration, u64, u64)> = Vec::new();
            let mut now = Duration::ZERO;
            for (gap, cost_requests, cost_tokens) in requests {
                now += Duration::from_millis(gap);
                let cost = (cost_requests, cost_tokens);
                let too_large = rpm.is_some_and(|rpm| cost.0 > rpm) || tpm.is_some_and(|tpm| cost.1 > tpm);
                let fits_now = fits(load(&admitted, window, now), cost, rpm, tpm);
                match referee.decide(now, cost.0, cost.1) {
                    Decision::Admitted(snapshot) => {
                        prop_assert!(!too_large && fits_now, "admitted a request that does not fit");
                        admitted.push((now, cost.0, cost.1));
                        prop_assert_eq!((snapshot.requests, snapshot.tokens), load(&admitted, window, now));
                    }
                    Decision::Limited { retry_after, .. } => {
                        prop_assert!(!too_large && !fits_now, "refused a request that fits");
                        prop_assert!(retry_after > Duration::ZERO);
                        // It fits exactly at the retry instant, and not a nanosecond before.
                        let at = now + retry_after;
                        prop_assert!(fits(load(&admitted, window, at), cost, rpm, tpm));
                        let before = at - Duration::from_nanos(1);
                        prop_assert!(!fits(load(&admitted, window, before), cost, rpm, tpm));
                    }
                    Decision::TooLarge { .. } => prop_assert!(too_large, "refused as too large"),
                }
            }
            // Sweep every window of the run: with millisecond admissions and a whole number of
            // milliseconds per window, every window holds the same admissions as one ending on
            // a whole millisecond, so this sweep sees every distinct window.
            let end = now + window;
            let (mut peak_requests, mut peak_tokens) = (0, 0);
            let mut t = Duration::ZERO;
            while t <= end {
                let (requests, tokens) = load(&admitted, window, t);
                prop_assert!(rpm.is_none_or(|rpm| requests <= rpm), "over the requests limit");
                prop_assert!(tpm.is_none_or(|tpm| tokens <= tpm), "over the tokens limit");
                peak_requests = peak_requests.max(requests);
                peak_tokens = peak_tokens.max(tokens);
                t += Duration::from_millis(1);
            }
            prop_assert_eq!(referee.peak_requests, peak_requests);
            prop_assert_eq!(referee.peak_tokens, peak_tokens);
            prop_assert_eq!(referee.accepted, admitted.len() as u64);
            prop_assert_eq!(referee.first_admission, admitted.first().map(|a| a.0));
            prop_assert_eq!(referee.last_admission, admitted.last().map(|a| a.0));
        }

        #[test]
        fn peaks_of_unlimited_runs_match_the_sweep(
            window_ms in 1u64..50,
            gaps in proptest::collection::vec((0u64..20, 0u64..100), 0..80),
        ) {
            // Without limits the referee only measures: the peak is what the client sent.
            let window = Duration::from_millis(window_ms);
            let mut referee = Referee::new(window, None, None);
            let mut admitted = Vec::new();
            let mut now = Duration::ZERO;
            for (gap, tokens) in gaps {
                now += Duration::from_millis(gap);
                prop_assert!(matches!(referee.decide(now, 1, tokens), Decision::Admitted(_)));
                admitted.push((now, 1, tokens));
            }
            let mut peak = (0, 0);
            let mut t = Duration::ZERO;
            while t <= now + window {
                let (requests, tokens) = load(&admitted, window, t);
                peak = (peak.0.max(requests), peak.1.max(tokens));
                t += Duration::from_millis(1);
            }
            prop_assert_eq!((referee.peak_requests, referee.peak_tokens), peak);
        }
    }
}
