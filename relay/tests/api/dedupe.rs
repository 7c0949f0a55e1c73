//! Steps 8–9: the duplicate window and the spool.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_repeated_idempotency_key_gets_409_with_the_key() {
    let relay = spawn_relay().await;
    assert_eq!(relay.post_alert("order-7").await.status, 200);
    let dup = relay.post_alert("order-7").await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json(), json!({"error": "duplicate", "key": "order-7"}));
    // Other aliases and other accounts are separate keys.
    let by_ref = json!({"secret": SECRET, "account": "main", "client_ref": "order-8"}).to_string();
    assert_eq!(relay.post(by_ref.clone()).await.status, 200);
    assert_eq!(relay.post(by_ref).await.status, 409);
    let alt = json!({"secret": ALT_SECRET, "id": "order-7"}).to_string();
    assert_eq!(relay.post_to("/webhook/alt", alt).await.status, 200);
    // Alerts without a key are never duplicates.
    let keyless = json!({"secret": SECRET, "account": "main", "symbol": "X"}).to_string();
    assert_eq!(relay.post(keyless.clone()).await.status, 200);
    assert_eq!(relay.post(keyless).await.status, 200);
}

#[tokio::test]
async fn an_idempotency_key_the_receiver_would_refuse_is_a_400_naming_the_field_and_nothing_is_forwarded(
) {
    let relay = spawn_relay().await;
    let long = "k".repeat(129);
    let over = relay
        .post(json!({"secret": SECRET, "account": "main", "id": long}).to_string())
        .await;
    assert_eq!(over.status, 400);
    assert_eq!(over.json()["error"], "invalid_json");
    let message = over.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.starts_with("id:") && message.contains("128"),
        "{message}"
    );

    let disagree = relay
        .post(
            json!({"secret": SECRET, "account": "main", "idempotency_key": "a", "client_ref": "b"})
                .to_string(),
        )
        .await;
    assert_eq!(disagree.status, 400);
    let message = disagree.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("idempotency_key") && message.contains("client_ref"),
        "{message}"
    );

    // A key of exactly 128 characters is accepted (and the receiver accepts it too), and the two
    // refused alerts never reached the receiver.
    let ok = relay
        .post(json!({"secret": SECRET, "account": "main", "id": "k".repeat(128)}).to_string())
        .await;
    assert_eq!(ok.status, 200);
    let delivered = relay.receiver.wait_delivered(1).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].json()["alert"]["id"], "k".repeat(128));
}

#[tokio::test]
async fn the_duplicate_window_survives_a_restart() {
    let relay = spawn_relay().await;
    assert_eq!(relay.post_alert("survivor").await.status, 200);
    relay.receiver.wait_delivered(1).await;
    let relay = relay.restart().await;
    assert_eq!(relay.post_alert("survivor").await.status, 409);
    assert_eq!(relay.post_alert("newcomer").await.status, 200);
}

#[tokio::test]
async fn a_full_spool_answers_503_and_the_resend_is_accepted_once_there_is_room() {
    let relay = spawn_relay_with(|s, _| s.spool.max_pending = 1).await;
    relay.receiver.set_status(503);
    assert_eq!(relay.post_alert("first").await.status, 200);
    let full = relay.post_alert("second").await;
    assert_eq!(full.status, 503);
    assert_eq!(full.json()["error"], "unavailable");
    // The receiver recovers, the first alert drains, TradingView's resend gets in (not 409).
    relay.receiver.set_status(200);
    relay.receiver.wait_delivered(1).await;
    eventually_pending_zero(&relay).await;
    assert_eq!(relay.post_alert("second").await.status, 200);
    let delivered = relay.receiver.wait_delivered(2).await;
    assert_eq!(delivered[1].json()["alert"]["id"], "second");
}

async fn eventually_pending_zero(relay: &TestRelay) {
    for _ in 0..500 {
        if relay
            .metrics()
            .await
            .contains("alertgate_relay_spool_pending 0")
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("spool never drained");
}
