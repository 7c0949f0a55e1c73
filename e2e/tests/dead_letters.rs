//! Dead-letter replay with the real binaries: a receiver that refuses the relay (it trusts
//! another key) makes dead letters; once fixed, `dead-letters replay` places each alert once, and
//! a second replay is answered `duplicate` and places nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use alertgate_e2e::{binary, keygen, Stack, SECRET};
use alertgate_shared::SecretRef;
use alertgate_testkit::until;

fn replay_all(stack: &Stack) {
    let out = Command::new(binary("alertgate-relay").unwrap())
        .args(["dead-letters", "replay", "--all", "--config"])
        .arg(stack.relay.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn delivered(stack: &Stack) -> f64 {
    stack
        .metric(
            stack.relay_config.metrics.listen,
            "alertgate_relay_forward_total",
            r#"outcome="delivered""#,
        )
        .await
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_dead_letters_are_placed_once_and_a_second_replay_places_nothing() {
    let mut stack = Stack::start().await.unwrap();
    // The receiver is misconfigured: it trusts another relay's key, so it answers 401.
    let good = stack.receiver_config.verify.public_keys.clone();
    keygen(&stack.dir.path().join("other")).unwrap();
    stack.receiver_config.verify.public_keys =
        vec![SecretRef::File(stack.dir.path().join("other.pub"))];
    stack.write_receiver_config().unwrap();
    stack.receiver.stop().await.unwrap();
    stack.receiver.start().await.unwrap();
    for n in 0..2 {
        let a = stack.send(&Stack::alert(n, SECRET)).await.unwrap();
        assert_eq!(a.status, 200);
    }
    let letters = stack.relay_config.spool.dir.join("dead/dead-letters.jsonl");
    until("two dead letters", || async {
        std::fs::read_to_string(&letters)
            .map(|t| t.lines().count() == 2)
            .unwrap_or(false)
    })
    .await;
    assert!(stack.orders().await.unwrap().is_empty());

    // Fixed; the relay keeps running throughout.
    stack.receiver_config.verify.public_keys = good;
    stack.write_receiver_config().unwrap();
    stack.receiver.stop().await.unwrap();
    stack.receiver.start().await.unwrap();
    replay_all(&stack);
    let orders = stack
        .wait_for_orders(2, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(orders.len(), 2);
    until("both replays delivered", || async {
        delivered(&stack).await >= 2.0
    })
    .await;

    replay_all(&stack);
    until("the second replay delivered", || async {
        delivered(&stack).await >= 4.0
    })
    .await;
    let orders = stack.orders().await.unwrap();
    assert_eq!(
        orders.len(),
        2,
        "a second replay is a duplicate at the receiver: {orders:?}"
    );
}
