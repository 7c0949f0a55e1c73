//! Inputs for the fuzz targets in `receiver/fuzz` (found crashes and the invariants they check),
//! replayed through the same public functions so a regression fails `cargo test`.

use std::collections::BTreeMap;

use alertgate_receiver::ingest::{Interpreter, Verdict};
use alertgate_receiver::normalize::{normalize, NormalizeContext};
use serde_json::{Map, Value};

fn normalize_checks(json: &str) {
    let Ok(alert) = serde_json::from_str::<Map<String, Value>>(json) else {
        return;
    };
    let symbols = BTreeMap::from([("BINANCE:BTCUSDT".to_owned(), "BTCUSDT".to_owned())]);
    for refuse_perpetuals in [false, true] {
        let ctx = NormalizeContext {
            symbols: &symbols,
            perpetuals: if refuse_perpetuals {
                alertgate_receiver::normalize::Perpetuals::Refused
            } else {
                alertgate_receiver::normalize::Perpetuals::AsSent
            },
            exchange_in_symbol: false,
            allow_short: !refuse_perpetuals,
            exits: alertgate_receiver::order::ExitSupport::Orders,
        };
        match normalize(&alert, &ctx) {
            Err(invalid) => assert!(!invalid.field.is_empty()),
            Ok(n) => {
                assert!(!n.legs.is_empty());
                for leg in &n.legs {
                    let text = serde_json::to_string(leg).unwrap();
                    let back: alertgate_receiver::normalize::Leg =
                        serde_json::from_str(&text).unwrap();
                    assert_eq!(&back, leg);
                }
            }
        }
    }
}

#[test]
fn seed_alerts_of_the_normalize_target_keep_their_invariants() {
    for alert in [
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"0.0000000001","price":"1"}"#,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":1e-10,"order_type":"limit","limit_price":"79228162514264337593543950335"}"#,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"79228162514264337593543950336"}"#,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"0.00000000000000000000000000001"}"#,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"1e-28"}"#,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"1e28"}"#,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"9e999999999999999999"}"#,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"1e-999999999999999999"}"#,
        r#"{"symbol":"BTCUSDT.P","action":"buy","quantity":"1"}"#,
        r#"{"alertType":"multi_leg_order","order_legs":[{"transactionType":"B","orderType":"MKT","quantity":"10","exchange":"NSE","symbol":"RELIANCE","sort_order":"99999999999999999999"}]}"#,
        r#"{"legs":[]}"#,
        r#"{"legs":[{}],"symbol":"AAPL"}"#,
    ] {
        normalize_checks(alert);
    }
}

#[test]
fn the_interpreter_never_executes_an_unreadable_or_expired_envelope() {
    let interpreter = Interpreter::single(
        alertgate_receiver::routing::Route {
            name: "paper".into(),
            exchanges: Vec::new(),
            accounts: Vec::new(),
            symbols: BTreeMap::new(),
            perpetuals: alertgate_receiver::normalize::Perpetuals::Refused,
            exchange_in_symbol: false,
            allow_short: true,
            exits: alertgate_receiver::order::ExitSupport::Orders,
        },
        120_000,
    );
    let now_ms = 1_795_392_000_000;
    for body in [
        &b""[..],
        b"{}",
        b"\xff",
        br#"{"type":"tradingview.alert","account":"main","received_at":"1970-01-01T00:00:00Z","source_ip":"1.2.3.4","alert":{"symbol":"AAPL","action":"buy","quantity":"1"}}"#,
        br#"{"type":"tradingview.alert","account":"main","received_at":"9999-12-31T23:59:59Z","source_ip":"1.2.3.4","alert":{"symbol":"AAPL","action":"buy","quantity":"1"}}"#,
    ] {
        let reading = interpreter.interpret(body, now_ms);
        if let Verdict::Execute(..) = reading.verdict {
            let received = reading.received_at_ms.unwrap();
            assert!(now_ms - received <= 120_000, "{}", String::from_utf8_lossy(body));
        }
    }
}
