//! The notification outbox's rows: what happened that a person should hear about (contract:
//! DESIGN.md section 16, "Events"). An event that follows from an outcome is built here from the
//! message as journaled and written in the same transaction as the outcome, so it is never lost
//! and never sent for an outcome that did not commit; delivery ([`crate::notify`]) comes after.
//!
//! Kept free of any store: the SQLite journal and any other journal build the same event from the
//! same [`MessageRecord`] ([`NotifyEvent::for_outcome`]).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{JournalError, MessageRecord, OrderState, Outcome};
use crate::order::Side;

/// What an event is about. Open: new kinds are added as the features producing them land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Every order of a message filled.
    Filled,
    /// Every order was accepted and at least one is working.
    Placed,
    /// A risk gate refused.
    Rejected,
    /// The alert could not be understood.
    Invalid,
    /// The venue refused an order.
    Failed,
    /// The venue never confirmed an order.
    Unknown,
    /// An order was cancelled.
    Cancelled,
    /// Reconciliation found the venue holding another position than the journal.
    Drift,
    /// The kill switch went on or off.
    KillSwitch,
    /// The daily loss limit locked an account.
    DailyLossLock,
    /// A strategy was switched off.
    StrategyDisabled,
}

impl EventKind {
    /// Every kind, in the order of DESIGN.md.
    pub const ALL: [EventKind; 11] = [
        Self::Filled,
        Self::Placed,
        Self::Rejected,
        Self::Invalid,
        Self::Failed,
        Self::Unknown,
        Self::Cancelled,
        Self::Drift,
        Self::KillSwitch,
        Self::DailyLossLock,
        Self::StrategyDisabled,
    ];

    /// Every name, for `[[notify]] events` validation.
    pub const NAMES: [&'static str; 11] = [
        "filled",
        "placed",
        "rejected",
        "invalid",
        "failed",
        "unknown",
        "cancelled",
        "drift",
        "kill_switch",
        "daily_loss_lock",
        "strategy_disabled",
    ];

    /// The name in config, JSON and the journal.
    pub fn as_str(self) -> &'static str {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::NAMES[i]
    }

    /// The event a final outcome makes, if any (`expired` and `duplicate` are not news).
    pub fn for_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Filled => Some(Self::Filled),
            Outcome::Placed => Some(Self::Placed),
            Outcome::Rejected => Some(Self::Rejected),
            Outcome::Invalid => Some(Self::Invalid),
            Outcome::Failed => Some(Self::Failed),
            Outcome::Unknown => Some(Self::Unknown),
            Outcome::Cancelled => Some(Self::Cancelled),
            Outcome::Pending | Outcome::Expired | Outcome::Duplicate => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = JournalError;
    fn from_str(s: &str) -> Result<Self, JournalError> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| JournalError::Corrupt(format!("unknown event {s:?}")))
    }
}

/// One order as an event reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOrder {
    /// Buy or sell.
    pub side: Side,
    /// Quantity ordered.
    pub quantity: Decimal,
    /// Venue symbol.
    pub symbol: String,
    /// Where it stands.
    pub status: OrderState,
    /// Quantity filled.
    pub filled_quantity: Decimal,
    /// Average fill price.
    pub average_price: Option<Decimal>,
    /// The venue's error.
    pub error: Option<String>,
}

/// One event, as stored in the outbox and sent (as JSON) to signed webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEvent {
    /// `evt_` + a ULID: unique, and the `webhook-id` of its signed deliveries.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When (unix ms).
    pub at_ms: i64,
    /// The message it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The alert's strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// The venue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    /// Why (the gate, the invalid field, the venue's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The orders, by leg.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<EventOrder>,
    /// What the event is about when it has no orders, in a few words (`BUY 0.01 BTCUSDT` as the
    /// alert asked, `drift BTCUSDT: journal 1, venue 0.5`, `on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

pub use alertgate_shared::notify::event_id as new_event_id;

impl NotifyEvent {
    /// An event not about a message (`drift`, `kill_switch`, `daily_loss_lock`, ...).
    pub fn standalone(kind: EventKind, at_ms: i64, subject: impl Into<String>) -> Self {
        Self {
            id: new_event_id(at_ms),
            kind,
            at_ms,
            message_id: None,
            account: None,
            strategy: None,
            venue: None,
            reason: None,
            orders: Vec::new(),
            subject: Some(subject.into()),
        }
    }

    /// The event `message` (as journaled, with its new outcome and orders) makes, if any.
    pub fn for_outcome(message: &MessageRecord, at_ms: i64) -> Option<Self> {
        let kind = EventKind::for_outcome(message.outcome)?;
        let alert = serde_json::from_slice::<serde_json::Value>(&message.envelope)
            .ok()
            .and_then(|v| v.get("alert").cloned())
            .unwrap_or(serde_json::Value::Null);
        let orders: Vec<EventOrder> = message
            .orders
            .iter()
            .filter(|o| o.status != OrderState::Skipped)
            .map(|o| EventOrder {
                side: o.side,
                quantity: o.quantity.normalize(),
                symbol: o.symbol.clone(),
                status: o.status,
                filled_quantity: o.filled_quantity.normalize(),
                average_price: o.average_price.map(|p| p.normalize()),
                error: o.error.clone(),
            })
            .collect();
        Some(Self {
            id: new_event_id(at_ms),
            kind,
            at_ms,
            message_id: Some(message.id.clone()),
            account: message.account.clone(),
            strategy: text_field(&alert, &["strategy", "strategy_id"]),
            venue: message.orders.first().map(|o| o.venue.clone()),
            reason: message.reason.clone(),
            subject: orders.is_empty().then(|| alert_subject(&alert)).flatten(),
            orders,
        })
    }

    /// The line a person reads at a glance:
    /// `BUY 0.01 BTCUSDT filled at 42000 · paper · main · sma-cross · msg_…`.
    pub fn text(&self) -> String {
        let mut head: Vec<String> = self.orders.iter().map(order_text).collect();
        if head.is_empty() {
            let what = self.subject.clone().unwrap_or_default();
            head.push(match self.kind {
                EventKind::Rejected
                | EventKind::Invalid
                | EventKind::Failed
                | EventKind::Unknown
                | EventKind::Filled
                | EventKind::Placed => {
                    let what = if what.is_empty() {
                        "alert".to_owned()
                    } else {
                        what
                    };
                    match &self.reason {
                        Some(r) => format!("{what} {}: {r}", self.kind),
                        None => format!("{what} {}", self.kind),
                    }
                }
                EventKind::KillSwitch => format!("kill switch {what}"),
                _ => match &self.reason {
                    Some(r) => format!("{} {what}: {r}", self.kind),
                    None => format!("{} {what}", self.kind),
                },
            });
        } else if let (Some(reason), EventKind::Rejected | EventKind::Failed | EventKind::Unknown) =
            (&self.reason, self.kind)
        {
            if !self.orders.iter().any(|o| o.error.is_some()) {
                head.push(format!("{}: {reason}", self.kind));
            }
        }
        let mut parts = vec![head.join("; ")];
        parts.extend(
            [&self.venue, &self.account, &self.strategy, &self.message_id]
                .into_iter()
                .flatten()
                .cloned(),
        );
        parts.join(" · ")
    }
}

fn order_text(o: &EventOrder) -> String {
    let side = match o.side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    };
    let what = match o.status {
        OrderState::Filled => match o.average_price {
            Some(p) => format!("filled at {p}"),
            None => "filled".to_owned(),
        },
        OrderState::PartiallyFilled => match o.average_price {
            Some(p) => format!("partly filled ({}) at {p}", o.filled_quantity),
            None => format!("partly filled ({})", o.filled_quantity),
        },
        OrderState::Failed => match &o.error {
            Some(e) => format!("failed: {e}"),
            None => "failed".to_owned(),
        },
        OrderState::Unknown => "unknown (the venue did not confirm)".to_owned(),
        other => other.as_str().replace('_', " "),
    };
    format!("{side} {} {} {what}", o.quantity, o.symbol)
}

/// A string (or number) field of the alert, first alias that is set.
fn text_field(alert: &serde_json::Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match alert.get(*n)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.chars().take(64).collect()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// `BUY 0.01 BTCUSDT` as the alert asked (best effort: for alerts refused before any order).
fn alert_subject(alert: &serde_json::Value) -> Option<String> {
    let action = text_field(alert, &["action", "side", "signal", "transactionType"])
        .map(|a| a.to_uppercase());
    let qty = text_field(alert, &["quantity", "size", "qty", "stake", "contracts"]);
    let symbol = text_field(alert, &["symbol", "ticker"]);
    let words: Vec<String> = [action, qty, symbol].into_iter().flatten().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::OrderRecord;
    use crate::order::{OrderType, TimeInForce};

    fn message(outcome: Outcome, orders: Vec<OrderRecord>, reason: Option<&str>) -> MessageRecord {
        MessageRecord {
            id: "msg_01".into(),
            account: Some("main".into()),
            idempotency_key: None,
            received_at_ms: Some(1),
            recorded_at_ms: 1,
            updated_at_ms: 1,
            outcome,
            reason: reason.map(Into::into),
            envelope: br#"{"alert":{"strategy":"sma-cross","action":"buy","quantity":"0.01","symbol":"BTCUSDT"}}"#.to_vec(),
            finished_by: None,
            orders,
        }
    }

    fn order(status: OrderState) -> OrderRecord {
        OrderRecord {
            client_order_id: "msg_01-0".into(),
            message_id: "msg_01".into(),
            leg: 0,
            account: "main".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            quantity: Decimal::new(10, 3),
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: None,
            product: None,
            status,
            venue: "paper".into(),
            venue_order_id: None,
            filled_quantity: Decimal::new(10, 3),
            average_price: Some(Decimal::new(4200000, 2)),
            error: None,
            sizing: None,
            waits_for_fill: false,
            exits: Default::default(),
            parent: None,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn a_fill_reads_at_a_glance() {
        let e = NotifyEvent::for_outcome(
            &message(Outcome::Filled, vec![order(OrderState::Filled)], None),
            5,
        )
        .unwrap();
        assert_eq!(
            e.text(),
            "BUY 0.01 BTCUSDT filled at 42000 · paper · main · sma-cross · msg_01"
        );
        assert_eq!(e.kind, EventKind::Filled);
        assert!(e.id.starts_with("evt_"));
    }

    #[test]
    fn a_rejection_before_any_order_names_what_the_alert_asked_and_the_gate() {
        let e =
            NotifyEvent::for_outcome(&message(Outcome::Rejected, vec![], Some("max_quantity")), 5)
                .unwrap();
        assert_eq!(
            e.text(),
            "BUY 0.01 BTCUSDT rejected: max_quantity · main · sma-cross · msg_01"
        );
    }

    #[test]
    fn expired_and_duplicate_messages_make_no_event_and_names_round_trip() {
        assert!(NotifyEvent::for_outcome(&message(Outcome::Duplicate, vec![], None), 5).is_none());
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
