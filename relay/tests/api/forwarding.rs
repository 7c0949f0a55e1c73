//! Forwarding: signatures, envelope, retries, dead letters, expiry.

use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::{Clock, ManualClock};

use crate::helpers::*;

#[tokio::test]
async fn the_forwarded_request_verifies_carries_no_secret_and_is_signed_byte_for_byte() {
    let relay = spawn_relay().await;
    let accepted = relay.post_alert("sig-1").await;
    assert_eq!(accepted.status, 200);
    let id = accepted.json()["id"].as_str().unwrap().to_owned();
    let got = relay.receiver.wait_delivered(1).await.remove(0);

    assert_eq!(got.header("webhook-id"), id);
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(
        got.header("prefer"),
        "respond-async",
        "the receiver may answer once it has journaled the alert"
    );
    let now = relay.clock.now_unix();
    relay
        .verifier()
        .verify(
            Some(got.header("webhook-id")),
            Some(got.header("webhook-timestamp")),
            Some(got.header("webhook-signature")),
            &got.body,
            now,
        )
        .expect("the signature covers exactly the bytes received");
    let text = std::str::from_utf8(&got.body).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    let envelope = got.json();
    assert_eq!(envelope["type"], "tradingview.alert");
    assert_eq!(envelope["account"], "main");
    assert_eq!(envelope["source_ip"], "127.0.0.1");
    assert!(envelope["alert"].get("secret").is_none());
    assert_eq!(
        envelope["alert"]["price"], "42000.5",
        "values are passed on untouched"
    );
    // A flipped byte no longer verifies.
    let mut tampered = got.body.to_vec();
    tampered[10] ^= 1;
    assert!(relay
        .verifier()
        .verify(
            Some(&id),
            Some(got.header("webhook-timestamp")),
            Some(got.header("webhook-signature")),
            &tampered,
            now
        )
        .is_err());
}

#[tokio::test]
async fn a_receiver_answering_503_then_200_gets_the_alert_delivered_exactly_once() {
    let relay = spawn_relay().await;
    relay.receiver.set_status(503);
    assert_eq!(relay.post_alert("retry-me").await.status, 200);
    let attempts = relay.receiver.wait_received(3).await;
    relay.receiver.set_status(200);
    let delivered = relay.receiver.wait_delivered(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        relay.receiver.delivered().len(),
        1,
        "delivered exactly once"
    );
    let all = relay.receiver.received();
    let id = delivered[0].header("webhook-id");
    assert!(
        all.iter().all(|r| r.header("webhook-id") == id),
        "same id on every attempt"
    );
    assert!(
        all.iter().all(|r| r.body == delivered[0].body),
        "same body on every attempt"
    );
    assert!(attempts.len() >= 3);
    let text = relay.metrics().await;
    assert!(
        metric(&text, r#"alertgate_relay_forward_total{outcome="retry"}"#) >= 3.0,
        "{text}"
    );
}

#[tokio::test]
async fn retries_are_re_signed_with_a_fresh_timestamp() {
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let files = Arc::new(Files::new());
    let receiver = TestReceiver::spawn().await;
    let settings = test_settings(&files, &receiver);
    let relay = start(settings, files, receiver, Arc::new(clock.clone())).await;
    relay.receiver.set_status(503);
    assert_eq!(relay.post_alert("ts").await.status, 200);
    relay.receiver.wait_received(1).await;
    clock.advance(time::Duration::seconds(30));
    relay.receiver.set_status(200);
    let got = relay.receiver.wait_delivered(1).await.remove(0);
    let first = relay.receiver.received()[0]
        .header("webhook-timestamp")
        .parse::<i64>()
        .unwrap();
    let last = got.header("webhook-timestamp").parse::<i64>().unwrap();
    assert!(last >= first + 30, "{first} → {last}");
    relay
        .verifier()
        .verify(
            Some(got.header("webhook-id")),
            Some(got.header("webhook-timestamp")),
            Some(got.header("webhook-signature")),
            &got.body,
            clock.now_unix(),
        )
        .unwrap();
}

#[tokio::test]
async fn a_permanent_4xx_from_the_receiver_is_dead_lettered_with_its_status() {
    let relay = spawn_relay().await;
    relay.receiver.set_status(422);
    let id = relay.post_alert("bad").await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    until("dead letter", || async { !relay.dead_letters().is_empty() }).await;
    let dead = relay.dead_letters();
    assert_eq!(dead[0]["id"], id.as_str());
    assert_eq!(dead[0]["reason"], "rejected_422");
    assert_eq!(
        relay.receiver.received().len(),
        1,
        "a permanent refusal is not retried"
    );
    let text = relay.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"alertgate_relay_dead_letters_total{reason="rejected"}"#
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_429_or_408_from_the_receiver_is_retried() {
    let relay = spawn_relay().await;
    relay.receiver.set_status(429);
    assert_eq!(relay.post_alert("busy").await.status, 200);
    relay.receiver.wait_received(2).await;
    relay.receiver.set_status(408);
    let n = relay.receiver.received().len();
    relay.receiver.wait_received(n + 2).await;
    relay.receiver.set_status(200);
    relay.receiver.wait_delivered(1).await;
    assert!(relay.dead_letters().is_empty());
}

#[tokio::test]
async fn an_alert_older_than_max_age_is_dead_lettered_as_expired_and_never_delivered_late() {
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let files = Arc::new(Files::new());
    let receiver = TestReceiver::spawn().await;
    let mut settings = test_settings(&files, &receiver);
    settings.forward.max_age_seconds = 2;
    let relay = start(settings, files, receiver, Arc::new(clock.clone())).await;
    relay.receiver.set_status(503);
    let id = relay.post_alert("late").await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    relay.receiver.wait_received(2).await;

    clock.advance(time::Duration::seconds(3));
    until("expired dead letter", || async {
        !relay.dead_letters().is_empty()
    })
    .await;
    relay.receiver.set_status(200);
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        relay.receiver.delivered().is_empty(),
        "never delivered after max_age"
    );
    let dead = relay.dead_letters();
    assert_eq!(dead[0]["id"], id.as_str());
    assert_eq!(dead[0]["reason"], "expired");
    assert!(dead[0]["envelope"].as_str().unwrap().contains("\"late\""));
    let text = relay.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"alertgate_relay_dead_letters_total{reason="expired"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(text.contains("alertgate_relay_spool_pending 0"), "{text}");

    // And a restart does not resurrect it.
    let relay = relay.restart().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(relay.receiver.delivered().is_empty());
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_alert_once_it_is_back() {
    // Nothing listens on the receiver's port at first.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let relay =
        spawn_relay_with(move |s, _| s.forward.url = format!("http://127.0.0.1:{port}/v1/alerts"))
            .await;
    assert_eq!(relay.post_alert("down").await.status, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let receiver = TestReceiver::spawn_on(port).await;
    let got = receiver.wait_delivered(1).await;
    assert_eq!(got[0].json()["alert"]["id"], "down");
}

#[tokio::test]
async fn hmac_secrets_add_v1_signatures_any_standard_webhooks_library_verifies() {
    use alertgate_shared::{HmacSecret, SecretRef, Verifier};
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let relay = spawn_relay_with(|s, files| {
        std::fs::write(files.path().join("whsec"), WHSEC).unwrap();
        s.signing.hmac_secrets = vec![SecretRef::File(files.path().join("whsec"))];
    })
    .await;
    assert_eq!(relay.post_alert("hmac").await.status, 200);
    let got = relay.receiver.wait_delivered(1).await.remove(0);
    let signature = got.header("webhook-signature");
    assert!(
        signature.starts_with("v1a,") && signature.contains(" v1,"),
        "{signature}"
    );
    let hmac_only = Verifier::new(vec![], vec![HmacSecret::parse(WHSEC).unwrap()], 300).unwrap();
    hmac_only
        .verify(
            Some(got.header("webhook-id")),
            Some(got.header("webhook-timestamp")),
            Some(signature),
            &got.body,
            relay.clock.now_unix(),
        )
        .unwrap();
}
