//! Prometheus metrics (prometheus-client), served as text on `metrics.listen`.
//!
//! - `alertgate_relay_requests_total{outcome}`: every answered webhook request by outcome.
//! - `alertgate_relay_forward_total{outcome}`: forward attempts (`delivered`, `retry`) and final
//!   outcomes (`rejected`, `expired`).
//! - `alertgate_relay_dead_letters_total{reason}`: dead letters (`rejected`, `expired`).
//! - `alertgate_relay_spool_pending`: alerts accepted and not yet delivered or dead-lettered.
//! - `alertgate_relay_request_duration_seconds`, `alertgate_relay_forward_duration_seconds`.
//! - `alertgate_relay_config_reloads_total{outcome}`: SIGHUP reloads (`ok`, `error`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// The relay's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    /// Holds every metric below for encoding.
    registry: Registry,
    /// `alertgate_relay_requests_total{outcome}`.
    requests: Family<Labels, Counter>,
    /// `alertgate_relay_forward_total{outcome}`.
    forwards: Family<Labels, Counter>,
    /// `alertgate_relay_dead_letters_total{reason}`.
    dead_letters: Family<Labels, Counter>,
    /// `alertgate_relay_config_reloads_total{outcome}`.
    reloads: Family<Labels, Counter>,
    /// Pending spool entries.
    pub spool_pending: Gauge,
    /// Time to answer a webhook request.
    pub request_duration: Histogram,
    /// Time of one forward attempt.
    pub forward_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let forwards = Family::<Labels, Counter>::default();
        let dead_letters = Family::<Labels, Counter>::default();
        let reloads = Family::<Labels, Counter>::default();
        let spool_pending = Gauge::default();
        let request_duration = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let forward_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "alertgate_relay_requests",
            "Webhook requests by outcome",
            requests.clone(),
        );
        registry.register(
            "alertgate_relay_forward",
            "Forward attempts and outcomes",
            forwards.clone(),
        );
        registry.register(
            "alertgate_relay_dead_letters",
            "Dead letters by reason",
            dead_letters.clone(),
        );
        registry.register(
            "alertgate_relay_config_reloads",
            "Configuration reloads",
            reloads.clone(),
        );
        registry.register(
            "alertgate_relay_spool_pending",
            "Alerts waiting to be forwarded",
            spool_pending.clone(),
        );
        registry.register(
            "alertgate_relay_request_duration_seconds",
            "Time to answer a webhook request",
            request_duration.clone(),
        );
        registry.register(
            "alertgate_relay_forward_duration_seconds",
            "Time of one forward attempt",
            forward_duration.clone(),
        );
        Self {
            registry,
            requests,
            forwards,
            dead_letters,
            reloads,
            spool_pending,
            request_duration,
            forward_duration,
        }
    }

    /// Counts an answered request.
    pub fn request(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// Counts a forward attempt or outcome.
    pub fn forward(&self, outcome: &'static str) {
        self.forwards
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// Counts a dead letter.
    pub fn dead_letter(&self, reason: &'static str) {
        self.dead_letters
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Counts a reload.
    pub fn reload(&self, outcome: &'static str) {
        self.reloads
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
