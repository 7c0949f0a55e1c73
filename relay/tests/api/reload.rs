//! Reloading in-process (what SIGHUP does): all of it or none of it.

use alertgate_shared::{SecretRef, Verifier};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_reload_swaps_secrets_allowlist_and_keys_together() {
    let relay = spawn_relay().await;
    std::fs::write(relay.files.path().join("secret-new"), "rotated-secret").unwrap();
    let (new_key, new_ref) = relay.files.new_key("second");
    let mut next = relay.settings.clone();
    // Secret rotation: both secrets accepted; key rotation: both keys sign.
    next.accounts[0]
        .secrets
        .push(SecretRef::File(relay.files.path().join("secret-new")));
    next.signing.keys.push(new_ref);
    relay.reloader.reload(&next).unwrap();

    let body = json!({"secret": "rotated-secret", "account": "main", "id": "r1"}).to_string();
    assert_eq!(relay.post(body).await.status, 200);
    assert_eq!(
        relay.post_alert("r2").await.status,
        200,
        "the old secret still works"
    );
    let got = relay.receiver.wait_delivered(2).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for key in [relay.files.key.verifying_key(), new_key.verifying_key()] {
        let v = Verifier::new(vec![key], vec![], 300).unwrap();
        for r in &got {
            v.verify(
                Some(r.header("webhook-id")),
                Some(r.header("webhook-timestamp")),
                Some(r.header("webhook-signature")),
                &r.body,
                now,
            )
            .unwrap();
        }
    }

    // Narrow the allowlist: loopback is refused from now on.
    let mut closed = next.clone();
    closed.allowlist.cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    relay.reloader.reload(&closed).unwrap();
    assert_eq!(relay.post_alert("r3").await.status, 403);
}

#[tokio::test]
async fn a_reload_with_an_unreadable_secret_changes_nothing() {
    let relay = spawn_relay().await;
    let mut broken = relay.settings.clone();
    broken.allowlist.cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    broken.accounts[1].secrets = vec![SecretRef::Env("ALERTGATE_TEST_SURELY_UNSET".into())];
    let err = relay.reloader.reload(&broken).unwrap_err().to_string();
    assert!(err.contains("accounts[alt].secrets[0]"), "{err}");
    assert_eq!(
        relay.post_alert("ok").await.status,
        200,
        "the old allowlist is still in force"
    );
    let text = relay.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"alertgate_relay_config_reloads_total{outcome="error"}"#
        ),
        1.0,
        "{text}"
    );
}
