//! Secrets in logs: a relay process logging at debug level, driven through every path that logs
//! (accepted, wrong secret, unknown account, bad JSON, forwarding retries and dead letters, a
//! SIGHUP with a broken key file, `check-config`), never writes a secret, a guess at one, or key
//! material.

use std::process::Command;
use std::time::Duration;

use alertgate_shared::{HmacSecret, SecretRef};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::helpers::*;
use crate::process;

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
    let relay = process::start(files.path(), &settings, "debug").await;
    let client = client(None);
    let url = |path: &str| format!("http://{}{path}", relay.addr);
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
    wait_for_line(&relay, "reload refused").await;
    std::fs::write(&files.key_path, format!("{key_text}\n")).unwrap();
    relay.signal(Signal::SIGHUP);
    wait_for_line(&relay, "configuration reloaded").await;
    assert_eq!(post("/webhook", good("ok-2")).await, 200);
    eventually(
        || {
            receiver
                .delivered()
                .iter()
                .any(|r| r.json()["alert"]["id"] == "ok-2")
        },
        "the alert after the reload",
    )
    .await;

    let mut lines = relay.stop();
    let check = Command::new(process::BIN)
        .args(["check-config", "--config"])
        .arg(files.path().join("relay.toml"))
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    lines.extend(
        String::from_utf8_lossy(&check.stdout)
            .lines()
            .map(str::to_owned),
    );
    lines.extend(
        String::from_utf8_lossy(&check.stderr)
            .lines()
            .map(str::to_owned),
    );

    assert!(
        lines.len() > 10,
        "too few log lines to mean anything: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("wrong_secret")),
        "the failed authentication is logged (with its reason)"
    );
    let key_b64 = key_text.trim_start_matches("whsk_");
    let hmac_b64 = hmac_text.trim_start_matches("whsec_");
    for (what, needle) in [
        ("the TradingView secret", TV_SECRET),
        ("a near-miss guess", NEAR_MISS),
        ("the signing key", key_b64),
        ("the HMAC secret", hmac_b64),
    ] {
        let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert!(leaks.is_empty(), "{what} was logged: {leaks:#?}");
    }
}

async fn wait_for_line(relay: &process::RelayProcess, fragment: &str) {
    for _ in 0..400 {
        if relay.output().iter().any(|l| l.contains(fragment)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no log line containing {fragment:?}: {:#?}", relay.output());
}
