//! A receiver on PostgreSQL whose commit answers are lost (RELIABILITY.md, "Found" 3): the
//! database committed, the connection closed before its answer came back, and the receiver
//! answered 503. The relay's redelivery must finish the message at once (not a resume sweep
//! later) and `messages_total` count it once.
//!
//! The receiver runs in-process on a manual clock with `resume_after_seconds` of a day, so
//! nothing but the redelivery can execute what is left `pending`. Its database link goes
//! through testkit's proxy, which drops the answer to one transaction's `COMMIT`.

use std::sync::Arc;

use alertgate_testkit::postgres::TestSchema;
use alertgate_testkit::proxy::Proxy;

use crate::helpers::{buy, messages_counted, on_postgres, spawn_in, Options, TestApp, Workdir};

/// A receiver whose database is reached through the returned proxy.
async fn receiver_behind_proxy(schema: &TestSchema) -> (TestApp, Proxy) {
    let proxy = Proxy::start(schema.server_addr().unwrap()).await.unwrap();
    let options = Options::configured(|s| s.executor.resume_after_seconds = 86_400);
    let work = Arc::new(Workdir::new(&options));
    let options = on_postgres(&work, schema, &options);
    std::fs::write(work.path().join("database-url"), schema.url_via(proxy.addr)).unwrap();
    (spawn_in(work, &options).await, proxy)
}

/// The outcome journaled for message `id`, read past the receiver.
async fn journaled(schema: &TestSchema, id: &str) -> Vec<String> {
    schema
        .query_text(&format!("SELECT outcome FROM messages WHERE id = '{id}'"))
        .await
        .unwrap()
}

async fn count(schema: &TestSchema, sql: &str) -> i64 {
    schema.query_text(sql).await.unwrap()[0].parse().unwrap()
}

#[tokio::test]
async fn a_message_whose_admission_committed_without_an_answer_executes_at_its_redelivery() {
    let schema = TestSchema::create().await.unwrap();
    let (app, proxy) = receiver_behind_proxy(&schema).await;
    let body = app.envelope(&buy("1"));

    proxy.drop_answer_after(b"INSERT INTO messages", b"COMMIT");
    let lost = app.deliver("msg_lost_admission", &body).await;
    assert_eq!(lost.status, 503, "{:?}", lost.body);
    assert_eq!(
        journaled(&schema, "msg_lost_admission").await,
        ["pending"],
        "the admission committed all the same"
    );

    // The relay sends it again: the same id, the same body.
    let again = app.deliver("msg_lost_admission", &body).await;
    assert_eq!(
        (again.status, again.outcome()),
        (200, "filled"),
        "executed by the redelivery: {:?}",
        again.body
    );
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.orders().len(), 1);
    assert_eq!(again.orders()[0]["client_order_id"], "msg_lost_admission-0");
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(
        count(&schema, "SELECT COUNT(*) FROM paper_orders").await,
        1,
        "the venue saw one order"
    );

    let third = app.deliver("msg_lost_admission", &body).await;
    assert_eq!((third.status, third.outcome()), (200, "filled"));
    let metrics = app.metrics().await;
    assert_eq!(messages_counted(&metrics, "filled"), 1, "{metrics}");
    assert_eq!(messages_counted(&metrics, "pending"), 0, "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn an_outcome_committed_without_an_answer_is_counted_once_when_the_redelivery_reads_it() {
    let schema = TestSchema::create().await.unwrap();
    let (app, proxy) = receiver_behind_proxy(&schema).await;
    let body = app.envelope(&buy("1"));

    proxy.drop_answer_after(b"UPDATE messages SET outcome", b"COMMIT");
    let lost = app.deliver("msg_lost_outcome", &body).await;
    assert_eq!(lost.status, 503, "{:?}", lost.body);
    assert_eq!(
        journaled(&schema, "msg_lost_outcome").await,
        ["filled"],
        "the outcome committed all the same"
    );
    assert_eq!(
        messages_counted(&app.metrics().await, "filled"),
        0,
        "not counted while unsure"
    );

    let again = app.deliver("msg_lost_outcome", &body).await;
    assert_eq!((again.status, again.outcome()), (200, "filled"));
    assert_eq!(again.body["duplicate"], true);
    let third = app.deliver("msg_lost_outcome", &body).await;
    assert_eq!((third.status, third.outcome()), (200, "filled"));
    let metrics = app.metrics().await;
    assert_eq!(
        messages_counted(&metrics, "filled"),
        1,
        "counted once: {metrics}"
    );
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM paper_orders").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_alert_whose_admission_committed_without_an_answer_is_counted_once() {
    let schema = TestSchema::create().await.unwrap();
    let (app, proxy) = receiver_behind_proxy(&schema).await;
    let body = app.envelope(&serde_json::json!({"symbol": "BINANCE:BTCUSDT", "action": "buy"}));

    proxy.drop_answer_after(b"INSERT INTO messages", b"COMMIT");
    let lost = app.deliver("msg_lost_invalid", &body).await;
    assert_eq!(lost.status, 503, "{:?}", lost.body);
    let again = app.deliver("msg_lost_invalid", &body).await;
    assert_eq!((again.status, again.outcome()), (200, "invalid"));
    let third = app.deliver("msg_lost_invalid", &body).await;
    assert_eq!((third.status, third.outcome()), (200, "invalid"));
    let metrics = app.metrics().await;
    assert_eq!(messages_counted(&metrics, "invalid"), 1, "{metrics}");
    app.stop().await;
}
