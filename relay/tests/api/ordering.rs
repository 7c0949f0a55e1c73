//! Delivery order: alerts of one (account, ticker) reach the receiver one at a time, in the order
//! the relay accepted them, whatever retries happen; other tickers are not held up.

use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::ManualClock;

use crate::helpers::*;

fn alert_on(id: &str, symbol: &str) -> String {
    serde_json::json!({
        "secret": SECRET, "account": "main", "id": id, "symbol": symbol, "action": "buy",
        "quantity": "0.01", "price": "42000.5"
    })
    .to_string()
}

/// The idempotency keys of the requests answered 2xx, in the order they were answered.
fn delivered_keys(receiver: &TestReceiver) -> Vec<String> {
    receiver
        .delivered()
        .iter()
        .map(|r| r.json()["alert"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sent_keys(receiver: &TestReceiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["alert"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_retried_alert_is_not_overtaken_by_a_later_alert_of_its_symbol_and_holds_up_no_other() {
    let relay = spawn_relay().await;
    relay.receiver.hold("btc-1");
    assert_eq!(
        relay
            .post(alert_on("btc-1", "BINANCE:BTCUSDT"))
            .await
            .status,
        200
    );
    // Another spelling of the same ticker is the same key.
    assert_eq!(relay.post(alert_on("btc-2", "BTCUSDT")).await.status, 200);
    assert_eq!(
        relay
            .post(alert_on("eth-1", "BINANCE:ETHUSDT"))
            .await
            .status,
        200
    );

    // ETHUSDT goes through while BTCUSDT's first alert is being retried.
    until("eth-1 delivered and btc-1 retried", || async {
        let sent = sent_keys(&relay.receiver);
        delivered_keys(&relay.receiver) == ["eth-1"]
            && sent.iter().filter(|k| *k == "btc-1").count() >= 3
    })
    .await;
    assert!(
        !sent_keys(&relay.receiver).contains(&"btc-2".to_owned()),
        "btc-2 was sent while btc-1 was still being retried: {:?}",
        sent_keys(&relay.receiver)
    );

    relay.receiver.release("btc-1");
    relay.receiver.wait_delivered(3).await;
    assert_eq!(delivered_keys(&relay.receiver), ["eth-1", "btc-1", "btc-2"]);
}

#[tokio::test]
async fn a_dead_lettered_alert_lets_the_next_alert_of_its_symbol_go() {
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let files = Arc::new(Files::new());
    let receiver = TestReceiver::spawn().await;
    let mut settings = test_settings(&files, &receiver);
    settings.forward.max_age_seconds = 3;
    let relay = start(settings, files, receiver, Arc::new(clock.clone())).await;
    relay.receiver.hold("old");
    assert_eq!(relay.post(alert_on("old", "BTCUSDT")).await.status, 200);
    relay.receiver.wait_received(2).await;
    clock.advance(time::Duration::seconds(2));
    assert_eq!(relay.post(alert_on("next", "BTCUSDT")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !sent_keys(&relay.receiver).contains(&"next".to_owned()),
        "next went out while old was still tried"
    );
    // `old` is now past its max age, `next` is not.
    clock.advance(time::Duration::seconds(2));
    relay.receiver.wait_delivered(1).await;
    assert_eq!(delivered_keys(&relay.receiver), ["next"]);
    let letters = relay.dead_letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["reason"], "expired");
    assert!(letters[0]["envelope"].as_str().unwrap().contains("\"old\""));
}

#[tokio::test]
async fn many_alerts_of_a_few_symbols_arrive_in_acceptance_order_per_symbol_under_retries() {
    let relay = spawn_relay().await;
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
    let mut accepted: Vec<(String, &str)> = Vec::new();
    for n in 0..60 {
        let symbol = symbols[n % symbols.len()];
        let key = format!("k{n}");
        // Every seventh alert is refused for a while: its successors on that symbol must wait.
        if n % 7 == 0 {
            relay.receiver.hold(&key);
        }
        assert_eq!(relay.post(alert_on(&key, symbol)).await.status, 200);
        accepted.push((key, symbol));
        if n % 7 == 3 {
            relay.receiver.release(&format!("k{}", n - 3));
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for n in (0..60).step_by(7) {
        relay.receiver.release(&format!("k{n}"));
    }
    relay.receiver.wait_delivered(60).await;
    let delivered = delivered_keys(&relay.receiver);
    assert_eq!(
        delivered.len(),
        60,
        "each alert delivered once: {delivered:?}"
    );
    for symbol in symbols {
        let want: Vec<&str> = accepted
            .iter()
            .filter(|(_, s)| *s == symbol)
            .map(|(k, _)| k.as_str())
            .collect();
        let got: Vec<&str> = delivered
            .iter()
            .filter(|k| want.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        assert_eq!(got, want, "{symbol} out of acceptance order");
    }
}
