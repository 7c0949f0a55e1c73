//! Typed settings read from the relay's TOML file (`deny_unknown_fields` everywhere), with the
//! defaults documented in `deploy/relay.example.toml`, and the checks that need no I/O.
//! Secrets stay [`SecretRef`]s here; [`crate::live`] resolves them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alertgate_shared::config::{ConfigError, Invalid, LogConfig};
use alertgate_shared::SecretRef;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// TradingView's published webhook source addresses: the default allowlist.
pub const TRADINGVIEW_CIDRS: [&str; 4] = [
    "52.89.214.238/32",
    "34.212.75.30/32",
    "54.218.53.128/32",
    "52.32.178.7/32",
];

/// The whole relay configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where and how the public HTTP(S) listener serves.
    #[serde(default)]
    pub server: ServerSettings,
    /// Which client addresses may post alerts.
    #[serde(default)]
    pub allowlist: AllowlistSettings,
    /// Flood protection, per address, globally and per account.
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// TradingView accounts and their shared secrets.
    pub accounts: Vec<AccountSettings>,
    /// Keys that sign forwarded alerts.
    pub signing: SigningSettings,
    /// Where accepted alerts go, and how hard to try.
    pub forward: ForwardSettings,
    /// The durable queue of accepted alerts.
    #[serde(default)]
    pub spool: SpoolSettings,
    /// The edge duplicate window.
    #[serde(default)]
    pub dedupe: DedupeSettings,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Log format and level.
    #[serde(default)]
    pub log: LogConfig,
    /// `[[notify]]`: where `dead_letter` and `spool_full` go (README, "Notifications").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<alertgate_shared::notify::NotifyConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address of the public listener (`run` binds it; tests pass their own socket).
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` is believed (a reverse proxy such as Caddy).
    pub trusted_proxies: Vec<IpNet>,
    /// Largest accepted alert body; larger ones get 413.
    pub max_body_bytes: u64,
    /// Time allowed to receive the whole body once the headers are in (TradingView gives up at 3 s).
    pub body_timeout_ms: u64,
    /// Time allowed for a connection to send a complete request head.
    pub header_read_timeout_ms: u64,
    /// Most request headers accepted (more gets 431).
    pub max_headers: usize,
    /// Largest request head in bytes (at least 8192; more gets 431).
    pub max_header_bytes: usize,
    /// Most connections served at once; further ones wait in the kernel backlog.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Terminate TLS in the relay itself (otherwise plain HTTP, e.g. behind Caddy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            max_body_bytes: 16_384,
            body_timeout_ms: 2_000,
            header_read_timeout_ms: 5_000,
            max_headers: 64,
            max_header_bytes: 16_384,
            max_connections: 1_024,
            shutdown_grace_ms: 5_000,
            tls: None,
        }
    }
}

/// `[server.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain of the relay's public name.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate.
    pub key_file: PathBuf,
    /// Whether TradingView's client certificate is checked.
    #[serde(default)]
    pub tradingview_client_cert: ClientCertMode,
    /// PEM bundle of CAs a client certificate must chain to; the public web roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// `tradingview_client_cert`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertMode {
    /// No client certificate is asked for.
    #[default]
    Off,
    /// Asked for; when one is presented it must chain to a trusted CA.
    Optional,
    /// Requests without TradingView's certificate are refused with 403.
    Required,
}

/// `[allowlist]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllowlistSettings {
    /// Client networks allowed to post alerts.
    pub cidrs: Vec<IpNet>,
}

impl Default for AllowlistSettings {
    fn default() -> Self {
        Self {
            cidrs: TRADINGVIEW_CIDRS
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
        }
    }
}

/// `[rate_limit]`: sustained rates per second and burst sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Sustained requests per second from one client address.
    pub per_ip_per_second: u32,
    /// Requests one address may send at once.
    pub per_ip_burst: u32,
    /// Sustained requests per second from everyone together.
    pub global_per_second: u32,
    /// Global burst.
    pub global_burst: u32,
    /// Sustained authenticated alerts per second for one account.
    pub per_account_per_second: u32,
    /// Per-account burst.
    pub per_account_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_ip_per_second: 5,
            per_ip_burst: 20,
            global_per_second: 50,
            global_burst: 100,
            per_account_per_second: 5,
            per_account_burst: 20,
        }
    }
}

/// One `[[accounts]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// The account name used in `/webhook/{account}` and the envelope.
    pub id: String,
    /// Accepted `secret` values (two during a rotation).
    pub secrets: Vec<SecretRef>,
}

/// `[signing]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    /// Ed25519 private keys; every key signs every attempt.
    #[serde(default)]
    pub keys: Vec<SecretRef>,
    /// Optional `whsec_` secrets for `v1` signatures.
    #[serde(default)]
    pub hmac_secrets: Vec<SecretRef>,
}

impl ForwardSettings {
    /// Where alerts go, in the order they are tried: `url`, then `urls`.
    pub fn targets(&self) -> Vec<&str> {
        std::iter::once(self.url.as_str())
            .filter(|u| !u.is_empty())
            .chain(self.urls.iter().map(String::as_str))
            .collect()
    }
}

/// `[forward]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSettings {
    /// The receiver's `POST /v1/alerts` URL (or leave it out and list `urls`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// More receivers, tried in order after `url` when one fails with a connection error, a
    /// timeout or a 5xx (several receivers on one database).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Per-attempt timeout.
    #[serde(default = "defaults::forward_timeout_ms")]
    pub timeout_ms: u64,
    /// Alerts older than this are dead-lettered as `expired` instead of delivered late.
    #[serde(default = "defaults::max_age_seconds")]
    pub max_age_seconds: u64,
    /// PEM CA bundle that signs the receiver's certificate (public roots when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mTLS to the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    /// Alerts in flight to the receiver at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// First retry delay; doubled on every further attempt, with jitter.
    #[serde(default = "defaults::backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest retry delay.
    #[serde(default = "defaults::backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// The forwarder's threads run this much nicer (lower CPU priority, 0–19) than the accept
    /// path's: when the CPUs are busy, answering TradingView within its 3 seconds comes first
    /// and forwarding takes what is left; when they are idle it makes no difference. 0 runs
    /// both at the same priority.
    #[serde(default = "defaults::nice")]
    pub nice: u8,
}

/// `[spool]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSettings {
    /// Directory of segment files, the dedupe state and dead letters.
    pub dir: PathBuf,
    /// Undelivered alerts held at most; beyond it new alerts get 503.
    pub max_pending: usize,
    /// Bytes of segment files held at most; beyond it new alerts get 503.
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/relay-spool"),
            max_pending: 100_000,
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
        }
    }
}

/// `[dedupe]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupeSettings {
    /// How long an (account, idempotency key) pair is remembered.
    pub window_seconds: u64,
}

impl Default for DedupeSettings {
    fn default() -> Self {
        Self {
            window_seconds: 300,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address of the Prometheus endpoint (`GET /metrics`); keep it private.
    pub listen: SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9101)),
        }
    }
}

/// The largest `forward.nice` (the kernel's lowest priority).
pub const MAX_NICE: u8 = 19;

mod defaults {
    pub fn forward_timeout_ms() -> u64 {
        2_000
    }
    pub fn max_age_seconds() -> u64 {
        120
    }
    pub fn concurrency() -> usize {
        32
    }
    pub fn backoff_initial_ms() -> u64 {
        250
    }
    pub fn backoff_max_ms() -> u64 {
        10_000
    }
    pub fn nice() -> u8 {
        10
    }
}

impl Settings {
    /// Reads, parses and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let settings: Self = alertgate_shared::config::load(path)?;
        settings.validate().map_err(|e| e.in_file(path))?;
        Ok(settings)
    }

    /// Parses and checks TOML text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let settings: Self = alertgate_shared::config::parse(text, origin)?;
        settings.validate().map_err(|e| e.in_file(origin))?;
        Ok(settings)
    }

    /// Checks that need no file or environment access.
    pub fn validate(&self) -> Result<(), Invalid> {
        alertgate_shared::notify::NotifyConfig::validate_all(&self.notify, &crate::notify::EVENTS)?;
        let s = &self.server;
        if s.max_body_bytes == 0 {
            return Err(Invalid::new("server.max_body_bytes", "must be at least 1"));
        }
        if s.body_timeout_ms == 0 || s.header_read_timeout_ms == 0 {
            return Err(Invalid::new(
                "server.body_timeout_ms",
                "timeouts must be at least 1 ms",
            ));
        }
        if s.max_header_bytes < 8_192 {
            return Err(Invalid::new(
                "server.max_header_bytes",
                "must be at least 8192",
            ));
        }
        if s.max_headers == 0 || s.max_connections == 0 {
            return Err(Invalid::new(
                "server.max_connections",
                "limits must be at least 1",
            ));
        }
        let r = &self.rate_limit;
        for (key, v) in [
            ("rate_limit.per_ip_per_second", r.per_ip_per_second),
            ("rate_limit.per_ip_burst", r.per_ip_burst),
            ("rate_limit.global_per_second", r.global_per_second),
            ("rate_limit.global_burst", r.global_burst),
            (
                "rate_limit.per_account_per_second",
                r.per_account_per_second,
            ),
            ("rate_limit.per_account_burst", r.per_account_burst),
        ] {
            if v == 0 {
                return Err(Invalid::new(key, "must be at least 1"));
            }
        }
        if self.accounts.is_empty() {
            return Err(Invalid::new(
                "accounts",
                "configure at least one [[accounts]] entry",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.accounts {
            let valid = !a.id.is_empty()
                && a.id.len() <= 64
                && a.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(Invalid::new(
                    "accounts.id",
                    format!("{:?}: use 1 to 64 of [A-Za-z0-9_-]", a.id),
                ));
            }
            if !seen.insert(a.id.as_str()) {
                return Err(Invalid::new(
                    "accounts.id",
                    format!("{:?} is configured twice", a.id),
                ));
            }
            if a.secrets.is_empty() {
                return Err(Invalid::new(
                    "accounts.secrets",
                    format!("account {:?} has no secret", a.id),
                ));
            }
        }
        if self.signing.keys.is_empty() && self.signing.hmac_secrets.is_empty() {
            return Err(Invalid::new(
                "signing.keys",
                "configure at least one signing key",
            ));
        }
        let f = &self.forward;
        if f.targets().is_empty() {
            return Err(Invalid::new(
                "forward.url",
                "set url (or urls = [...]): the receiver's POST /v1/alerts URL",
            ));
        }
        for url in f.targets() {
            match reqwest::Url::parse(url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    let key = if url == f.url {
                        "forward.url"
                    } else {
                        "forward.urls"
                    };
                    return Err(Invalid::new(key, format!("{url:?} is not an http(s) URL")));
                }
            }
        }
        if f.timeout_ms == 0 || f.max_age_seconds == 0 || f.concurrency == 0 {
            return Err(Invalid::new(
                "forward",
                "timeout_ms, max_age_seconds and concurrency must be at least 1",
            ));
        }
        if f.nice > MAX_NICE {
            return Err(Invalid::new(
                "forward.nice",
                format!(
                    "{} is out of range: 0 (the accept path's priority) to {MAX_NICE}",
                    f.nice
                ),
            ));
        }
        if f.backoff_initial_ms == 0 || f.backoff_max_ms < f.backoff_initial_ms {
            return Err(Invalid::new(
                "forward.backoff_max_ms",
                "need 0 < backoff_initial_ms <= backoff_max_ms",
            ));
        }
        if f.client_cert_file.is_some() != f.client_key_file.is_some() {
            return Err(Invalid::new(
                "forward.client_cert_file",
                "client_cert_file and client_key_file go together",
            ));
        }
        if self.spool.max_pending == 0 || self.spool.max_bytes == 0 || self.spool.segment_bytes == 0
        {
            return Err(Invalid::new(
                "spool",
                "max_pending, max_bytes and segment_bytes must be at least 1",
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML (secret references print as references).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> String {
        r#"
[[accounts]]
id = "main"
secrets = ["env:X"]
[signing]
keys = ["file:k"]
[forward]
url = "http://127.0.0.1:9000/v1/alerts"
"#
        .to_owned()
    }

    #[test]
    fn omitted_sections_take_their_documented_defaults() {
        let s = Settings::parse(&minimal(), Path::new("r.toml")).unwrap();
        assert_eq!(s.allowlist.cidrs.len(), 4);
        assert_eq!(s.server.max_body_bytes, 16_384);
        assert_eq!(s.dedupe.window_seconds, 300);
        assert_eq!(s.forward.max_age_seconds, 120);
    }

    #[test]
    fn the_forwarder_runs_nicer_by_default_and_a_nice_past_19_is_refused_by_name() {
        let s = Settings::parse(&minimal(), Path::new("r.toml")).unwrap();
        assert_eq!(s.forward.nice, 10);
        let zero = minimal().replace("[forward]", "[forward]\nnice = 0");
        assert_eq!(
            Settings::parse(&zero, Path::new("r.toml"))
                .unwrap()
                .forward
                .nice,
            0
        );
        let text = minimal().replace("[forward]", "[forward]\nnice = 20");
        let err = Settings::parse(&text, Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("forward.nice") && err.contains("19"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_an_error() {
        let text = minimal().replace("[forward]", "[forward]\nurll = 1");
        let err = Settings::parse(&text, Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn the_effective_config_prints_secret_references_not_values() {
        let s = Settings::parse(&minimal(), Path::new("r.toml")).unwrap();
        let out = s.to_toml();
        assert!(out.contains("env:X"), "{out}");
        let again = Settings::parse(&out, Path::new("again.toml")).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn a_zero_rate_is_refused_with_its_key() {
        let text = format!("{}\n[rate_limit]\nglobal_burst = 0\n", minimal());
        let err = Settings::parse(&text, Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rate_limit.global_burst"), "{err}");
    }
}
