//! The ops API (Bearer `ops.token`), health endpoints, metrics, and 503 when the journal is
//! locked.

use serde_json::json;

use crate::helpers::{buy, spawn_app, OPS_TOKEN};

#[tokio::test]
async fn the_orders_api_refuses_a_missing_or_wrong_token() {
    let app = spawn_app().await;
    for token in [None, Some("wrong"), Some("")] {
        let a = app.get("/v1/orders", token).await;
        assert_eq!(
            (a.status, a.body),
            (401, json!({"error": "unauthorized"})),
            "{token:?}"
        );
        let a = app.get("/v1/messages/msg_x", token).await;
        assert_eq!(a.status, 401);
    }
}

#[tokio::test]
async fn orders_are_listed_newest_first_with_the_documented_fields_and_limits() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.send(&buy("1")).await.0);
    }
    let a = app.get("/v1/orders", Some(OPS_TOKEN)).await;
    assert_eq!(a.status, 200);
    let orders = a.body["orders"].as_array().unwrap();
    let listed: Vec<_> = orders
        .iter()
        .map(|o| o["message_id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    for field in [
        "client_order_id",
        "message_id",
        "account",
        "symbol",
        "side",
        "quantity",
        "order_type",
        "limit_price",
        "status",
        "venue",
        "venue_order_id",
        "created_at",
    ] {
        assert!(orders[0].get(field).is_some(), "missing {field}");
    }
    assert_eq!(orders[0]["account"], "main");
    assert_eq!(
        app.get("/v1/orders?limit=2", Some(OPS_TOKEN)).await.body["orders"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.get("/v1/orders?limit=5000", Some(OPS_TOKEN))
            .await
            .status,
        200,
        "clamped to 1000"
    );
    for bad in ["0", "-1", "x"] {
        let a = app
            .get(&format!("/v1/orders?limit={bad}"), Some(OPS_TOKEN))
            .await;
        assert_eq!(
            (a.status, a.body["error"].clone()),
            (400, json!("invalid_query")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_message_record_shows_its_outcome_and_orders_and_an_unknown_id_is_404() {
    let app = spawn_app().await;
    let (id, _) = app.send(&buy("1")).await;
    let m = app.message(&id).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["id"], id);
    assert_eq!(m.body["outcome"], "filled");
    assert_eq!(m.body["account"], "main");
    assert_eq!(m.body["orders"][0]["client_order_id"], format!("{id}-0"));
    assert_eq!(m.body["envelope"]["alert"]["symbol"], "BINANCE:BTCUSDT");
    let missing = app.message("msg_unknown").await;
    assert_eq!(
        (missing.status, missing.body["error"].clone()),
        (404, json!("not_found"))
    );
}

#[tokio::test]
async fn health_and_readiness_answer_and_metrics_use_the_documented_names() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/healthz", None).await.body,
        json!({"status": "ok"})
    );
    assert_eq!(app.get("/readyz", None).await.status, 200);
    app.send(&buy("1")).await;
    app.post_raw(&[("webhook-id", "msg_x".into())], b"{}".to_vec())
        .await;
    let text = app.metrics().await;
    for name in [
        "alertgate_receiver_messages_total{outcome=\"filled\"} 1",
        "alertgate_receiver_orders_total{venue=\"paper\",status=\"filled\"} 1",
        "alertgate_receiver_place_duration_seconds_count 1",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    assert!(
        text.contains("alertgate_receiver_verify_failures_total{reason=\"missing_header\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_answers_503_and_the_retry_succeeds() {
    let app = spawn_app().await;
    let db = app.work.db_path();
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let body = app.envelope(&buy("1"));
    let a = app.deliver("msg_locked_out", &body).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (503, json!({"error": "journal_unavailable"}))
    );
    assert_eq!(app.get("/readyz", None).await.status, 503);
    locker.execute_batch("ROLLBACK").unwrap();
    let retry = app.deliver("msg_locked_out", &body).await;
    assert_eq!((retry.status, retry.outcome()), (200, "filled"));
    assert_eq!(
        retry.body["duplicate"], false,
        "the failed attempt left nothing behind"
    );
}

#[tokio::test]
async fn unknown_paths_answer_json_404() {
    let app = spawn_app().await;
    let a = app.get("/nope", None).await;
    assert_eq!((a.status, a.body), (404, json!({"error": "not_found"})));
}

#[tokio::test]
async fn an_execution_interrupted_by_a_journal_error_is_resumed_without_a_restart() {
    use crate::helpers::{spawn_app_with, Options};
    use alertgate_receiver::broker::config::PaperConfig;
    use alertgate_testkit::until;
    let app = spawn_app_with(Options::configured(|s| {
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 200,
            ..PaperConfig::default()
        });
        s.executor.inline_deadline_ms = 20;
        s.executor.max_attempts = 1;
        s.executor.resume_interval_ms = 50;
        s.executor.resume_after_seconds = 60;
    }))
    .await;
    let (id, a) = app.send(&buy("1")).await;
    assert_eq!(a.status, 202);
    // Hold the journal's write lock while the paper fill and the completion are written.
    let locker = rusqlite::Connection::open(app.work.db_path()).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        app.message(&id).await.body["outcome"],
        "pending",
        "interrupted, not finished"
    );

    app.clock.advance(time::Duration::seconds(61));
    until("the interrupted execution to be resumed", || async {
        app.message(&id).await.body["outcome"] == "filled"
    })
    .await;
    let orders = app.all_orders().await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["client_order_id"], format!("{id}-0"));
}
