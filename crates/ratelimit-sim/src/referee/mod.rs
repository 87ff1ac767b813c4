//! The referee: an exact sliding log of admissions that decides like a provider's limiter and
//! measures the peak load admitted in any window.
//!
//! It is deliberately independent of `ratelimit-core`, which it judges, and deliberately
//! simple: every admission is kept (instant, requests, tokens) while it is inside the window,
//! and the sums over the log are the window's load. Time is a [`Duration`] since the simulator
//! started, passed in by the caller, so the referee is a pure state machine tested on its own.
//!
//! The window at instant `t` holds the admissions made in `(t - window, t]`: an admission made
//! at `a` stops counting at exactly `a + window`.

use std::{collections::VecDeque, time::Duration};

/// One admission in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    at: Duration,
    requests: u64,
    tokens: u64,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// Requests per window.
    Requests,
    /// Tokens per window.
    Tokens,
}

/// The state of the window at one instant, for the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The instant of the snapshot (since the start).
    pub(crate) now: Duration,
    pub(crate) rpm: Option<u64>,
    pub(crate) tpm: Option<u64>,
    /// Requests admitted in the window.
    pub(crate) requests: u64,
    /// Tokens admitted in the window.
    pub(crate) tokens: u64,
    /// Time until the window holds no request (the requests limit is fully replenished).
    pub(crate) requests_reset: Duration,
    /// Time until the window holds no token.
    pub(crate) tokens_reset: Duration,
}

impl Window {
    /// Requests that may still be admitted now, if requests are limited.
    pub(crate) fn requests_remaining(&self) -> Option<u64> {
        self.rpm.map(|rpm| rpm.saturating_sub(self.requests))
    }

    /// Tokens that may still be admitted now, if tokens are limited.
    pub(crate) fn tokens_remaining(&self) -> Option<u64> {
        self.tpm.map(|tpm| tpm.saturating_sub(self.tokens))
    }
}

/// What the referee decided for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Admitted and logged; the window includes it.
    Admitted(Window),
    /// Refused for now: it fits after `retry_after` (if nothing else is admitted meanwhile).
    Limited {
        retry_after: Duration,
        exceeded: Exceeded,
        window: Window,
    },
    /// Refused for good: its tokens alone exceed the tokens limit (or its requests the
    /// requests limit).
    TooLarge {
        exceeded: Exceeded,
        limit: u64,
        window: Window,
    },
}

/// The exact sliding log, the limits, and the run's measures.
#[derive(Debug, Clone)]
pub(crate) struct Referee {
    window: Duration,
    rpm: Option<u64>,
    tpm: Option<u64>,
    log: VecDeque<Entry>,
    /// Sums over `log`, wide enough that no run of `u64` costs can overflow them.
    requests: u128,
    tokens: u128,
    /// The latest instant seen: time never goes back for the referee.
    latest: Duration,
    pub(crate) accepted: u64,
    pub(crate) tokens_admitted: u64,
    pub(crate) peak_requests: u64,
    pub(crate) peak_tokens: u64,
    pub(crate) first_admission: Option<Duration>,
    pub(crate) last_admission: Option<Duration>,
}

impl Referee {
    /// A referee over windows of `window` (not zero) with these limits (not zero).
    pub(crate) fn new(window: Duration, rpm: Option<u64>, tpm: Option<u64>) -> Self {
        Referee {
            window,
            rpm,
            tpm,
            log: VecDeque::new(),
            requests: 0,
            tokens: 0,
            latest: Duration::ZERO,
            accepted: 0,
            tokens_admitted: 0,
            peak_requests: 0,
            peak_tokens: 0,
            first_admission: None,
            last_admission: None,
        }
    }

    /// Changes the limits from now on; what the window holds stays.
    pub(crate) fn set_limits(&mut self, rpm: Option<u64>, tpm: Option<u64>) {
        self.rpm = rpm;
        self.tpm = tpm;
    }

    /// The current limits.
    pub(crate) fn limits(&self) -> (Option<u64>, Option<u64>) {
        (self.rpm, self.tpm)
    }

    /// The window's length.
    pub(crate) fn window_length(&self) -> Duration {
        self.window
    }

    /// Admits a request costing `requests` and `tokens` at `now` if the window has room for it
    /// in every limit, else says when it will.
    pub(crate) fn decide(&mut self, now: Duration, requests: u64, tokens: u64) -> Decision {
        let now = self.advance(now);
        if let Some(rpm) = self.rpm.filter(|rpm| requests > *rpm) {
            return Decision::TooLarge {
                exceeded: Exceeded::Requests,
                limit: rpm,
                window: self.snapshot(now),
            };
        }
        if let Some(tpm) = self.tpm.filter(|tpm| tokens > *tpm) {
            return Decision::TooLarge {
                exceeded: Exceeded::Tokens,
                limit: tpm,
                window: self.snapshot(now),
            };
        }
        // How much of each must leave the window before the request fits.
        let excess = |limit: Option<u64>, used: u128, cost: u64| {
            limit.map_or(0, |limit| {
                (used + u128::from(cost)).saturating_sub(u128::from(limit))
            })
        };
        let excess_requests = excess(self.rpm, self.requests, requests);
        let excess_tokens = excess(self.tpm, self.tokens, tokens);
        if excess_requests == 0 && excess_tokens == 0 {
            self.log.push_back(Entry {
                at: now,
                requests,
                tokens,
            });
            self.requests += u128::from(requests);
            self.tokens += u128::from(tokens);
            self.accepted += 1;
            self.tokens_admitted = self.tokens_admitted.saturating_add(tokens);
            self.first_admission.get_or_insert(now);
            self.last_admission = Some(now);
            // The peak over every window of the whole run. The load of a window (t - W, t] only
            // changes when an admission enters it (at an admission instant) or leaves it, and
            // leaving only lowers it; so every window's load is at most the load of the window
            // ending at the latest admission inside it (same admissions or a superset). Taking
            // the maximum at each admission, right after evicting what left and adding what
            // entered, is therefore the maximum over all windows, not a sample.
            self.peak_requests = self.peak_requests.max(saturate(self.requests));
            self.peak_tokens = self.peak_tokens.max(saturate(self.tokens));
            return Decision::Admitted(self.snapshot(now));
        }
        // Walk the log oldest first: entry `e` leaves at `e.at + window`; the request fits once
        // enough of both has left. It always fits once everything has left (checked above).
        let (mut freed_requests, mut freed_tokens) = (0u128, 0u128);
        let (mut requests_at, mut tokens_at) = (
            (excess_requests == 0).then_some(now),
            (excess_tokens == 0).then_some(now),
        );
        for entry in &self.log {
            freed_requests += u128::from(entry.requests);
            freed_tokens += u128::from(entry.tokens);
            let leaves = entry.at.saturating_add(self.window);
            if requests_at.is_none() && freed_requests >= excess_requests {
                requests_at = Some(leaves);
            }
            if tokens_at.is_none() && freed_tokens >= excess_tokens {
                tokens_at = Some(leaves);
            }
            if requests_at.is_some() && tokens_at.is_some() {
                break;
            }
        }
        let requests_at = requests_at.unwrap_or(now);
        let tokens_at = tokens_at.unwrap_or(now);
        let exceeded = if excess_tokens > 0 && tokens_at >= requests_at {
            Exceeded::Tokens
        } else {
            Exceeded::Requests
        };
        Decision::Limited {
            retry_after: requests_at.max(tokens_at) - now,
            exceeded,
            window: self.snapshot(now),
        }
    }

    /// The window at `now`.
    #[cfg(test)]
    pub(crate) fn window(&mut self, now: Duration) -> Window {
        let now = self.advance(now);
        self.snapshot(now)
    }

    /// Moves time to `now` (never back) and drops what left the window.
    fn advance(&mut self, now: Duration) -> Duration {
        self.latest = self.latest.max(now);
        let now = self.latest;
        while let Some(entry) = self.log.front() {
            if entry.at.saturating_add(self.window) > now {
                break;
            }
            self.requests -= u128::from(entry.requests);
            self.tokens -= u128::from(entry.tokens);
            self.log.pop_front();
        }
        now
    }

    fn snapshot(&self, now: Duration) -> Window {
        let reset = |has: fn(&Entry) -> bool| {
            self.log
                .iter()
                .rev()
                .find(|entry| has(entry))
                .map_or(Duration::ZERO, |entry| {
                    entry.at.saturating_add(self.window).saturating_sub(now)
                })
        };
        Window {
            now,
            rpm: self.rpm,
            tpm: self.tpm,
            requests: saturate(self.requests),
            tokens: saturate(self.tokens),
            requests_reset: reset(|entry| entry.requests > 0),
            tokens_reset: reset(|entry| entry.tokens > 0),
        }
    }
}

/// `value` as a `u64`, or `u64::MAX` if it is larger.
fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
