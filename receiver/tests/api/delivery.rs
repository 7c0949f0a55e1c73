//! Exactly-once: redeliveries, concurrent deliveries, the idempotency-key window, expiry,
//! invalid alerts and the inline deadline.

use alertgate_receiver::broker::config::{BrokerKind, PaperConfig};
use alertgate_shared::Clock as _;
use serde_json::json;

use alertgate_testkit::until;

use crate::helpers::{buy, envelope_at, spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn a_redelivered_message_returns_its_stored_outcome_and_places_nothing_new() {
    let app = spawn_app().await;
    let body = app.envelope(&buy("1"));
    let first = app.deliver("msg_redelivered", &body).await;
    let second = app.deliver("msg_redelivered", &body).await;
    assert_eq!(first.outcome(), "filled");
    assert_eq!(second.status, 200);
    assert_eq!(second.outcome(), "filled");
    assert_eq!(second.body["duplicate"], true);
    assert_eq!(second.orders(), first.orders());
    assert_eq!(app.all_orders().await.len(), 1);
}

#[tokio::test]
async fn two_concurrent_deliveries_of_one_message_place_one_order() {
    let app = spawn_app().await;
    let body = app.envelope(&buy("1"));
    let (a, b) = tokio::join!(
        app.deliver("msg_concurrent", &body),
        app.deliver("msg_concurrent", &body)
    );
    let duplicates = [&a, &b]
        .iter()
        .filter(|x| x.body["duplicate"] == true)
        .count();
    assert_eq!(duplicates, 1, "{:?} {:?}", a.body, b.body);
    assert!([200, 202].contains(&a.status) && [200, 202].contains(&b.status));
    assert_eq!(app.all_orders().await.len(), 1);
    let position_after = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "100"}))
        .await
        .1;
    assert_eq!(
        position_after.orders()[0]["quantity"],
        "1",
        "the position counts the one fill only"
    );
}

#[tokio::test]
async fn an_idempotency_key_seen_within_the_window_is_a_duplicate_and_after_it_a_new_order() {
    let app = spawn_app_with(Options::configured(|s| s.dedupe.window_seconds = 300)).await;
    let alert = json!({"id": "sma-cross-1", "symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "price": "100"});
    let (_, first) = app.send(&alert).await;
    assert_eq!(first.outcome(), "filled");

    app.clock.advance(time::Duration::seconds(299));
    let (_, within) = app.send(&alert).await;
    assert_eq!(within.status, 200);
    assert_eq!(within.outcome(), "duplicate");
    assert!(within.orders().is_empty());

    app.clock.advance(time::Duration::seconds(2));
    let (_, after) = app.send(&alert).await;
    assert_eq!(after.outcome(), "filled", "{:?}", after.body);
    assert_eq!(app.all_orders().await.len(), 2);
}

#[tokio::test]
async fn the_same_idempotency_key_on_another_account_is_not_a_duplicate() {
    let app = spawn_app().await;
    let alert = json!({"id": "k1", "symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "price": "100"});
    app.send(&alert).await;
    let other = alertgate_shared::Envelope::new(
        "other",
        alertgate_shared::Clock::now(&app.clock),
        "52.89.214.238".parse().unwrap(),
        alert.as_object().unwrap().clone(),
    );
    let a = app.deliver("msg_other_account", &other.to_bytes()).await;
    assert_eq!(a.outcome(), "filled");
}

#[tokio::test]
async fn an_alert_older_than_the_maximum_age_is_expired_and_not_executed() {
    let app = spawn_app_with(Options::configured(|s| s.risk.max_alert_age_seconds = 120)).await;
    let now = alertgate_shared::Clock::now(&app.clock);
    let old = envelope_at(&buy("1"), now - time::Duration::seconds(121));
    let a = app.deliver("msg_old", &old).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.outcome(), "expired");
    assert!(a.orders().is_empty());
    let fresh = envelope_at(&buy("1"), now - time::Duration::seconds(119));
    assert_eq!(app.deliver("msg_fresh", &fresh).await.outcome(), "filled");
}

#[tokio::test]
async fn an_invalid_alert_is_recorded_with_a_reason_naming_the_field() {
    let app = spawn_app().await;
    let (id, a) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "lots"}))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.outcome(), "invalid");
    assert!(
        a.body["reason"].as_str().unwrap().starts_with("quantity"),
        "{:?}",
        a.body
    );
    let stored = app.message(&id).await;
    assert_eq!(stored.body["outcome"], "invalid");
    assert_eq!(
        stored.body["envelope"]["alert"]["quantity"], "lots",
        "the alert is journaled as received"
    );
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_is_recorded_invalid() {
    let app = spawn_app().await;
    let a = app.deliver("msg_not_json", b"buy 1 BTC please").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.outcome(), "invalid");
    assert_eq!(
        app.message("msg_not_json").await.body["envelope"],
        "buy 1 BTC please"
    );
}

#[tokio::test]
async fn a_paper_market_order_without_a_reference_price_is_invalid() {
    let app = spawn_app().await;
    let (_, a) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1"}))
        .await;
    assert_eq!(a.outcome(), "invalid");
    assert!(
        a.body["reason"].as_str().unwrap().starts_with("price"),
        "{:?}",
        a.body
    );
    assert_eq!(a.orders()[0]["status"], "failed");
}

#[tokio::test]
async fn a_limit_order_rests_as_placed() {
    let app = spawn_app().await;
    let (_, a) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "2", "order_type": "limit", "limit_price": "150"}))
        .await;
    assert_eq!(a.outcome(), "placed");
    assert_eq!(a.orders()[0]["status"], "placed");
    assert_eq!(a.orders()[0]["limit_price"], "150");
    assert_eq!(a.orders()[0]["filled_quantity"], "0");
}

#[tokio::test]
async fn execution_still_running_at_the_inline_deadline_answers_202_and_finishes_in_the_background()
{
    let app = spawn_app_with(Options::configured(|s| {
        s.broker.kind = BrokerKind::Paper;
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 400,
            ..PaperConfig::default()
        });
        s.executor.inline_deadline_ms = 50;
    }))
    .await;
    let (id, a) = app.send(&buy("1")).await;
    assert_eq!(a.status, 202);
    assert_eq!(a.outcome(), "pending");
    let again = app.deliver(&id, &app.envelope(&buy("1"))).await;
    assert_eq!(
        (
            again.status,
            again.outcome(),
            again.body["duplicate"].clone()
        ),
        (202, "pending", json!(true))
    );
    until("the pending message to fill", || async {
        app.message(&id).await.body["outcome"] == "filled"
    })
    .await;
    let orders = app.all_orders().await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["client_order_id"], format!("{id}-0"));
}

#[tokio::test]
async fn a_delivery_preferring_respond_async_is_answered_once_journaled_and_executes_in_order() {
    // The inline deadline (30 s here) would wait out the 1 s fill: only the preference
    // answers first.
    let app = spawn_app_with(Options::configured(|s| {
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 1_000,
            ..PaperConfig::default()
        });
    }))
    .await;
    let (buy_id, b) = app.send_async(&buy("1")).await;
    assert_eq!((b.status, b.outcome()), (202, "pending"), "{:?}", b.body);
    assert_eq!(b.orders().len(), 0);
    let (close_id, c) = app
        .send_async(&json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "100"}))
        .await;
    assert_eq!((c.status, c.outcome()), (202, "pending"), "{:?}", c.body);
    // Journaled before the answer: a redelivery finds it.
    let again = app.deliver(&buy_id, &app.envelope(&buy("1"))).await;
    assert_eq!(again.body["duplicate"], json!(true), "{:?}", again.body);
    until("both messages to finish", || async {
        app.message(&close_id).await.body["outcome"] == "filled"
            && app.message(&buy_id).await.body["outcome"] == "filled"
    })
    .await;
    // Executed in arrival order: the close found the buy's position.
    let close = app.message(&close_id).await;
    assert_eq!(close.body["orders"][0]["side"], "sell", "{:?}", close.body);
    assert_eq!(close.body["orders"][0]["quantity"], "1");
    // Without the preference the answer waits for the outcome.
    let (_, inline) = app.send(&buy("1")).await;
    assert_eq!(
        (inline.status, inline.outcome()),
        (200, "filled"),
        "{:?}",
        inline.body
    );
}

#[tokio::test]
async fn a_full_backlog_holds_the_next_delivery_until_an_execution_finishes() {
    let app = spawn_app_with(Options::configured(|s| {
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 1_500,
            ..PaperConfig::default()
        });
        s.executor.max_backlog = 1;
    }))
    .await;
    let (first, a) = app.send_async(&buy("1")).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    // Another symbol: nothing orders it behind the first but the backlog.
    let (second, b) = app
        .send_async(
            &json!({"symbol": "BINANCE:ETHUSDT", "action": "buy", "quantity": "1", "price": "10"}),
        )
        .await;
    assert_eq!(b.status, 202, "{:?}", b.body);
    assert_eq!(
        app.message(&first).await.body["outcome"],
        "filled",
        "the second delivery was journaled while the first still filled"
    );
    until("the second to fill", || async {
        app.message(&second).await.body["outcome"] == "filled"
    })
    .await;
}

#[tokio::test]
async fn orders_for_one_symbol_execute_in_arrival_order() {
    let app = spawn_app_with(Options::configured(|s| {
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 300,
            ..PaperConfig::default()
        });
        s.executor.inline_deadline_ms = 20;
    }))
    .await;
    // The buy is still filling when the close arrives: the close must wait for it, then find
    // the position it left (a close that overtook the buy would find the account flat).
    let (buy_id, b) = app.send(&buy("1")).await;
    assert_eq!(b.status, 202);
    let (close_id, c) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "100"}))
        .await;
    assert_eq!(c.status, 202);
    until("both messages to finish", || async {
        app.message(&close_id).await.body["outcome"] == "filled"
            && app.message(&buy_id).await.body["outcome"] == "filled"
    })
    .await;
    let close = app.message(&close_id).await;
    assert_eq!(close.body["orders"][0]["side"], "sell", "{:?}", close.body);
    assert_eq!(close.body["orders"][0]["quantity"], "1");
}

#[tokio::test]
async fn a_multi_leg_alert_places_its_legs_in_order() {
    let app = spawn_app().await;
    let alert = json!({"legs": [
        {"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "price": "100"},
        {"symbol": "BINANCE:ETHUSDT", "action": "sell", "quantity": "2", "price": "10"}
    ]});
    let (id, a) = app.send(&alert).await;
    assert_eq!(a.outcome(), "filled", "{:?}", a.body);
    let legs: Vec<_> = a
        .orders()
        .iter()
        .map(|o| (o["client_order_id"].clone(), o["symbol"].clone()))
        .collect();
    assert_eq!(
        legs,
        vec![
            (json!(format!("{id}-0")), json!("BTCUSDT")),
            (json!(format!("{id}-1")), json!("ETHUSDT"))
        ]
    );
}

#[tokio::test]
async fn when_one_leg_fails_the_later_legs_are_skipped_not_sent() {
    let app = spawn_app().await;
    let alert = json!({"legs": [
        {"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1"},
        {"symbol": "BINANCE:ETHUSDT", "action": "buy", "quantity": "1", "price": "10"}
    ]});
    let (id, a) = app.send(&alert).await;
    assert_eq!(
        a.outcome(),
        "invalid",
        "the paper broker has no price to fill leg 0 at"
    );
    let statuses: Vec<_> = a.orders().iter().map(|o| o["status"].clone()).collect();
    assert_eq!(statuses, vec![json!("failed"), json!("skipped")]);
    let stored = app.message(&id).await;
    assert_eq!(stored.body["orders"][1]["status"], "skipped");
}

/// Found by the fault campaign (`deploy/chaos.sh --seed 6`, RELIABILITY.md): a relay that hangs
/// up while its delivery is being journaled (its attempt timed out, the link dropped) must not
/// take the rest of the delivery with it. The message is journaled once the lock is free, and
/// its execution follows at once; a handler cancelled with its connection left it `pending`
/// until the resume sweep (a minute later by default; never here, the clock is manual).
#[tokio::test]
async fn a_delivery_whose_relay_hung_up_while_it_was_journaled_still_executes() {
    let app = spawn_app_with(Options::configured(|s| s.store.busy_timeout_ms = 30_000)).await;
    // Another connection holds the journal's write lock: the delivery waits in the journal.
    let lock = rusqlite::Connection::open(app.work.db_path()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = app.envelope(&buy("1"));
    let ts = app.clock.now_unix();
    let signature = app.signer.sign("msg_hung_up", ts, &body);
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(app.url("/v1/alerts"))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_hung_up")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    assert!(
        gave_up.is_err_and(|e| e.is_timeout()),
        "the journal was locked"
    );
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    until("the message executed after its relay hung up", || async {
        app.message("msg_hung_up").await.outcome() == "filled"
    })
    .await;
    assert_eq!(app.all_orders().await.len(), 1);
}
