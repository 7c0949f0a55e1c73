//! The `[[notify]]` table (contract: DESIGN.md section 16).
//!
//! ```toml
//! [[notify]]
//! kind = "telegram"              # telegram | discord | slack | webhook
//! bot_token = "env:TELEGRAM_BOT_TOKEN"
//! chat_id = "-1001234567890"
//! events = ["filled", "rejected"] # default: every event but placed and filled
//! ```
//!
//! One flat table per destination (rather than one table per kind) so that a key of another kind
//! is refused by name, and `events` and the limits read the same for every kind.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;
use crate::SecretRef;

/// Which API a destination speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Telegram Bot API `sendMessage` (`bot_token`, `chat_id`, `api_base`).
    Telegram,
    /// A Discord incoming webhook (`webhook_url`).
    Discord,
    /// A Slack incoming webhook (`webhook_url`).
    Slack,
    /// Any HTTPS endpoint: the event as JSON, signed with Standard Webhooks (`url`, `hmac_secrets`).
    Webhook,
}

impl ChannelKind {
    /// The name used in config, metrics and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telegram => "telegram",
            Self::Discord => "discord",
            Self::Slack => "slack",
            Self::Webhook => "webhook",
        }
    }

    /// The pause between two messages to one destination when `min_interval_ms` is not set:
    /// Telegram allows about one message a second per chat; Discord webhooks 5 per 2 s; Slack
    /// one a second per webhook.
    pub fn default_min_interval_ms(self) -> u64 {
        match self {
            Self::Telegram | Self::Slack => 1_000,
            Self::Discord => 400,
            Self::Webhook => 0,
        }
    }
}

/// The Telegram Bot API, unless `api_base` says otherwise (a local Bot API server, tests).
pub const TELEGRAM_API_BASE: &str = "https://api.telegram.org";

/// One `[[notify]]` destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Which API.
    pub kind: ChannelKind,
    /// The destination's name in metrics, logs and delivery records (default: the kind). Two
    /// destinations of one kind need names; renaming one makes it a new destination.
    pub name: Option<String>,
    /// Telegram: the bot's token (`env:`/`file:`).
    pub bot_token: Option<SecretRef>,
    /// Telegram: the chat (a number, or `@channelusername`).
    pub chat_id: Option<String>,
    /// Telegram: the Bot API server.
    pub api_base: Option<String>,
    /// Discord, Slack: the incoming webhook URL (`env:`/`file:`: it holds the token).
    pub webhook_url: Option<SecretRef>,
    /// Webhook: where the signed JSON goes.
    pub url: Option<String>,
    /// Webhook: `whsec_` secrets it is signed with (`env:`/`file:`); two during a rotation.
    #[serde(default)]
    pub hmac_secrets: Vec<SecretRef>,
    /// The events sent here; default: every event of the service but `placed` and `filled`.
    pub events: Option<Vec<String>>,
    /// The least time between two messages here (default by kind).
    pub min_interval_ms: Option<u64>,
    /// How long one request may take before it counts as failed (and is retried).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per notice before it is given up (recorded as `failed`).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_attempts() -> u32 {
    8
}

/// Events no destination gets unless it lists them: they are many and usually good news.
pub const QUIET_EVENTS: [&str; 2] = ["placed", "filled"];

impl NotifyConfig {
    /// The destination's name: `name`, or the kind.
    pub fn destination(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.as_str().to_owned())
    }

    /// The events sent to this destination, out of `known` (the service's events).
    pub fn wanted_events(&self, known: &[&str]) -> Vec<String> {
        match &self.events {
            Some(list) => list.clone(),
            None => known
                .iter()
                .filter(|e| !QUIET_EVENTS.contains(e))
                .map(|e| (*e).to_owned())
                .collect(),
        }
    }

    /// Checks the keys this kind needs (and refuses those of other kinds), the event names
    /// against `known`, and that names are unique. `key` is the table's place (`notify[0]`).
    pub fn validate_all(list: &[NotifyConfig], known: &[&str]) -> Result<(), Invalid> {
        let mut names = std::collections::BTreeSet::new();
        for (i, n) in list.iter().enumerate() {
            let key = format!("notify[{i}]");
            n.validate(&key, known)?;
            if !names.insert(n.destination()) {
                return Err(Invalid::new(
                    format!("{key}.name"),
                    format!(
                        "two destinations are called {:?}: give each a distinct name",
                        n.destination()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self, key: &str, known: &[&str]) -> Result<(), Invalid> {
        let kind = self.kind.as_str();
        let need = |present: bool, field: &str| {
            if present {
                Ok(())
            } else {
                Err(Invalid::new(
                    format!("{key}.{field}"),
                    format!("required for kind = \"{kind}\""),
                ))
            }
        };
        let refuse = |present: bool, field: &str| {
            if present {
                Err(Invalid::new(
                    format!("{key}.{field}"),
                    format!("not a key of kind = \"{kind}\""),
                ))
            } else {
                Ok(())
            }
        };
        let telegram = self.kind == ChannelKind::Telegram;
        let hook = matches!(self.kind, ChannelKind::Discord | ChannelKind::Slack);
        let webhook = self.kind == ChannelKind::Webhook;
        for (field, present, allowed) in [
            ("bot_token", self.bot_token.is_some(), telegram),
            ("chat_id", self.chat_id.is_some(), telegram),
            ("api_base", self.api_base.is_some(), telegram),
            ("webhook_url", self.webhook_url.is_some(), hook),
            ("url", self.url.is_some(), webhook),
            ("hmac_secrets", !self.hmac_secrets.is_empty(), webhook),
        ] {
            if !allowed {
                refuse(present, field)?;
            }
        }
        match self.kind {
            ChannelKind::Telegram => {
                need(self.bot_token.is_some(), "bot_token")?;
                need(
                    self.chat_id
                        .as_deref()
                        .is_some_and(|c| !c.trim().is_empty()),
                    "chat_id",
                )?;
            }
            ChannelKind::Discord | ChannelKind::Slack => {
                need(self.webhook_url.is_some(), "webhook_url")?
            }
            ChannelKind::Webhook => {
                need(self.url.is_some(), "url")?;
                need(!self.hmac_secrets.is_empty(), "hmac_secrets")?;
            }
        }
        for (field, value) in [("api_base", &self.api_base), ("url", &self.url)] {
            if let Some(v) = value {
                if !(v.starts_with("https://") || v.starts_with("http://")) {
                    return Err(Invalid::new(
                        format!("{key}.{field}"),
                        "must be an http:// or https:// URL",
                    ));
                }
            }
        }
        if let Some(events) = &self.events {
            for e in events {
                if !known.contains(&e.as_str()) {
                    return Err(Invalid::new(
                        format!("{key}.events"),
                        format!("unknown event {e:?}; known: {}", known.join(", ")),
                    ));
                }
            }
        }
        if self.max_attempts == 0 || self.timeout_ms == 0 {
            return Err(Invalid::new(
                key.to_owned(),
                "max_attempts and timeout_ms must be positive",
            ));
        }
        if let Some(name) = &self.name {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Invalid::new(
                    format!("{key}.name"),
                    "letters, digits, - and _ only",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        notify: Vec<NotifyConfig>,
    }

    fn parse(text: &str) -> Vec<NotifyConfig> {
        toml::from_str::<Doc>(text).unwrap().notify
    }

    const KNOWN: &[&str] = &["filled", "placed", "rejected"];

    #[test]
    fn a_telegram_destination_needs_its_token_and_chat_and_gets_all_but_quiet_events() {
        let list =
            parse("[[notify]]\nkind = \"telegram\"\nbot_token = \"env:T\"\nchat_id = \"42\"\n");
        NotifyConfig::validate_all(&list, KNOWN).unwrap();
        assert_eq!(list[0].wanted_events(KNOWN), vec!["rejected".to_owned()]);
        let list = parse("[[notify]]\nkind = \"telegram\"\nbot_token = \"env:T\"\n");
        let err = NotifyConfig::validate_all(&list, KNOWN).unwrap_err();
        assert_eq!(err.key, "notify[0].chat_id");
    }

    #[test]
    fn keys_of_another_kind_unknown_events_and_twin_names_are_refused() {
        let list =
            parse("[[notify]]\nkind = \"slack\"\nwebhook_url = \"env:S\"\nchat_id = \"1\"\n");
        let err = NotifyConfig::validate_all(&list, KNOWN).unwrap_err();
        assert_eq!(err.key, "notify[0].chat_id");
        let list =
            parse("[[notify]]\nkind = \"slack\"\nwebhook_url = \"env:S\"\nevents = [\"fill\"]\n");
        let err = NotifyConfig::validate_all(&list, KNOWN).unwrap_err();
        assert!(err.message.contains("\"fill\""), "{err:?}");
        let list = parse(
            "[[notify]]\nkind = \"slack\"\nwebhook_url = \"env:S\"\n[[notify]]\nkind = \"slack\"\nwebhook_url = \"env:T\"\n",
        );
        let err = NotifyConfig::validate_all(&list, KNOWN).unwrap_err();
        assert_eq!(err.key, "notify[1].name");
    }

    #[test]
    fn a_literal_webhook_url_is_refused_because_it_holds_a_token() {
        let err = crate::config::parse::<Doc>(
            "[[notify]]\nkind = \"discord\"\nwebhook_url = \"https://discord.com/api/webhooks/1/tok\"\n",
            std::path::Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("env:NAME"), "{err}");
        assert!(!err.contains("tok\""), "{err}");
    }
}
