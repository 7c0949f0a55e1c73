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

/// The statuses of a message's orders, by leg.
fn statuses(body: &Value) -> Vec<String> {
    body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_owned())
        .collect()
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

fn bracket(side: &str, price: &str, take_profit: &str, stop_loss: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": side, "quantity": "1", "price": price,
           "take_profit": take_profit, "stop_loss": stop_loss})
}

#[tokio::test]
async fn a_filled_entry_gets_two_resting_exits_and_when_the_take_profit_fills_the_stop_is_cancelled(
) {
    let app = spawn_app_with(Options::default()).await;
    let (entry, a) = app.send(&bracket("buy", "100", "110", "90")).await;
    assert_eq!(a.outcome(), "placed", "the exits rest: {:?}", a.body);
    let orders = a.orders();
    assert_eq!(orders.len(), 3);
    let (e, tp, sl) = (&orders[0], &orders[1], &orders[2]);
    assert_eq!(
        (e["status"].as_str(), e["side"].as_str()),
        (Some("filled"), Some("buy"))
    );
    assert_eq!(tp["client_order_id"], format!("{entry}-0o1"));
    assert_eq!(
        (
            tp["side"].as_str(),
            tp["order_type"].as_str(),
            tp["limit_price"].as_str(),
            tp["status"].as_str()
        ),
        (Some("sell"), Some("limit"), Some("110"), Some("placed"))
    );
    assert_eq!(sl["client_order_id"], format!("{entry}-0o2"));
    assert_eq!(
        (
            sl["side"].as_str(),
            sl["order_type"].as_str(),
            sl["stop_price"].as_str(),
            sl["status"].as_str()
        ),
        (Some("sell"), Some("stop"), Some("90"), Some("placed"))
    );
    assert_eq!(position(&app).await, "1");

    // 105 crosses neither; 111 crosses the take-profit: it fills at 110, the stop is cancelled.
    app.send(&market("buy", "1", "105")).await;
    assert_eq!(app.message(&entry).await.body["outcome"], "placed");
    app.send(&market("buy", "1", "111")).await;
    let m = app.message(&entry).await;
    assert_eq!(m.body["outcome"], "filled", "{:?}", m.body);
    assert_eq!(statuses(&m.body), ["filled", "filled", "cancelled"]);
    assert_eq!(m.body["orders"][1]["average_price"], "110");
    assert_eq!(position(&app).await, "2", "1 - 1 (take-profit) + 1 + 1");

    // The cancelled stop never fills.
    app.send(&market("sell", "1", "80")).await;
    assert_eq!(position(&app).await, "1");
}

#[tokio::test]
async fn a_resting_limit_entry_places_its_exits_when_it_fills_and_the_stop_loss_closes_it() {
    let app = spawn_app_with(Options::default()).await;
    let mut entry_alert = bracket("buy", "105", "120", "95");
    entry_alert["order_type"] = json!("limit");
    entry_alert["limit_price"] = json!("100");
    entry_alert["tif"] = json!("gtc");
    let (entry, a) = app.send(&entry_alert).await;
    assert_eq!(a.outcome(), "placed");
    assert_eq!(
        statuses(&a.body),
        ["placed", "skipped", "skipped"],
        "no exits before the entry fills"
    );

    app.send(&market("sell", "1", "99")).await; // fills the entry at 100, places the exits
    let m = app.message(&entry).await;
    assert_eq!(
        statuses(&m.body),
        ["filled", "placed", "placed"],
        "{:?}",
        m.body
    );

    app.send(&market("buy", "1", "94")).await; // the stop at 95 fills at 94; the take-profit goes
    let m = app.message(&entry).await;
    assert_eq!(statuses(&m.body), ["filled", "cancelled", "filled"]);
    assert_eq!(m.body["outcome"], "filled");
    assert_eq!(
        position(&app).await,
        "0",
        "+1 entry, -1 sell, -1 stop, +1 buy"
    );
}

#[tokio::test]
async fn exits_on_the_wrong_side_without_a_price_or_on_a_close_are_invalid_naming_the_field() {
    let app = spawn_app_with(Options::default()).await;
    let cases = [
        (bracket("buy", "100", "110", "101"), "stop_loss:"),
        (bracket("buy", "100", "99", "90"), "take_profit:"),
        (bracket("sell", "100", "90", "99"), "stop_loss:"),
        (
            json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "stop_loss": "90"}),
            "price:",
        ),
        (
            json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "100", "stop_loss": "90"}),
            "stop_loss:",
        ),
    ];
    for (alert, field) in cases {
        let (_, a) = app.send(&alert).await;
        assert_eq!(a.outcome(), "invalid", "{alert}");
        let reason = a.body["reason"].as_str().unwrap();
        assert!(reason.starts_with(field), "{alert}: {reason}");
    }
    assert!(app.all_orders().await.is_empty());
}

#[tokio::test]
async fn a_modify_trails_the_stop_from_90_to_95_leaving_exactly_one_live_stop() {
    let app = spawn_app_with(Options::default()).await;
    let (entry, _) = app.send(&bracket("buy", "100", "110", "90")).await;
    let trail = json!({"symbol": "BINANCE:BTCUSDT", "action": "modify", "stop_loss": "95"});
    let (_, a) = app.send(&trail).await;
    assert_eq!(a.outcome(), "placed", "{:?}", a.body);
    assert_eq!(a.orders().len(), 1);
    assert_eq!(a.orders()[0]["client_order_id"], format!("{entry}-0o2"));
    assert_eq!(a.orders()[0]["stop_price"], "95");
    // Sent again (TradingView trails at the same level): nothing moves, nothing doubles.
    let (_, a) = app.send(&trail).await;
    assert_eq!(
        (a.outcome(), a.body["reason"].as_str()),
        ("placed", Some("unchanged"))
    );

    let m = app.message(&entry).await;
    let stops: Vec<&Value> = m.body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["order_type"] == "stop" && o["status"] == "placed")
        .collect();
    assert_eq!(stops.len(), 1, "{:?}", m.body);
    assert_eq!(stops[0]["stop_price"], "95");

    // 96 is above the old stop and the new one; 94.5 is below the new stop only.
    app.send(&market("buy", "1", "96")).await;
    assert_eq!(app.message(&entry).await.body["outcome"], "placed");
    app.send(&market("buy", "1", "94.5")).await;
    let m = app.message(&entry).await;
    assert_eq!(m.body["outcome"], "filled");
    assert_eq!(m.body["orders"][2]["average_price"], "94.5");
    assert_eq!(m.body["orders"][1]["status"], "cancelled");
}

#[tokio::test]
async fn a_modify_moves_a_resting_limit_and_with_nothing_working_is_invalid() {
    let app = spawn_app_with(Options::default()).await;
    let modify = json!({"symbol": "BINANCE:BTCUSDT", "action": "modify", "limit_price": "95"});
    let (_, a) = app.send(&modify).await;
    assert_eq!(
        (a.outcome(), a.body["reason"].as_str()),
        ("invalid", Some("nothing_to_modify"))
    );
    let (rest, _) = app.send(&limit("buy", "1", "90", "100")).await;
    let (_, a) = app.send(&modify).await;
    assert_eq!(a.outcome(), "placed");
    assert_eq!(a.orders()[0]["limit_price"], "95");
    app.send(&market("sell", "1", "94")).await; // crosses 95, not 90
    let m = app.message(&rest).await;
    assert_eq!(m.body["outcome"], "filled");
    assert_eq!(m.body["orders"][0]["average_price"], "95");
    let (_, a) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "modify"}))
        .await;
    assert_eq!(a.outcome(), "invalid");
    assert!(a.body["reason"]
        .as_str()
        .unwrap()
        .starts_with("limit_price:"));
}
