//! Everything the relay does with an untrusted request body before it is spooled: parse it
//! (step 5), resolve the account and check the secret (step 6), extract the idempotency key
//! (step 8) and build the envelope that is forwarded. None of it may panic, and the forwarded
//! envelope must never carry the secret.
#![no_main]

use alertgate_relay::auth::{Account, Accounts};
use alertgate_relay::routes::parse_alert;
use alertgate_shared::idempotency::{idempotency_key, MAX_KEY_CHARS};
use alertgate_shared::{Envelope, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the path account (`/webhook` or `/webhook/{name}`); the rest is the body.
    let (selector, body) = match data.split_first() {
        Some((s, rest)) => (*s, rest),
        None => (0, data),
    };
    let Ok(alert) = parse_alert(body) else { return };
    let accounts = Accounts::new(vec![
        Account::new(
            "main",
            vec![Secret::new("s3cret-main"), Secret::new("rotated")],
        ),
        Account::new("alt", vec![Secret::new("s3cret-alt")]),
    ]);
    let path = match selector % 4 {
        0 => None,
        1 => Some("main"),
        2 => Some("alt"),
        _ => Some("ghost"),
    };
    let requested = accounts.requested(path, &alert).map(str::to_owned);
    let authenticated = accounts.authenticate(path, &alert).map(|a| a.id.clone());
    if let Ok(id) = &authenticated {
        // Only a configured account with one of its own secrets gets in.
        assert_eq!(Some(id), requested.as_ref());
        let secret = alert.get("secret").and_then(|v| v.as_str()).unwrap_or("");
        let ok = match id.as_str() {
            "main" => secret == "s3cret-main" || secret == "rotated",
            "alt" => secret == "s3cret-alt",
            _ => false,
        };
        assert!(ok, "authenticated {id} with a wrong secret");
    }
    if let Ok(Some(key)) = idempotency_key(&alert) {
        assert!(
            !key.is_empty() && key.chars().count() <= MAX_KEY_CHARS,
            "key of {} characters",
            key.chars().count()
        );
    }
    let account = authenticated.unwrap_or_else(|_| "main".to_owned());
    let now = time::OffsetDateTime::from_unix_timestamp(1_795_338_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let envelope = Envelope::new(
        account,
        now,
        "52.89.214.238".parse().unwrap_or([0u8; 4].into()),
        alert,
    );
    assert!(
        !envelope.alert.contains_key("secret"),
        "the secret would be forwarded"
    );
    let bytes = envelope.to_bytes();
    let back = Envelope::from_slice(&bytes).expect("the relay's own envelope must parse");
    // Exact, floats included: the workspace enables serde_json's `float_roundtrip`.
    assert_eq!(back.alert, envelope.alert);
    assert!(!back.alert.contains_key("secret"));
});
