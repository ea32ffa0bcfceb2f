//! Prometheus metrics: requests by route and status, latency histograms, job
//! counts (the job workers of this process report into the same registry, and
//! the queue backend reports what it holds for all processes), and the
//! positions of the event log and the outbox.

use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    log: IntGaugeVec,
    queue: GaugeVec,
    index: IntGaugeVec,
    index_events: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "parley_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("constant metric options are valid");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "parley_http_request_duration_seconds",
                "HTTP request latency by route, method and status",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method", "status"],
        )
        .expect("constant metric options are valid");
        let log = IntGaugeVec::new(
            Opts::new(
                "parley_event_log_position",
                "Newest position of the event log, and of the outbox checkpoint",
            ),
            &["cursor"],
        )
        .expect("constant metric options are valid");
        let queue = GaugeVec::new(
            Opts::new(
                "parley_queue_jobs",
                "Jobs in the queue by state, as the queue backend counts them (all processes)",
            ),
            &["state"],
        )
        .expect("constant metric options are valid");
        let index = IntGaugeVec::new(
            Opts::new(
                "parley_index_cache",
                "The search index cache of this process: bytes held, its budget, bots held",
            ),
            &["measure"],
        )
        .expect("constant metric options are valid");
        let index_events = IntCounterVec::new(
            Opts::new(
                "parley_index_cache_events_total",
                "Sources' segments found in the index cache (hit) or loaded (miss), and bots evicted",
            ),
            &["event"],
        )
        .expect("constant metric options are valid");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(log.clone()),
            Box::new(queue.clone()),
            Box::new(index.clone()),
            Box::new(index_events.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            latency,
            log,
            queue,
            index,
            index_events,
        }
    }

    /// The index cache as it is now (its counts only grow).
    pub fn set_index_cache(&self, stats: &parley_domain::retrieval::CacheStats) {
        let gauge = |measure: &str, value: usize| {
            self.index
                .with_label_values(&[measure])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        gauge("bytes", stats.bytes);
        gauge("budget_bytes", stats.budget);
        gauge("bots", stats.bots);
        for (event, total) in [
            ("hit", stats.hits),
            ("miss", stats.misses),
            ("eviction", stats.evictions),
        ] {
            let counter = self.index_events.with_label_values(&[event]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.requests.with_label_values(&[route, method, &status]).inc();
        self.latency
            .with_label_values(&[route, method, &status])
            .observe(elapsed.as_secs_f64());
    }

    pub fn set_log_positions(&self, head: i64, outbox: i64) {
        self.log.with_label_values(&["head"]).set(head);
        self.log.with_label_values(&["outbox"]).set(outbox);
    }

    pub fn set_queue_stats(&self, stats: &[(String, f64)]) {
        for (state, value) in stats {
            self.queue.with_label_values(&[state.as_str()]).set(*value);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
