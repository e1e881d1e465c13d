//! The process's metrics: the one Prometheus recorder, its histogram buckets, what every
//! series means, and the process's own numbers (open files, memory, CPU).

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: 0.5 ms (a cached turn) to 30 s (a request timeout).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of every other histogram (sizes: turns per commit, batch sizes, mailbox depths).
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// What `/metrics` renders: the process-wide recorder (a process has one) and the collector
/// of the process's own metrics, refreshed on each render.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Metrics {
    /// The process-wide recorder, installed (with every crate's descriptions) on first use.
    pub fn global() -> Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(install).clone()
    }

    /// The Prometheus text exposition, the process's own metrics just refreshed.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.render()
    }
}

fn install() -> Metrics {
    // Real histograms, not summaries: quantiles cannot be aggregated across hosts, buckets can.
    let recorder = PrometheusBuilder::new()
        .set_buckets(COUNT_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS))
        .expect("the buckets are not empty")
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!(
            "a metrics recorder was already installed; /metrics shows only what this one records"
        );
    }
    describe_metrics();
    burrow_runtime::describe_metrics();
    burrow_log_postgres::describe_metrics();
    burrow_restore::describe_metrics();
    let process = metrics_process::Collector::default();
    process.describe();
    Metrics { handle, process }
}

/// Describes the server's own metrics.
fn describe_metrics() {
    describe_counter!(
        "burrow_http_requests_total",
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        "burrow_http_request_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request (to its response head), by method and route template."
    );
    describe_counter!(
        "burrow_cluster_forwards_total",
        "Calls forwarded to the node that holds their actor."
    );
}
