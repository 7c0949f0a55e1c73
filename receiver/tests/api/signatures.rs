//! Every signature path through `POST /v1/alerts`.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Options};

const V1_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const V1_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const V1_TS: i64 = 1614265330;
const V1_BODY: &str = r#"{"test": 2432232314}"#;
const V1_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const V1A_KEY: &str =
    "6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
const V1A_SIG: &str =
    "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";

fn vector_options() -> Options {
    Options {
        clock_at_unix: Some(V1_TS),
        hmac_secret: Some(V1_SECRET.into()),
        signing_key: Some(V1A_KEY.into()),
        ..Options::default()
    }
}

fn headers(id: &str, ts: i64, sig: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig.to_owned()),
    ]
}

#[tokio::test]
async fn the_published_v1_vector_is_accepted_and_its_non_envelope_body_is_recorded_invalid() {
    let app = spawn_app_with(vector_options()).await;
    let a = app
        .post_raw(&headers(V1_ID, V1_TS, V1_SIG), V1_BODY.into())
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["id"], V1_ID);
    assert_eq!(a.outcome(), "invalid");
    assert!(
        a.body["reason"].as_str().unwrap().starts_with("envelope:"),
        "{:?}",
        a.body
    );
    assert_eq!(app.message(V1_ID).await.body["outcome"], "invalid");
}

#[tokio::test]
async fn the_published_v1a_vector_is_accepted() {
    let app = spawn_app_with(vector_options()).await;
    let a = app
        .post_raw(&headers(V1_ID, V1_TS, V1A_SIG), V1_BODY.into())
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.outcome(), "invalid");
}

#[tokio::test]
async fn a_signature_with_a_changed_character_is_refused_and_nothing_is_journaled() {
    let app = spawn_app_with(vector_options()).await;
    let bad = V1_SIG.replace("g0hM", "g0hN");
    let a = app
        .post_raw(&headers(V1_ID, V1_TS, &bad), V1_BODY.into())
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (401, json!({"error": "bad_signature"}))
    );
    assert_eq!(app.message(V1_ID).await.status, 404);
    assert!(app
        .metrics()
        .await
        .contains("alertgate_receiver_verify_failures_total{reason=\"bad_signature\"} 1"));
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused() {
    let app = spawn_app_with(vector_options()).await;
    let a = app
        .post_raw(
            &headers(V1_ID, V1_TS, V1_SIG),
            br#"{"test": 2432232315}"#.to_vec(),
        )
        .await;
    assert_eq!((a.status, a.body), (401, json!({"error": "bad_signature"})));
}

#[tokio::test]
async fn empty_and_unknown_signature_tokens_are_refused() {
    let app = spawn_app_with(vector_options()).await;
    for sig in ["v1,", "v1a,", "v2,abc", ""] {
        let a = app
            .post_raw(&headers(V1_ID, V1_TS, sig), V1_BODY.into())
            .await;
        assert_eq!(
            (a.status, a.body),
            (401, json!({"error": "bad_signature"})),
            "{sig:?}"
        );
    }
}

#[tokio::test]
async fn missing_headers_are_refused_as_bad_signature() {
    let app = spawn_app_with(vector_options()).await;
    let all = headers(V1_ID, V1_TS, V1_SIG);
    for skip in 0..all.len() {
        let partial: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, h)| h.clone())
            .collect();
        let a = app.post_raw(&partial, V1_BODY.into()).await;
        assert_eq!(
            (a.status, a.body),
            (401, json!({"error": "bad_signature"})),
            "without {}",
            all[skip].0
        );
    }
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused_as_stale_timestamp() {
    let app = spawn_app_with(vector_options()).await;
    for offset in [-301, 301] {
        app.clock
            .set(time::OffsetDateTime::from_unix_timestamp(V1_TS + offset).unwrap());
        let a = app
            .post_raw(&headers(V1_ID, V1_TS, V1_SIG), V1_BODY.into())
            .await;
        assert_eq!(
            (a.status, a.body),
            (401, json!({"error": "stale_timestamp"})),
            "now = ts {offset:+}"
        );
    }
    app.clock
        .set(time::OffsetDateTime::from_unix_timestamp(V1_TS + 300).unwrap());
    let a = app
        .post_raw(&headers(V1_ID, V1_TS, V1_SIG), V1_BODY.into())
        .await;
    assert_eq!(a.status, 200, "300 s is inside the tolerance");
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_with_413() {
    let app = spawn_app().await;
    let big = vec![b' '; 5000];
    let a = app.deliver("msg_big", &big).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.body["error"], "payload_too_large");
}

#[tokio::test]
async fn a_properly_signed_alert_from_the_test_signer_is_filled() {
    let app = spawn_app().await;
    let (id, a) = app.send(&crate::helpers::buy("0.5")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["id"], id);
    assert_eq!(a.outcome(), "filled");
    assert_eq!(a.body["duplicate"], false);
    assert_eq!(a.orders().len(), 1);
    let order = &a.orders()[0];
    assert_eq!(order["client_order_id"], format!("{id}-0"));
    assert_eq!(order["symbol"], "BTCUSDT");
    assert_eq!(order["side"], "buy");
    assert_eq!(order["quantity"], "0.5");
    assert_eq!(order["status"], "filled");
    assert_eq!(order["venue"], "paper");
    assert_eq!(order["average_price"], "100");
}
