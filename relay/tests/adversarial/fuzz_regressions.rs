//! Inputs the fuzz targets in `relay/fuzz` found or that guard their invariants, replayed through
//! the same public functions, so a regression fails `cargo test` without a fuzzer.

use alertgate_relay::auth::{Account, Accounts};
use alertgate_relay::routes::parse_alert;
use alertgate_shared::idempotency::{idempotency_key, MAX_KEY_CHARS};
use alertgate_shared::{Envelope, Secret};

/// The `webhook_body` target's checks on one body.
fn check_body(body: &[u8]) {
    let Ok(alert) = parse_alert(body) else { return };
    let accounts = Accounts::new(vec![Account::new("main", vec![Secret::new("s3cret-main")])]);
    if let Ok(account) = accounts.authenticate(None, &alert) {
        assert_eq!(alert["secret"], "s3cret-main");
        assert_eq!(account.id, "main");
    }
    if let Ok(Some(key)) = idempotency_key(&alert) {
        assert!(!key.is_empty() && key.chars().count() <= MAX_KEY_CHARS);
    }
    let envelope = Envelope::new(
        "main",
        time::OffsetDateTime::UNIX_EPOCH,
        [127, 0, 0, 1].into(),
        alert,
    );
    assert!(!envelope.alert.contains_key("secret"));
    let back = Envelope::from_slice(&envelope.to_bytes()).unwrap();
    assert_eq!(back.alert, envelope.alert);
}

#[test]
fn seed_bodies_of_the_webhook_body_target_keep_their_invariants() {
    for body in [
        &br#"{"secret":"s3cret-main","id":"a"}"#[..],
        br#"{"secret":"s3cret-main","secret":"other"}"#,
        br#"{"secret":"other","secret":"s3cret-main"}"#,
        br#"{"id":"\u00e9\u00e9\u00e9"}"#,
        br#"{"client_order_id":1e300}"#,
        br#"{"id":-0}"#,
        b"{}",
        b"\xef\xbb\xbf{}",
    ] {
        check_body(body);
    }
}

#[test]
fn a_multibyte_idempotency_key_longer_than_the_limit_is_refused_not_cut() {
    let long = "é".repeat(300);
    let body = format!(r#"{{"id":"{long}"}}"#);
    check_body(body.as_bytes());
    let alert = parse_alert(body.as_bytes()).unwrap();
    assert_eq!(idempotency_key(&alert).unwrap_err().field, "id");
}

/// `relay/fuzz` `webhook_body` crash-442b20cb: a 38-digit JSON number. Without serde_json's
/// `float_roundtrip` the receiver read the relay's rendering of it, 4.0000000001e37, as
/// 4.0000000000999997e37; the workspace now enables that feature, and the value is exact.
#[test]
fn a_38_digit_number_keeps_its_exact_value_through_the_envelope() {
    let body = br#"{"secret":"rotated","fund_id":"main","client_ref":40000000001000000000000000000000000002}"#;
    let alert = parse_alert(body).unwrap();
    let sent = alert["client_ref"].as_f64().unwrap();
    let envelope = Envelope::new(
        "main",
        time::OffsetDateTime::UNIX_EPOCH,
        [127, 0, 0, 1].into(),
        alert,
    );
    assert!(!envelope.alert.contains_key("secret"));
    let back = Envelope::from_slice(&envelope.to_bytes()).unwrap();
    assert_eq!(back.alert["client_ref"].as_f64().unwrap(), sent);
    assert_eq!(back.alert, envelope.alert);
    check_body(body);
}
