//! A simulated provider for the controller simulations: a token bucket per dimension (as OpenAI
//! and Anthropic describe their limits), exact in integer arithmetic, answering with OpenAI-style
//! headers or none.

use http::HeaderMap;

pub(crate) const SEC: u64 = 1_000_000_000;
pub(crate) const MIN: u64 = 60 * SEC;

/// One token bucket: `limit` per `window`, capacity `limit`, kept in units x nanoseconds.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub(crate) limit: u64,
    window: u64,
    /// Level in unit-nanoseconds (a unit is `window` of them), as of `at`.
    level: u128,
    at: u64,
}

impl Bucket {
    pub(crate) fn new(limit: u64, window: u64) -> Self {
        Self {
            limit,
            window,
            level: u128::from(limit) * u128::from(window),
            at: 0,
        }
    }

    fn refill(&mut self, now: u64) {
        let cap = u128::from(self.limit) * u128::from(self.window);
        let gained = u128::from(now.saturating_sub(self.at)) * u128::from(self.limit);
        self.level = (self.level + gained).min(cap);
        self.at = self.at.max(now);
    }

    fn need(&self, n: u64) -> u128 {
        u128::from(n) * u128::from(self.window)
    }

    /// Units left now (rounded down).
    pub(crate) fn remaining(&mut self, now: u64) -> u64 {
        self.refill(now);
        u64::try_from(self.level / u128::from(self.window)).unwrap_or(u64::MAX)
    }

    /// Nanoseconds until `n` units are there (rounded up).
    fn wait_for(&mut self, n: u64, now: u64) -> u64 {
        self.refill(now);
        let need = self.need(n);
        if self.level >= need {
            return 0;
        }
        u64::try_from((need - self.level).div_ceil(u128::from(self.limit))).unwrap_or(u64::MAX)
    }

    /// Nanoseconds until full.
    fn reset(&mut self, now: u64) -> u64 {
        self.refill(now);
        let cap = u128::from(self.limit) * u128::from(self.window);
        u64::try_from((cap - self.level).div_ceil(u128::from(self.limit))).unwrap_or(u64::MAX)
    }

    fn take(&mut self, n: u64) {
        self.level -= self.need(n);
    }

    /// Changes the limit, keeping what was used (as the provider would after a tier change).
    pub(crate) fn set_limit(&mut self, limit: u64, now: u64) {
        self.refill(now);
        let used = u128::from(self.limit) * u128::from(self.window) - self.level;
        let cap = u128::from(limit) * u128::from(self.window);
        self.limit = limit;
        self.level = cap.saturating_sub(used);
    }
}

/// How the provider talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `x-ratelimit-*` on every response, `retry-after-ms` on 429s.
    OpenAi,
    /// No rate-limit headers at all; 429s say nothing about when to retry.
    Silent,
}

/// What the provider answered.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
}

pub(crate) struct Provider {
    pub(crate) requests: Bucket,
    pub(crate) tokens: Bucket,
    pub(crate) style: Style,
    /// Until this instant every request gets a 429 (a storm: shared capacity exhausted).
    pub(crate) storm_until: u64,
    pub(crate) admitted_requests: u64,
    pub(crate) admitted_tokens: u64,
    pub(crate) rejected: u64,
}

impl Provider {
    pub(crate) fn new(rpm: u64, tpm: u64, style: Style) -> Self {
        Self {
            requests: Bucket::new(rpm, MIN),
            tokens: Bucket::new(tpm, MIN),
            style,
            storm_until: 0,
            admitted_requests: 0,
            admitted_tokens: 0,
            rejected: 0,
        }
    }

    /// Admission at `now` of a request counting `tokens` (prompt + max_tokens).
    pub(crate) fn admit(&mut self, tokens: u64, now: u64) -> Answer {
        let wait = self
            .requests
            .wait_for(1, now)
            .max(self.tokens.wait_for(tokens, now));
        let storm = now < self.storm_until;
        let status = if wait == 0 && !storm {
            self.requests.take(1);
            self.tokens.take(tokens);
            self.admitted_requests += 1;
            self.admitted_tokens += tokens;
            200
        } else {
            self.rejected += 1;
            429
        };
        let mut headers = HeaderMap::new();
        if self.style == Style::OpenAi {
            let mut put = |name: &'static str, value: String| {
                headers.insert(name, value.parse().expect("ascii header"));
            };
            put(
                "x-ratelimit-limit-requests",
                self.requests.limit.to_string(),
            );
            put("x-ratelimit-limit-tokens", self.tokens.limit.to_string());
            put(
                "x-ratelimit-remaining-requests",
                self.requests.remaining(now).to_string(),
            );
            put(
                "x-ratelimit-remaining-tokens",
                self.tokens.remaining(now).to_string(),
            );
            put(
                "x-ratelimit-reset-requests",
                format!("{}ms", self.requests.reset(now).div_ceil(1_000_000)),
            );
            put(
                "x-ratelimit-reset-tokens",
                format!("{}ms", self.tokens.reset(now).div_ceil(1_000_000)),
            );
            if status == 429 {
                let wait = if storm { self.storm_until - now } else { wait };
                put(
                    "retry-after-ms",
                    wait.div_ceil(1_000_000).max(1).to_string(),
                );
            }
        }
        Answer { status, headers }
    }
}
