//! A backlog: alerts piling up while the receiver is down are all delivered once it is back,
//! their first attempts in the order they were accepted, however many there are (more than the
//! forwarder holds in memory at once) and across a restart.

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::*;

/// More than the forwarder takes from the spool at once.
const BACKLOG: usize = 600;

/// Posts `n` alerts one after the other; their ids in acceptance order.
async fn post_many(relay: &TestRelay, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let answer = relay.post_alert(&format!("{prefix}-{i}")).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        ids.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The webhook-ids of `requests` in the order of their first attempt.
fn first_attempts(requests: &[Recorded]) -> Vec<String> {
    let mut seen = HashSet::new();
    requests
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Waits (up to 30 s) until every id in `ids` was delivered.
async fn wait_all_delivered(receiver: &TestReceiver, ids: &[String]) {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    for _ in 0..3_000 {
        let delivered = receiver.delivered();
        let got: HashSet<&str> = delivered.iter().map(|r| r.header("webhook-id")).collect();
        if want.is_subset(&got) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let n = receiver.delivered().len();
    panic!("only {n} deliveries for {} alerts", ids.len());
}

#[tokio::test]
async fn first_attempts_follow_the_order_of_acceptance_through_a_backlog() {
    // One attempt at a time, so the receiver sees them in the order they were sent.
    let relay = spawn_relay_with(|s, _| s.forward.concurrency = 1).await;
    relay.receiver.set_status(503);
    let ids = post_many(&relay, "order", BACKLOG).await;
    relay.receiver.set_status(200);
    wait_all_delivered(&relay.receiver, &ids).await;
    assert_eq!(first_attempts(&relay.receiver.received()), ids);
}

#[tokio::test]
async fn a_backlog_larger_than_a_batch_drains_completely() {
    let relay = spawn_relay().await;
    relay.receiver.set_status(503);
    let ids = post_many(&relay, "drain", BACKLOG).await;
    relay.receiver.set_status(200);
    wait_all_delivered(&relay.receiver, &ids).await;
    let mut pending = String::new();
    for _ in 0..500 {
        pending = relay.metrics().await;
        if pending.contains("alertgate_relay_spool_pending 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        pending.contains("alertgate_relay_spool_pending 0"),
        "{pending}"
    );
    assert!(relay.dead_letters().is_empty());
}

#[tokio::test]
async fn a_restart_with_a_backlog_resumes_it_in_the_order_of_acceptance() {
    let relay = spawn_relay_with(|s, _| s.forward.concurrency = 1).await;
    relay.receiver.set_status(503);
    let ids = post_many(&relay, "resume", BACKLOG).await;
    let (settings, files, receiver, clock) = relay.stop().await;
    let before = receiver.received().len();
    let relay = start(settings, files, receiver, clock).await;
    relay.receiver.set_status(200);
    wait_all_delivered(&relay.receiver, &ids).await;
    // Alerts never tried before the restart are read back from the segments, in order.
    let after = relay.receiver.received().split_off(before);
    assert_eq!(first_attempts(&after), ids);
    let text = relay.metrics().await;
    assert!(
        metric(
            &text,
            r#"alertgate_relay_forward_total{outcome="delivered"}"#
        ) >= BACKLOG as f64,
        "{text}"
    );
}
