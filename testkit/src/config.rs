//! Configs for the binaries, built as the services' own typed settings
//! ([`alertgate_relay::config::Settings`], [`alertgate_receiver::Settings`]) with test defaults,
//! tweaked by tests as structs, and written as TOML through their `Serialize` derive: what a
//! test writes is what `Deserialize` (with `deny_unknown_fields`) reads back. Secret fields stay
//! `env:`/`file:` references.
//!
//! ```text
//! let mut relay = config::relay(&receiver_url, secret_ref, key_ref, &dir.join("spool"));
//! relay.server.listen = free_addr()?;
//! config::write(&dir.join("relay.toml"), &relay)?;
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use alertgate_receiver::broker::config::BrokerConfig;
use alertgate_receiver::config::{
    DedupeConfig, ExecutorConfig, RiskConfig, ServerConfig, VerifyConfig,
};
use alertgate_relay::config::{
    AccountSettings, AllowlistSettings, MetricsSettings, RateLimitSettings, ServerSettings,
    SigningSettings, SpoolSettings,
};
use alertgate_shared::config::LogConfig;
use alertgate_shared::SecretRef;
use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use alertgate_receiver::Settings as ReceiverSettings;
pub use alertgate_relay::config::Settings as RelaySettings;

/// What the test relays admit: every loopback address.
pub const LOOPBACK_NET: &str = "127.0.0.0/8";

/// Rates far above what any test sends, so the limiter never decides a test that is not about it.
pub const GENEROUS_RATE: u32 = 1_000_000;

/// A relay on `127.0.0.1:0` (metrics too) admitting `127.0.0.0/8`, one account `main` with
/// `secret`, signing with `key`, forwarding to `forward_url` (with the relay's default timeouts
/// and retries), spooling in `spool_dir`, with rate limits nothing reaches.
pub fn relay(
    forward_url: &str,
    secret: SecretRef,
    key: SecretRef,
    spool_dir: &Path,
) -> RelaySettings {
    RelaySettings {
        server: ServerSettings {
            listen: crate::net::loopback(0),
            ..ServerSettings::default()
        },
        allowlist: AllowlistSettings {
            cidrs: vec![LOOPBACK_NET.parse().expect("a valid CIDR")],
        },
        rate_limit: RateLimitSettings {
            per_ip_per_second: GENEROUS_RATE,
            per_ip_burst: GENEROUS_RATE,
            global_per_second: GENEROUS_RATE,
            global_burst: GENEROUS_RATE,
            per_account_per_second: GENEROUS_RATE,
            per_account_burst: GENEROUS_RATE,
        },
        accounts: vec![AccountSettings {
            id: "main".into(),
            secrets: vec![secret],
        }],
        signing: SigningSettings {
            keys: vec![key],
            hmac_secrets: Vec::new(),
        },
        forward: defaults(serde_json::json!({ "url": forward_url })),
        spool: SpoolSettings {
            dir: spool_dir.to_owned(),
            ..SpoolSettings::default()
        },
        dedupe: Default::default(),
        metrics: MetricsSettings {
            listen: crate::net::loopback(0),
        },
        log: LogConfig::default(),
        notify: Vec::new(),
    }
}

/// A receiver on `127.0.0.1:0` with the paper broker, trusting `public_keys`, journaling to
/// `store_path`, mapping `BINANCE:BTCUSDT` to `BTCUSDT`, with the default risk gates and no ops
/// token or metrics listener.
pub fn receiver(public_keys: Vec<SecretRef>, store_path: &Path) -> ReceiverSettings {
    ReceiverSettings {
        server: defaults::<ServerConfig>(serde_json::json!({ "listen": "127.0.0.1:0" })),
        verify: VerifyConfig {
            public_keys,
            ..defaults(serde_json::json!({}))
        },
        store: defaults(serde_json::json!({ "path": store_path })),
        dedupe: DedupeConfig::default(),
        broker: BrokerConfig::default(),
        venues: Vec::new(),
        accounts: BTreeMap::new(),
        risk: RiskConfig::default(),
        symbols: BTreeMap::from([("BINANCE:BTCUSDT".to_owned(), "BTCUSDT".to_owned())]),
        executor: ExecutorConfig::default(),
        reconcile: Default::default(),
        ops: None,
        metrics: None,
        log: LogConfig::default(),
        notify: Vec::new(),
    }
}

/// A config section with only its required keys given: every other key takes the default the
/// service documents (its serde defaults), so the kit never keeps a copy of them.
fn defaults<T: DeserializeOwned>(required: serde_json::Value) -> T {
    T::deserialize(required).expect("a config section from its required keys")
}

/// `settings` as TOML.
pub fn to_toml<T: Serialize>(settings: &T) -> anyhow::Result<String> {
    toml::to_string_pretty(settings).context("rendering a config as TOML")
}

/// Writes `settings` as TOML to `path`.
pub fn write<T: Serialize>(path: &Path, settings: &T) -> anyhow::Result<()> {
    std::fs::write(path, to_toml(settings)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_config_round_trips_through_the_relays_own_parser() {
        let key = SecretRef::File("/tmp/relay-signing.key".into());
        let settings = relay(
            "http://127.0.0.1:9/v1/alerts",
            SecretRef::Env("X".into()),
            key,
            Path::new("/tmp/spool"),
        );
        let text = to_toml(&settings).expect("renders");
        assert!(text.contains("\"file:/tmp/relay-signing.key\""), "{text}");
        assert!(text.contains("\"env:X\""), "{text}");
        let again = RelaySettings::parse(&text, Path::new("relay.toml")).expect("parses");
        assert_eq!(again, settings);
    }

    #[test]
    fn a_receiver_config_round_trips_through_the_receivers_own_parser() {
        let dir = crate::files::tempdir();
        let key = alertgate_shared::SigningKey::generate();
        let (_, public) = key.write_pair(&dir.path().join("k")).expect("writes keys");
        let mut settings = receiver(vec![SecretRef::File(public)], &dir.path().join("r.db"));
        settings.ops = Some(alertgate_receiver::config::OpsConfig {
            token: crate::files::secret_file(dir.path(), "ops", "token"),
        });
        settings.risk.max_quantity = Some("10".parse().expect("decimal"));
        let text = to_toml(&settings).expect("renders");
        let again = ReceiverSettings::parse(&text, Path::new("receiver.toml")).expect("parses");
        assert_eq!(again, settings);
    }
}
