//! Deterministic simulations of the controller on a manual clock: a client with unlimited demand,
//! its limiter (the core policy) and the controller, against a simulated provider with fixed
//! limits and headers, without headers (AIMD), whose limit drops mid-run, and in 429 storms.
//! Each asserts convergence: near the provider's true limit, few 429s, no wild oscillation.

mod provider;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use provider::{Answer, MIN, Provider, SEC, Style};
use ratelimit_adaptive::{Action, AdaptiveConfig, Controller, Feedback, Snapshot};
use ratelimit_core::{Cost, Decision, LimitId, Policy, Resource};

/// Every request: 1 request, 600 prompt tokens + 400 max tokens = 1,000 tokens.
const COST: Cost = Cost::request(600, 400);
const TOKENS: u64 = 1_000;
/// Responses come back this long after admission.
const LATENCY: u64 = 2 * SEC;

struct InFlight {
    answer: Answer,
    granted_at: u64,
    granted: Decision,
}

struct Run {
    provider: Provider,
    policy: Policy,
    controller: Controller,
    paused_until: u64,
    now: u64,
    in_flight: BinaryHeap<Reverse<(u64, usize)>>,
    slots: Vec<Option<InFlight>>,
    /// (admission instant, status) of every request sent.
    log: Vec<(u64, u16)>,
    /// The token limit's amount after each change.
    amounts: Vec<(u64, u64)>,
    tokens_id: LimitId,
}

impl Run {
    /// A client whose limiter starts from a guess of 60 RPM and 10k TPM.
    fn new(provider: Provider) -> Self {
        let policy = Policy::builder()
            .requests_per_minute(60)
            .tokens_per_minute(10_000)
            .build()
            .unwrap();
        let controller = Controller::new(&policy, AdaptiveConfig::default()).unwrap();
        let tokens_id = policy.find(Resource::Tokens, MIN).unwrap();
        Self {
            provider,
            policy,
            controller,
            paused_until: 0,
            now: 0,
            in_flight: BinaryHeap::new(),
            slots: Vec::new(),
            log: Vec::new(),
            amounts: vec![(0, 10_000)],
            tokens_id,
        }
    }

    /// Runs until `until`, sending as fast as the limiter allows.
    fn run_until(&mut self, until: u64) {
        while self.now < until {
            let from = self.now.max(self.paused_until);
            let d = self.policy.check(&COST, from);
            let ready = from + d.retry_after;
            if let Some(Reverse((arrival, slot))) = self.in_flight.peek().copied() {
                if arrival <= ready {
                    self.in_flight.pop();
                    self.now = self.now.max(arrival);
                    let done = self.slots[slot].take().unwrap();
                    self.respond(&done);
                    continue;
                }
            }
            self.now = ready;
            if self.policy.try_take(&COST, ready).is_err() {
                continue; // planned on a state that changed: plan again
            }
            let granted = self.policy.status(ready);
            let answer = self.provider.admit(TOKENS, ready);
            self.log.push((ready, answer.status));
            self.slots.push(Some(InFlight {
                answer,
                granted_at: ready,
                granted,
            }));
            self.in_flight
                .push(Reverse((ready + LATENCY, self.slots.len() - 1)));
        }
    }

    fn respond(&mut self, done: &InFlight) {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_nanos(self.now);
        let snapshot = Snapshot::from_headers(&done.answer.headers, wall);
        let feedback = Feedback {
            status: done.answer.status,
            snapshot: &snapshot,
            granted: Some((done.granted_at, &done.granted)),
        };
        for action in self.controller.on_response(&feedback, self.now) {
            match action {
                Action::SetAmount { id, amount } => {
                    self.policy.set_amount(id, amount, self.now).unwrap();
                    if id == self.tokens_id {
                        self.amounts.push((self.now, amount));
                    }
                }
                Action::Correct { id, delta } => self.policy.correct(id, delta, self.now).unwrap(),
                Action::Pause(d) => {
                    let until = self.now + u64::try_from(d.as_nanos()).unwrap();
                    self.paused_until = self.paused_until.max(until);
                }
            }
        }
    }

    /// Requests admitted in `[from, to)`, and 429s among those sent then.
    fn between(&self, from: u64, to: u64) -> (u64, u64) {
        let sent = self.log.iter().filter(|(t, _)| (from..to).contains(t));
        let ok = sent.clone().filter(|(_, s)| *s == 200).count() as u64;
        let limited = sent.filter(|(_, s)| *s == 429).count() as u64;
        eprintln!("[{from}, {to}): {ok} admitted, {limited} answered 429");
        (ok, limited)
    }

    /// Tokens admitted in `[from, to)` as a fraction of what `tpm` refills over that time. The
    /// provider's bucket can add at most one minute's worth (its capacity) on top: the result is
    /// checked to stay within that, so the simulation itself is held to the provider's rules.
    fn utilization(&self, from: u64, to: u64, tpm: u64) -> f64 {
        let (ok, _) = self.between(from, to);
        let minutes = (to - from) as f64 / MIN as f64;
        let u = (ok * TOKENS) as f64 / (tpm as f64 * minutes);
        assert!(
            u <= 1.0 + 1.0 / minutes + 1e-9,
            "more than the provider admits: {u}"
        );
        eprintln!("utilization over [{from}, {to}): {u:.4}");
        u
    }

    /// The token limit's amounts set in `[from, to)`.
    fn amounts_between(&self, from: u64, to: u64) -> impl Iterator<Item = u64> + '_ {
        self.amounts
            .iter()
            .filter(move |(t, _)| (from..to).contains(t))
            .map(|(_, a)| *a)
    }
}

#[test]
fn with_headers_a_wrong_guess_converges_on_the_provider_limit_at_once() {
    // The provider allows 100 requests of 1k tokens per minute: ten times the guess.
    let mut run = Run::new(Provider::new(600, 100_000, Style::OpenAi));
    run.run_until(20 * MIN);
    let total = run.log.len() as u64;
    let (_, limited) = run.between(0, 20 * MIN);
    // The first response (2 s in) teaches the limit; from the second minute on, the flow is the
    // provider's rate.
    let u = run.utilization(MIN, 20 * MIN, 100_000);
    assert!(u >= 0.98, "utilization {u:.4}");
    assert!(limited * 100 <= total, "{limited} 429s of {total} requests");
    assert_eq!(run.controller.amount(run.tokens_id), Some(100_000));
}

#[test]
fn with_headers_a_limit_drop_mid_run_is_followed_within_seconds() {
    let mut run = Run::new(Provider::new(600, 100_000, Style::OpenAi));
    run.run_until(10 * MIN);
    run.provider.tokens.set_limit(50_000, run.now);
    run.run_until(25 * MIN);
    let u = run.utilization(11 * MIN, 25 * MIN, 50_000);
    assert!(u >= 0.98, "utilization after the drop {u:.4}");
    let (_, limited) = run.between(10 * MIN, 25 * MIN);
    assert!(limited <= 5, "{limited} 429s after the drop");
    assert_eq!(run.controller.amount(run.tokens_id), Some(50_000));
}

#[test]
fn without_headers_aimd_settles_close_under_the_true_limit() {
    let mut run = Run::new(Provider::new(600, 100_000, Style::Silent));
    run.run_until(60 * MIN);
    let total = run.log.len() as u64;
    let (_, limited) = run.between(0, 60 * MIN);
    let u = run.utilization(20 * MIN, 60 * MIN, 100_000);
    assert!(u >= 0.9, "utilization {u:.4}");
    assert!(limited * 50 <= total, "{limited} 429s of {total} requests");
    // No wild oscillation once settled: the limit stays within a band around the truth.
    for a in run.amounts_between(20 * MIN, 60 * MIN) {
        assert!(
            (70_000..=130_000).contains(&a),
            "amount {a} out of band: {:?}",
            run.amounts
        );
    }
}

#[test]
fn without_headers_a_limit_drop_is_found_by_decreasing() {
    let mut run = Run::new(Provider::new(600, 100_000, Style::Silent));
    run.run_until(20 * MIN);
    run.provider.tokens.set_limit(50_000, run.now);
    run.run_until(60 * MIN);
    let u = run.utilization(35 * MIN, 60 * MIN, 50_000);
    assert!(u >= 0.85, "utilization after the drop {u:.4}");
    for a in run.amounts_between(35 * MIN, 60 * MIN) {
        assert!(
            (35_000..=65_000).contains(&a),
            "amount {a}: {:?}",
            run.amounts
        );
    }
}

#[test]
fn a_429_storm_with_retry_after_pauses_everyone_and_costs_nothing_afterwards() {
    let mut run = Run::new(Provider::new(600, 100_000, Style::OpenAi));
    run.run_until(10 * MIN);
    run.provider.storm_until = run.now + 30 * SEC;
    run.run_until(20 * MIN);
    let (_, storm_429s) = run.between(10 * MIN, 11 * MIN);
    // Only what was already in flight when the first 429 came back, plus nothing: the pause
    // holds every request until the retry-after the provider gave.
    assert!(storm_429s <= 5, "{storm_429s} 429s in the storm");
    let u = run.utilization(12 * MIN, 20 * MIN, 100_000);
    assert!(u >= 0.98, "utilization after the storm {u:.4}");
}

#[test]
fn a_429_storm_without_any_hint_backs_off_and_recovers() {
    let mut run = Run::new(Provider::new(600, 100_000, Style::Silent));
    run.run_until(30 * MIN);
    let before = run.controller.amount(run.tokens_id).unwrap();
    run.provider.storm_until = run.now + 30 * SEC;
    run.run_until(31 * MIN);
    let (_, storm_429s) = run.between(30 * MIN, 31 * MIN);
    assert!(storm_429s <= 12, "{storm_429s} 429s in the storm");
    let after = run.controller.amount(run.tokens_id).unwrap();
    assert!(
        after * 2 >= before,
        "the storm collapsed the limit: {before} -> {after}"
    );
    run.run_until(60 * MIN);
    let u = run.utilization(45 * MIN, 60 * MIN, 100_000);
    assert!(u >= 0.85, "utilization after recovery {u:.4}");
}
