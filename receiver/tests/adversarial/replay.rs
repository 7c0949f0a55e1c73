//! Replay of a captured relay → receiver request: within the timestamp tolerance it is the same
//! journaled message (`duplicate: true`, nothing placed again); after it, `stale_timestamp`. An
//! attacker cannot refresh the timestamp or change the id: both are signed.

use serde_json::json;

use alertgate_shared::Clock;

use crate::helpers::*;

/// One captured request: headers and body exactly as they crossed the wire.
struct Captured {
    id: String,
    ts: i64,
    signature: String,
    body: Vec<u8>,
}

impl Captured {
    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", self.id.clone()),
            ("webhook-timestamp", self.ts.to_string()),
            ("webhook-signature", self.signature.clone()),
        ]
    }
}

#[tokio::test]
async fn a_replayed_request_within_the_tolerance_is_a_duplicate_and_after_it_is_stale() {
    let app = spawn_app().await;
    let body = app.envelope(&buy("1"));
    let ts = app.clock.now_unix();
    let captured = Captured {
        id: "msg_01JREPLAYREPLAYREPLAYREPLA".into(),
        ts,
        signature: app.signer.sign("msg_01JREPLAYREPLAYREPLAYREPLA", ts, &body),
        body,
    };
    let first = app
        .post_raw(&captured.headers(), captured.body.clone())
        .await;
    assert_eq!(
        (first.status, first.outcome()),
        (200, "filled"),
        "{:?}",
        first.body
    );

    // Within the tolerance: the stored outcome, nothing executed again.
    app.clock.advance(time::Duration::seconds(299));
    let replay = app
        .post_raw(&captured.headers(), captured.body.clone())
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body["duplicate"], true);
    assert_eq!(replay.orders(), first.orders());
    assert_eq!(app.all_orders().await.len(), 1);

    // After it: refused before the journal is even consulted.
    app.clock.advance(time::Duration::seconds(2));
    let late = app
        .post_raw(&captured.headers(), captured.body.clone())
        .await;
    assert_eq!(
        (late.status, late.body.clone()),
        (401, json!({"error": "stale_timestamp"}))
    );

    // Refreshing the timestamp or changing the id breaks the signature.
    let mut refreshed = captured.headers();
    refreshed[1].1 = app.clock.now_unix().to_string();
    let a = app.post_raw(&refreshed, captured.body.clone()).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (401, json!({"error": "bad_signature"}))
    );
    app.clock.advance(time::Duration::seconds(-2));
    let mut renamed = captured.headers();
    renamed[0].1 = "msg_01JOTHEROTHEROTHEROTHERO".into();
    let a = app.post_raw(&renamed, captured.body.clone()).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (401, json!({"error": "bad_signature"}))
    );

    assert_eq!(
        app.all_orders().await.len(),
        1,
        "one order, whatever was replayed"
    );
}

#[tokio::test]
async fn a_replayed_body_under_a_fresh_signature_is_caught_by_the_idempotency_window() {
    // What a relay that resends an alert as a new message (or a second relay) looks like: a new id,
    // a valid signature, the same alert key. The receiver's window records it as a duplicate.
    let app = spawn_app().await;
    let alert = json!({"id": "tv-order-7", "symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "price": "100"});
    let (_, first) = app.send(&alert).await;
    assert_eq!(first.outcome(), "filled");
    let (_, again) = app.send(&alert).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.outcome(), "duplicate");
    assert_eq!(app.all_orders().await.len(), 1);
}

#[tokio::test]
async fn reordered_deliveries_each_execute_once_and_a_delayed_one_expires() {
    let app = spawn_app().await;
    let early = app.envelope(&json!({"id": "first", "symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1", "price": "100"}));
    app.clock.advance(time::Duration::seconds(1));
    let late = app.envelope(&json!({"id": "second", "symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "1", "price": "100"}));
    // The second arrives first; the first is held back by the network past the maximum age.
    assert_eq!(app.deliver("msg_second", &late).await.outcome(), "filled");
    app.clock.advance(time::Duration::seconds(200));
    let held = app.deliver("msg_first", &early).await;
    assert_eq!(held.status, 200);
    assert_eq!(held.outcome(), "expired", "{:?}", held.body);
    assert_eq!(app.all_orders().await.len(), 1);
}
