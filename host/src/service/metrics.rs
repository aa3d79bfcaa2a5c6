//! What `/metrics` reports, in the Prometheus text format: API requests by route and
//! status, steps by outcome, HTTP requests to the sources and their retries, ask latency,
//! and (computed when scraped) memories by status.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// The service's metrics; cheap to clone (shared handles).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    steps: Family<OutcomeLabels, Counter>,
    source_requests: Counter,
    source_retries: Counter,
    ask_seconds: Histogram,
    memories: Family<StatusLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("connector_host");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("api_requests", "HTTP API requests by route and status", requests.clone());
        let steps = Family::<OutcomeLabels, Counter>::default();
        registry.register("steps", "Ingest and sync steps by outcome (ok, refused, failed)", steps.clone());
        let source_requests = Counter::default();
        registry.register(
            "source_requests",
            "HTTP requests the connectors made to their sources",
            source_requests.clone(),
        );
        let source_retries = Counter::default();
        registry.register("source_retries", "Retried HTTP requests to the sources", source_retries.clone());
        let ask_seconds = Histogram::new([0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        registry.register("ask_duration_seconds", "Time to answer an ask", ask_seconds.clone());
        let memories = Family::<StatusLabels, Gauge>::default();
        registry.register("memories", "Memories by status, across tenants", memories.clone());
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            steps,
            source_requests,
            source_retries,
            ask_seconds,
            memories,
        }
    }
}

impl Metrics {
    /// Counts an API request.
    pub fn request(&self, method: &str, route: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { method: method.into(), route: route.into(), status }).inc();
    }

    /// Counts a step.
    pub fn step(&self, outcome: &str) {
        self.steps.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }

    /// Adds requests to the sources and retries among them.
    pub fn confluence_requests(&self, requests: u64, retries: u64) {
        self.source_requests.inc_by(requests);
        self.source_retries.inc_by(retries);
    }

    /// Records an ask's latency.
    pub fn ask(&self, seconds: f64) {
        self.ask_seconds.observe(seconds);
    }

    /// Sets the number of memories per status (`IN_PROGRESS`, `INGESTED`, `ERROR`).
    pub fn set_memories(&self, counts: &[(&str, i64)]) {
        for (status, count) in counts {
            self.memories.get_or_create(&StatusLabels { status: (*status).into() }).set(*count);
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics registry lock");
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!("cannot encode metrics: {error}");
        }
        text
    }
}
