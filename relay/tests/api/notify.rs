//! `[[notify]]` on the relay: a dead letter is told to a destination.

use alertgate_testkit::emulators::slack::SlackEmulator;
use alertgate_testkit::until;

use crate::helpers::*;

#[tokio::test]
async fn a_dead_letter_is_told_to_slack_with_its_id_and_reason() {
    let hook = SlackEmulator::webhook("RELAYHOOK").await.unwrap();
    let url = hook.webhook_url();
    let relay = spawn_relay_with(move |s, files| {
        std::fs::write(files.path().join("slack-url"), &url).unwrap();
        s.notify = vec![serde_json::from_value(serde_json::json!({
            "kind": "slack",
            "webhook_url": files.file_ref("slack-url").to_string(),
            "min_interval_ms": 0,
        }))
        .unwrap()];
    })
    .await;
    relay.receiver.set_status(422);
    let id = relay.post_alert("bad").await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    until("the dead letter's notice", || async {
        !hook.messages().is_empty()
    })
    .await;
    let text = &hook.messages()[0].text;
    assert!(
        text.starts_with(&format!("dead letter: {id} rejected_422 · relay · main")),
        "{text}"
    );
    assert_eq!(hook.messages().len(), 1);
    until("the metric", || async {
        relay.metrics().await.contains(
            r#"alertgate_relay_notifications_total{destination="slack",outcome="sent"} 1"#,
        )
    })
    .await;
}
