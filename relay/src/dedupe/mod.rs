//! Step 8 of the pipeline: duplicate suppression on (account, idempotency key), so an alert
//! TradingView sends twice within `dedupe.window_seconds` is answered 409 the second time.
//!
//! - The key: `idempotency_key` takes the first non-empty field of `KEY_FIELDS` (strings cut
//!   to 256 bytes, numbers as written); an alert without one is never a duplicate.
//! - [`window`]: the in-memory set. A key is *reserved* while its alert is being spooled (a
//!   concurrent twin gets 409) and *committed* once the spool append is durable; a failed append
//!   releases the reservation, so TradingView's resend after a 503 is accepted. A committed key
//!   expires `window_seconds` after receipt; the relay's maintenance task purges expired keys
//!   every second.
//! - `journal`: the window on disk, so a restart does not forget it. Every spooled alert's key is
//!   appended to `keys-*.jsonl` files in the spool directory (by the spool's writer thread, in the
//!   same batch as the accept record, which carries the key too). At start the spool hands back
//!   every key it finds in both, newest receipt per key, and [`DedupeWindow::restore`] keeps those
//!   still inside the window. Segments are deleted as soon as their alerts are resolved; key files
//!   are deleted once their newest key has left the window (checked every 10 s).

pub(crate) mod journal;
pub mod window;

use serde_json::{Map, Value};

pub use self::window::{DedupeWindow, Duplicate, Reservation};

/// Alert fields that carry an idempotency key, in order of preference.
pub const KEY_FIELDS: [&str; 4] = ["id", "idempotency_key", "client_ref", "client_order_id"];

/// Longest key remembered; longer ones are cut (they still identify the alert well enough).
const MAX_KEY_LEN: usize = 256;

/// The alert's idempotency key, if it has one (strings and numbers are both accepted).
pub fn idempotency_key(alert: &Map<String, Value>) -> Option<String> {
    KEY_FIELDS
        .iter()
        .find_map(|field| match alert.get(*field)? {
            Value::String(s) if !s.is_empty() => Some(truncate(s)),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(MAX_KEY_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_key_is_taken_from_the_first_field_present() {
        assert_eq!(
            idempotency_key(&alert(r#"{"client_ref":"c","id":"a"}"#)).as_deref(),
            Some("a")
        );
        assert_eq!(
            idempotency_key(&alert(r#"{"client_order_id":42}"#)).as_deref(),
            Some("42")
        );
        assert_eq!(
            idempotency_key(&alert(r#"{"id":"","client_ref":"c"}"#)).as_deref(),
            Some("c")
        );
        assert_eq!(idempotency_key(&alert(r#"{"symbol":"x"}"#)), None);
    }
}
