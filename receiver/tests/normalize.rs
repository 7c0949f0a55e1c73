//! Alert normalization, as the user's alert templates see it: every format and alias becomes the
//! exact order it means, and every broken field is named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::str::FromStr;

use alertgate_receiver::normalize::{
    normalize, Action, Invalid, Leg, NormalizeContext, NormalizedAlert, Sizing, MAX_LEGS,
};
use alertgate_receiver::order::{OrderType, Positive, Product, TimeInForce};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

fn table() -> BTreeMap<String, String> {
    [
        ("BINANCE:BTCUSDT", "BTCUSDT"),
        ("BINANCE:ETHUSDT", "ETHUSDT"),
        ("NSE:RELIANCE", "RELIANCE-EQ"),
        ("BYBIT:SOLUSDT.P", "SOLUSDT"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn object(alert: Value) -> Map<String, Value> {
    match alert {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Parses JSON text, so numbers arrive exactly as serde_json holds them in the receiver.
fn text(alert: &str) -> Map<String, Value> {
    serde_json::from_str(alert).unwrap()
}

fn run_map(
    alert: &Map<String, Value>,
    refuse_perpetuals: bool,
) -> Result<NormalizedAlert, Invalid> {
    let symbols = table();
    normalize(
        alert,
        &NormalizeContext {
            symbols: &symbols,
            perpetuals: if refuse_perpetuals {
                alertgate_receiver::normalize::Perpetuals::Refused
            } else {
                alertgate_receiver::normalize::Perpetuals::AsSent
            },
            exchange_in_symbol: false,
            allow_short: !refuse_perpetuals,
            exits: alertgate_receiver::order::ExitSupport::Orders,
        },
    )
}

fn ok(alert: Value) -> NormalizedAlert {
    run_map(&object(alert), true).unwrap()
}

fn single(alert: Value) -> Leg {
    let mut alert = ok(alert);
    assert_eq!(alert.legs.len(), 1);
    alert.legs.remove(0)
}

fn invalid(alert: Value) -> Invalid {
    run_map(&object(alert), true).unwrap_err()
}

fn field_of(alert: Value) -> String {
    invalid(alert).field
}

fn p(s: &str) -> Option<Positive> {
    Some(s.parse().unwrap())
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A market GTC leg without prices; tests change what they expect with `..market(...)`.
fn market(tv: &str, symbol: &str, action: Action, quantity: Option<&str>) -> Leg {
    Leg {
        tv_symbol: tv.to_owned(),
        symbol: symbol.to_owned(),
        action,
        quantity: quantity.and_then(p),
        sizing: Sizing::Quantity,
        target_position: None,
        order_type: OrderType::Market,
        limit_price: None,
        stop_price: None,
        tif: TimeInForce::Gtc,
        reference_price: None,
        product: None,
        exits: Default::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Formats and aliases
// ---------------------------------------------------------------------------------------------

#[test]
fn the_native_format_becomes_one_exact_limit_order() {
    let alert = ok(json!({
        "secret": "s3cret", "account": "main", "id": "42-2026-11-23T06:30:00Z", "strategy": "sma-cross",
        "symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "0.01", "order_type": "limit",
        "limit_price": "42000", "stop_price": null, "tif": "gtc", "price": "42011.5",
        "sent_at": "2026-11-23T06:30:00Z", "comment": "golden cross"
    }));
    assert_eq!(
        alert,
        NormalizedAlert {
            account: Some("main".into()),
            idempotency_key: Some("42-2026-11-23T06:30:00Z".into()),
            strategy: Some("sma-cross".into()),
            // 2026-11-23T06:30:00Z
            sent_at_ms: Some(1_795_415_400_000),
            legs: vec![Leg {
                order_type: OrderType::Limit,
                limit_price: p("42000"),
                reference_price: p("42011.5"),
                product: None,
                ..market("BINANCE:BTCUSDT", "BTCUSDT", Action::Buy, Some("0.01"))
            }],
        }
    );
    assert_eq!(alert.legs[0].quantity.unwrap().get(), dec("0.01"));
}

#[test]
fn a_simple_tradingview_buy_with_unquoted_numbers_is_a_market_gtc_order() {
    let alert = run_map(
        &text(r#"{"symbol":"NASDAQ:AAPL","action":"buy","quantity":10,"price":189.25}"#),
        true,
    )
    .unwrap();
    assert_eq!(
        alert.legs,
        vec![Leg {
            reference_price: p("189.25"),
            product: None,
            ..market("NASDAQ:AAPL", "AAPL", Action::Buy, Some("10"))
        }]
    );
    assert_eq!(alert.account, None);
    assert_eq!(alert.idempotency_key, None);
    assert_eq!(alert.strategy, None);
}

#[test]
fn a_strategy_alert_with_order_action_and_contracts_placeholders_is_understood() {
    let leg = single(json!({
        "symbol": "BINANCE:ETHUSDT", "action": "sell", "contracts": "0.5", "price": "3012.7",
        "id": "Long Exit-2026-11-23T06:30:00Z"
    }));
    assert_eq!(
        leg,
        Leg {
            reference_price: p("3012.7"),
            product: None,
            ..market("BINANCE:ETHUSDT", "ETHUSDT", Action::Sell, Some("0.5"))
        }
    );
}

#[test]
fn side_and_signal_are_aliases_for_action_in_any_case() {
    let sell = single(json!({"symbol": "AAPL", "side": "SELL", "quantity": "3"}));
    assert_eq!(sell, market("AAPL", "AAPL", Action::Sell, Some("3")));
    let buy = single(json!({"symbol": "AAPL", "signal": "Buy", "quantity": "3"}));
    assert_eq!(buy, market("AAPL", "AAPL", Action::Buy, Some("3")));
}

#[test]
fn b_and_s_are_buy_and_sell() {
    let buy = single(json!({"symbol": "AAPL", "action": "B", "quantity": "1"}));
    assert_eq!(buy, market("AAPL", "AAPL", Action::Buy, Some("1")));
    let sell = single(json!({"symbol": "AAPL", "action": "s", "quantity": "1"}));
    assert_eq!(sell, market("AAPL", "AAPL", Action::Sell, Some("1")));
}

#[test]
fn open_long_buys_and_open_short_sells() {
    let buy = single(json!({"symbol": "AAPL", "action": "open_long", "quantity": "1"}));
    assert_eq!(buy, market("AAPL", "AAPL", Action::Buy, Some("1")));
    let sell = single(json!({"symbol": "AAPL", "action": "OPEN_SHORT", "quantity": "1"}));
    assert_eq!(sell, market("AAPL", "AAPL", Action::Sell, Some("1")));
}

#[test]
fn back_and_lay_with_a_stake_are_a_buy_and_a_sell() {
    let back = single(json!({"symbol": "BINANCE:BTCUSDT", "side": "BACK", "stake": "2.50"}));
    assert_eq!(
        back,
        market("BINANCE:BTCUSDT", "BTCUSDT", Action::Buy, Some("2.5"))
    );
    let lay = single(json!({"symbol": "BINANCE:BTCUSDT", "side": "LAY", "stake": 2.5}));
    assert_eq!(
        lay,
        market("BINANCE:BTCUSDT", "BTCUSDT", Action::Sell, Some("2.5"))
    );
}

#[test]
fn size_qty_stake_and_contracts_are_aliases_for_quantity() {
    for alias in ["quantity", "size", "qty", "stake", "contracts"] {
        let leg = single(json!({"symbol": "AAPL", "action": "buy", alias: "7.25"}));
        assert_eq!(
            leg,
            market("AAPL", "AAPL", Action::Buy, Some("7.25")),
            "{alias}"
        );
    }
}

#[test]
fn type_and_order_type_aliases_accept_mkt_lmt_sl_and_sl_m() {
    let base = |extra: Value| {
        let mut alert = object(json!({"symbol": "AAPL", "action": "buy", "quantity": "1"}));
        alert.extend(object(extra));
        run_map(&alert, true).unwrap().legs.remove(0)
    };
    let m = base(json!({"type": "MKT"}));
    assert_eq!(m, market("AAPL", "AAPL", Action::Buy, Some("1")));

    let l = base(json!({"orderType": "LMT", "limit_price": "100.5"}));
    assert_eq!(
        l,
        Leg {
            order_type: OrderType::Limit,
            limit_price: p("100.5"),
            ..market("AAPL", "AAPL", Action::Buy, Some("1"))
        }
    );

    let sl_m = base(json!({"order_type": "SL-M", "stop_price": "95"}));
    assert_eq!(
        sl_m,
        Leg {
            order_type: OrderType::Stop,
            stop_price: p("95"),
            ..market("AAPL", "AAPL", Action::Buy, Some("1"))
        }
    );

    let sl = base(json!({"type": "sl", "limit_price": "96", "stop_price": "95"}));
    let stop_limit =
        base(json!({"order_type": "Stop_Limit", "limit_price": "96", "stop_price": "95"}));
    let expected = Leg {
        order_type: OrderType::StopLimit,
        limit_price: p("96"),
        stop_price: p("95"),
        ..market("AAPL", "AAPL", Action::Buy, Some("1"))
    };
    assert_eq!(sl, expected);
    assert_eq!(stop_limit, expected);

    let stop = base(json!({"order_type": "STOP", "stop_price": 95}));
    assert_eq!(stop.order_type, OrderType::Stop);
    assert_eq!(stop.stop_price, p("95"));
}

#[test]
fn time_in_force_is_case_insensitive_and_defaults_to_gtc() {
    for (tif, expected) in [
        ("GTC", TimeInForce::Gtc),
        ("Day", TimeInForce::Day),
        ("ioc", TimeInForce::Ioc),
        ("FOK", TimeInForce::Fok),
    ] {
        let leg = single(json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "tif": tif}));
        assert_eq!(leg.tif, expected, "{tif}");
    }
    let leg = single(json!({"symbol": "AAPL", "action": "buy", "quantity": "1"}));
    assert_eq!(leg.tif, TimeInForce::Gtc);
}

#[test]
fn the_fund_id_strategy_id_idempotency_key_format_fills_account_strategy_and_key() {
    let alert = ok(json!({
        "fund_id": "fund-7", "strategy_id": "mean-rev", "idempotency_key": "abc-123",
        "symbol": "NYSE:IBM", "side": "buy", "qty": "5", "price": "231.4"
    }));
    assert_eq!(alert.account.as_deref(), Some("fund-7"));
    assert_eq!(alert.strategy.as_deref(), Some("mean-rev"));
    assert_eq!(alert.idempotency_key.as_deref(), Some("abc-123"));
    assert_eq!(
        alert.legs,
        vec![Leg {
            reference_price: p("231.4"),
            product: None,
            ..market("NYSE:IBM", "IBM", Action::Buy, Some("5"))
        }]
    );
}

#[test]
fn client_ref_and_client_order_id_are_ids_and_numeric_ids_become_text() {
    let a = ok(json!({"client_ref": "r-1", "symbol": "AAPL", "action": "buy", "quantity": "1"}));
    assert_eq!(a.idempotency_key.as_deref(), Some("r-1"));
    let b =
        ok(json!({"client_order_id": "c-9", "symbol": "AAPL", "action": "buy", "quantity": "1"}));
    assert_eq!(b.idempotency_key.as_deref(), Some("c-9"));
    let c =
        ok(json!({"id": 12345, "account": 7, "symbol": "AAPL", "action": "buy", "quantity": "1"}));
    assert_eq!(c.idempotency_key.as_deref(), Some("12345"));
    assert_eq!(c.account.as_deref(), Some("7"));
}

#[test]
fn exchange_and_a_bare_symbol_make_exchange_colon_symbol() {
    let mapped = single(
        json!({"exchange": "BINANCE", "symbol": "BTCUSDT", "action": "buy", "quantity": "0.1"}),
    );
    assert_eq!(
        mapped,
        market("BINANCE:BTCUSDT", "BTCUSDT", Action::Buy, Some("0.1"))
    );
    let table =
        single(json!({"exchange": "NSE", "symbol": "RELIANCE", "action": "buy", "quantity": "3"}));
    assert_eq!(
        table,
        market("NSE:RELIANCE", "RELIANCE-EQ", Action::Buy, Some("3"))
    );
    let same = single(
        json!({"exchange": "NASDAQ", "symbol": "NASDAQ:AAPL", "action": "buy", "quantity": "1"}),
    );
    assert_eq!(same, market("NASDAQ:AAPL", "AAPL", Action::Buy, Some("1")));
}

#[test]
fn ticker_is_an_alias_for_symbol() {
    let leg =
        single(json!({"ticker": "AAPL", "exchange": "NASDAQ", "action": "buy", "quantity": "1"}));
    assert_eq!(leg, market("NASDAQ:AAPL", "AAPL", Action::Buy, Some("1")));
}

#[test]
fn delayed_feeds_are_stripped_and_usd_is_never_turned_into_usdt() {
    let dl = single(json!({"symbol": "BINANCE_DL:BTCUSDT", "action": "buy", "quantity": "1"}));
    assert_eq!(
        dl,
        market("BINANCE_DL:BTCUSDT", "BTCUSDT", Action::Buy, Some("1"))
    );
    let dly = single(json!({"symbol": "NASDAQ_DLY:MSFT", "action": "buy", "quantity": "1"}));
    assert_eq!(
        dly,
        market("NASDAQ_DLY:MSFT", "MSFT", Action::Buy, Some("1"))
    );
    let usd = single(json!({"symbol": "COINBASE:BTCUSD", "action": "buy", "quantity": "1"}));
    assert_eq!(
        usd,
        market("COINBASE:BTCUSD", "BTCUSD", Action::Buy, Some("1"))
    );
}

#[test]
fn perpetuals_pass_unchanged_when_the_venue_accepts_them_and_the_table_can_map_them() {
    let alert = object(json!({"symbol": "BINANCE:BTCUSDT.P", "action": "buy", "quantity": "1"}));
    let legs = run_map(&alert, false).unwrap().legs;
    assert_eq!(
        legs,
        vec![market(
            "BINANCE:BTCUSDT.P",
            "BTCUSDT.P",
            Action::Buy,
            Some("1")
        )]
    );
    let mapped = single(json!({"symbol": "BYBIT:SOLUSDT.P", "action": "buy", "quantity": "1"}));
    assert_eq!(
        mapped,
        market("BYBIT:SOLUSDT.P", "SOLUSDT", Action::Buy, Some("1"))
    );
}

#[test]
fn close_exit_flat_and_flatten_close_the_whole_position() {
    for word in ["close", "EXIT", "flat", "Flatten"] {
        let leg = single(json!({"symbol": "BINANCE:BTCUSDT", "action": word, "price": "42000"}));
        assert_eq!(
            leg,
            Leg {
                reference_price: p("42000"),
                product: None,
                ..market("BINANCE:BTCUSDT", "BTCUSDT", Action::Close, None)
            },
            "{word}"
        );
    }
}

#[test]
fn close_long_and_close_short_are_their_own_actions_and_may_carry_a_quantity() {
    let long = single(json!({"symbol": "AAPL", "action": "close_long"}));
    assert_eq!(long, market("AAPL", "AAPL", Action::CloseLong, None));
    let short = single(json!({"symbol": "AAPL", "action": "CLOSE_SHORT", "quantity": "2"}));
    assert_eq!(short, market("AAPL", "AAPL", Action::CloseShort, Some("2")));
}

#[test]
fn native_legs_run_in_order_and_inherit_symbol_tif_and_price_from_the_top_level() {
    let alert = ok(json!({
        "id": "pair-1", "symbol": "BINANCE:BTCUSDT", "tif": "ioc", "price": "42000",
        "legs": [
            {"action": "buy", "quantity": "0.1"},
            {"symbol": "BINANCE:ETHUSDT", "action": "sell", "quantity": "2", "order_type": "limit",
             "limit_price": "3000", "tif": "day"},
            {"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "0.1", "order_type": "limit",
             "limit_price": "43000"}
        ]
    }));
    assert_eq!(alert.idempotency_key.as_deref(), Some("pair-1"));
    assert_eq!(
        alert.legs,
        vec![
            Leg {
                tif: TimeInForce::Ioc,
                reference_price: p("42000"),
                product: None,
                ..market("BINANCE:BTCUSDT", "BTCUSDT", Action::Buy, Some("0.1"))
            },
            Leg {
                order_type: OrderType::Limit,
                limit_price: p("3000"),
                tif: TimeInForce::Day,
                ..market("BINANCE:ETHUSDT", "ETHUSDT", Action::Sell, Some("2"))
            },
            Leg {
                order_type: OrderType::Limit,
                limit_price: p("43000"),
                tif: TimeInForce::Ioc,
                reference_price: p("42000"),
                product: None,
                ..market("BINANCE:BTCUSDT", "BTCUSDT", Action::Sell, Some("0.1"))
            },
        ]
    );
}

#[test]
fn the_order_legs_format_runs_legs_in_numeric_sort_order_with_price_as_limit_or_reference() {
    let alert = ok(json!({
        "secret": "s", "alertType": "multi_leg_order",
        "order_legs": [
            {"transactionType": "S", "orderType": "LMT", "quantity": "5", "exchange": "NSE",
             "symbol": "TCS", "instrument": "EQ", "productType": "C", "sort_order": "10",
             "price": "4100.5", "meta": {"interval": "1D"}},
            {"transactionType": "B", "orderType": "MKT", "quantity": "10", "exchange": "NSE",
             "symbol": "RELIANCE", "instrument": "EQ", "productType": "C", "sort_order": "1",
             "price": "2820.25", "meta": {"interval": "1D", "time": "2026-11-23T06:30:00Z"}},
            {"transactionType": "B", "orderType": "SL-M", "quantity": 1, "exchange": "NSE",
             "symbol": "INFY", "sort_order": 2, "triggerPrice": "1500", "price": "0"}
        ]
    }));
    assert_eq!(
        alert.legs,
        vec![
            Leg {
                reference_price: p("2820.25"),
                product: Some(Product::Cnc),
                ..market("NSE:RELIANCE", "RELIANCE-EQ", Action::Buy, Some("10"))
            },
            Leg {
                order_type: OrderType::Stop,
                stop_price: p("1500"),
                ..market("NSE:INFY", "INFY", Action::Buy, Some("1"))
            },
            Leg {
                order_type: OrderType::Limit,
                limit_price: p("4100.5"),
                product: Some(Product::Cnc),
                ..market("NSE:TCS", "TCS", Action::Sell, Some("5"))
            },
        ]
    );
}

#[test]
fn order_legs_with_equal_or_no_sort_order_keep_the_order_they_were_sent_in() {
    let leg = |sym: &str, sort: Option<&str>| {
        let mut l = object(
            json!({"transactionType": "B", "orderType": "MKT", "quantity": "1",
                                  "exchange": "NSE", "symbol": sym, "price": "0"}),
        );
        if let Some(s) = sort {
            l.insert("sort_order".into(), json!(s));
        }
        Value::Object(l)
    };
    let symbols = |alert: Value| {
        ok(alert)
            .legs
            .into_iter()
            .map(|l| l.symbol)
            .collect::<Vec<_>>()
    };
    let tied = json!({"alertType": "multi_leg_order",
        "order_legs": [leg("A", Some("2")), leg("B", Some("1")), leg("C", Some("2")), leg("D", Some("1"))]});
    assert_eq!(symbols(tied), ["B", "D", "A", "C"]);
    let unsorted = json!({"alertType": "multi_leg_order",
        "order_legs": [leg("C", None), leg("A", None), leg("B", None)]});
    assert_eq!(symbols(unsorted), ["C", "A", "B"]);
}

#[test]
fn unknown_extra_fields_null_and_blank_values_are_ignored() {
    let leg = single(json!({
        "symbol": "AAPL", "action": "buy", "quantity": "1", "limit_price": null, "stop_price": "",
        "tif": " ", "note": {"nested": [1, 2, 3]}, "interval": "1D", "plot_0": 2.5
    }));
    assert_eq!(leg, market("AAPL", "AAPL", Action::Buy, Some("1")));
}

#[test]
fn two_aliases_that_agree_are_accepted() {
    let leg = single(
        json!({"symbol": "AAPL", "action": "buy", "side": "BUY", "quantity": "1", "qty": 1.0}),
    );
    assert_eq!(leg, market("AAPL", "AAPL", Action::Buy, Some("1")));
}

// ---------------------------------------------------------------------------------------------
// Numbers: strings and JSON numbers are the same exact decimals
// ---------------------------------------------------------------------------------------------

fn quantity_of(alert: &str) -> Decimal {
    run_map(&text(alert), true).unwrap().legs[0]
        .quantity
        .unwrap()
        .get()
}

#[test]
fn a_decimal_as_string_or_json_number_is_the_same_exact_decimal() {
    let s = quantity_of(r#"{"symbol":"AAPL","action":"buy","quantity":"0.1"}"#);
    let n = quantity_of(r#"{"symbol":"AAPL","action":"buy","quantity":0.1}"#);
    assert_eq!(s, Decimal::new(1, 1));
    assert_eq!(n, Decimal::new(1, 1));
    assert_eq!(s.to_string(), "0.1");
    assert_eq!(n.to_string(), "0.1");
}

#[test]
fn a_tiny_json_number_is_preserved_exactly() {
    let n = quantity_of(r#"{"symbol":"AAPL","action":"buy","quantity":0.0000000001}"#);
    assert_eq!(n, Decimal::new(1, 10));
    let s = quantity_of(r#"{"symbol":"AAPL","action":"buy","quantity":"0.0000000001"}"#);
    assert_eq!(s, n);
    let sci = quantity_of(r#"{"symbol":"AAPL","action":"buy","quantity":"1e-5"}"#);
    let sci_number = quantity_of(r#"{"symbol":"AAPL","action":"buy","quantity":1e-5}"#);
    assert_eq!(sci, dec("0.00001"));
    assert_eq!(sci_number, dec("0.00001"));
}

#[test]
fn an_integer_json_number_equals_the_same_value_with_trailing_zeros_in_a_string() {
    let price = |alert: &str| {
        run_map(&text(alert), true).unwrap().legs[0]
            .limit_price
            .unwrap()
    };
    let n = price(
        r#"{"symbol":"AAPL","action":"buy","quantity":1,"order_type":"limit","limit_price":42000}"#,
    );
    let s = price(
        r#"{"symbol":"AAPL","action":"buy","quantity":1,"order_type":"limit","limit_price":"42000.00"}"#,
    );
    assert_eq!(n, s);
    assert_eq!(n.get(), Decimal::new(42000, 0));
    assert_eq!(n.to_string(), "42000");
}

// ---------------------------------------------------------------------------------------------
// Invalid alerts name the field
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_symbol_is_invalid() {
    let e = invalid(json!({"action": "buy", "quantity": "1"}));
    assert_eq!(e.field, "symbol");
    assert_eq!(e.to_string(), "symbol: is missing");
    assert_eq!(
        field_of(json!({"exchange": "NASDAQ", "action": "buy", "quantity": "1"})),
        "symbol"
    );
}

#[test]
fn a_missing_action_is_invalid() {
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "quantity": "1"})),
        "action"
    );
}

#[test]
fn an_unknown_action_is_invalid_under_the_name_it_was_sent_with() {
    let e = invalid(json!({"symbol": "AAPL", "action": "hold", "quantity": "1"}));
    assert_eq!(e.field, "action");
    assert!(e.message.contains("`hold` is not an action"), "{e}");
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "side": "maybe", "quantity": "1"})),
        "side"
    );
}

#[test]
fn long_and_short_are_refused_because_they_describe_a_position_not_an_order() {
    for word in ["long", "SHORT"] {
        let e = invalid(json!({"symbol": "AAPL", "action": word, "quantity": "1"}));
        assert_eq!(e.field, "action");
        assert!(e.message.contains("position, not an order"), "{e}");
    }
}

#[test]
fn a_buy_or_sell_without_quantity_is_invalid() {
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "action": "buy"})),
        "quantity"
    );
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "action": "sell", "qty": null})),
        "quantity"
    );
}

#[test]
fn a_zero_or_negative_quantity_is_invalid() {
    for q in [
        json!("0"),
        json!(0),
        json!("-1"),
        json!(-1),
        json!("-0"),
        json!("0.000"),
        json!(-0.5),
    ] {
        let e = invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": q}));
        assert_eq!(e.field, "quantity", "{q}");
        assert!(e.message.contains("greater than zero"), "{e}");
    }
    let e = invalid(json!({"symbol": "AAPL", "action": "buy", "stake": "-2"}));
    assert_eq!(e.field, "stake");
}

#[test]
fn a_quantity_out_of_decimal_range_is_invalid() {
    let e = invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": "1e400"}));
    assert_eq!(e.field, "quantity");
    assert!(e.message.contains("out of range"), "{e}");
    // As a bare JSON number, 1e400 does not even parse: the receiver answers before normalizing.
    assert!(serde_json::from_str::<Value>(r#"{"quantity":1e400}"#).is_err());
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "action": "buy", "quantity": "1e-40"})),
        "quantity"
    );
}

#[test]
fn nan_and_infinity_are_not_quantities() {
    for q in [
        "NaN", "nan", "inf", "Infinity", "-inf", "1,5", "1_000", "0x10", "ten",
    ] {
        let e = invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": q}));
        assert_eq!(e.field, "quantity", "{q}");
        assert!(e.message.contains("not a decimal number"), "{e}");
    }
}

#[test]
fn a_quantity_that_is_not_a_string_or_number_is_invalid() {
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "action": "buy", "quantity": true})),
        "quantity"
    );
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "action": "buy", "quantity": ["1"]})),
        "quantity"
    );
    assert_eq!(
        field_of(json!({"symbol": ["AAPL"], "action": "buy", "quantity": "1"})),
        "symbol"
    );
}

#[test]
fn a_json_number_with_more_digits_than_a_float_carries_is_invalid() {
    let alert =
        text(r#"{"symbol":"AAPL","action":"buy","quantity":1,"price":42000.123456789012345}"#);
    let e = run_map(&alert, true).unwrap_err();
    assert_eq!(e.field, "price");
    assert!(e.message.contains("send it as a string"), "{e}");
    let as_string =
        text(r#"{"symbol":"AAPL","action":"buy","quantity":1,"price":"42000.123456789012345"}"#);
    let leg = run_map(&as_string, true).unwrap().legs.remove(0);
    assert_eq!(leg.reference_price, p("42000.123456789012345"));
}

#[test]
fn a_limit_order_without_limit_price_is_invalid() {
    let e =
        invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "order_type": "limit"}));
    assert_eq!(e.field, "limit_price");
    let e = invalid(
        json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "type": "SL", "stop_price": "9"}),
    );
    assert_eq!(e.field, "limit_price");
}

#[test]
fn a_stop_order_without_stop_price_is_invalid() {
    let e =
        invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "order_type": "stop"}));
    assert_eq!(e.field, "stop_price");
    let e = invalid(
        json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "order_type": "stop_limit",
                           "limit_price": "10"}),
    );
    assert_eq!(e.field, "stop_price");
}

#[test]
fn a_price_the_order_type_does_not_use_is_invalid_rather_than_dropped() {
    let e =
        invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "limit_price": "100"}));
    assert_eq!(e.field, "limit_price");
    assert!(e.message.contains("market order"), "{e}");
    let e = invalid(
        json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "order_type": "limit",
                           "limit_price": "100", "stop_price": "99"}),
    );
    assert_eq!(e.field, "stop_price");
    let e = invalid(
        json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "order_type": "stop",
                           "stop_price": "99", "limit_price": "100"}),
    );
    assert_eq!(e.field, "limit_price");
}

#[test]
fn a_zero_limit_price_is_invalid() {
    let e = invalid(
        json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "order_type": "limit",
                           "limit_price": "0"}),
    );
    assert_eq!(e.field, "limit_price");
}

#[test]
fn an_unknown_order_type_is_invalid() {
    assert_eq!(
        field_of(
            json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "order_type": "iceberg"})
        ),
        "order_type"
    );
    assert_eq!(
        field_of(json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "type": "trailing"})),
        "type"
    );
}

#[test]
fn a_bad_time_in_force_is_invalid() {
    let e = invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "tif": "forever"}));
    assert_eq!(e.field, "tif");
    assert!(e.message.contains("gtc, day, ioc or fok"), "{e}");
}

#[test]
fn a_perpetual_is_refused_by_a_spot_venue() {
    for sym in [
        "BINANCE:BTCUSDT.P",
        "BINANCE_DL:ETHUSDT.P",
        "FTX:BTC-PERP",
        "BTCUSDT.P",
    ] {
        let e = invalid(json!({"symbol": sym, "action": "buy", "quantity": "1"}));
        assert_eq!(e.field, "symbol", "{sym}");
        assert!(
            e.message
                .contains("perpetual contracts are not supported by a spot venue"),
            "{e}"
        );
    }
}

#[test]
fn a_malformed_symbol_is_invalid() {
    for sym in [
        "BINANCE:",
        ":BTC",
        "A:B:C",
        "BTC USDT",
        "BTC;DROP",
        &"X".repeat(65),
    ] {
        assert_eq!(
            field_of(json!({"symbol": sym, "action": "buy", "quantity": "1"})),
            "symbol",
            "{sym}"
        );
    }
}

#[test]
fn an_exchange_that_contradicts_the_symbol_is_invalid() {
    let e = invalid(
        json!({"exchange": "NYSE", "symbol": "NASDAQ:AAPL", "action": "buy", "quantity": "1"}),
    );
    assert_eq!(e.field, "exchange, symbol");
}

#[test]
fn conflicting_aliases_are_invalid_naming_both() {
    let e = invalid(json!({"symbol": "AAPL", "action": "buy", "side": "sell", "quantity": "1"}));
    assert_eq!(e.field, "action, side");
    let e = invalid(json!({"symbol": "AAPL", "action": "buy", "quantity": "1", "qty": "2"}));
    assert_eq!(e.field, "quantity, qty");
    let e = invalid(
        json!({"id": "a", "client_ref": "b", "symbol": "AAPL", "action": "buy", "quantity": "1"}),
    );
    assert_eq!(e.field, "id, client_ref");
    let e = invalid(
        json!({"account": "a", "fund_id": "b", "symbol": "AAPL", "action": "buy", "quantity": "1"}),
    );
    assert_eq!(e.field, "account, fund_id");
}

#[test]
fn an_id_longer_than_128_characters_is_invalid() {
    let long = "x".repeat(129);
    assert_eq!(
        field_of(json!({"id": long, "symbol": "AAPL", "action": "buy", "quantity": "1"})),
        "id"
    );
    let ok_len = "x".repeat(128);
    assert_eq!(
        ok(json!({"id": ok_len.clone(), "symbol": "AAPL", "action": "buy", "quantity": "1"}))
            .idempotency_key,
        Some(ok_len)
    );
}

fn native_leg(i: usize) -> Value {
    json!({"symbol": format!("SYM{i}"), "action": "buy", "quantity": "1"})
}

#[test]
fn more_than_the_maximum_number_of_legs_is_invalid() {
    let max: Vec<Value> = (0..MAX_LEGS).map(native_leg).collect();
    assert_eq!(ok(json!({"legs": max})).legs.len(), MAX_LEGS);
    let too_many: Vec<Value> = (0..=MAX_LEGS).map(native_leg).collect();
    let e = invalid(json!({"legs": too_many}));
    assert_eq!(e.field, "legs");
    assert!(e.message.contains("at most 20"), "{e}");
}

#[test]
fn legs_that_are_not_a_non_empty_array_of_objects_are_invalid() {
    assert_eq!(field_of(json!({"legs": {"symbol": "AAPL"}})), "legs");
    assert_eq!(field_of(json!({"legs": "AAPL"})), "legs");
    assert_eq!(field_of(json!({"legs": []})), "legs");
    assert_eq!(field_of(json!({"legs": [native_leg(0), "x"]})), "legs[1]");
    assert_eq!(
        field_of(json!({"alertType": "multi_leg_order", "order_legs": 3})),
        "order_legs"
    );
}

#[test]
fn errors_inside_legs_name_the_leg_by_its_position_as_sent() {
    let e = invalid(json!({"legs": [native_leg(0), {"symbol": "AAPL", "action": "buy"}]}));
    assert_eq!(e.field, "legs[1].quantity");
    let e = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"orderType": "MKT", "quantity": "1", "exchange": "NSE", "symbol": "TCS", "sort_order": "1"}]}));
    assert_eq!(e.field, "order_legs[0].transactionType");
    let e = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "orderType": "MKT", "quantity": "1", "symbol": "TCS", "sort_order": "2"},
        {"transactionType": "X", "orderType": "MKT", "quantity": "1", "symbol": "TCS", "sort_order": "1"}]}));
    assert_eq!(e.field, "order_legs[1].transactionType");
}

#[test]
fn an_order_legs_limit_leg_without_price_is_invalid() {
    let e = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "orderType": "LMT", "quantity": "1", "exchange": "NSE", "symbol": "TCS",
         "price": "0"}]}));
    assert_eq!(e.field, "order_legs[0].price");
    let e = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "orderType": "LMT", "quantity": "1", "exchange": "NSE", "symbol": "TCS"}]}));
    assert_eq!(e.field, "order_legs[0].price");
}

#[test]
fn sort_order_on_some_legs_only_or_not_a_number_is_invalid() {
    let e = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "quantity": "1", "symbol": "A", "sort_order": "1"},
        {"transactionType": "B", "quantity": "1", "symbol": "B"}]}));
    assert_eq!(e.field, "order_legs[1].sort_order");
    let e = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "quantity": "1", "symbol": "A", "sort_order": "first"}]}));
    assert_eq!(e.field, "order_legs[0].sort_order");
}

#[test]
fn an_unknown_alert_type_or_a_missing_order_legs_array_is_invalid() {
    assert_eq!(
        field_of(
            json!({"alertType": "single_order", "symbol": "AAPL", "action": "buy", "quantity": "1"})
        ),
        "alertType"
    );
    assert_eq!(
        field_of(json!({"alertType": "multi_leg_order"})),
        "order_legs"
    );
    assert_eq!(
        field_of(json!({"alertType": "multi_leg_order", "legs": [native_leg(0)]})),
        "order_legs"
    );
    assert_eq!(
        field_of(json!({"legs": [native_leg(0)], "order_legs": [native_leg(1)]})),
        "legs, order_legs"
    );
}

#[test]
fn order_fields_at_the_top_level_of_a_multi_leg_alert_are_invalid() {
    let e = invalid(json!({"action": "buy", "legs": [native_leg(0)]}));
    assert_eq!(e.field, "action");
    let e = invalid(json!({"qty": "3", "legs": [native_leg(0)]}));
    assert_eq!(e.field, "qty");
    let e = invalid(
        json!({"alertType": "multi_leg_order", "transactionType": "B", "order_legs": [
        {"transactionType": "B", "quantity": "1", "symbol": "A"}]}),
    );
    assert_eq!(e.field, "transactionType");
}

#[test]
fn a_symbol_error_names_the_leg_or_the_top_level_field_the_symbol_came_from() {
    let own = invalid(
        json!({"legs": [native_leg(0), {"symbol": "BINANCE:BTCUSDT.P", "action": "buy",
                                                      "quantity": "1"}]}),
    );
    assert_eq!(own.field, "legs[1].symbol");
    let inherited = invalid(
        json!({"symbol": "BINANCE:BTCUSDT.P", "legs": [{"action": "buy", "quantity": "1"}]}),
    );
    assert_eq!(inherited.field, "symbol");
    assert_eq!(
        field_of(json!({"legs": [{"action": "buy", "quantity": "1"}]})),
        "legs[0].symbol"
    );
}

#[test]
fn an_order_legs_stop_leg_without_trigger_price_is_invalid() {
    let e = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "S", "orderType": "SL-M", "quantity": "1", "exchange": "NSE", "symbol": "TCS",
         "price": "0"}]}));
    assert_eq!(e.field, "order_legs[0].triggerPrice");
}

#[test]
fn every_template_in_normalize_md_normalizes_once_tradingview_fills_it_in() {
    let doc = include_str!("../NORMALIZE.md");
    let filled = [
        ("{{strategy.order.action}}", "sell"),
        ("{{strategy.order.contracts}}", "2"),
        ("{{strategy.position_size}}", "0.5"),
        ("{{strategy.order.id}}", "Long"),
        ("{{timenow}}", "2026-11-23T06:30:00Z"),
        ("{{time}}", "2026-11-23T06:30:00Z"),
        ("{{interval}}", "1D"),
        ("{{exchange}}", "BINANCE"),
        ("{{ticker}}", "BTCUSDT"),
        ("{{close}}", "42000.5"),
        ("{{low}}", "41950.25"),
        ("{{plot_0}}", "44000"),
        ("{{plot_1}}", "41000"),
    ];
    let mut templates = 0;
    for block in doc.split("```json").skip(1) {
        let mut json = block.split("```").next().unwrap().to_owned();
        for (placeholder, value) in filled {
            json = json.replace(placeholder, value);
        }
        assert!(!json.contains("{{"), "unfilled placeholder in {json}");
        let alert = run_map(&text(&json), true);
        assert!(alert.is_ok(), "{json}\n{alert:?}");
        templates += 1;
    }
    assert!(templates >= 12, "only {templates} templates found");
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const KNOWN: &[&str] = &[
    "secret",
    "account",
    "fund_id",
    "id",
    "client_ref",
    "idempotency_key",
    "client_order_id",
    "strategy",
    "strategy_id",
    "symbol",
    "ticker",
    "exchange",
    "action",
    "side",
    "signal",
    "transactionType",
    "quantity",
    "size",
    "qty",
    "stake",
    "contracts",
    "order_type",
    "type",
    "orderType",
    "limit_price",
    "stop_price",
    "trigger_price",
    "triggerPrice",
    "tif",
    "validity",
    "price",
    "sent_at",
    "comment",
    "legs",
    "order_legs",
    "alertType",
    "sort_order",
    "meta",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KNOWN).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        prop::sample::select(vec![
            "buy",
            "SELL",
            "close",
            "close_long",
            "exit",
            "LMT",
            "MKT",
            "SL",
            "SL-M",
            "stop_limit",
            "limit",
            "gtc",
            "IOC",
            "multi_leg_order",
            "BINANCE:BTCUSDT",
            "BINANCE_DL:BTCUSDT.P",
            "NSE",
            "AAPL",
            "0",
            "-0",
            "1e400",
            "1e-400",
            "NaN",
            "0.1",
            "42000.00",
            "1",
            "2",
            "99999999999999999999999999999",
            "",
            " ",
        ])
        .prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::from),
        "[0-9eE.+-]{1,12}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..25).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..12)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn alert() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), value()), 0..16).prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn normalize_never_panics_on_arbitrary_json_objects(alert in alert(), refuse in any::<bool>()) {
        let result = run_map(&alert, refuse);
        if let Ok(n) = result {
            prop_assert!(!n.legs.is_empty() && n.legs.len() <= MAX_LEGS);
            for leg in &n.legs {
                prop_assert!(leg.quantity.is_some() || leg.action.is_close());
            }
        }
    }

    #[test]
    fn a_decimal_written_as_a_string_or_a_number_round_trips_exactly(
        mantissa in 1i64..1_000_000_000_000_000,
        scale in 0u32..=20,
        scientific in any::<bool>(),
    ) {
        let expected = Decimal::new(mantissa, scale);
        let written = if scientific { format!("{mantissa}e-{scale}") } else { expected.to_string() };
        for quantity in [format!("\"{written}\""), written.clone()] {
            let alert = text(&format!(r#"{{"symbol":"AAPL","action":"buy","quantity":{quantity}}}"#));
            let got = run_map(&alert, true).unwrap().legs[0].quantity.unwrap().get();
            prop_assert_eq!(got, expected, "{}", quantity);
        }
    }
}

#[test]
fn the_order_legs_product_type_is_carried_per_leg_or_from_the_top_and_an_unknown_one_is_invalid() {
    let alert = ok(json!({
        "alertType": "multi_leg_order", "productType": "M",
        "order_legs": [
            {"transactionType": "B", "quantity": "1", "exchange": "NSE", "symbol": "INFY",
             "productType": "I"},
            {"transactionType": "B", "quantity": "1", "exchange": "NSE", "symbol": "TCS",
             "productType": "cnc"},
            {"transactionType": "B", "quantity": "50", "exchange": "NFO", "symbol": "NIFTY26JANFUT"}
        ]
    }));
    let products: Vec<Option<Product>> = alert.legs.iter().map(|l| l.product).collect();
    assert_eq!(
        products,
        [Some(Product::Mis), Some(Product::Cnc), Some(Product::Nrml)]
    );
    assert_eq!(
        single(json!({"symbol": "NSE:INFY", "action": "buy", "quantity": 1})).product,
        None
    );
    let bad = invalid(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "quantity": "1", "exchange": "NSE", "symbol": "INFY",
         "productType": "Z"}]}));
    assert_eq!(bad.field, "order_legs[0].productType");
    assert!(bad.message.contains("C (CNC"), "{}", bad.message);
}

#[test]
fn a_venue_that_needs_the_exchange_gets_exchange_colon_ticker_and_a_bare_ticker_is_invalid() {
    let symbols = table();
    let ctx = NormalizeContext {
        symbols: &symbols,
        perpetuals: alertgate_receiver::normalize::Perpetuals::Refused,
        exchange_in_symbol: true,
        allow_short: true,
        exits: alertgate_receiver::order::ExitSupport::Orders,
    };
    let run = |alert: Value| normalize(&object(alert), &ctx);
    let legs = run(json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "quantity": "1", "exchange": "NSE", "symbol": "INFY"},
        {"transactionType": "S", "quantity": "1", "symbol": "BSE_DL:TCS"}]}))
    .unwrap()
    .legs;
    assert_eq!(legs[0].symbol, "NSE:INFY");
    assert_eq!(legs[1].symbol, "BSE:TCS");
    let bare = run(json!({"symbol": "INFY", "action": "buy", "quantity": 1})).unwrap_err();
    assert_eq!(bare.field, "symbol");
    assert!(
        bare.message.contains("names no exchange"),
        "{}",
        bare.message
    );
}

// ---------------------------------------------------------------------------------------------
// Target positions and sizing (DESIGN section 12)
// ---------------------------------------------------------------------------------------------

fn spot(alert: Value) -> Result<NormalizedAlert, Invalid> {
    run_map(&object(alert), true)
}

fn margin(alert: Value) -> Result<NormalizedAlert, Invalid> {
    run_map(&object(alert), false)
}

#[test]
fn target_position_and_its_alias_position_size_are_signed_targets_that_ignore_action_and_quantity()
{
    let leg = single(
        json!({"symbol": "BINANCE:BTCUSDT", "target_position": "0.03", "action": "sell",
                            "quantity": "9", "price": "100"}),
    );
    assert_eq!(
        (leg.action, leg.target_position, leg.quantity, leg.sizing),
        (Action::Target, Some(dec("0.03")), None, Sizing::Quantity)
    );
    let pasted = margin(json!({"symbol": "NASDAQ:AAPL", "position_size": -2.5})).unwrap();
    assert_eq!(pasted.legs[0].target_position, Some(dec("-2.5")));
    let both = margin(json!({"symbol": "NASDAQ:AAPL", "target_position": "1", "position_size": 2}))
        .unwrap_err();
    assert_eq!(both.field, "target_position, position_size");
    // Without a target, an unparseable action is still an error; with one it is not used.
    assert!(
        ok(json!({"symbol": "NASDAQ:AAPL", "target_position": 1, "action": "long"})).legs[0]
            .target_position
            .is_some()
    );
}

#[test]
fn flat_sentiment_means_target_zero_and_contradicting_it_names_both_fields() {
    let leg = single(json!({"symbol": "NASDAQ:AAPL", "sentiment": "FLAT", "action": "sell"}));
    assert_eq!(
        (leg.action, leg.target_position),
        (Action::Target, Some(Decimal::ZERO))
    );
    let long = single(
        json!({"symbol": "NASDAQ:AAPL", "sentiment": "long", "action": "buy", "quantity": 1}),
    );
    assert_eq!(
        long.action,
        Action::Buy,
        "other sentiments say nothing about the size"
    );
    let clash =
        invalid(json!({"symbol": "NASDAQ:AAPL", "sentiment": "flat", "target_position": "2"}));
    assert_eq!(clash.field, "target_position, sentiment");
}

#[test]
fn a_spot_venue_refuses_a_negative_target_and_a_margin_venue_takes_it() {
    let refused =
        spot(json!({"symbol": "BINANCE:BTCUSDT", "target_position": "-0.01"})).unwrap_err();
    assert_eq!(refused.field, "target_position");
    assert!(refused.message.contains("short"), "{}", refused.message);
    let flat = spot(json!({"symbol": "BINANCE:BTCUSDT", "target_position": "0"})).unwrap();
    assert_eq!(flat.legs[0].target_position, Some(Decimal::ZERO));
    let short = margin(json!({"symbol": "BINANCE:BTCUSDT", "target_position": "-0.01"})).unwrap();
    assert_eq!(short.legs[0].target_position, Some(dec("-0.01")));
}

#[test]
fn notional_and_percent_of_equity_size_a_buy_or_sell_under_either_name() {
    let n = single(
        json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "notional": "100", "price": "50000"}),
    );
    assert_eq!(
        (n.quantity, n.sizing),
        (None, Sizing::Notional("100".parse().unwrap()))
    );
    let amount = single(json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "amount": 25}));
    assert_eq!(amount.sizing, Sizing::Notional("25".parse().unwrap()));
    let p = single(json!({"symbol": "NASDAQ:AAPL", "action": "buy", "percent_of_equity": "10"}));
    assert_eq!(p.sizing, Sizing::PercentOfEquity("10".parse().unwrap()));
    let alias = single(json!({"symbol": "NASDAQ:AAPL", "action": "buy", "equity_percent": 2.5}));
    assert_eq!(
        alias.sizing,
        Sizing::PercentOfEquity("2.5".parse().unwrap())
    );
}

#[test]
fn a_buy_needs_exactly_one_size_none_names_quantity_and_two_name_the_second() {
    let none = invalid(json!({"symbol": "NASDAQ:AAPL", "action": "buy"}));
    assert_eq!(none.field, "quantity");
    assert!(none.message.contains("notional"), "{}", none.message);
    let two =
        invalid(json!({"symbol": "NASDAQ:AAPL", "action": "buy", "quantity": 1, "notional": 100}));
    assert_eq!(two.field, "notional");
    let two = invalid(
        json!({"symbol": "NASDAQ:AAPL", "action": "buy", "amount": 100,
                             "equity_percent": 5}),
    );
    assert_eq!(two.field, "equity_percent");
    assert_eq!(
        field_of(json!({"symbol": "NASDAQ:AAPL", "action": "buy", "notional": "0"})),
        "notional"
    );
    assert_eq!(
        field_of(json!({"symbol": "NASDAQ:AAPL", "action": "buy", "percent_of_equity": "150"})),
        "percent_of_equity"
    );
}

#[test]
fn sizing_other_than_quantity_is_refused_on_closes_and_targets() {
    assert_eq!(
        field_of(json!({"symbol": "NASDAQ:AAPL", "action": "close", "notional": 100})),
        "notional"
    );
    assert_eq!(
        field_of(json!({"symbol": "NASDAQ:AAPL", "target_position": 1, "percent_of_equity": 5})),
        "percent_of_equity"
    );
    let close = single(json!({"symbol": "NASDAQ:AAPL", "action": "close", "qty": 2}));
    assert_eq!(close.quantity, p("2"));
}

#[test]
fn legs_of_a_multi_leg_alert_take_targets_and_sizes_too() {
    let alert = margin(json!({"legs": [
        {"symbol": "NASDAQ:AAPL", "target_position": "3"},
        {"symbol": "NASDAQ:MSFT", "action": "buy", "notional": "500", "price": "400"}
    ]}))
    .unwrap();
    assert_eq!(alert.legs[0].target_position, Some(dec("3")));
    assert_eq!(
        alert.legs[1].sizing,
        Sizing::Notional("500".parse().unwrap())
    );
    let bad = margin(json!({"legs": [{"symbol": "NASDAQ:AAPL", "action": "buy"}]})).unwrap_err();
    assert_eq!(bad.field, "legs[0].quantity");
}

#[test]
fn protective_exits_are_refused_on_a_venue_that_cannot_attach_them_and_kept_where_it_can() {
    let alert = object(
        json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1",
                              "price": "100", "take_profit": "110", "stop_loss": "90"}),
    );
    let symbols = table();
    let ctx = |exits| NormalizeContext {
        symbols: &symbols,
        perpetuals: alertgate_receiver::normalize::Perpetuals::Refused,
        exchange_in_symbol: false,
        allow_short: false,
        exits,
    };
    let refused = normalize(
        &alert,
        &ctx(alertgate_receiver::order::ExitSupport::Unsupported),
    )
    .unwrap_err();
    assert_eq!(refused.field, "take_profit");
    assert!(refused.message.contains("cannot attach"), "{refused}");
    let kept = normalize(
        &alert,
        &ctx(alertgate_receiver::order::ExitSupport::Attached),
    )
    .unwrap();
    assert_eq!(kept.legs[0].exits.take_profit, Some("110".parse().unwrap()));
    assert_eq!(kept.legs[0].exits.stop_loss, Some("90".parse().unwrap()));
    let stop_entry = object(
        json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1",
        "order_type": "stop", "stop_price": "105", "price": "100", "take_profit": "110"}),
    );
    assert_eq!(
        normalize(
            &stop_entry,
            &ctx(alertgate_receiver::order::ExitSupport::Orders)
        )
        .unwrap_err()
        .field,
        "take_profit"
    );
}
