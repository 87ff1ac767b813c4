//! Observability: waits open a `rate_limit.wait` span; grants after a wait, refusals and dropped
//! waiters are logged as events.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratelimit_core::{Cost, Limit, Policy, Resource};
use ratelimit_limiter::{Limiter, Request};
use ratelimit_memory::MemoryLimiter;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records span names and event messages.
#[derive(Default)]
struct Recorder {
    spans: Mutex<Vec<String>>,
    events: Mutex<Vec<String>>,
    next_id: AtomicU64,
    entered: AtomicUsize,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.spans
            .lock()
            .unwrap()
            .push(span.metadata().name().to_owned());
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        self.events.lock().unwrap().push(m.0);
    }
    fn enter(&self, _: &Id) {
        self.entered.fetch_add(1, Ordering::Relaxed);
    }
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn waits_are_spans_and_refusals_are_events() {
    let recorder = Arc::new(Recorder::default());
    let _guard = tracing::subscriber::set_default(Arc::clone(&recorder));
    let policy = Policy::builder()
        .limit(Limit::new(Resource::Requests, 1, Duration::from_secs(1)))
        .build()
        .unwrap();
    let l = MemoryLimiter::new(policy);
    let _a = l.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap();
    assert!(
        recorder.spans.lock().unwrap().is_empty(),
        "an immediate grant opens no span"
    );
    let _b = l.acquire(Request::new(Cost::ONE_REQUEST)).await.unwrap();
    assert_eq!(*recorder.spans.lock().unwrap(), ["rate_limit.wait"]);
    assert!(recorder.entered.load(Ordering::Relaxed) > 0);
    let _ = l
        .try_acquire(Request::new(Cost::ONE_REQUEST))
        .await
        .unwrap_err();
    let _ = l
        .try_acquire(Request::new(Cost {
            requests: 2,
            ..Cost::NONE
        }))
        .await
        .unwrap_err();
    tokio::select! {
        _ = l.acquire(Request::new(Cost::ONE_REQUEST)) => panic!("not due"),
        () = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    let events = recorder.events.lock().unwrap().join("\n");
    for expected in [
        "request waits its turn",
        "granted after waiting",
        "request limited",
        "request refused",
        "waiter dropped; its reservation was given back",
    ] {
        assert!(
            events.contains(expected),
            "missing {expected:?} in:\n{events}"
        );
    }
}
