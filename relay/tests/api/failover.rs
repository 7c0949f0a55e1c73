//! `forward.urls`: receivers tried in order, failing over on connection errors and 5xx.

use alertgate_testkit::{free_port, until};

use crate::helpers::*;

#[tokio::test]
async fn an_unreachable_or_failing_receiver_is_skipped_for_the_next_in_order() {
    let failing = TestReceiver::spawn().await;
    failing.set_status(503);
    let closed = format!("http://127.0.0.1:{}/v1/alerts", free_port().unwrap());
    let failing_url = failing.url();
    let relay = spawn_relay_with(move |s, _| {
        // The relay's own test receiver comes last: the one that works.
        let last = s.forward.url.clone();
        s.forward.url = closed;
        s.forward.urls = vec![failing_url, last];
    })
    .await;

    assert_eq!(relay.post_alert("failover-1").await.status, 200);
    let delivered = relay.receiver.wait_delivered(1).await;
    let tried = failing.wait_received(1).await;
    assert_eq!(
        tried[0].header("webhook-id"),
        delivered[0].header("webhook-id"),
        "the same alert, failed over"
    );
    assert!(failing.delivered().is_empty());

    // Once the earlier receiver is healthy again it gets the next alert (order is preference).
    failing.set_status(200);
    assert_eq!(relay.post_alert("failover-2").await.status, 200);
    failing.wait_delivered(1).await;
    assert_eq!(
        relay.receiver.delivered().len(),
        1,
        "the last receiver only got the alert the others failed"
    );
}

#[tokio::test]
async fn a_receiver_refusing_an_alert_with_4xx_ends_it_without_trying_the_next() {
    let refusing = TestReceiver::spawn().await;
    refusing.set_status(400);
    let refusing_url = refusing.url();
    let relay = spawn_relay_with(move |s, _| {
        let last = s.forward.url.clone();
        s.forward.url = refusing_url;
        s.forward.urls = vec![last];
    })
    .await;
    assert_eq!(relay.post_alert("refused-1").await.status, 200);
    refusing.wait_received(1).await;
    until("the dead letter", || async {
        !relay.dead_letters().is_empty()
    })
    .await;
    assert!(
        relay.receiver.received().is_empty(),
        "a refusal is an answer, not a failure to fail over from"
    );
}
