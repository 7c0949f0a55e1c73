//! Target-position alerts on the paper venue (DESIGN section 12): the receiver places the
//! difference to the position the journal holds, reverses through zero in two orders, does
//! nothing at the target, never interleaves two targets, and resumes a reversal cut by a crash.

use std::time::Duration;

use alertgate_receiver::broker::config::PaperConfig;
use alertgate_testkit::until;
use serde_json::{json, Value};

use crate::helpers::{
    envelope_at, spawn_app, spawn_app_with, start_process, Options, ProcessClient, Workdir, BIN,
};

fn target(position: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "target_position": position, "price": "100"})
}

/// (side, quantity, status) of each order of an answer.
fn legs(orders: &[Value]) -> Vec<(String, String, String)> {
    orders
        .iter()
        .map(|o| {
            (
                o["side"].as_str().unwrap().to_owned(),
                o["quantity"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn order(side: &str, quantity: &str) -> (String, String, String) {
    (side.into(), quantity.into(), "filled".into())
}

#[tokio::test]
async fn targets_0_then_0_03_then_minus_0_01_then_0_buy_reverse_in_two_orders_and_flatten() {
    let app = spawn_app().await;

    let (_, flat) = app.send(&target("0")).await;
    assert_eq!(
        (flat.outcome(), flat.body["reason"].as_str()),
        ("filled", Some("already_at_target"))
    );
    assert!(flat.orders().is_empty());

    let (_, long) = app.send(&target("0.03")).await;
    assert_eq!(long.outcome(), "filled", "{:?}", long.body);
    assert_eq!(legs(long.orders()), [order("buy", "0.03")]);

    let (id, short) = app.send(&target("-0.01")).await;
    assert_eq!(short.outcome(), "filled", "{:?}", short.body);
    assert_eq!(
        legs(short.orders()),
        [order("sell", "0.03"), order("sell", "0.01")],
        "the close, then the open"
    );
    assert_eq!(short.orders()[0]["waits_for_fill"], false);
    assert_eq!(
        short.orders()[1]["waits_for_fill"],
        true,
        "the open waits for the close's fill"
    );
    assert_eq!(short.orders()[1]["client_order_id"], format!("{id}-0o1"));
    let sizing = &app.message(&id).await.body["orders"][1]["sizing"];
    assert_eq!(
        (
            sizing["method"].as_str(),
            sizing["target"].as_str(),
            sizing["position"].as_str(),
            sizing["position_source"].as_str(),
            sizing["part"].as_str()
        ),
        (
            Some("target"),
            Some("-0.01"),
            Some("0.03"),
            Some("journal"),
            Some("open")
        )
    );

    let (_, back) = app.send(&target("0")).await;
    assert_eq!(legs(back.orders()), [order("buy", "0.01")]);

    let (_, again) = app.send(&target("0")).await;
    assert_eq!(
        (again.outcome(), again.body["reason"].as_str()),
        ("filled", Some("already_at_target"))
    );
    assert!(again.orders().is_empty(), "nothing placed at the target");
    assert_eq!(app.all_orders().await.len(), 4);
    app.reconciler.run_once().await.unwrap();
    let positions = app.positions().await;
    assert!(!positions[0]["reconciled_at"].is_null(), "{positions:?}");
    assert_eq!(positions.len(), 1);
    assert_eq!(
        (
            positions[0]["position"].as_str(),
            positions[0]["venue_position"].clone()
        ),
        (Some("0"), Value::Null),
        "paper cannot report a venue position"
    );
}

#[tokio::test]
async fn position_size_and_flat_sentiment_are_targets_and_action_and_quantity_are_not_used() {
    let app = spawn_app().await;
    let (_, a) = app
        .send(
            &json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "9",
                      "position_size": 2, "price": "100"}),
        )
        .await;
    assert_eq!(legs(a.orders()), [order("buy", "2")]);
    let (_, flat) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "sentiment": "flat", "price": "100"}))
        .await;
    assert_eq!(legs(flat.orders()), [order("sell", "2")]);
}

#[tokio::test]
async fn two_target_alerts_5ms_apart_never_interleave_the_second_sees_the_first_fill() {
    let app = spawn_app_with(Options::configured(|s| {
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 150,
            ..PaperConfig::default()
        });
        s.executor.inline_deadline_ms = 5000;
    }))
    .await;
    let app = std::sync::Arc::new(app);
    let first = tokio::spawn({
        let app = app.clone();
        async move { app.send(&target("1")).await }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = tokio::spawn({
        let app = app.clone();
        async move { app.send(&target("3")).await }
    });
    let (_, a) = first.await.unwrap();
    let (_, b) = second.await.unwrap();
    assert_eq!(legs(a.orders()), [order("buy", "1")]);
    assert_eq!(
        legs(b.orders()),
        [order("buy", "2")],
        "the second target starts from the first one's fill"
    );
    assert_eq!(app.positions().await[0]["position"], "3");
}

#[tokio::test]
async fn a_restart_between_the_close_and_the_open_of_a_reversal_resumes_with_the_open_and_the_same_ids(
) {
    let slow = Options::configured(|s| {
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 1500,
            ..PaperConfig::default()
        });
        s.executor.inline_deadline_ms = 50;
    });
    let work = Workdir::new(&slow);
    let mut first = start_process(&work, &slow).await;
    let client = ProcessClient::new(&work, first.addr);
    let now = time::OffsetDateTime::now_utc;
    client
        .deliver("msg_long", &envelope_at(&target("2"), now()))
        .await;
    until("the long position to fill", || async {
        client.orders().await.first().map(|o| o["status"].clone()) == Some(json!("filled"))
    })
    .await;

    let reverse = envelope_at(&target("-1"), now());
    let a = client.deliver("msg_flip", &reverse).await;
    assert_eq!(a.outcome(), "pending");
    let db = work.db_path();
    let paper_has = |cid: &'static str| {
        let db = db.clone();
        async move {
            rusqlite::Connection::open(&db)
                .unwrap()
                .query_row(
                    "SELECT COUNT(*) FROM paper_orders WHERE client_order_id = ?1",
                    [cid],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                == 1
        }
    };
    until("the close to be filled at the venue", || {
        paper_has("msg_flip-0")
    })
    .await;
    assert!(
        !paper_has("msg_flip-0o1").await,
        "the open is still on its way"
    );
    first.service.kill9().unwrap();

    let fast = Options::default();
    let mut second = start_process(&work, &fast).await;
    let client = ProcessClient::new(&work, second.addr);
    until("the reversal to finish", || async {
        let orders = client.orders().await;
        orders.len() == 3 && orders.iter().all(|o| o["status"] == "filled")
    })
    .await;
    let again = client.deliver("msg_flip", &reverse).await;
    assert_eq!(again.outcome(), "filled", "{:?}", again.body);
    let ids: Vec<&str> = again
        .orders()
        .iter()
        .map(|o| o["client_order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["msg_flip-0", "msg_flip-0o1"]);
    assert_eq!(
        legs(again.orders()),
        [order("sell", "2"), order("sell", "1")]
    );
    second.service.stop().await.unwrap();

    let conn = rusqlite::Connection::open(work.db_path()).unwrap();
    let venue_orders: i64 = conn
        .query_row("SELECT COUNT(*) FROM paper_orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        venue_orders, 3,
        "one long, one close, one open: nothing doubled"
    );
    let position: String = conn
        .query_row("SELECT quantity FROM positions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(position, "-1");

    let table = std::process::Command::new(BIN)
        .args(["positions", "--config"])
        .arg(work.path().join("receiver.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(text.starts_with("ACCOUNT"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.contains("BTCUSDT"))
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["main", "paper", "BTCUSDT", "-1"], "{text}");
}
