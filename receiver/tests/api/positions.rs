//! `close`, `close_long`, `close_short` resolve from the position the journal keeps.

use serde_json::json;

use crate::helpers::{buy, spawn_app};

fn close(action: &str) -> serde_json::Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": action, "price": "100"})
}

#[tokio::test]
async fn close_after_two_buys_flattens_the_summed_position() {
    let app = spawn_app().await;
    app.send(&buy("0.25")).await;
    app.send(&buy("0.5")).await;
    let (_, a) = app.send(&close("close")).await;
    assert_eq!(a.outcome(), "filled", "{:?}", a.body);
    assert_eq!(a.orders().len(), 1);
    assert_eq!(a.orders()[0]["side"], "sell");
    assert_eq!(a.orders()[0]["quantity"], "0.75");
    let (_, again) = app.send(&close("close")).await;
    assert!(
        again.orders().is_empty(),
        "flat after the close: {:?}",
        again.body
    );
}

#[tokio::test]
async fn close_when_flat_places_nothing_and_says_so() {
    let app = spawn_app().await;
    let (id, a) = app.send(&close("close")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.outcome(), "filled");
    assert_eq!(a.body["reason"], "nothing_to_close");
    assert!(a.orders().is_empty());
    assert!(app.all_orders().await.is_empty());
    assert_eq!(app.message(&id).await.body["reason"], "nothing_to_close");
}

#[tokio::test]
async fn close_of_a_short_position_buys_it_back() {
    let app = spawn_app().await;
    app.send(
        &json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "3", "price": "100"}),
    )
    .await;
    let (_, a) = app.send(&close("close")).await;
    assert_eq!(
        (
            a.orders()[0]["side"].clone(),
            a.orders()[0]["quantity"].clone()
        ),
        (json!("buy"), json!("3"))
    );
}

#[tokio::test]
async fn close_long_sells_only_a_long_position_and_close_short_buys_only_a_short_one() {
    let app = spawn_app().await;
    app.send(&buy("2")).await;
    let (_, short) = app.send(&close("close_short")).await;
    assert!(
        short.orders().is_empty(),
        "close_short while long does nothing"
    );
    let (_, long) = app.send(&close("close_long")).await;
    assert_eq!(
        (
            long.orders()[0]["side"].clone(),
            long.orders()[0]["quantity"].clone()
        ),
        (json!("sell"), json!("2"))
    );

    app.send(
        &json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "1", "price": "100"}),
    )
    .await;
    let (_, long) = app.send(&close("close_long")).await;
    assert!(
        long.orders().is_empty(),
        "close_long while short does nothing"
    );
    let (_, short) = app.send(&close("close_short")).await;
    assert_eq!(
        (
            short.orders()[0]["side"].clone(),
            short.orders()[0]["quantity"].clone()
        ),
        (json!("buy"), json!("1"))
    );
}

#[tokio::test]
async fn a_resting_limit_order_does_not_change_the_position() {
    let app = spawn_app().await;
    app.send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "order_type": "limit", "limit_price": "90"}))
        .await;
    let (_, a) = app.send(&close("close")).await;
    assert!(a.orders().is_empty());
}
