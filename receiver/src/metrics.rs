//! Prometheus metrics (receiver/README.md, "Metrics"), served as text on `metrics.listen`:
//! `alertgate_receiver_messages_total{outcome}`, `alertgate_receiver_orders_total{venue,status}`,
//! `alertgate_receiver_verify_failures_total{reason}`, `alertgate_receiver_place_duration_seconds`,
//! `alertgate_receiver_position_drift{account,venue,symbol}` (a gauge),
//! `alertgate_receiver_strategy_enabled{strategy}`, `alertgate_receiver_daily_loss_locked{account}`,
//! `alertgate_receiver_notifications_total{destination,outcome}`.
//!
//! Label values come from the enums' `as_str` names ([`Outcome`], [`OrderState`],
//! [`VerifyError::reason`]), the same names as in JSON and the journal.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::VerifyError;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::journal::{OrderState, Outcome};

type Labels = Vec<(&'static str, String)>;

/// The receiver's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Shared with the registry.
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    messages: Family<Labels, Counter>,
    orders: Family<Labels, Counter>,
    verify_failures: Family<Labels, Counter>,
    place_duration: Histogram,
    position_drift: Family<Labels, Gauge<f64, AtomicU64>>,
    strategy_enabled: Family<Labels, Gauge>,
    daily_loss_locked: Family<Labels, Gauge>,
    notifications: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let messages = Family::<Labels, Counter>::default();
        let orders = Family::<Labels, Counter>::default();
        let verify_failures = Family::<Labels, Counter>::default();
        let place_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "alertgate_receiver_messages",
            "Messages journaled, by final outcome",
            messages.clone(),
        );
        registry.register(
            "alertgate_receiver_orders",
            "Orders answered by the venue, by status",
            orders.clone(),
        );
        registry.register(
            "alertgate_receiver_verify_failures",
            "Deliveries refused by signature verification, by reason",
            verify_failures.clone(),
        );
        registry.register(
            "alertgate_receiver_place_duration_seconds",
            "Time to place one order, retries included",
            place_duration.clone(),
        );
        let position_drift = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "alertgate_receiver_position_drift",
            "Venue position minus the journal's, per account/venue/symbol, when over [reconcile] tolerance (else 0)",
            position_drift.clone(),
        );
        let strategy_enabled = Family::<Labels, Gauge>::default();
        registry.register(
            "alertgate_receiver_strategy_enabled",
            "1 while a strategy's opening orders run, 0 while it is disabled",
            strategy_enabled.clone(),
        );
        let daily_loss_locked = Family::<Labels, Gauge>::default();
        registry.register(
            "alertgate_receiver_daily_loss_locked",
            "1 while an account's opening orders are locked by [risk] max_daily_loss (until 00:00 UTC)",
            daily_loss_locked.clone(),
        );
        let notifications = Family::<Labels, Counter>::default();
        registry.register(
            "alertgate_receiver_notifications",
            "Notifications by [[notify]] destination and outcome (sent, failed)",
            notifications.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                strategy_enabled,
                daily_loss_locked,
                notifications,
                position_drift,
                registry,
                messages,
                orders,
                verify_failures,
                place_duration,
            }),
        }
    }

    /// One message reached `outcome`.
    pub fn message(&self, outcome: Outcome) {
        self.inner
            .messages
            .get_or_create(&vec![("outcome", outcome.as_str().to_owned())])
            .inc();
    }

    /// The venue answered an order with `status`.
    pub fn order(&self, venue: &str, status: OrderState) {
        self.inner
            .orders
            .get_or_create(&vec![
                ("venue", venue.to_owned()),
                ("status", status.as_str().to_owned()),
            ])
            .inc();
    }

    /// A delivery failed verification.
    pub fn verify_failure(&self, error: &VerifyError) {
        self.inner
            .verify_failures
            .get_or_create(&vec![("reason", error.reason().to_owned())])
            .inc();
    }

    /// Placing one order took `elapsed`.
    pub fn place_duration(&self, elapsed: Duration) {
        self.inner.place_duration.observe(elapsed.as_secs_f64());
    }

    /// Reconciliation found `drift` (venue − journal; 0 within the tolerance). A gauge is a
    /// float: fine for a dashboard, never used for money.
    pub fn position_drift(&self, account: &str, venue: &str, symbol: &str, drift: Decimal) {
        self.inner
            .position_drift
            .get_or_create(&vec![
                ("account", account.to_owned()),
                ("venue", venue.to_owned()),
                ("symbol", symbol.to_owned()),
            ])
            .set(drift.to_f64().unwrap_or(f64::NAN));
    }

    /// A strategy was switched (or first seen).
    pub fn strategy_enabled(&self, strategy: &str, enabled: bool) {
        self.inner
            .strategy_enabled
            .get_or_create(&vec![("strategy", strategy.to_owned())])
            .set(i64::from(enabled));
    }

    /// An account's daily-loss lock was found on or off.
    pub fn daily_loss_locked(&self, account: &str, locked: bool) {
        self.inner
            .daily_loss_locked
            .get_or_create(&vec![("account", account.to_owned())])
            .set(i64::from(locked));
    }

    /// A notification to `destination` ended `outcome` (`sent`, `failed`).
    pub fn notification(&self, destination: &str, outcome: &str) {
        self.inner
            .notifications
            .get_or_create(&vec![
                ("destination", destination.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}
