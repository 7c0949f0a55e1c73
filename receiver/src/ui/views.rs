//! What the dashboard shows, as JSON its script renders with `textContent` (never as HTML): a
//! timeline row per message and a message's detail. Alert text stays data all the way.

use serde_json::{json, Map, Value};

use crate::ingest::Interpreter;
use crate::journal::MessageRecord;
use crate::normalize::{normalize, NormalizeContext};
use crate::routes::{message_json, order_json};

/// What the journal keeps of each venue exchange, said on the detail page.
pub const VENUE_NOTE: &str = "The journal keeps each order as sent (client order id, side, \
     quantity, type, prices, time in force) and the venue's last answer (status, venue order id, \
     filled quantity, average price, error); raw venue HTTP requests and bodies are not kept.";

/// `value` as JSON with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026` (they only occur
/// inside strings): the same data for `JSON.parse`, and no alert markup in any byte the server
/// sends, even if a browser were to sniff a response as HTML.
pub fn safe_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Timeline filters (`?account=&strategy=&symbol=&outcome=`); empty values are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Envelope account, exact.
    pub account: Option<String>,
    /// Alert strategy, exact.
    pub strategy: Option<String>,
    /// TradingView or venue symbol, case-insensitive.
    pub symbol: Option<String>,
    /// Outcome name, exact.
    pub outcome: Option<String>,
}

impl Filters {
    /// Reads the query string's filters.
    pub fn from_query(q: &std::collections::HashMap<String, String>) -> Self {
        let get = |k: &str| {
            q.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            account: get("account"),
            strategy: get("strategy"),
            symbol: get("symbol"),
            outcome: get("outcome"),
        }
    }

    /// `true` when `row` (a [`timeline_row`]) passes every filter.
    pub fn admits(&self, row: &Value) -> bool {
        let is = |field: &str, want: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| row[field].as_str() == Some(w.as_str()))
        };
        let symbol_ok = self.symbol.as_ref().is_none_or(|w| {
            row["symbols"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(w)))
            })
        });
        is("account", &self.account)
            && is("strategy", &self.strategy)
            && is("outcome", &self.outcome)
            && symbol_ok
    }
}

/// The alert object of a journaled envelope, without any `secret` field (the relay already
/// drops it; this keeps it out of pages even for envelopes journaled otherwise).
pub fn alert_of(m: &MessageRecord) -> Map<String, Value> {
    let mut alert = serde_json::from_slice::<Value>(&m.envelope)
        .ok()
        .and_then(|v| v.get("alert").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    alert.shift_remove(alertgate_shared::envelope::SECRET_FIELD);
    alert
}

fn text(alert: &Map<String, Value>, names: &[&str]) -> Value {
    names
        .iter()
        .find_map(|n| alert.get(*n))
        .map_or(Value::Null, |v| match v {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        })
}

fn context(i: &Interpreter) -> NormalizeContext<'_> {
    i.context()
}

/// One timeline row: the alert at a glance, its outcome, its orders.
pub fn timeline_row(m: &MessageRecord, interpreter: &Interpreter) -> Value {
    let alert = alert_of(m);
    let normalized = normalize(&alert, &context(interpreter)).ok();
    let mut symbols: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !symbols.iter().any(|x| x == s) {
            symbols.push(s.to_owned());
        }
    };
    if let Some(n) = &normalized {
        for leg in &n.legs {
            push(&leg.tv_symbol);
            push(&leg.symbol);
        }
    }
    if let Value::String(s) = text(&alert, &["symbol", "ticker"]) {
        push(&s);
    }
    for o in &m.orders {
        push(&o.symbol);
    }
    let strategy = normalized
        .as_ref()
        .and_then(|n| n.strategy.clone())
        .map_or_else(|| text(&alert, &["strategy", "strategy_id"]), Value::String);
    let full = message_json(m);
    json!({
        "id": m.id,
        "recorded_at": full["recorded_at"],
        "updated_at": full["updated_at"],
        "account": m.account,
        "strategy": strategy,
        "symbols": symbols,
        "action": text(&alert, &["action", "side", "signal", "alertType"]),
        "comment": text(&alert, &["comment"]),
        "outcome": m.outcome.as_str(),
        "reason": m.reason,
        "orders": full["orders"],
    })
}

/// A message's detail: the alert without its secret, the normalized legs (or why it has none),
/// the risk decision and the orders with the venue's answers.
pub fn detail(m: &MessageRecord, interpreter: &Interpreter) -> Value {
    let alert = alert_of(m);
    let envelope = serde_json::from_slice::<Value>(&m.envelope).unwrap_or(Value::Null);
    let normalized = match normalize(&alert, &context(interpreter)) {
        Ok(n) => json!({ "strategy": n.strategy, "legs": n.legs }),
        Err(e) => json!({ "invalid": e.to_string() }),
    };
    let decision = match m.outcome.as_str() {
        "rejected" => "refused by a risk gate",
        "invalid" => "not an order the receiver understands",
        "expired" => "too old when it arrived",
        "duplicate" => "already seen (same id or idempotency key)",
        "pending" => "passed the gates; executing",
        _ => "passed the gates",
    };
    json!({
        "row": timeline_row(m, interpreter),
        "received_at": message_json(m)["received_at"],
        "source_ip": envelope["source_ip"],
        "idempotency_key": m.idempotency_key,
        "alert": alert,
        "normalized": normalized,
        "risk": { "outcome": m.outcome.as_str(), "decision": decision, "reason": m.reason },
        "orders": m.orders.iter().map(order_json).collect::<Vec<_>>(),
        "venue_note": VENUE_NOTE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_json_is_the_same_data_without_markup_characters() {
        let v = json!({"comment": "<img src=x onerror=alert(1)> & co"});
        let text = safe_json(&v);
        assert!(
            !text.contains('<') && !text.contains('>') && !text.contains('&'),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }
}
