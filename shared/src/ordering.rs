//! The ordering rule: which alerts of an account must reach the receiver one after another.
//!
//! The receiver executes the orders of one (account, symbol) one at a time, in the order their
//! alerts arrive (DESIGN.md section 3, step 6). For that to be the order in which the relay
//! *accepted* them, the relay delivers an alert only once every earlier alert it shares a key with
//! is delivered or dead-lettered; alerts without a common key go out concurrently.
//!
//! An alert's keys are the tickers it names, at the top level and in each of its `legs` /
//! `order_legs`, reduced so that every spelling the receiver can map to one venue symbol gives one
//! key: the exchange prefix is dropped (`BINANCE_DL:BTCUSDT` and `BTCUSDT` are one key) and case is
//! folded. Coarser than the receiver's (account, venue symbol) on purpose: two keys that the
//! receiver keeps apart only cost concurrency, while one symbol under two keys would lose order.
//! What the relay cannot see is the receiver's `[symbols]` table: two different tickers mapped to
//! one venue symbol there are not ordered against each other (README, "Ordering").
//!
//! An alert that names no ticker cannot place an order (the receiver refuses it as `invalid`), so
//! its order does not matter: it has no key and waits for nothing.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The fields that carry an alert's or a leg's symbol, in the receiver's order of preference.
pub const SYMBOL_FIELDS: &[&str] = &["symbol", "ticker"];

/// The field of the native multi-leg format: a list of leg objects.
pub const LEGS_FIELD: &str = "legs";

/// The field of the `alertType`/`order_legs` multi-leg format: a list of leg objects.
pub const ORDER_LEGS_FIELD: &str = "order_legs";

/// The most legs one alert may carry; the receiver refuses more as `invalid`.
pub const MAX_LEGS: usize = 20;

/// The tickers `alert` (the JSON object TradingView sent) is ordered by: reduced (`BTCUSDT`),
/// sorted, without repeats. Empty when it names none, and when it names more than one alert can
/// trade (more than [`MAX_LEGS`] legs and a top-level symbol): the receiver refuses such an alert,
/// so it has no order to keep, and its keys stay bounded whatever its size.
pub fn order_keys(alert: &Map<String, Value>) -> BTreeSet<String> {
    let mut tickers = BTreeSet::new();
    collect(alert, &mut tickers);
    for list in [LEGS_FIELD, ORDER_LEGS_FIELD] {
        if let Some(Value::Array(legs)) = alert.get(list) {
            for leg in legs {
                if let Value::Object(leg) = leg {
                    collect(leg, &mut tickers);
                }
                if tickers.len() > MAX_LEGS + 1 {
                    return BTreeSet::new();
                }
            }
        }
    }
    tickers
}

fn collect(obj: &Map<String, Value>, into: &mut BTreeSet<String>) {
    for field in SYMBOL_FIELDS {
        let text = match obj.get(*field) {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if let Some(key) = reduce(&text) {
            into.insert(key);
        }
    }
}

/// `BINANCE_DL:btcusdt` → `BTCUSDT`; `None` for blank text.
fn reduce(symbol: &str) -> Option<String> {
    let ticker = symbol.rsplit(':').next().unwrap_or(symbol).trim();
    (!ticker.is_empty()).then(|| ticker.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickers(json: &str) -> Vec<String> {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
            panic!("not an object: {json}");
        };
        order_keys(&map).into_iter().collect()
    }

    #[test]
    fn every_spelling_of_one_ticker_is_one_key() {
        for json in [
            r#"{"ticker":"BTCUSDT"}"#,
            r#"{"symbol":"BINANCE:BTCUSDT"}"#,
            r#"{"symbol":"BINANCE_DL:btcusdt"}"#,
            r#"{"symbol":" BTCUSDT ","exchange":"BINANCE"}"#,
        ] {
            assert_eq!(tickers(json), ["BTCUSDT"], "{json}");
        }
    }

    #[test]
    fn a_multi_leg_alert_is_ordered_by_each_ticker_it_names() {
        assert_eq!(
            tickers(
                r#"{"symbol":"SPY","legs":[{"action":"buy"},{"symbol":"NASDAQ:QQQ"},{"ticker":"spy"}]}"#
            ),
            ["QQQ", "SPY"]
        );
        assert_eq!(
            tickers(
                r#"{"alertType":"multi_leg_order","order_legs":[{"symbol":"NSE:RELIANCE"},{"symbol":"INFY","exchange":"NSE"}]}"#
            ),
            ["INFY", "RELIANCE"]
        );
    }

    #[test]
    fn an_alert_without_a_ticker_has_no_key() {
        for json in [
            r#"{"action":"buy"}"#,
            r#"{"symbol":"  "}"#,
            r#"{"symbol":["x"]}"#,
            r#"{"legs":"x"}"#,
        ] {
            assert!(tickers(json).is_empty(), "{json}");
        }
    }

    #[test]
    fn an_alert_with_more_legs_than_the_receiver_takes_has_no_key() {
        let legs = |n: usize| {
            let legs: Vec<String> = (0..n).map(|i| format!(r#"{{"symbol":"S{i}"}}"#)).collect();
            format!(r#"{{"symbol":"TOP","legs":[{}]}}"#, legs.join(","))
        };
        assert_eq!(tickers(&legs(MAX_LEGS)).len(), MAX_LEGS + 1);
        assert!(tickers(&legs(MAX_LEGS + 1)).is_empty());
    }
}
