//! The receiver's settings (every key with its default: deploy/receiver.example.toml): typed `deny_unknown_fields` structs, defaults for
//! every optional key, and the checks that need more than the type system (referenced secrets and
//! key files resolve, limits are positive). `deploy/receiver.example.toml` shows every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alertgate_shared::config::{ConfigError, Invalid, LogConfig};
use alertgate_shared::{HmacSecret, SecretRef, VerifyingKey};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::broker::config::{BrokerConfig, VenueBroker};
use crate::controls::session::{Schedule, Session, Zone};

/// Everything `alertgate-receiver run` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`: where alerts come in.
    pub server: ServerConfig,
    /// `[verify]`: which signatures are trusted.
    pub verify: VerifyConfig,
    /// `[store]`: the journal.
    pub store: StoreConfig,
    /// `[dedupe]`: the second line of defence behind the relay's window.
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// `[broker]`: where orders go, when one venue serves everything (it is then the venue
    /// named after its kind). Either this or `[[venues]]`.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// `[[venues]]`: several venues, each alert routed to one of them ([`crate::routing`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub venues: Vec<VenueConfig>,
    /// `[accounts.NAME]`: per-account settings (copies to other accounts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accounts: BTreeMap<String, AccountConfig>,
    /// `[risk]`: gates every order passes before it is placed.
    #[serde(default)]
    pub risk: RiskConfig,
    /// `[symbols]`: TradingView `EXCHANGE:TICKER` → venue symbol.
    #[serde(default)]
    pub symbols: BTreeMap<String, String>,
    /// `[executor]`: inline deadline and broker retries.
    #[serde(default)]
    pub executor: ExecutorConfig,
    /// `[reconcile]`: venue positions, drift and `unknown` orders.
    #[serde(default)]
    pub reconcile: crate::reconcile::ReconcileConfig,
    /// `[ops]`: the bearer token of the orders API; without it the API answers 401.
    pub ops: Option<OpsConfig>,
    /// `[metrics]`: Prometheus endpoint; without it no metrics listener is opened.
    pub metrics: Option<MetricsConfig>,
    /// `[log]`.
    #[serde(default)]
    pub log: LogConfig,
    /// `[[notify]]`: where events go (receiver/README.md, "Notifications").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<alertgate_shared::notify::NotifyConfig>,
}

/// One `[[venues]]` table: a venue with its name, what it serves, its own symbols and risk
/// overrides, and its kind's keys (those of `[broker.KIND]`) beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueConfig {
    /// The venue's name: recorded on every order, the `venue` label of metrics, and what an
    /// alert's `venue` field picks.
    pub name: String,
    /// TradingView exchange prefixes it serves (`BINANCE` of `BINANCE:BTCUSDT`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchanges: Vec<String>,
    /// Accounts it serves; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// TradingView symbol → this venue's symbol, looked up before the global `[symbols]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub symbols: BTreeMap<String, String>,
    /// Risk limits for orders at this venue, over the global `[risk]` ones (and under
    /// `[risk.accounts.NAME]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskLimits>,
    /// `kind` and that kind's keys. (Unknown keys are refused by the kind's own section.)
    #[serde(flatten)]
    pub broker: VenueBroker,
}

/// `[accounts.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Other accounts each of this account's alerts also runs for, quantities scaled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyConfig>,
}

/// One entry of `copies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyConfig {
    /// The account the copy runs for (it needs its own `[accounts.NAME]` table).
    pub account: String,
    /// Quantities, notionals and target positions are multiplied by this (then rounded down
    /// to the venue's lot step).
    pub scale: Decimal,
}

/// The longest venue name.
pub const MAX_VENUE_NAME: usize = 32;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind (the relay's `forward.url` points here).
    pub listen: SocketAddr,
    /// Largest accepted body; larger requests get 413 before their body is read.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Time allowed for a request head to arrive, so idle half-open connections are closed.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// `[server.tls]`: serve HTTPS (and require client certificates when `client_ca_file` is set).
    pub tls: Option<TlsConfig>,
}

fn default_max_body_bytes() -> u64 {
    65_536
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

/// `[server.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (e.g. `certs/receiver.pem` from `alertgate-receiver certs`).
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA whose client certificates are required (e.g. `certs/ca.pem`); unset: no client auth.
    pub client_ca_file: Option<PathBuf>,
}

/// `[verify]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Ed25519 public keys (`file:certs/relay-signing.pub`); two during a rotation.
    #[serde(default)]
    pub public_keys: Vec<SecretRef>,
    /// `whsec_` secrets for `v1` signatures.
    #[serde(default)]
    pub hmac_secrets: Vec<SecretRef>,
    /// Largest accepted distance between `webhook-timestamp` and now.
    #[serde(default = "default_tolerance_seconds")]
    pub tolerance_seconds: u32,
}

fn default_tolerance_seconds() -> u32 {
    300
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default: one receiver, an embedded file) or `postgres` (several receivers on
    /// one database).
    #[serde(default)]
    pub kind: StoreKind,
    /// The SQLite journal file (created with its directory); `kind = "sqlite"` only.
    #[serde(default)]
    pub path: PathBuf,
    /// The PostgreSQL URL (`env:` or `file:`: URLs carry passwords); `kind = "postgres"` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretRef>,
    /// The CA certificates (PEM) that sign the database server's certificate, when `url` says
    /// `sslmode=require`; without it the public web roots are trusted. `kind = "postgres"` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// PostgreSQL connections per receiver.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long a write waits for a lock held by another process before the request gets 503.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
}

fn default_busy_timeout_ms() -> u64 {
    2_000
}

fn default_pool_size() -> usize {
    8
}

/// `[store] kind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The embedded journal file (`store.path`).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by several receivers (`store.url`).
    Postgres,
}

/// `[dedupe]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// An alert whose (account, idempotency key) was journaled this recently is a `duplicate`.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
}

fn default_window_seconds() -> u64 {
    300
}

impl Default for DedupeConfig {
    fn default() -> Self {
        Self {
            window_seconds: default_window_seconds(),
        }
    }
}

/// Limits that can be set globally and overridden per account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLimits {
    /// Largest quantity of one opening order.
    pub max_quantity: Option<Decimal>,
    /// Largest quantity × price of one opening order (price: the limit price, else the alert's
    /// reference `price`; an order with neither is rejected while this is set).
    pub max_notional: Option<Decimal>,
    /// Most orders per account in any 60 seconds.
    pub max_orders_per_minute: Option<u32>,
    /// Largest absolute position per (account, symbol) an opening order may leave.
    pub max_position: Option<Decimal>,
    /// Venue or TradingView symbols orders may use; empty: any.
    pub allowed_symbols: Option<Vec<String>>,
    /// Realized loss per UTC day at which opening orders stop until 00:00 UTC.
    pub max_daily_loss: Option<Decimal>,
    /// Trading sessions (`"mon-fri 09:30-16:00"`); outside them opening orders are refused.
    /// Empty: always open.
    pub sessions: Option<Vec<Session>>,
    /// The sessions' IANA time zone (default UTC).
    pub timezone: Option<Zone>,
}

impl RiskLimits {
    /// `self` with every key `over` sets replaced.
    pub fn overridden_by(&self, over: &RiskLimits) -> RiskLimits {
        RiskLimits {
            max_quantity: over.max_quantity.or(self.max_quantity),
            max_notional: over.max_notional.or(self.max_notional),
            max_orders_per_minute: over.max_orders_per_minute.or(self.max_orders_per_minute),
            max_position: over.max_position.or(self.max_position),
            allowed_symbols: over
                .allowed_symbols
                .clone()
                .or_else(|| self.allowed_symbols.clone()),
            max_daily_loss: over.max_daily_loss.or(self.max_daily_loss),
            sessions: over.sessions.clone().or_else(|| self.sessions.clone()),
            timezone: over.timezone.clone().or_else(|| self.timezone.clone()),
        }
    }

    /// The sessions in their zone (none: always open).
    pub fn schedule(&self) -> Schedule {
        Schedule {
            sessions: self.sessions.clone().unwrap_or_default(),
            zone: self.timezone.clone().unwrap_or_else(Zone::utc),
        }
    }
}

/// `[risk]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    /// Alerts the relay accepted longer ago than this are `expired`, never executed.
    #[serde(default = "default_max_alert_age_seconds")]
    pub max_alert_age_seconds: u64,
    /// While this file exists every order is rejected with `kill_switch`.
    pub kill_switch_file: Option<PathBuf>,
    /// Largest quantity of one opening order.
    pub max_quantity: Option<Decimal>,
    /// Largest quantity × price of one opening order (see [`RiskLimits::max_notional`]).
    pub max_notional: Option<Decimal>,
    /// Most orders per account in any 60 seconds.
    pub max_orders_per_minute: Option<u32>,
    /// Largest absolute position per (account, symbol) an opening order may leave.
    pub max_position: Option<Decimal>,
    /// Venue or TradingView symbols orders may use; empty: any.
    #[serde(default)]
    pub allowed_symbols: Vec<String>,
    /// Realized loss per account per UTC day at which opening orders stop until 00:00 UTC.
    pub max_daily_loss: Option<Decimal>,
    /// Trading sessions (`["mon-fri 09:30-16:00"]`) in `timezone`; empty: always open.
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// IANA time zone of `sessions` (default `UTC`).
    pub timezone: Option<Zone>,
    /// An alert whose `sent_at` (`{{timenow}}`) is older than this is `expired` (unset: off).
    pub max_signal_age_seconds: Option<u64>,
    /// `[risk.accounts.NAME]`: per-account overrides of the limits.
    #[serde(default)]
    pub accounts: BTreeMap<String, RiskLimits>,
}

fn default_max_alert_age_seconds() -> u64 {
    120
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            max_alert_age_seconds: default_max_alert_age_seconds(),
            kill_switch_file: None,
            max_quantity: None,
            max_notional: None,
            max_orders_per_minute: None,
            max_position: None,
            allowed_symbols: Vec::new(),
            max_daily_loss: None,
            sessions: Vec::new(),
            timezone: None,
            max_signal_age_seconds: None,
            accounts: BTreeMap::new(),
        }
    }
}

impl RiskConfig {
    /// The global limits.
    pub fn global_limits(&self) -> RiskLimits {
        RiskLimits {
            max_quantity: self.max_quantity,
            max_notional: self.max_notional,
            max_orders_per_minute: self.max_orders_per_minute,
            max_position: self.max_position,
            allowed_symbols: Some(self.allowed_symbols.clone()),
            max_daily_loss: self.max_daily_loss,
            sessions: Some(self.sessions.clone()),
            timezone: self.timezone.clone(),
        }
    }

    /// The limits that apply to `account`.
    pub fn limits_for(&self, account: &str) -> RiskLimits {
        self.limits_at(account, None)
    }

    /// The limits that apply to `account` at a venue with the overrides `venue`: the global
    /// ones, replaced by what the venue's `risk` sets, replaced by what `[risk.accounts.NAME]`
    /// sets (the most specific wins).
    pub fn limits_at(&self, account: &str, venue: Option<&RiskLimits>) -> RiskLimits {
        let mut limits = self.global_limits();
        if let Some(over) = venue {
            limits = limits.overridden_by(over);
        }
        match self.accounts.get(account) {
            Some(over) => limits.overridden_by(over),
            None => limits,
        }
    }
}

/// `[executor]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// How long `POST /v1/alerts` waits for execution before answering 202 `pending`
    /// (below the relay's `forward.timeout_ms`).
    #[serde(default = "default_inline_deadline_ms")]
    pub inline_deadline_ms: u64,
    /// Attempts per order when the broker reports a transient error (same client order id).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `retry_max_ms`, or the venue's `Retry-After`.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Longest retry delay.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// How often to look for executions a journal error interrupted (without a restart).
    #[serde(default = "default_resume_interval_ms")]
    pub resume_interval_ms: u64,
    /// A `pending` message no job is executing is resumed once it is this old.
    #[serde(default = "default_resume_after_seconds")]
    pub resume_after_seconds: u64,
    /// A receiver executing a message holds its lease this long (renewed while it runs); when a
    /// receiver dies, another one sharing the database resumes the message after it expires.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// Deliveries whose execution has not finished, at most (queued behind their (account,
    /// symbol) or running); a new delivery waits for room. Bounds what answering before the
    /// execution (`Prefer: respond-async`, the inline deadline) keeps in memory.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: usize,
}

fn default_max_backlog() -> usize {
    4_096
}

fn default_inline_deadline_ms() -> u64 {
    1_500
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_base_ms() -> u64 {
    200
}
fn default_retry_max_ms() -> u64 {
    5_000
}
fn default_resume_interval_ms() -> u64 {
    30_000
}
fn default_resume_after_seconds() -> u64 {
    60
}
fn default_lease_seconds() -> u64 {
    30
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            inline_deadline_ms: default_inline_deadline_ms(),
            max_attempts: default_max_attempts(),
            retry_base_ms: default_retry_base_ms(),
            retry_max_ms: default_retry_max_ms(),
            resume_interval_ms: default_resume_interval_ms(),
            resume_after_seconds: default_resume_after_seconds(),
            lease_seconds: default_lease_seconds(),
            max_backlog: default_max_backlog(),
        }
    }
}

/// `[ops]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Bearer token of `GET /v1/orders` and `GET /v1/messages/{id}` (`env:` or `file:`).
    pub token: SecretRef,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`).
    pub listen: SocketAddr,
}

impl Settings {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let settings: Settings = alertgate_shared::config::load(path)?;
        settings.validate().map_err(|e| e.in_file(path))?;
        Ok(settings)
    }

    /// Parses and checks config text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let settings: Settings = alertgate_shared::config::parse(text, origin)?;
        settings.validate().map_err(|e| e.in_file(origin))?;
        Ok(settings)
    }

    /// Checks values and resolves every secret reference once, so a missing environment variable
    /// or key file is reported at start, not at the first alert.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.trusted_keys()?;
        if self.verify.tolerance_seconds == 0 {
            return Err(Invalid::new(
                "verify.tolerance_seconds",
                "must be at least 1",
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(Invalid::new("server.max_body_bytes", "must be at least 1"));
        }
        if self.executor.resume_interval_ms == 0 {
            return Err(Invalid::new(
                "executor.resume_interval_ms",
                "must be at least 1",
            ));
        }
        self.store.check()?;
        if self.executor.max_backlog == 0 {
            return Err(Invalid::new("executor.max_backlog", "must be at least 1"));
        }
        if self.executor.lease_seconds == 0 {
            return Err(Invalid::new("executor.lease_seconds", "must be at least 1"));
        }
        if self.executor.max_attempts == 0 {
            return Err(Invalid::new("executor.max_attempts", "must be at least 1"));
        }
        if let Some(ops) = &self.ops {
            ops.token
                .resolve()
                .map_err(|e| Invalid::new("ops.token", e.to_string()))?;
        }
        if self.risk.max_signal_age_seconds == Some(0) {
            return Err(Invalid::new(
                "risk.max_signal_age_seconds",
                "must be at least 1 (leave it out to turn the check off)",
            ));
        }
        alertgate_shared::notify::NotifyConfig::validate_all(
            &self.notify,
            &crate::journal::EventKind::NAMES,
        )?;
        check_limits("risk", &self.risk.global_limits())?;
        for (account, limits) in &self.risk.accounts {
            check_limits(&format!("risk.accounts.{account}"), limits)?;
        }
        self.check_venues()?;
        self.check_copies()?;
        if let Some(tls) = &self.server.tls {
            for (key, path) in [
                ("server.tls.cert_file", Some(&tls.cert_file)),
                ("server.tls.key_file", Some(&tls.key_file)),
                ("server.tls.client_ca_file", tls.client_ca_file.as_ref()),
            ] {
                if let Some(path) = path {
                    if !path.is_file() {
                        return Err(Invalid::new(
                            key,
                            format!("{} is not a readable file", path.display()),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The venues orders go to, in routing order: the `[[venues]]` tables, or the one venue
    /// `[broker]` describes (named after its kind, serving every account and exchange).
    pub fn venue_configs(&self) -> Result<Vec<VenueConfig>, Invalid> {
        if !self.venues.is_empty() {
            return Ok(self.venues.clone());
        }
        let broker = self
            .broker
            .venue_broker()
            .map_err(|e| Invalid::new("broker", e.to_string()))?;
        Ok(vec![VenueConfig {
            name: self.broker.kind.as_str().to_owned(),
            exchanges: Vec::new(),
            accounts: Vec::new(),
            symbols: BTreeMap::new(),
            risk: None,
            broker,
        }])
    }

    fn check_venues(&self) -> Result<(), Invalid> {
        if !self.venues.is_empty() && self.broker != BrokerConfig::default() {
            return Err(Invalid::new(
                "broker",
                "both [broker] and [[venues]] are set: with [[venues]], move the [broker] \
                 settings into a [[venues]] table of their own",
            ));
        }
        let venues = self.venue_configs()?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in venues.iter().enumerate() {
            let valid_name = !v.name.is_empty()
                && v.name.len() <= MAX_VENUE_NAME
                && v.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid_name {
                return Err(Invalid::new(
                    format!("venues[{i}].name"),
                    format!(
                        "{:?}: 1 to {MAX_VENUE_NAME} letters, digits, '_', '-' or '.'",
                        v.name
                    ),
                ));
            }
            if !seen.insert(v.name.as_str()) {
                return Err(Invalid::new(
                    format!("venues[{i}].name"),
                    format!("{:?} names two venues; venue names must be unique", v.name),
                ));
            }
            if let Some(e) = v.exchanges.iter().find(|e| e.is_empty() || e.contains(':')) {
                return Err(Invalid::new(
                    format!("venues[{i}].exchanges"),
                    format!("{e:?}: an exchange is the prefix before ':' (\"BINANCE\")"),
                ));
            }
            if let Some(limits) = &v.risk {
                check_limits(&format!("venues[{i}].risk"), limits)?;
            }
        }
        Ok(())
    }

    fn check_copies(&self) -> Result<(), Invalid> {
        for (name, account) in &self.accounts {
            let mut targets = std::collections::BTreeSet::new();
            for (i, copy) in account.copies.iter().enumerate() {
                let key = format!("accounts.{name}.copies[{i}]");
                if copy.scale <= Decimal::ZERO {
                    return Err(Invalid::new(
                        format!("{key}.scale"),
                        "must be a positive decimal",
                    ));
                }
                if copy.account == *name {
                    return Err(Invalid::new(
                        format!("{key}.account"),
                        "an account cannot copy to itself",
                    ));
                }
                if !self.accounts.contains_key(&copy.account) {
                    return Err(Invalid::new(
                        format!("{key}.account"),
                        format!(
                            "unknown account {:?}: declare it with an [accounts.{}] table",
                            copy.account, copy.account
                        ),
                    ));
                }
                if !targets.insert(copy.account.as_str()) {
                    return Err(Invalid::new(
                        format!("{key}.account"),
                        format!("{:?} is copied to twice", copy.account),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The copies of `account`'s alerts (empty when it has none).
    pub fn copies_of(&self, account: &str) -> &[CopyConfig] {
        self.accounts
            .get(account)
            .map_or(&[], |a| a.copies.as_slice())
    }

    /// Loads the trusted keys named by `[verify]`.
    pub fn trusted_keys(&self) -> Result<(Vec<VerifyingKey>, Vec<HmacSecret>), Invalid> {
        let mut keys = Vec::new();
        for (i, r) in self.verify.public_keys.iter().enumerate() {
            let key = VerifyingKey::load(r)
                .map_err(|e| Invalid::new(format!("verify.public_keys[{i}]"), e.to_string()))?;
            keys.push(key);
        }
        let mut secrets = Vec::new();
        for (i, r) in self.verify.hmac_secrets.iter().enumerate() {
            let secret = HmacSecret::load(r)
                .map_err(|e| Invalid::new(format!("verify.hmac_secrets[{i}]"), e.to_string()))?;
            secrets.push(secret);
        }
        if keys.is_empty() && secrets.is_empty() {
            return Err(Invalid::new(
                "verify",
                "no trusted key: set public_keys (the relay's .pub files) or hmac_secrets",
            ));
        }
        Ok((keys, secrets))
    }

    /// The effective configuration as TOML (secret references shown, never their values).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print the config: {e}\n"))
    }
}

fn check_limits(prefix: &str, limits: &RiskLimits) -> Result<(), Invalid> {
    for (key, value) in [
        ("max_quantity", limits.max_quantity),
        ("max_notional", limits.max_notional),
        ("max_position", limits.max_position),
        ("max_daily_loss", limits.max_daily_loss),
    ] {
        if value.is_some_and(|v| v <= Decimal::ZERO) {
            return Err(Invalid::new(
                format!("{prefix}.{key}"),
                "must be a positive decimal",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(extra: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:9000\"\n[verify]\nhmac_secrets = [\"env:AG_TEST_WHSEC\"]\n\
             [store]\npath = \"x.db\"\n{extra}"
        )
    }

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        std::env::set_var("AG_TEST_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        Settings::parse(text, Path::new("receiver.toml"))
    }

    #[test]
    fn per_account_risk_overrides_replace_only_what_they_set() {
        let s = parse(&minimal(
            "[risk]\nmax_quantity = \"10\"\nmax_notional = \"500\"\n[risk.accounts.small]\nmax_quantity = \"1\"\n",
        ))
        .unwrap();
        let small = s.risk.limits_for("small");
        assert_eq!(small.max_quantity, Some(Decimal::ONE));
        assert_eq!(small.max_notional, Some(Decimal::from(500)));
        assert_eq!(
            s.risk.limits_for("other").max_quantity,
            Some(Decimal::from(10))
        );
    }

    #[test]
    fn unknown_keys_and_literal_secrets_are_refused() {
        let err = parse(&minimal("[risk]\nmax_qty = \"1\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_qty"), "{err}");
        let err = parse(&minimal("[ops]\ntoken = \"hunter2\"\n"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_executor_backlog_defaults_to_4096_and_zero_is_refused_naming_the_key() {
        assert_eq!(parse(&minimal("")).unwrap().executor.max_backlog, 4_096);
        let s = parse(&minimal("[executor]\nmax_backlog = 8\n")).unwrap();
        assert_eq!(s.executor.max_backlog, 8);
        let err = parse(&minimal("[executor]\nmax_backlog = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("executor.max_backlog"), "{err}");
    }

    #[test]
    fn a_config_without_any_trusted_key_is_refused() {
        let text = "[server]\nlisten = \"127.0.0.1:9000\"\n[verify]\n[store]\npath = \"x.db\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("verify"), "{err}");
    }

    #[test]
    fn a_venue_kind_without_its_section_is_refused() {
        let err = parse(&minimal("[broker]\nkind = \"alpaca\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[broker.alpaca]"), "{err}");
    }

    const VENUES: &str = "[[venues]]\nname = \"crypto\"\nkind = \"binance\"\nexchanges = [\"BINANCE\"]\n\
        api_key = \"env:AG_TEST_WHSEC\"\napi_secret = \"env:AG_TEST_WHSEC\"\nrecv_window_ms = 10000\n\
        [venues.symbols]\n\"BINANCE:BTCUSDT\" = \"BTCUSDT\"\n[venues.risk]\nmax_quantity = \"2\"\n\
        [[venues]]\nname = \"demo\"\nkind = \"paper\"\nequity = \"5000\"\naccounts = [\"b\"]\n";

    #[test]
    fn venue_tables_carry_their_kinds_keys_beside_name_and_routing() {
        let s = parse(&minimal(VENUES)).unwrap();
        let venues = s.venue_configs().unwrap();
        assert_eq!(venues.len(), 2);
        let VenueBroker::Binance(b) = &venues[0].broker else {
            panic!("{:?}", venues[0].broker)
        };
        assert_eq!(b.recv_window_ms, 10_000);
        assert_eq!(venues[0].exchanges, ["BINANCE"]);
        assert_eq!(venues[0].symbols["BINANCE:BTCUSDT"], "BTCUSDT");
        assert_eq!(
            venues[0].risk.as_ref().unwrap().max_quantity,
            Some(Decimal::TWO)
        );
        let VenueBroker::Paper(p) = &venues[1].broker else {
            panic!("{:?}", venues[1].broker)
        };
        assert_eq!(p.equity, Decimal::from(5000));
        // What check-config prints parses back to the same settings.
        let again = parse(&s.to_toml()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn the_broker_table_alone_is_one_venue_named_after_its_kind() {
        let s = parse(&minimal("[broker]\nkind = \"paper\"\n")).unwrap();
        let venues = s.venue_configs().unwrap();
        assert_eq!(venues.len(), 1);
        assert_eq!(venues[0].name, "paper");
        assert!(venues[0].exchanges.is_empty() && venues[0].accounts.is_empty());
    }

    #[test]
    fn venue_mistakes_are_refused_naming_the_key() {
        let cases = [
            (
                format!("{VENUES}[[venues]]\nname = \"crypto\"\nkind = \"paper\"\n"),
                "venues[2].name",
            ),
            (
                "[[venues]]\nname = \"x\"\nkind = \"paper\"\nequty = \"1\"\n".to_owned(),
                "equty",
            ),
            (
                "[[venues]]\nname = \"x\"\nkind = \"alpaca\"\n".to_owned(),
                "key_id",
            ),
            (
                "[[venues]]\nname = \"x\"\nkind = \"nope\"\n".to_owned(),
                "nope",
            ),
            (
                "[[venues]]\nname = \"a b\"\nkind = \"paper\"\n".to_owned(),
                "venues[0].name",
            ),
            (
                format!("[broker]\nkind = \"alpaca\"\n[broker.alpaca]\nkey_id = \"env:AG_TEST_WHSEC\"\nsecret_key = \"env:AG_TEST_WHSEC\"\n{VENUES}"),
                "both [broker] and [[venues]]",
            ),
        ];
        for (text, wanted) in cases {
            let err = parse(&minimal(&text)).unwrap_err().to_string();
            assert!(err.contains(wanted), "{wanted}: {err}");
        }
    }

    #[test]
    fn copies_need_a_declared_account_and_a_positive_scale() {
        let ok = "[accounts.a]\ncopies = [{ account = \"b\", scale = \"0.5\" }]\n[accounts.b]\n";
        let s = parse(&minimal(ok)).unwrap();
        assert_eq!(s.copies_of("a")[0].scale, Decimal::new(5, 1));
        assert!(s.copies_of("b").is_empty());
        for (text, wanted) in [
            (
                "[accounts.a]\ncopies = [{ account = \"c\", scale = \"0.5\" }]\n",
                "accounts.a.copies[0].account: unknown account \"c\"",
            ),
            (
                "[accounts.a]\ncopies = [{ account = \"b\", scale = \"0\" }]\n[accounts.b]\n",
                "accounts.a.copies[0].scale",
            ),
            (
                "[accounts.a]\ncopies = [{ account = \"b\", scale = \"-1\" }]\n[accounts.b]\n",
                "accounts.a.copies[0].scale",
            ),
            (
                "[accounts.a]\ncopies = [{ account = \"a\", scale = \"1\" }]\n",
                "copy to itself",
            ),
        ] {
            let err = parse(&minimal(text)).unwrap_err().to_string();
            assert!(err.contains(wanted), "{wanted}: {err}");
        }
    }
}
