//! Each risk gate rejects what it should, with its reason, and nothing else.

use serde_json::{json, Value};

use alertgate_receiver::config::{RiskConfig, RiskLimits};

use crate::helpers::{buy, dec, spawn_app_with, Options, TestApp};

async fn app_with_risk(risk: impl Fn(&mut RiskConfig) + Send + Sync + 'static) -> TestApp {
    spawn_app_with(Options::configured(move |s| risk(&mut s.risk))).await
}

async fn outcome_and_reason(app: &TestApp, alert: &Value) -> (String, Value) {
    let (_, a) = app.send(alert).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    (a.outcome().to_owned(), a.body["reason"].clone())
}

fn rejected(gate: &str) -> (String, Value) {
    ("rejected".into(), json!(gate))
}

fn filled() -> (String, Value) {
    ("filled".into(), Value::Null)
}

#[tokio::test]
async fn max_quantity_rejects_only_orders_above_it() {
    let app = app_with_risk(|r| r.max_quantity = Some(dec("2"))).await;
    assert_eq!(
        outcome_and_reason(&app, &buy("2.0001")).await,
        rejected("max_quantity")
    );
    assert_eq!(outcome_and_reason(&app, &buy("2")).await, filled());
    assert_eq!(
        app.all_orders().await.len(),
        1,
        "a rejected alert places nothing"
    );
}

#[tokio::test]
async fn per_account_overrides_replace_the_global_limit() {
    let app = app_with_risk(|r| {
        r.max_quantity = Some(dec("100"));
        let main = RiskLimits {
            max_quantity: Some(dec("1")),
            ..RiskLimits::default()
        };
        r.accounts.insert("main".into(), main);
    })
    .await;
    assert_eq!(
        outcome_and_reason(&app, &buy("2")).await,
        rejected("max_quantity")
    );
    assert_eq!(outcome_and_reason(&app, &buy("1")).await, filled());
}

#[tokio::test]
async fn max_notional_rejects_quantity_times_price_above_it() {
    let app = app_with_risk(|r| r.max_notional = Some(dec("1000"))).await;
    // buy() carries price 100.
    assert_eq!(
        outcome_and_reason(&app, &buy("10.01")).await,
        rejected("max_notional")
    );
    assert_eq!(outcome_and_reason(&app, &buy("10")).await, filled());
    let limit = json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "10", "order_type": "limit", "limit_price": "101"});
    assert_eq!(
        outcome_and_reason(&app, &limit).await,
        rejected("max_notional"),
        "the limit price counts"
    );
}

#[tokio::test]
async fn symbols_outside_the_allowed_list_are_rejected() {
    let app = app_with_risk(|r| r.allowed_symbols = vec!["BTCUSDT".into()]).await;
    let eth = json!({"symbol": "BINANCE:ETHUSDT", "action": "buy", "quantity": "1", "price": "10"});
    assert_eq!(
        outcome_and_reason(&app, &eth).await,
        rejected("symbol_not_allowed")
    );
    assert_eq!(outcome_and_reason(&app, &buy("1")).await, filled());
}

#[tokio::test]
async fn max_orders_per_minute_counts_a_sliding_minute_per_account() {
    let app = app_with_risk(|r| r.max_orders_per_minute = Some(2)).await;
    assert_eq!(outcome_and_reason(&app, &buy("1")).await, filled());
    assert_eq!(outcome_and_reason(&app, &buy("1")).await, filled());
    assert_eq!(
        outcome_and_reason(&app, &buy("1")).await,
        rejected("max_orders_per_minute")
    );
    app.clock.advance(time::Duration::seconds(61));
    assert_eq!(outcome_and_reason(&app, &buy("1")).await, filled());
}

#[tokio::test]
async fn max_position_rejects_an_order_that_would_leave_too_large_a_position() {
    let app = app_with_risk(|r| r.max_position = Some(dec("3"))).await;
    assert_eq!(outcome_and_reason(&app, &buy("2")).await, filled());
    assert_eq!(
        outcome_and_reason(&app, &buy("1.5")).await,
        rejected("max_position")
    );
    assert_eq!(outcome_and_reason(&app, &buy("1")).await, filled());
    let close = json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "100"});
    assert_eq!(
        outcome_and_reason(&app, &close).await,
        filled(),
        "closing is never blocked by size gates"
    );
}

#[tokio::test]
async fn the_kill_switch_rejects_every_order_while_its_file_exists() {
    let work = std::sync::Arc::new(crate::helpers::Workdir::new(&Options::default()));
    let kill = work.kill_switch();
    let switch = kill.clone();
    let options = Options::configured(move |s| s.risk.kill_switch_file = Some(switch.clone()));
    let app = crate::helpers::spawn_in(work, &options).await;

    std::fs::write(&kill, "").unwrap();
    assert_eq!(
        outcome_and_reason(&app, &buy("1")).await,
        rejected("kill_switch")
    );
    let close =
        json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "1", "price": "100"});
    assert_eq!(
        outcome_and_reason(&app, &close).await,
        rejected("kill_switch")
    );
    std::fs::remove_file(&kill).unwrap();
    assert_eq!(outcome_and_reason(&app, &buy("1")).await, filled());
    assert!(app
        .metrics()
        .await
        .contains("alertgate_receiver_messages_total{outcome=\"rejected\"} 2"));
}

#[tokio::test]
async fn a_multi_leg_alert_with_one_leg_over_a_limit_places_none_of_its_legs() {
    let app = app_with_risk(|r| r.max_quantity = Some(dec("5"))).await;
    let alert = json!({"legs": [
        {"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "price": "100"},
        {"symbol": "BINANCE:ETHUSDT", "action": "buy", "quantity": "6", "price": "10"}
    ]});
    assert_eq!(
        outcome_and_reason(&app, &alert).await,
        rejected("max_quantity")
    );
    assert!(app.all_orders().await.is_empty());
}
