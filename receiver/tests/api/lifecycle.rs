//! The order lifecycle on the paper venue (receiver/README.md, "Cancels and resting orders"):
//! resting orders filled when a later alert's price crosses them, cancels of what rests.

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Options, TestApp};

fn limit(side: &str, quantity: &str, limit: &str, price: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": side, "quantity": quantity,
           "order_type": "limit", "limit_price": limit, "tif": "gtc", "price": price})
}

fn market(side: &str, quantity: &str, price: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": side, "quantity": quantity, "price": price})
}

async fn position(app: &TestApp) -> String {
    app.positions()
        .await
        .iter()
        .find(|p| p["symbol"] == "BTCUSDT")
        .map_or("0".into(), |p| p["position"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_resting_buy_limit_fills_when_a_later_alert_crosses_it_before_that_alerts_own_order() {
    let app = spawn_app_with(Options::default()).await;
    let (rest_id, a) = app.send(&limit("buy", "1", "100", "105")).await;
    assert_eq!(a.outcome(), "placed", "{:?}", a.body);
    let (_, a) = app.send(&market("buy", "2", "101")).await;
    assert_eq!(a.outcome(), "filled");
    assert_eq!(
        position(&app).await,
        "2",
        "101 does not cross a buy limit at 100"
    );

    // 99 crosses it: the limit fills at 100 first, then this alert's own sell of 1.
    let (_, a) = app.send(&market("sell", "1", "99")).await;
    assert_eq!(a.outcome(), "filled");
    assert_eq!(position(&app).await, "2", "2 + 1 (the resting buy) - 1");
    let rest = app.message(&rest_id).await;
    assert_eq!(rest.body["outcome"], "filled", "{:?}", rest.body);
    let order = &rest.body["orders"][0];
    assert_eq!(order["status"], "filled");
    assert_eq!(order["average_price"], "100");
    assert_eq!(order["filled_quantity"], "1");

    // Filled once: another crossing price does not fill it again.
    let (_, a) = app.send(&market("sell", "1", "98")).await;
    assert_eq!(a.outcome(), "filled");
    assert_eq!(position(&app).await, "1");
}

#[tokio::test]
async fn resting_orders_fill_oldest_first_and_a_sell_stop_fills_at_the_touching_price() {
    let app = spawn_app_with(Options::default()).await;
    app.send(&market("buy", "3", "100")).await;
    let stop = json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "1",
                      "order_type": "stop", "stop_price": "90", "tif": "gtc", "price": "100"});
    let (stop_id, a) = app.send(&stop).await;
    assert_eq!(a.outcome(), "placed");
    let (limit_id, _) = app.send(&limit("sell", "1", "120", "100")).await;
    let (_, a) = app.send(&market("buy", "1", "89")).await;
    assert_eq!(a.outcome(), "filled");
    let stop = app.message(&stop_id).await;
    assert_eq!(stop.body["orders"][0]["status"], "filled");
    assert_eq!(stop.body["orders"][0]["average_price"], "89");
    let limit = app.message(&limit_id).await;
    assert_eq!(
        limit.body["outcome"], "placed",
        "a sell limit at 120 rests at 89"
    );
    assert_eq!(position(&app).await, "3");
}

#[tokio::test]
async fn a_cancel_cancels_what_rests_for_the_symbol_and_then_finds_nothing() {
    let app = spawn_app_with(Options::default()).await;
    let (first, _) = app.send(&limit("buy", "1", "90", "100")).await;
    let (second, _) = app.send(&limit("buy", "2", "80", "100")).await;
    let other = json!({"symbol": "BINANCE:ETHUSDT", "action": "buy", "quantity": "1",
                       "order_type": "limit", "limit_price": "1", "price": "2"});
    let (other_id, _) = app.send(&other).await;

    let cancel = json!({"symbol": "BINANCE:BTCUSDT", "action": "cancel"});
    let (_, a) = app.send(&cancel).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.outcome(), "cancelled", "{:?}", a.body);
    let cancelled: Vec<&str> = a
        .orders()
        .iter()
        .map(|o| o["client_order_id"].as_str().unwrap())
        .collect();
    assert_eq!(cancelled, [format!("{first}-0"), format!("{second}-0")]);
    assert!(a.orders().iter().all(|o| o["status"] == "cancelled"));
    for id in [&first, &second] {
        let m = app.message(id).await;
        assert_eq!(m.body["outcome"], "cancelled");
        assert_eq!(m.body["orders"][0]["status"], "cancelled");
    }
    assert_eq!(
        app.message(&other_id).await.body["outcome"],
        "placed",
        "other symbols rest"
    );

    // Cancelled orders no longer fill.
    app.send(&market("buy", "1", "1")).await;
    assert_eq!(position(&app).await, "1", "only the market order filled");

    let (_, a) = app.send(&cancel).await;
    assert_eq!(
        (a.outcome(), a.body["reason"].as_str()),
        ("cancelled", Some("nothing_to_cancel"))
    );
}

#[tokio::test]
async fn a_cancel_runs_while_the_kill_switch_stops_every_order() {
    let work = std::sync::Arc::new(crate::helpers::Workdir::new(&Options::default()));
    let kill = work.kill_switch();
    let switch = kill.clone();
    let options = Options::configured(move |s| s.risk.kill_switch_file = Some(switch.clone()));
    let app = crate::helpers::spawn_in(work, &options).await;
    let (rest, _) = app.send(&limit("buy", "1", "90", "100")).await;
    std::fs::write(&kill, b"").unwrap();
    let (_, a) = app.send(&market("buy", "1", "100")).await;
    assert_eq!(a.body["reason"], "kill_switch", "{:?}", a.body);
    let (_, a) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "cancel"}))
        .await;
    assert_eq!(a.outcome(), "cancelled");
    assert_eq!(app.message(&rest).await.body["outcome"], "cancelled");
}

#[tokio::test]
async fn the_multi_leg_cancel_order_format_cancels_per_leg_symbol() {
    let app = spawn_app_with(Options::default()).await;
    let (btc, _) = app.send(&limit("buy", "1", "90", "100")).await;
    let eth = json!({"symbol": "BINANCE:ETHUSDT", "action": "sell", "quantity": "1",
                     "order_type": "limit", "limit_price": "5000", "price": "2000"});
    let (eth, _) = app.send(&eth).await;
    let cancel = json!({"alertType": "cancel_order", "order_legs": [
        {"symbol": "BTCUSDT", "exchange": "BINANCE", "transactionType": "B", "orderType": "LMT", "quantity": "1"},
        {"symbol": "ETHUSDT", "exchange": "BINANCE"}
    ]});
    let (_, a) = app.send(&cancel).await;
    assert_eq!(a.outcome(), "cancelled", "{:?}", a.body);
    assert_eq!(a.orders().len(), 2);
    for id in [btc, eth] {
        assert_eq!(app.message(&id).await.body["outcome"], "cancelled");
    }
    let mixed = json!({"legs": [
        {"symbol": "BINANCE:BTCUSDT", "action": "cancel"},
        {"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "price": "1"}
    ]});
    let (_, a) = app.send(&mixed).await;
    assert_eq!(a.outcome(), "invalid");
    assert!(a.body["reason"].as_str().unwrap().starts_with("action:"));
}
