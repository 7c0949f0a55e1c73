//! Notifications to people: the `[[notify]]` destinations both services share (Telegram Bot API
//! `sendMessage`, Discord and Slack incoming webhooks, a Standard-Webhooks-signed JSON webhook),
//! how one notice becomes one HTTP request, and how a delivery is retried.
//!
//! - [`config`]: the `[[notify]]` table, validated (secrets as `env:`/`file:` references).
//! - [`channel`]: a resolved destination; one request per attempt, answers classified (sent,
//!   retry after a wait, give up), bot tokens and webhook URLs kept out of every error.
//!
//! What a service notifies about, and how it keeps undelivered notices, is the service's own
//! business: the receiver keeps an outbox in its journal, the relay a queue in memory.

pub mod channel;
pub mod config;

pub use channel::{Channel, Delivery, Notice};
pub use config::{ChannelKind, NotifyConfig};

/// A fresh event id: `evt_` + a ULID of `at_ms` (lowercase; a valid `webhook-id`).
pub fn event_id(at_ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    format!(
        "evt_{}",
        ulid::Ulid::from_datetime(at)
            .to_string()
            .to_ascii_lowercase()
    )
}
