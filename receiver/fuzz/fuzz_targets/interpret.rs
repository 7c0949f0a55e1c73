//! What the receiver does with a verified body: envelope parsing, the age check and normalization
//! together. Arbitrary bytes (as a compromised relay could sign) never panic, and an expired or
//! unreadable message never turns into orders.
#![no_main]

use std::collections::BTreeMap;

use alertgate_receiver::ingest::{Interpreter, Verdict};
use libfuzzer_sys::fuzz_target;

/// 2026-11-23T00:00:00Z in unix ms.
const NOW_MS: i64 = 1_795_392_000_000;

fuzz_target!(|data: &[u8]| {
    let interpreter = Interpreter::single(
        alertgate_receiver::routing::Route {
            name: "paper".into(),
            exchanges: Vec::new(),
            accounts: Vec::new(),
            symbols: BTreeMap::from([("BINANCE:BTCUSDT".to_owned(), "BTCUSDT".to_owned())]),
            perpetuals: alertgate_receiver::normalize::Perpetuals::Refused,
            exchange_in_symbol: false,
            allow_short: true,
            exits: alertgate_receiver::order::ExitSupport::Orders,
        },
        120_000,
    );
    let reading = interpreter.interpret(data, NOW_MS);
    assert_eq!(reading, interpreter.interpret(data, NOW_MS));
    if let Verdict::Execute(routed) = &reading.verdict {
        assert!(!routed.legs.is_empty());
        let received = reading
            .received_at_ms
            .expect("an executable message has a receipt time");
        assert!(
            NOW_MS - received <= 120_000,
            "an expired message would execute"
        );
        assert!(reading.account.is_some());
    }
});
