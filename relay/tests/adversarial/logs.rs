//! Secrets in logs: a relay process logging at debug level, driven through every path that logs
//! (accepted, wrong secret, unknown account, bad JSON, forwarding retries and dead letters, a
//! SIGHUP with a broken key file, `check-config`), never writes a secret, a guess at one, or key
//! material.

use alertgate_shared::{HmacSecret, SecretRef};
use alertgate_testkit::logs::{assert_never_logged, check_config_lines};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::helpers::*;

const TV_SECRET: &str = "tv-secret-7f3a9c41d2e8b605";
const NEAR_MISS: &str = "tv-secret-7f3a9c41d2e8b60X";

#[tokio::test]
async fn no_secret_guess_or_key_material_appears_in_any_log_line_at_debug_level() {
    let files = Files::new();
    let receiver = TestReceiver::spawn().await;
    std::fs::write(files.path().join("tv-secret"), TV_SECRET).unwrap();
    let hmac = HmacSecret::generate();
    let hmac_text = hmac.to_text().expose().to_owned();
    std::fs::write(files.path().join("whsec"), &hmac_text).unwrap();
    let key_text = std::fs::read_to_string(&files.key_path)
        .unwrap()
        .trim()
        .to_owned();

    let mut settings = test_settings(&files, &receiver);
    settings.accounts[0].secrets = vec![SecretRef::File(files.path().join("tv-secret"))];
    settings.signing.hmac_secrets = vec![SecretRef::File(files.path().join("whsec"))];
    let mut relay = RelayProcess::start(files.path(), &settings, "debug").await;
    let client = client(None);
    let addr = relay.addr;
    let url = |path: &str| format!("http://{addr}{path}");
    let post = |path: &str, body: String| {
        let request = client.post(url(path)).body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let good = |id: &str| {
        json!({"secret": TV_SECRET, "account": "main", "id": id, "symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1"}).to_string()
    };

    assert_eq!(post("/webhook", good("ok-1")).await, 200);
    assert_eq!(
        post(
            "/webhook/main",
            json!({"secret": NEAR_MISS, "id": "x"}).to_string()
        )
        .await,
        401
    );
    assert_eq!(
        post(
            "/webhook/ghost",
            json!({"secret": TV_SECRET, "id": "x"}).to_string()
        )
        .await,
        401
    );
    assert_eq!(
        post("/webhook", format!(r#"{{"secret":"{TV_SECRET}", "id": "#)).await,
        400
    );
    assert_eq!(
        post("/webhook", format!("secret={TV_SECRET} buy BTCUSDT")).await,
        400
    );
    assert_eq!(
        post(
            "/webhook",
            format!(r#"{{"secret":"{TV_SECRET}","q":1e400}}"#)
        )
        .await,
        400
    );
    receiver.wait_delivered(1).await;

    // Forwarding failures: a retry, then a dead letter.
    receiver.set_status(503);
    assert_eq!(post("/webhook", good("retried")).await, 200);
    receiver.wait_received(2).await;
    receiver.set_status(400);
    receiver.wait_received(3).await;
    assert_eq!(post("/webhook", good("dead")).await, 200);
    receiver.wait_received(4).await;
    receiver.set_status(200);

    // A reload with the HMAC secret where the signing key should be: refused, and the error
    // must not quote the file.
    std::fs::write(&files.key_path, &hmac_text).unwrap();
    relay.signal(Signal::SIGHUP);
    relay.wait_line("reload refused").await;
    std::fs::write(&files.key_path, format!("{key_text}\n")).unwrap();
    relay.signal(Signal::SIGHUP);
    relay.wait_line("configuration reloaded").await;
    assert_eq!(post("/webhook", good("ok-2")).await, 200);
    until("the alert after the reload", || async {
        receiver
            .delivered()
            .iter()
            .any(|r| r.json()["alert"]["id"] == "ok-2")
    })
    .await;

    relay.service.stop().await.unwrap();
    let mut lines = relay.service.log_lines();
    let (passed, checked) = check_config_lines(BIN.as_ref(), relay.service.config_path()).unwrap();
    assert!(passed, "{checked:#?}");
    lines.extend(checked);

    assert!(
        lines.iter().any(|l| l.contains("wrong_secret")),
        "the failed authentication is logged (with its reason)"
    );
    let key_b64 = key_text.trim_start_matches("whsk_");
    let hmac_b64 = hmac_text.trim_start_matches("whsec_");
    assert_never_logged(
        &lines,
        11,
        &[
            ("the TradingView secret", TV_SECRET),
            ("a near-miss guess", NEAR_MISS),
            ("the signing key", key_b64),
            ("the HMAC secret", hmac_b64),
        ],
    );
}
