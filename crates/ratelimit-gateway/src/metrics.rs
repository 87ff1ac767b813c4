//! The gateway's Prometheus metrics, recorded through the `metrics` facade's `Recorder` on a
//! recorder each gateway owns (so two gateways in one process, as in tests, never mix their
//! figures, and nothing depends on a global recorder).
//!
//! Every series is labelled by tenant (a configured name: the label set is bounded):
//! `gateway_requests_total{tenant,status}`, `gateway_tokens_total{tenant,kind=input|output}`
//! (settled usage), `gateway_rejected_total{tenant,level}` (the gateway's own 429s),
//! `gateway_upstream_429_total{tenant}`, `gateway_queue_depth{tenant}` (requests waiting for
//! their turn), and the histograms `gateway_wait_seconds{tenant}` (time to admission) and
//! `gateway_latency_seconds{tenant}` (time to the answer's headers, wait included).
//! `gateway_unauthorized_total` counts requests with no valid key.

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// Histogram buckets, in seconds: from 100 µs to 5 minutes.
const BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
];

/// The recorder and its rendering handle.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// The series of one tenant that every request touches.
pub(crate) struct TenantMetrics {
    pub(crate) queue: Gauge,
    pub(crate) wait: Histogram,
    pub(crate) latency: Histogram,
    pub(crate) input: Counter,
    pub(crate) output: Counter,
    pub(crate) upstream_429: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        // The buckets are constant and valid, so setting them cannot fail; if it did, summaries
        // would be rendered instead of histograms.
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        Key::from_parts(
            name,
            labels
                .iter()
                .map(|(k, v)| Label::new(*k, (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    }

    pub(crate) fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&Self::key(name, labels), &METADATA)
    }

    pub(crate) fn tenant(&self, tenant: &str) -> TenantMetrics {
        let t = [("tenant", tenant)];
        let r = &self.recorder;
        TenantMetrics {
            queue: r.register_gauge(&Self::key("gateway_queue_depth", &t), &METADATA),
            wait: r.register_histogram(&Self::key("gateway_wait_seconds", &t), &METADATA),
            latency: r.register_histogram(&Self::key("gateway_latency_seconds", &t), &METADATA),
            input: self.counter(
                "gateway_tokens_total",
                &[("tenant", tenant), ("kind", "input")],
            ),
            output: self.counter(
                "gateway_tokens_total",
                &[("tenant", tenant), ("kind", "output")],
            ),
            upstream_429: self.counter("gateway_upstream_429_total", &t),
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        self.handle.render()
    }
}
