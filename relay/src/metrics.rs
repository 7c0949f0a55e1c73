//! Prometheus metrics (prometheus-client), served as text on `metrics.listen`.
//!
//! - `alertgate_relay_requests_total{outcome}`: every answered webhook request by outcome.
//! - `alertgate_relay_forward_total{outcome}`: forward attempts (`delivered`, `retry`) and final
//!   outcomes (`rejected`, `expired`).
//! - `alertgate_relay_dead_letters_total{reason}`: dead letters (`rejected`, `expired`).
//! - `alertgate_relay_spool_pending`: alerts accepted and not yet delivered or dead-lettered.
//! - `alertgate_relay_request_duration_seconds`, `alertgate_relay_forward_duration_seconds`.
//! - `alertgate_relay_config_reloads_total{outcome}`: SIGHUP reloads (`ok`, `error`).
//! - `alertgate_relay_notifications_total{destination,outcome}`: `[[notify]]` notices (`sent`,
//!   `failed`, `dropped` when a destination's queue is full).
//!
//! Label values are the `as_str()` of [`RequestOutcome`], [`ForwardOutcome`],
//! [`DeadLetterReason`] and [`ReloadOutcome`], so each is spelled once.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// `outcome` of `alertgate_relay_requests_total`: how a webhook request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Spooled, answered 200.
    Accepted,
    /// Not allowlisted, or without the required client certificate (403).
    Forbidden,
    /// Over the per-address or global limit (429).
    RateLimited,
    /// Over the per-account limit (429, after authentication).
    RateLimitedAccount,
    /// Body over `server.max_body_bytes` (413).
    TooLarge,
    /// Body not received in time (408).
    BodyTimeout,
    /// Not a UTF-8 JSON object (400).
    InvalidJson,
    /// Unknown account or wrong secret (401).
    Unauthorized,
    /// Same key within the dedupe window (409).
    Duplicate,
    /// Could not be spooled (503).
    Unavailable,
    /// No such route, wrong method, or an internal error.
    Error,
}

impl RequestOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::RateLimitedAccount => "rate_limited_account",
            Self::TooLarge => "too_large",
            Self::BodyTimeout => "body_timeout",
            Self::InvalidJson => "invalid_json",
            Self::Unauthorized => "unauthorized",
            Self::Duplicate => "duplicate",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
        }
    }
}

/// `outcome` of `alertgate_relay_forward_total`: one forward attempt, or a final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// A transient failure; the alert is tried again.
    Retry,
    /// The receiver refused it for good (dead letter).
    Rejected,
    /// Too old to be worth delivering (dead letter).
    Expired,
}

impl ForwardOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

impl From<ForwardOutcome> for &'static str {
    fn from(outcome: ForwardOutcome) -> Self {
        outcome.as_str()
    }
}

/// `reason` of `alertgate_relay_dead_letters_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The receiver refused the alert.
    Rejected,
    /// The alert expired before it could be delivered.
    Expired,
}

impl DeadLetterReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

impl From<DeadLetterReason> for &'static str {
    fn from(reason: DeadLetterReason) -> Self {
        reason.as_str()
    }
}

/// `outcome` of `alertgate_relay_config_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new configuration is live.
    Ok,
    /// Refused; the running configuration stays.
    Error,
}

impl ReloadOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

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
    /// `alertgate_relay_notifications_total{destination,outcome}` (destinations are named in
    /// config, hence owned labels).
    notifications: Family<Vec<(&'static str, String)>, Counter>,
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
        let notifications = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "alertgate_relay_notifications",
            "[[notify]] notices by destination and outcome (sent, failed, dropped)",
            notifications.clone(),
        );
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
            notifications,
            spool_pending,
            request_duration,
            forward_duration,
        }
    }

    /// Counts an answered request.
    pub fn request(&self, outcome: RequestOutcome) {
        self.requests
            .get_or_create(&vec![("outcome", outcome.as_str())])
            .inc();
    }

    /// Counts a forward attempt or outcome: a [`ForwardOutcome`] (a `&'static str` label is
    /// still accepted from callers not yet moved to the enum).
    pub fn forward(&self, outcome: impl Into<&'static str>) {
        self.forwards
            .get_or_create(&vec![("outcome", outcome.into())])
            .inc();
    }

    /// Counts a dead letter: a [`DeadLetterReason`] (or, as for [`Metrics::forward`], its
    /// `&'static str`).
    pub fn dead_letter(&self, reason: impl Into<&'static str>) {
        self.dead_letters
            .get_or_create(&vec![("reason", reason.into())])
            .inc();
    }

    /// Counts a notice to `destination` that ended `outcome`.
    pub fn notification(&self, destination: &str, outcome: &str) {
        self.notifications
            .get_or_create(&vec![
                ("destination", destination.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts a reload.
    pub fn reload(&self, outcome: ReloadOutcome) {
        self.reloads
            .get_or_create(&vec![("outcome", outcome.as_str())])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_the_documented_strings() {
        let m = Metrics::new();
        m.request(RequestOutcome::Accepted);
        m.request(RequestOutcome::RateLimitedAccount);
        m.forward(ForwardOutcome::Delivered);
        m.forward(ForwardOutcome::Expired);
        m.dead_letter(DeadLetterReason::Rejected);
        m.reload(ReloadOutcome::Ok);
        let text = m.encode();
        for line in [
            r#"alertgate_relay_requests_total{outcome="accepted"} 1"#,
            r#"alertgate_relay_requests_total{outcome="rate_limited_account"} 1"#,
            r#"alertgate_relay_forward_total{outcome="delivered"} 1"#,
            r#"alertgate_relay_forward_total{outcome="expired"} 1"#,
            r#"alertgate_relay_dead_letters_total{reason="rejected"} 1"#,
            r#"alertgate_relay_config_reloads_total{outcome="ok"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
