//! Normalization cost per alert format (it runs once per alert, on the request path).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;

use alertgate_receiver::normalize::{normalize, NormalizeContext};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{Map, Value};

const FORMATS: &[(&str, &str)] = &[
    (
        "native",
        r#"{"account":"main","id":"42-2026-11-23T06:30:00Z","strategy":"sma-cross",
            "symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"0.01","order_type":"limit",
            "limit_price":"42000","stop_price":null,"tif":"gtc","price":"42011.5",
            "sent_at":"2026-11-23T06:30:00Z","comment":"golden cross"}"#,
    ),
    (
        "aliases",
        r#"{"fund_id":"fund-7","strategy_id":"mean-rev","idempotency_key":"abc-123",
            "exchange":"NASDAQ","symbol":"AAPL","side":"BACK","stake":2.5,"type":"LMT",
            "limit_price":189.25}"#,
    ),
    (
        "native_legs",
        r#"{"id":"pair-1","symbol":"BINANCE:BTCUSDT","tif":"ioc","price":"42000","legs":[
            {"action":"buy","quantity":"0.1"},
            {"symbol":"BINANCE:ETHUSDT","action":"sell","quantity":"2","order_type":"limit","limit_price":"3000"},
            {"symbol":"BINANCE_DL:BTCUSDT","action":"close"}]}"#,
    ),
    (
        "order_legs",
        r#"{"alertType":"multi_leg_order","order_legs":[
            {"transactionType":"S","orderType":"LMT","quantity":"5","exchange":"NSE","symbol":"TCS",
             "instrument":"EQ","productType":"C","sort_order":"3","price":"4100.5","meta":{"interval":"1D"}},
            {"transactionType":"B","orderType":"MKT","quantity":"10","exchange":"NSE","symbol":"RELIANCE",
             "instrument":"EQ","productType":"C","sort_order":"1","price":"2820.25","meta":{"interval":"1D"}},
            {"transactionType":"B","orderType":"SL-M","quantity":"1","exchange":"NSE","symbol":"INFY",
             "sort_order":"2","triggerPrice":"1500","price":"0"}]}"#,
    ),
];

fn bench_formats(c: &mut Criterion) {
    let symbols: BTreeMap<String, String> = [
        ("BINANCE:BTCUSDT", "BTCUSDT"),
        ("NSE:RELIANCE", "RELIANCE-EQ"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let ctx = NormalizeContext {
        symbols: &symbols,
        perpetuals: alertgate_receiver::normalize::Perpetuals::Refused,
        exchange_in_symbol: false,
        allow_short: true,
        exits: alertgate_receiver::order::ExitSupport::Orders,
    };
    let mut group = c.benchmark_group("normalize");
    for (name, text) in FORMATS {
        let alert: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert!(normalize(&alert, &ctx).is_ok(), "{name}");
        group.bench_function(*name, |b| b.iter(|| normalize(black_box(&alert), &ctx)));
    }
    group.finish();
}

criterion_group!(benches, bench_formats);
criterion_main!(benches);
