//! Alert normalization, every format (native, aliases, `legs`, `order_legs`): arbitrary JSON never
//! panics; whatever is accepted is a well-formed order list; whatever is refused names a field.
#![no_main]

use std::collections::BTreeMap;

use alertgate_receiver::normalize::{
    normalize, symbol::MAX_SYMBOL_LEN, NormalizeContext, MAX_LEGS,
};
use alertgate_receiver::order::OrderType;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Some((flags, json)) = data.split_first() else {
        return;
    };
    let Ok(alert) = serde_json::from_slice::<Map<String, Value>>(json) else {
        return;
    };
    let symbols: BTreeMap<String, String> =
        [("BINANCE:BTCUSDT", "BTCUSDT"), ("NSE:RELIANCE", "RELIANCE")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let ctx = NormalizeContext {
        symbols: &symbols,
        perpetuals: if flags & 1 == 1 { alertgate_receiver::normalize::Perpetuals::Refused } else { alertgate_receiver::normalize::Perpetuals::AsSent },
        exchange_in_symbol: false,
        allow_short: flags & 2 == 0,
    };
    let first = normalize(&alert, &ctx);
    assert_eq!(
        first,
        normalize(&alert, &ctx),
        "normalization is not deterministic"
    );
    match first {
        Err(invalid) => assert!(
            !invalid.field.is_empty(),
            "an invalid outcome must name the field"
        ),
        Ok(n) => {
            assert!(
                !n.legs.is_empty() && n.legs.len() <= MAX_LEGS,
                "{} legs",
                n.legs.len()
            );
            for leg in &n.legs {
                assert!(!leg.symbol.is_empty() && leg.symbol.chars().count() <= MAX_SYMBOL_LEN);
                if !leg.action.is_close() {
                    assert!(leg.quantity.is_some(), "buy/sell without a quantity");
                }
                let needs_limit = matches!(leg.order_type, OrderType::Limit | OrderType::StopLimit);
                let needs_stop = matches!(leg.order_type, OrderType::Stop | OrderType::StopLimit);
                assert_eq!(leg.limit_price.is_some(), needs_limit, "{leg:?}");
                assert_eq!(leg.stop_price.is_some(), needs_stop, "{leg:?}");
                if ctx.perpetuals == alertgate_receiver::normalize::Perpetuals::Refused {
                    let upper = leg.symbol.to_ascii_uppercase();
                    assert!(
                        !upper.ends_with(".P") && !upper.ends_with("PERP"),
                        "{leg:?}"
                    );
                }
                // Legs are journaled as JSON: the decimals must survive the round trip exactly.
                let text = serde_json::to_string(leg).expect("a leg serializes");
                let back: alertgate_receiver::normalize::Leg =
                    serde_json::from_str(&text).expect("a serialized leg parses");
                assert_eq!(&back, leg);
            }
        }
    }
});
