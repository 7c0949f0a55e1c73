//! Step 6: account resolution and the secret.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn wrong_secret_unknown_account_and_missing_secret_get_identical_401s() {
    let relay = spawn_relay().await;
    let wrong = relay
        .post_to(
            "/webhook/main",
            json!({"secret": "nope", "id": "1"}).to_string(),
        )
        .await;
    let unknown = relay
        .post_to(
            "/webhook/ghost",
            json!({"secret": SECRET, "id": "1"}).to_string(),
        )
        .await;
    let missing = relay
        .post_to("/webhook/main", json!({"id": "1"}).to_string())
        .await;
    let other = relay
        .post_to(
            "/webhook/alt",
            json!({"secret": SECRET, "id": "1"}).to_string(),
        )
        .await;
    let unnamed = relay
        .post(json!({"secret": SECRET, "id": "1"}).to_string())
        .await;
    for a in [&wrong, &unknown, &missing, &other, &unnamed] {
        assert_eq!(a.status, 401);
        assert_eq!(a.text, r#"{"error":"unauthorized"}"#);
    }
    assert!(relay.receiver.received().is_empty());
}

#[tokio::test]
async fn the_account_comes_from_the_path_or_the_body() {
    let relay = spawn_relay().await;
    assert_eq!(
        relay
            .post_to(
                "/webhook/alt",
                json!({"secret": ALT_SECRET, "id": "p"}).to_string()
            )
            .await
            .status,
        200
    );
    assert_eq!(
        relay
            .post(json!({"secret": ALT_SECRET, "account": "alt", "id": "b"}).to_string())
            .await
            .status,
        200
    );
    assert_eq!(
        relay
            .post(json!({"secret": SECRET, "fund_id": "main", "id": "f"}).to_string())
            .await
            .status,
        200
    );
    let delivered = relay.receiver.wait_delivered(3).await;
    let mut accounts: Vec<String> = delivered
        .iter()
        .map(|r| r.json()["account"].as_str().unwrap().to_owned())
        .collect();
    accounts.sort();
    assert_eq!(accounts, ["alt", "alt", "main"]);
}

#[tokio::test]
async fn a_single_account_is_assumed_when_none_is_named() {
    let relay = spawn_relay_with(|s, _| s.accounts.truncate(1)).await;
    let a = relay
        .post(json!({"secret": SECRET, "id": "solo"}).to_string())
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn a_json_alert_sent_as_text_plain_is_accepted() {
    let relay = spawn_relay().await;
    let resp = relay
        .client
        .post(relay.url("/webhook/main"))
        .header("content-type", "text/plain; charset=utf-8")
        .body(alert("tp"))
        .send()
        .await
        .unwrap();
    let a = answer(resp).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "accepted");
    assert!(a.json()["id"].as_str().unwrap().starts_with("msg_"));
}
