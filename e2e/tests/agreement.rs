//! The relay and the receiver agree on every alert's idempotency key (one rule, one place:
//! `shared/src/idempotency.rs`): whatever key the relay accepts with a 200 is the key the receiver
//! journals, and whatever the receiver would refuse for the key the relay refuses first with a
//! 400 naming the field. Both sides' own code paths are driven: the relay's body parser and key
//! check, the envelope it forwards, and the receiver's normalization.

use std::collections::BTreeMap;

use alertgate_receiver::normalize::{normalize, NormalizeContext};
use alertgate_relay::error::ApiError;
use alertgate_relay::routes::{idempotency_key, parse_alert};
use alertgate_shared::idempotency::KEY_FIELDS;
use alertgate_shared::Envelope;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// A value a user's template might put in a key field.
fn key_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        Just(json!("   ")),
        "[a-zA-Z0-9_-]{1,20}".prop_map(Value::from),
        // Around the length limit, with multi-byte characters and padding.
        (120usize..140, prop::bool::ANY).prop_map(|(n, wide)| {
            let c = if wide { "é" } else { "k" };
            Value::from(c.repeat(n))
        }),
        (" ?[a-z]{1,8} ?").prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        any::<bool>().prop_map(Value::from),
        Just(json!(["a"])),
        Just(json!({"a": 1})),
    ]
}

/// An otherwise valid native alert with any combination of the four key fields.
fn alert() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(prop::option::of(key_value()), KEY_FIELDS.len()).prop_map(|values| {
        let mut alert = Map::new();
        alert.insert("secret".into(), json!("s3cret"));
        alert.insert("symbol".into(), json!("BINANCE:BTCUSDT"));
        alert.insert("action".into(), json!("buy"));
        alert.insert("quantity".into(), json!("0.01"));
        alert.insert("price".into(), json!("42000"));
        for (field, value) in KEY_FIELDS.iter().zip(values) {
            if let Some(value) = value {
                alert.insert((*field).to_owned(), value);
            }
        }
        alert
    })
}

/// What the receiver makes of the alert the relay forwarded.
fn receiver_key(forwarded: &Map<String, Value>) -> Result<Option<String>, String> {
    let symbols = BTreeMap::new();
    let ctx = NormalizeContext {
        symbols: &symbols,
        perpetuals: alertgate_receiver::normalize::Perpetuals::Refused,
        exchange_in_symbol: false,
        allow_short: true,
        exits: alertgate_receiver::order::ExitSupport::Orders,
    };
    normalize(forwarded, &ctx)
        .map(|n| n.idempotency_key)
        .map_err(|e| e.field)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_relay_and_the_receiver_agree_on_every_alerts_idempotency_key(alert in alert()) {
        let body = serde_json::to_vec(&alert).expect("serializable");
        let parsed = parse_alert(&body).expect("a JSON object");
        match idempotency_key(&parsed) {
            Ok(key) => {
                // Accepted: forwarded in an envelope, the receiver sees the same key.
                let envelope = Envelope::new(
                    "main",
                    time::OffsetDateTime::UNIX_EPOCH,
                    [52, 89, 214, 238].into(),
                    parsed,
                );
                let forwarded = Envelope::from_slice(&envelope.to_bytes()).expect("round trip");
                prop_assert_eq!(receiver_key(&forwarded.alert), Ok(key));
            }
            Err(ApiError::InvalidJson(message)) => {
                // Refused with a 400 naming the field; the receiver would have refused it too.
                let field = receiver_key(&parsed).expect_err("the receiver refuses it too");
                prop_assert!(
                    KEY_FIELDS.iter().any(|f| field.contains(f)),
                    "receiver blamed {field}"
                );
                prop_assert!(message.starts_with(&field), "{message} vs {field}");
            }
            Err(other) => prop_assert!(false, "unexpected relay answer {other:?}"),
        }
    }
}
